//! The stores on DynamoDB. Tables, keys, conditions and TTL are described in docs/data-model.md;
//! the item <-> domain conversions live in [`item`].

mod call_log;
mod conferences;
mod item;
mod recordings;
pub mod schema;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, TransactWriteItem, Update,
};

use teleapi_domain::call::CallFilter;
use teleapi_domain::paging;
use teleapi_domain::paging::{Page, PageRequest};
use teleapi_domain::sid::WorkerId;
use teleapi_domain::worker::{Worker, WorkerStatus};
use teleapi_domain::{
    Account, AccountSid, Call, CallSid, IdempotencyKey, IdempotencyRecord, Intent, IntentStatus,
    Subject, Timestamp,
};
use teleapi_ports::paging::{Order, Round, fill_page, resolve};
use teleapi_ports::{
    AccountStore, CallStore, CallWrite, InsertError, IntentFailure, RecordError, Settlement,
    StoreError, WorkerStore,
};

pub use schema::TableNames;

use item::{n, s};

/// Number of partitions of the sparse `pending` index. Every intent is written to it and removed
/// from it once (two index writes), so at the deployment's target of 12,000 intents a second
/// 64 partitions run at 375 writes a second each, under half of a partition's 1,000
/// (docs/capacity.md); sixteen would have been over the limit.
pub const PENDING_SHARDS: u32 = 64;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
}

impl DynamoStore {
    pub fn new(client: Client, tables: TableNames) -> Self {
        Self { client, tables }
    }

    /// Up to `limit` of the `key`s in `table`'s sparse `worker` index (`LiveWorker`): what
    /// `worker` runs that has not ended (calls, conferences), for when its lease runs out.
    async fn live_on_worker<T: std::str::FromStr>(
        &self,
        table: &str,
        key: &str,
        worker: &WorkerId,
        limit: usize,
    ) -> Result<Vec<T>, StoreError> {
        let mut found = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        while found.len() < limit {
            let page = self
                .client
                .query()
                .table_name(table)
                .index_name(schema::WORKER_INDEX)
                .key_condition_expression("LiveWorker = :worker")
                .expression_attribute_values(":worker", s(worker.as_str()))
                .limit(i32::try_from(limit - found.len()).unwrap_or(1000).min(1000))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            for entry in page.items() {
                let sid = entry
                    .get(key)
                    .and_then(|v| v.as_s().ok())
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| {
                        StoreError::Failed(format!("worker index entry without {key}"))
                    })?;
                found.push(sid);
            }
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(found)
    }
}

impl DynamoStore {
    /// An intent's put in a transaction: only if its number is free; into the `pending` index
    /// while it is pending.
    fn intent_put(&self, intent: &Intent) -> Result<TransactWriteItem, StoreError> {
        let mut intent_item = item::intent_item(intent);
        if intent.status == IntentStatus::Pending {
            intent_item.insert("PendingShard".into(), s(&pending_shard(&intent.subject)));
        }
        let put = Put::builder()
            .table_name(&self.tables.intents)
            .set_item(Some(intent_item))
            .condition_expression("attribute_not_exists(CallSid)")
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Runs `items`, with the request's idempotency record last (only if its key is unused or
    /// expired at `now`). A failed key condition is `KeyTaken`; any other `CallChanged`.
    async fn transact_with_key(
        &self,
        mut items: Vec<TransactWriteItem>,
        idempotency: Option<&IdempotencyRecord>,
        now: Timestamp,
    ) -> Result<(), RecordError> {
        let key_index = items.len();
        if let Some(record) = idempotency {
            let put = Put::builder()
                .table_name(&self.tables.idempotency)
                .set_item(Some(item::idempotency_item(record)))
                .condition_expression("attribute_not_exists(IdempotencyKey) OR ExpiresAt <= :now")
                .expression_attribute_values(":now", n(now.epoch_seconds()))
                .build()
                .map_err(|e| StoreError::Failed(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => match cancelled_items(&err) {
                // The idempotency key decides first: a retry of a request that already
                // succeeded also finds the version moved on.
                Some(failed) if failed.get(key_index) == Some(&true) => Err(RecordError::KeyTaken),
                Some(failed) if failed.iter().any(|f| *f) => Err(RecordError::CallChanged),
                _ => Err(store_error(err).into()),
            },
        }
    }

    /// Every account, by a Scan: for `teleapi-admin sync-usage-plans`, never for a request.
    pub async fn all_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let mut accounts = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.tables.accounts)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            for entry in page.items() {
                accounts.push(item::account_from(entry)?);
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(accounts),
            }
        }
    }

    /// Puts every call stored before listings were partitioned (no `ListingKey`) into its
    /// account's first listing partition, where the listing index finds it; returns how many it
    /// changed. A Scan, for `teleapi-admin backfill-listing`: run once, after deploying the
    /// partitioned listing (docs/capacity.md, "Migrating"). Safe to run again, and beside live
    /// traffic: a call that gets its key meanwhile is left as it is.
    pub async fn backfill_listing_keys(&self) -> Result<u64, StoreError> {
        let mut changed = 0;
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.tables.calls)
                .filter_expression("attribute_not_exists(ListingKey)")
                .projection_expression("CallSid, AccountSid")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(store_error)?;
            for entry in page.items() {
                let (Some(AttributeValue::S(call)), Some(AttributeValue::S(account))) =
                    (entry.get("CallSid"), entry.get("AccountSid"))
                else {
                    continue;
                };
                let account: AccountSid = account
                    .parse()
                    .map_err(|_| StoreError::Failed(format!("call {call}: bad AccountSid")))?;
                let result = self
                    .client
                    .update_item()
                    .table_name(&self.tables.calls)
                    .key("CallSid", s(call))
                    .update_expression("SET ListingKey = :key")
                    .condition_expression(
                        "attribute_exists(CallSid) AND attribute_not_exists(ListingKey)",
                    )
                    .expression_attribute_values(":key", s(&paging::partition_key(&account, 0)))
                    .send()
                    .await;
                match result {
                    Ok(_) => changed += 1,
                    Err(err) if is_conditional_check_failed(&err) => {}
                    Err(err) => return Err(store_error(err)),
                }
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(changed),
            }
        }
    }

    /// The calls named, read whole from the table (eventually consistent, as the listing index
    /// they come from is), by CallSid.
    async fn calls_by_sid(&self, sids: &[CallSid]) -> Result<HashMap<CallSid, Call>, StoreError> {
        let keys = sids
            .iter()
            .map(|sid| HashMap::from([("CallSid".to_owned(), s(sid.as_str()))]))
            .collect();
        Ok(self
            .batch_get(&self.tables.calls, keys, item::call_from)
            .await?
            .into_iter()
            .map(|call| (call.sid.clone(), call))
            .collect())
    }

    /// The items of `table` with `keys`, read whole (eventually consistent): one BatchGetItem per
    /// hundred, all at once, taking back what DynamoDB left unprocessed.
    pub(super) async fn batch_get<T>(
        &self,
        table: &str,
        keys: Vec<HashMap<String, AttributeValue>>,
        read: fn(&HashMap<String, AttributeValue>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let batches = keys.chunks(100).map(|chunk| async move {
            let mut keys = chunk.to_vec();
            let mut found = Vec::new();
            for attempt in 0u32.. {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .build()
                    .map_err(|e| StoreError::Failed(e.to_string()))?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(table, request)
                    .send()
                    .await
                    .map_err(store_error)?;
                if let Some(items) = output.responses().and_then(|r| r.get(table)) {
                    for entry in items {
                        found.push(read(entry)?);
                    }
                }
                keys = output
                    .unprocessed_keys()
                    .and_then(|u| u.get(table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
                if keys.is_empty() {
                    break;
                }
                if attempt >= 5 {
                    return Err(StoreError::Unavailable(
                        "BatchGetItem kept leaving keys unprocessed".into(),
                    ));
                }
                tokio::time::sleep(teleapi_ports::retry::backoff(attempt)).await;
            }
            Ok::<_, StoreError>(found)
        });
        Ok(futures_util::future::try_join_all(batches)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }
}

/// One read of a listing index (`Listing` is its sort key in both tables that have one): each
/// entry's position and the key `key(entry, position)` reads from it.
pub(super) fn listing_round<K>(
    output: &aws_sdk_dynamodb::operation::query::QueryOutput,
    key: impl Fn(&HashMap<String, AttributeValue>, &str) -> Option<K>,
) -> Result<Round<K>, StoreError> {
    round_by("Listing", output, key)
}

/// [`listing_round`] of a query whose sort key (the position) is `attribute`.
pub(super) fn round_by<K>(
    attribute: &str,
    output: &aws_sdk_dynamodb::operation::query::QueryOutput,
    key: impl Fn(&HashMap<String, AttributeValue>, &str) -> Option<K>,
) -> Result<Round<K>, StoreError> {
    let items = output
        .items()
        .iter()
        .map(|entry| {
            let position = entry
                .get(attribute)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .ok_or_else(|| StoreError::Failed(format!("index entry without {attribute}")))?;
            let key = key(entry, &position).ok_or_else(|| {
                StoreError::Failed(format!("index entry {position} without its key"))
            })?;
            Ok((position, key))
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Round {
        items,
        last_evaluated: output
            .last_evaluated_key()
            .and_then(|key| key.get(attribute))
            .and_then(|v| v.as_s().ok())
            .cloned(),
        scanned: usize::try_from(output.scanned_count()).unwrap_or(0),
    })
}

/// Throttling, timeouts and server errors are worth retrying (after the SDK's own retries);
/// anything else is a fault of ours or of the deployment.
fn store_error<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    const TRANSIENT: [&str; 7] = [
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
    ];
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(format!("{err:?}"))
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown");
            let message = service.err().message().unwrap_or("");
            if TRANSIENT.contains(&code) {
                StoreError::Unavailable(format!("{code}: {message}"))
            } else {
                StoreError::Failed(format!("{code}: {message}"))
            }
        }
        _ => StoreError::Failed(format!("{err:?}")),
    }
}

fn is_conditional_check_failed<E: ProvideErrorMetadata>(
    err: &SdkError<E, impl std::fmt::Debug>,
) -> bool {
    matches!(err, SdkError::ServiceError(service) if service.err().code() == Some("ConditionalCheckFailedException"))
}

/// Which items of a cancelled transaction failed their condition (or conflicted).
fn cancelled_items(
    err: &SdkError<TransactWriteItemsError, impl std::fmt::Debug>,
) -> Option<Vec<bool>> {
    let SdkError::ServiceError(service) = err else {
        return None;
    };
    match service.err() {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => Some(
            cancelled
                .cancellation_reasons()
                .iter()
                .map(|reason| {
                    matches!(
                        reason.code(),
                        Some("ConditionalCheckFailed" | "TransactionConflict")
                    )
                })
                .collect(),
        ),
        _ => None,
    }
}

/// A pending intent's partition of the `pending` index: the CallSid's last two hex digits,
/// modulo [`PENDING_SHARDS`], as two hex digits (`00` to `3f`: every intent item the same size).
fn pending_shard(subject: &Subject) -> String {
    let sid = subject.as_str();
    let last = u32::from_str_radix(&sid[sid.len() - 2..], 16).unwrap_or(0);
    format!("{:02x}", last % PENDING_SHARDS)
}

/// Every partition the reconciler reads: the 64, and the sixteen of the earlier layout (`0` to
/// `f`, the CallSid's last hex digit), where intents written before it may still be pending.
fn pending_partitions() -> impl Iterator<Item = String> {
    (0..PENDING_SHARDS)
        .map(|shard| format!("{shard:02x}"))
        .chain((0..16).map(|shard| format!("{shard:x}")))
}

#[async_trait]
impl AccountStore for DynamoStore {
    async fn account(&self, sid: &AccountSid) -> Result<Option<Account>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.accounts)
            .key("AccountSid", s(sid.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        output.item.map(|i| item::account_from(&i)).transpose()
    }

    async fn insert_account(&self, account: &Account) -> Result<(), InsertError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.accounts)
            .set_item(Some(item::account_item(account)))
            .condition_expression("attribute_not_exists(AccountSid)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_conditional_check_failed(&err) => Err(InsertError::AlreadyExists),
            Err(err) => Err(store_error(err).into()),
        }
    }

    async fn update_account(&self, account: &Account) -> Result<bool, StoreError> {
        let mut update =
            "SET AuthToken = :token, #status = :status, ListingShards = :shards".to_owned();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.accounts)
            .key("AccountSid", s(account.sid.as_str()))
            .condition_expression("attribute_exists(AccountSid)")
            .expression_attribute_names("#status", "Status")
            .expression_attribute_values(":token", s(account.auth_token.expose()))
            .expression_attribute_values(":status", s(account.status.as_str()))
            .expression_attribute_values(":shards", n(account.listing_shards));
        let mut removed = Vec::new();
        match account.rate_limit {
            Some(limit) => {
                update.push_str(", RatePerSecond = :rate, RateBurst = :burst");
                request = request
                    .expression_attribute_values(":rate", n(limit.per_second))
                    .expression_attribute_values(":burst", n(limit.burst));
            }
            None => removed.extend(["RatePerSecond", "RateBurst"]),
        }
        match &account.usage_key {
            Some(key) => {
                update.push_str(", UsageKey = :key");
                request = request.expression_attribute_values(":key", s(key));
            }
            None => removed.push("UsageKey"),
        }
        if !removed.is_empty() {
            update.push_str(&format!(" REMOVE {}", removed.join(", ")));
        }
        match request.update_expression(update).send().await {
            Ok(_) => Ok(true),
            Err(err) if is_conditional_check_failed(&err) => Ok(false),
            Err(err) => Err(store_error(err)),
        }
    }
}

#[async_trait]
impl WorkerStore for DynamoStore {
    async fn worker(&self, id: &WorkerId) -> Result<Option<Worker>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.workers)
            .key("WorkerId", s(id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        output.item.map(|i| item::worker_from(&i)).transpose()
    }

    async fn record_worker(&self, worker: &Worker) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.workers)
            .set_item(Some(item::worker_item(worker)))
            .condition_expression(
                "attribute_not_exists(WorkerId) \
                 OR (#status IN (:active, :draining) AND LastEvent < :at)",
            )
            .expression_attribute_names("#status", "Status")
            .expression_attribute_values(":active", s(WorkerStatus::Active.as_str()))
            .expression_attribute_values(":draining", s(WorkerStatus::Draining.as_str()))
            .expression_attribute_values(":at", n(worker.last_event.millis()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_conditional_check_failed(&err) => Ok(false),
            Err(err) => Err(store_error(err)),
        }
    }

    async fn expired_workers(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Worker>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.tables.workers)
            .index_name(schema::LEASES_INDEX)
            .key_condition_expression("LeaseShard = :live AND LeaseExpiresAt < :now")
            .expression_attribute_values(":live", s(item::LIVE_LEASES))
            .expression_attribute_values(":now", n(now.millis()))
            .limit(i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000))
            .send()
            .await
            .map_err(store_error)?;
        let mut expired = Vec::new();
        for entry in output.items() {
            let worker = item::worker_from(entry)?;
            // The index is eventually consistent: skip what was renewed or has left since.
            if worker.status.is_live() && worker.lease_expires_at < now {
                expired.push(worker);
            }
        }
        Ok(expired)
    }

    async fn expire_worker(&self, id: &WorkerId, now: Timestamp) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.tables.workers)
            .key("WorkerId", s(id.as_str()))
            .update_expression("SET #status = :expired, DateUpdated = :now REMOVE LeaseShard")
            .condition_expression("#status IN (:active, :draining) AND LeaseExpiresAt < :now")
            .expression_attribute_names("#status", "Status")
            .expression_attribute_values(":expired", s(WorkerStatus::Expired.as_str()))
            .expression_attribute_values(":active", s(WorkerStatus::Active.as_str()))
            .expression_attribute_values(":draining", s(WorkerStatus::Draining.as_str()))
            .expression_attribute_values(":now", n(now.millis()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if is_conditional_check_failed(&err) => Ok(false),
            Err(err) => Err(store_error(err)),
        }
    }
}

#[async_trait]
impl CallStore for DynamoStore {
    async fn call(&self, sid: &CallSid) -> Result<Option<Call>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.calls)
            .key("CallSid", s(sid.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        output.item.map(|i| item::call_from(&i)).transpose()
    }

    async fn insert_call(&self, call: &Call) -> Result<(), InsertError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.calls)
            .set_item(Some(item::call_item(call)))
            .condition_expression("attribute_not_exists(CallSid)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_conditional_check_failed(&err) => Err(InsertError::AlreadyExists),
            Err(err) => Err(store_error(err).into()),
        }
    }

    async fn write_call(&self, write: CallWrite<'_>) -> Result<(), RecordError> {
        let call_put = Put::builder()
            .table_name(&self.tables.calls)
            .set_item(Some(item::call_item(write.call)));
        let call_put = match write.expected_version {
            Some(expected) => call_put
                .condition_expression("Version = :expected")
                .expression_attribute_values(":expected", n(expected)),
            None => call_put.condition_expression("attribute_not_exists(CallSid)"),
        }
        .build()
        .map_err(|e| StoreError::Failed(e.to_string()))?;
        if write.intent.is_none() && write.idempotency.is_none() {
            // The call alone: one conditional PutItem, no transaction needed.
            let result = self
                .client
                .put_item()
                .table_name(&self.tables.calls)
                .set_item(Some(call_put.item))
                .set_condition_expression(call_put.condition_expression)
                .set_expression_attribute_values(call_put.expression_attribute_values)
                .send()
                .await;
            return match result {
                Ok(_) => Ok(()),
                Err(err) if is_conditional_check_failed(&err) => Err(RecordError::CallChanged),
                Err(err) => Err(store_error(err).into()),
            };
        }
        let mut items = vec![TransactWriteItem::builder().put(call_put).build()];
        if let Some(intent) = write.intent {
            items.push(self.intent_put(intent)?);
        }
        self.transact_with_key(items, write.idempotency, write.now)
            .await
    }

    async fn intent(&self, subject: &Subject, seq: u64) -> Result<Option<Intent>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.intents)
            .key("CallSid", s(subject.as_str()))
            .key("Seq", n(seq))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        output.item.map(|i| item::intent_from(&i)).transpose()
    }

    async fn settle_intent(&self, settlement: Settlement<'_>) -> Result<bool, StoreError> {
        let Settlement {
            subject,
            seq,
            intent_sid,
            from,
            to,
            reason,
            now,
        } = settlement;
        let placeholders: Vec<String> = (0..from.len()).map(|i| format!(":from{i}")).collect();
        let mut condition = format!("#status IN ({})", placeholders.join(", "));
        let mut update = "SET #status = :to, DateUpdated = :now".to_owned();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.intents)
            .key("CallSid", s(subject.as_str()))
            .key("Seq", n(seq))
            .expression_attribute_names("#status", "Status")
            .expression_attribute_values(":to", s(to.as_str()))
            .expression_attribute_values(":now", n(now.millis()));
        for (placeholder, status) in placeholders.iter().zip(from) {
            request = request.expression_attribute_values(placeholder, s(status.as_str()));
        }
        if let Some(sid) = intent_sid {
            condition.push_str(" AND IntentSid = :sid");
            request = request.expression_attribute_values(":sid", s(sid.as_str()));
        }
        request = request.condition_expression(condition);
        if let Some(reason) = reason {
            update.push_str(", Reason = :reason");
            request = request.expression_attribute_values(":reason", s(reason));
        }
        if to.is_settled() {
            update.push_str(" REMOVE PendingShard");
        }
        match request.update_expression(update).send().await {
            Ok(_) => Ok(true),
            Err(err) if is_conditional_check_failed(&err) => Ok(false),
            Err(err) => Err(store_error(err)),
        }
    }

    async fn fail_intent(&self, failure: IntentFailure<'_>) -> Result<bool, StoreError> {
        let build = |restore: bool| -> Result<Vec<TransactWriteItem>, StoreError> {
            let built = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Failed(e.to_string());
            let mut items = vec![
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.tables.intents)
                            .key("CallSid", s(failure.call_sid.as_str()))
                            .key("Seq", n(failure.seq))
                            .update_expression(
                                "SET #status = :failed, Reason = :reason, DateUpdated = :now REMOVE PendingShard",
                            )
                            .condition_expression("#status = :pending")
                            .expression_attribute_names("#status", "Status")
                            .expression_attribute_values(":failed", s(IntentStatus::Failed.as_str()))
                            .expression_attribute_values(":pending", s(IntentStatus::Pending.as_str()))
                            .expression_attribute_values(":reason", s(failure.reason))
                            .expression_attribute_values(":now", n(failure.now.millis()))
                            .build()
                            .map_err(built)?,
                    )
                    .build(),
            ];
            if let (true, Some((call, expected))) = (restore, failure.restore) {
                items.push(
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(&self.tables.calls)
                                .set_item(Some(item::call_item(call)))
                                .condition_expression("Version = :expected")
                                .expression_attribute_values(":expected", n(expected))
                                .build()
                                .map_err(built)?,
                        )
                        .build(),
                );
            }
            if let Some(key) = failure.release_key {
                items.push(
                    TransactWriteItem::builder()
                        .delete(
                            Delete::builder()
                                .table_name(&self.tables.idempotency)
                                .key("IdempotencyKey", s(key.as_str()))
                                .build()
                                .map_err(built)?,
                        )
                        .build(),
                );
            }
            Ok(items)
        };
        // First with the call restored; if the call moved on meanwhile, a later intent owns it
        // and only the intent is failed.
        for restore in [true, false] {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(build(restore)?))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(true),
                Err(err) => match cancelled_items(&err) {
                    Some(failed) if failed.first() == Some(&true) => return Ok(false),
                    Some(failed) if restore && failed.get(1) == Some(&true) => continue,
                    _ => return Err(store_error(err)),
                },
            }
        }
        Ok(false)
    }

    async fn live_calls(
        &self,
        worker: &WorkerId,
        limit: usize,
    ) -> Result<Vec<CallSid>, StoreError> {
        self.live_on_worker(&self.tables.calls, "CallSid", worker, limit)
            .await
    }

    async fn pending_intents(
        &self,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<Intent>, StoreError> {
        let page_size = i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000);
        // The shards are independent: query them all at once, so the sweep costs one round
        // trip rather than one per shard.
        let mut queries = tokio::task::JoinSet::new();
        for shard in pending_partitions() {
            let query = self
                .client
                .query()
                .table_name(&self.tables.intents)
                .index_name(schema::PENDING_INDEX)
                .key_condition_expression("PendingShard = :shard AND DateCreated < :before")
                .expression_attribute_values(":shard", s(&shard))
                .expression_attribute_values(":before", n(created_before.millis()))
                .limit(page_size);
            queries.spawn(query.send());
        }
        let mut found = Vec::new();
        while let Some(output) = queries.join_next().await {
            let output = output
                .map_err(|e| StoreError::Failed(format!("pending query: {e}")))?
                .map_err(store_error)?;
            for entry in output.items() {
                let intent = item::intent_from(entry)?;
                // The index is eventually consistent: skip what has settled since.
                if !intent.status.is_settled() {
                    found.push(intent);
                }
            }
        }
        found.sort_by_key(|i| i.date_created);
        found.truncate(limit);
        Ok(found)
    }

    async fn list_calls(
        &self,
        account: &AccountSid,
        shards: u8,
        filter: &CallFilter,
        page: &PageRequest,
    ) -> Result<Page<Call>, StoreError> {
        let mut key_condition = "ListingKey = :key".to_owned();
        let mut values: Vec<(&str, AttributeValue)> = Vec::new();
        // A call starts after it is created: an upper bound on the start time bounds the key.
        if let Some(before) = filter.started_at_or_before {
            key_condition.push_str(" AND Listing <= :upper");
            values.push((":upper", s(&format!("{:015}#~", before.millis().max(0)))));
        }
        let mut conditions = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        let mut equal = |name: &'static str, placeholder: &'static str, value: AttributeValue| {
            conditions.push(format!("#{name} = {placeholder}"));
            names.push(name);
            values.push((placeholder, value));
        };
        if let Some(to) = &filter.to {
            equal("To", ":to", s(to));
        }
        if let Some(from) = &filter.from {
            equal("From", ":from", s(from));
        }
        if let Some(status) = filter.status {
            equal("Status", ":status", s(status.as_str()));
        }
        if let Some(parent) = &filter.parent_call_sid {
            equal("ParentCallSid", ":parent", s(parent.as_str()));
        }
        if let Some(after) = filter.started_at_or_after {
            conditions.push("StartTime >= :started_after".into());
            values.push((":started_after", n(after.millis())));
        }
        if let Some(before) = filter.started_at_or_before {
            conditions.push("StartTime <= :started_before".into());
            values.push((":started_before", n(before.millis())));
        }
        let filter_expression = (!conditions.is_empty()).then(|| conditions.join(" AND "));
        let ascending = Order::Descending.reading(page) == Order::Ascending;
        // The index holds positions and what the filters read; the page's calls are then read
        // whole from the table.
        let listed = fill_page(
            page,
            Order::Descending,
            usize::from(shards),
            |shard, after, limit| {
                let key = paging::partition_key(account, u8::try_from(shard).unwrap_or(u8::MAX));
                let mut query = self
                    .client
                    .query()
                    .table_name(&self.tables.calls)
                    .index_name(schema::LISTING_INDEX)
                    .key_condition_expression(&key_condition)
                    .expression_attribute_values(":key", s(&key))
                    .set_filter_expression(filter_expression.clone())
                    .scan_index_forward(ascending)
                    .limit(i32::try_from(limit).unwrap_or(i32::MAX));
                for (placeholder, value) in &values {
                    query = query.expression_attribute_values(*placeholder, value.clone());
                }
                for name in &names {
                    query = query.expression_attribute_names(format!("#{name}"), *name);
                }
                async move {
                    if let Some(after) = after {
                        let sid = teleapi_domain::call::call_position_sid(&after)
                            .ok_or_else(|| StoreError::Failed("malformed call position".into()))?;
                        query = query
                            .exclusive_start_key("ListingKey", s(&key))
                            .exclusive_start_key("Listing", s(&after))
                            .exclusive_start_key("CallSid", s(sid.as_str()));
                    }
                    let output = query.send().await.map_err(store_error)?;
                    listing_round(&output, |entry, _| {
                        entry
                            .get("CallSid")
                            .and_then(|v| v.as_s().ok())
                            .and_then(|v| v.parse::<CallSid>().ok())
                    })
                }
            },
        )
        .await?;
        let calls = self.calls_by_sid(&listed.items).await?;
        Ok(resolve(listed, calls, |call| filter.matches(call)))
    }

    async fn list_intents(
        &self,
        subject: &Subject,
        page: &PageRequest,
    ) -> Result<Page<Intent>, StoreError> {
        let ascending = Order::Ascending.reading(page) == Order::Ascending;
        fill_page(page, Order::Ascending, 1, |_, after, limit| {
            let mut query = self
                .client
                .query()
                .table_name(&self.tables.intents)
                .key_condition_expression("CallSid = :call")
                .expression_attribute_values(":call", s(subject.as_str()))
                .scan_index_forward(ascending)
                .consistent_read(true)
                .limit(i32::try_from(limit).unwrap_or(i32::MAX));
            async move {
                if let Some(after) = after {
                    let seq = paging::intent_position_seq(&after)
                        .ok_or_else(|| StoreError::Failed("malformed intent position".into()))?;
                    query = query
                        .exclusive_start_key("CallSid", s(subject.as_str()))
                        .exclusive_start_key("Seq", n(seq));
                }
                let output = query.send().await.map_err(store_error)?;
                Ok(Round {
                    items: output
                        .items()
                        .iter()
                        .map(|entry| {
                            let intent = item::intent_from(entry)?;
                            Ok((paging::intent_position(intent.seq), intent))
                        })
                        .collect::<Result<_, StoreError>>()?,
                    last_evaluated: output
                        .last_evaluated_key()
                        .and_then(|key| key.get("Seq"))
                        .and_then(|v| v.as_n().ok())
                        .and_then(|seq| seq.parse().ok())
                        .map(paging::intent_position),
                    scanned: usize::try_from(output.scanned_count()).unwrap_or(0),
                })
            }
        })
        .await
    }

    async fn idempotency_record(
        &self,
        key: &IdempotencyKey,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.idempotency)
            .key("IdempotencyKey", s(key.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        // TTL deletes lazily, so an expired record may still be there: it counts as absent.
        Ok(output
            .item
            .map(|i| item::idempotency_from(&i))
            .transpose()?
            .filter(|record| record.is_live(now)))
    }
}

/// An attribute map, for the tests that inspect raw items.
pub type Item = HashMap<String, AttributeValue>;
