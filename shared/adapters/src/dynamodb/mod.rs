//! The stores on DynamoDB. Tables, keys, conditions and TTL are described in docs/data-model.md;
//! the item <-> domain conversions live in [`item`].

mod accounts;
mod calls;
mod workers;

mod call_log;
mod conferences;
mod item;
mod key_pool;
mod numbers;
mod queues;
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

use teleapi_domain::call::{CallFilter, ListedCall};
use teleapi_domain::paging;
use teleapi_domain::paging::{Page, PageRequest};
use teleapi_domain::sid::WorkerId;
use teleapi_domain::worker::{Worker, WorkerStatus};
use teleapi_domain::{
    Account, AccountSid, Call, CallSid, IdempotencyKey, IdempotencyRecord, Intent, IntentStatus,
    Subject, Timestamp,
};
use teleapi_ports::paging::{Order, Round, fill_page};
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

/// A table listed by account through an index that projects all its attributes, partition key
/// `ListingAccount`, sort key `Listing`: a created position, `{ms:015}#{key}`, of the item's
/// one key `key`.
struct AccountIndex<'a> {
    table: &'a str,
    index: &'static str,
    key: &'static str,
}

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    tables: TableNames,
}

impl DynamoStore {
    pub fn new(client: Client, tables: TableNames) -> Self {
        Self { client, tables }
    }

    /// A page of `account`'s items of a table, newest first, those `keep` accepts, through its
    /// account index: the numbers' and queues' lists.
    async fn list_by_account<T>(
        &self,
        AccountIndex {
            table,
            index,
            key: key_name,
        }: AccountIndex<'_>,
        account: &AccountSid,
        page: &PageRequest,
        read: impl Fn(&Item) -> Result<T, StoreError>,
        keep: impl Fn(&T) -> bool,
    ) -> Result<Page<T>, StoreError> {
        let ascending = Order::Descending.reading(page) == Order::Ascending;
        let (read, keep) = (&read, &keep);
        fill_page(page, Order::Descending, 1, |_, after, limit| {
            let mut query = self
                .client
                .query()
                .table_name(table)
                .index_name(index)
                .key_condition_expression("ListingAccount = :account")
                .expression_attribute_values(":account", s(account.as_str()))
                .scan_index_forward(ascending)
                .limit(i32::try_from(limit).unwrap_or(i32::MAX));
            async move {
                if let Some(after) = after {
                    let (_, key) = after.split_once('#').ok_or_else(|| {
                        StoreError::Failed(format!("malformed position in {table}"))
                    })?;
                    query = query
                        .exclusive_start_key("ListingAccount", s(account.as_str()))
                        .exclusive_start_key("Listing", s(&after))
                        .exclusive_start_key(key_name, s(key));
                }
                let output = query.send().await.map_err(store_error)?;
                let mut round = listing_round(&output, |entry, _| read(entry))?;
                round.items.retain(|(_, found)| keep(found));
                Ok(round)
            }
        })
        .await
    }

    /// Puts `item` in `table` unless an item with its key `key_name` is there already
    /// (`AlreadyExists`, which writes nothing).
    async fn insert_item(
        &self,
        table: &str,
        key_name: &str,
        item: Item,
    ) -> Result<(), InsertError> {
        let result = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(format!("attribute_not_exists({key_name})"))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if is_conditional_check_failed(&err) => Err(InsertError::AlreadyExists),
            Err(err) => Err(store_error(err).into()),
        }
    }

    /// The item of `table` whose one key `key_name` is `key`, read consistently.
    async fn read_item(
        &self,
        table: &str,
        key_name: &str,
        key: &str,
    ) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(table)
            .key(key_name, s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(store_error)?;
        Ok(output.item)
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
    key: impl Fn(&HashMap<String, AttributeValue>, &str) -> Result<K, StoreError>,
) -> Result<Round<K>, StoreError> {
    round_by("Listing", output, key)
}

/// [`listing_round`] of a query whose sort key (the position) is `attribute`.
pub(super) fn round_by<K>(
    attribute: &str,
    output: &aws_sdk_dynamodb::operation::query::QueryOutput,
    key: impl Fn(&HashMap<String, AttributeValue>, &str) -> Result<K, StoreError>,
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
            let key = key(entry, &position).map_err(|err| match err {
                StoreError::Failed(why) => StoreError::Failed(format!("entry {position}: {why}")),
                other => other,
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
            // An index being built (a stack's upgrade adding one) serves again within minutes.
            let backfilling = code == "ValidationException" && message.contains("backfilling");
            if TRANSIENT.contains(&code) || backfilling {
                StoreError::Unavailable(format!("{code}: {message}"))
            } else {
                StoreError::Failed(format!("{code}: {message}"))
            }
        }
        _ => StoreError::Failed(format!("{err:?}")),
    }
}

/// Whether a conditional write of one item landed: `false` if its condition failed.
fn landed<O, E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    result: Result<O, SdkError<E, R>>,
) -> Result<bool, StoreError> {
    match result {
        Ok(_) => Ok(true),
        Err(err) if is_conditional_check_failed(&err) => Ok(false),
        Err(err) => Err(store_error(err)),
    }
}

fn is_conditional_check_failed<E: ProvideErrorMetadata>(
    err: &SdkError<E, impl std::fmt::Debug>,
) -> bool {
    matches!(err, SdkError::ServiceError(service) if service.err().code() == Some("ConditionalCheckFailedException"))
}

/// The reason codes of a cancelled transaction, one per item (`None` for an item that did not
/// fail); `None` for any other error.
fn cancellation_codes(
    err: &SdkError<TransactWriteItemsError, impl std::fmt::Debug>,
) -> Option<Vec<Option<&str>>> {
    let SdkError::ServiceError(service) = err else {
        return None;
    };
    match service.err() {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => Some(
            cancelled
                .cancellation_reasons()
                .iter()
                .map(|reason| reason.code().filter(|code| *code != "None"))
                .collect(),
        ),
        _ => None,
    }
}

/// Which items of a cancelled transaction failed their condition (or conflicted).
fn cancelled_items(
    err: &SdkError<TransactWriteItemsError, impl std::fmt::Debug>,
) -> Option<Vec<bool>> {
    let codes = cancellation_codes(err)?;
    Some(
        codes
            .into_iter()
            .map(|code| matches!(code, Some("ConditionalCheckFailed" | "TransactionConflict")))
            .collect(),
    )
}

/// Whether a cancelled transaction failed on a condition (rather than conflicting with another
/// transaction, which is worth retrying).
fn condition_failed(err: &SdkError<TransactWriteItemsError, impl std::fmt::Debug>) -> bool {
    cancellation_codes(err).is_some_and(|codes| codes.contains(&Some("ConditionalCheckFailed")))
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

/// An attribute map, for the tests that inspect raw items.
pub type Item = HashMap<String, AttributeValue>;
