//! Calls, their intents and idempotency records in memory, with the listing by account.

use super::*;
use async_trait::async_trait;
use std::collections::BTreeMap;
use teleapi_domain::call::{CallFilter, ListedCall};
use teleapi_domain::paging::{Page, PageRequest, intent_position, partition_key};
use teleapi_domain::sid::WorkerId;
use teleapi_domain::{
    AccountSid, Call, CallSid, IdempotencyKey, IdempotencyRecord, Intent, IntentStatus, Subject,
    Timestamp,
};
use teleapi_ports::paging::{Order, Round, fill_page};
use teleapi_ports::{
    CallStore, CallWrite, InsertError, IntentFailure, RecordError, Settlement, StoreError,
};

#[async_trait]
impl CallStore for MemoryStore {
    async fn call(&self, sid: &CallSid) -> Result<Option<Call>, StoreError> {
        Ok(lock(&self.tables).calls.get(sid).cloned())
    }

    async fn insert_call(&self, call: &Call) -> Result<(), InsertError> {
        let mut tables = lock(&self.tables);
        if tables.calls.contains_key(&call.sid) {
            return Err(InsertError::AlreadyExists);
        }
        tables.put_call(call);
        Ok(())
    }

    async fn write_call(&self, write: CallWrite<'_>) -> Result<(), RecordError> {
        let mut tables = lock(&self.tables);
        tables.expire(write.now);
        let stored = tables.calls.get(&write.call.sid);
        let version_holds = match write.expected_version {
            Some(expected) => stored.is_some_and(|stored| stored.version == expected),
            None => stored.is_none(),
        };
        let intent_taken = write.intent.is_some_and(|i| tables.intent_taken(i));
        if !version_holds || intent_taken {
            return Err(RecordError::CallChanged);
        }
        if tables.key_taken(write.idempotency, write.now) {
            return Err(RecordError::KeyTaken);
        }
        tables.put_key(write.idempotency);
        tables.put_call(write.call);
        if let Some(intent) = write.intent {
            tables.put_intent(intent);
        }
        Ok(())
    }

    async fn intent(&self, subject: &Subject, seq: u64) -> Result<Option<Intent>, StoreError> {
        Ok(lock(&self.tables).intent(subject, seq).cloned())
    }

    async fn settle_intent(&self, settlement: Settlement<'_>) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        tables.expire(settlement.now);
        match tables.intent_mut(settlement.subject, settlement.seq) {
            Some(intent)
                if settlement.from.contains(&intent.status)
                    && settlement.intent_sid.is_none_or(|sid| *sid == intent.sid) =>
            {
                intent.status = settlement.to;
                if let Some(reason) = settlement.reason {
                    intent.reason = Some(reason.to_owned());
                }
                intent.date_updated = settlement.now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn fail_intent(&self, failure: IntentFailure<'_>) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        tables.expire(failure.now);
        let subject = Subject::Call(failure.call_sid.clone());
        match tables.intent_mut(&subject, failure.seq) {
            Some(intent) if intent.status == IntentStatus::Pending => {
                intent.status = IntentStatus::Failed;
                intent.reason = Some(failure.reason.to_owned());
                intent.date_updated = failure.now;
            }
            _ => return Ok(false),
        }
        if let Some((call, expected_version)) = failure.restore
            && tables
                .calls
                .get(&call.sid)
                .is_some_and(|stored| stored.version == expected_version)
        {
            tables.calls.insert(call.sid.clone(), call.clone());
        }
        if let Some(key) = failure.release_key {
            tables.idempotency.remove(key);
        }
        Ok(true)
    }

    async fn live_calls(
        &self,
        worker: &WorkerId,
        limit: usize,
    ) -> Result<Vec<CallSid>, StoreError> {
        let tables = lock(&self.tables);
        let mut live: Vec<(Timestamp, CallSid)> = tables
            .calls
            .values()
            .filter(|c| c.worker.as_ref() == Some(worker) && !c.status.is_final())
            .map(|c| (c.date_created, c.sid.clone()))
            .collect();
        live.sort();
        Ok(live.into_iter().take(limit).map(|(_, sid)| sid).collect())
    }

    async fn pending_intents(
        &self,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<Intent>, StoreError> {
        let tables = lock(&self.tables);
        let mut pending: Vec<Intent> = tables
            .intents
            .values()
            .flat_map(BTreeMap::values)
            .filter(|i| !i.status.is_settled() && i.date_created < created_before)
            .cloned()
            .collect();
        pending.sort_by_key(|i| i.date_created);
        pending.truncate(limit);
        Ok(pending)
    }

    async fn list_calls(
        &self,
        account: &AccountSid,
        shards: u8,
        filter: &CallFilter,
        page: &PageRequest,
    ) -> Result<Page<ListedCall<'static>>, StoreError> {
        // The listing index, as DynamoDB keeps it: per partition of the account, its calls by
        // position, bounded above by the start-time filter (a call starts after it is created).
        let upper = filter
            .started_at_or_before
            .map(|t| format!("{:015}#~", t.millis().max(0)));
        let reading = Order::Descending.reading(page);
        fill_page(
            page,
            Order::Descending,
            usize::from(shards),
            |shard, after, limit| {
                let tables = lock(&self.tables);
                let key = partition_key(account, u8::try_from(shard).unwrap_or(u8::MAX));
                let round = match tables.listing.get(&key) {
                    Some(partition) => read_round(
                        partition,
                        after.as_deref(),
                        upper.as_deref(),
                        limit,
                        reading,
                        |sid| {
                            tables
                                .calls
                                .get(sid)
                                .map(Call::listed)
                                .filter(|call| filter.matches(call))
                                .map(ListedCall::into_owned)
                        },
                    ),
                    None => Round {
                        items: Vec::new(),
                        last_evaluated: None,
                        scanned: 0,
                    },
                };
                std::future::ready(Ok(round))
            },
        )
        .await
    }

    async fn list_intents(
        &self,
        subject: &Subject,
        page: &PageRequest,
    ) -> Result<Page<Intent>, StoreError> {
        let listing: BTreeMap<String, Intent> = lock(&self.tables)
            .intents
            .get(subject)
            .into_iter()
            .flat_map(BTreeMap::values)
            .map(|intent| (intent_position(intent.seq), intent.clone()))
            .collect();
        let reading = Order::Ascending.reading(page);
        fill_page(page, Order::Ascending, 1, |_, after, limit| {
            std::future::ready(Ok(read_round(
                &listing,
                after.as_deref(),
                None,
                limit,
                reading,
                |intent| Some(intent.clone()),
            )))
        })
        .await
    }

    async fn idempotency_record(
        &self,
        key: &IdempotencyKey,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(lock(&self.tables)
            .idempotency
            .get(key)
            .filter(|record| record.is_live(now))
            .cloned())
    }
}
