//! The ports: what the product needs from storage, queues and time. Each has an AWS adapter and an
//! in-memory twin, and one contract test suite (tests/contract.rs) holds both to the same
//! semantics.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::listing::{CallFilter, Page, PageRequest};
use crate::domain::{
    Account, AccountSid, Call, CallSid, IdempotencyKey, IdempotencyRecord, Intent, IntentStatus,
    Timestamp,
};

/// A store failed to answer. `Unavailable` is worth retrying later (throttling, timeouts,
/// service errors); `Failed` is not (bad configuration, missing table, corrupt item).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("the store failed: {0}")]
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    #[error("an item with that key already exists")]
    AlreadyExists,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The call changed since it was read (its version moved on) or is gone: read it again.
    #[error("the call changed since it was read")]
    CallChanged,
    /// Another request holds the idempotency key.
    #[error("the idempotency key is already taken")]
    KeyTaken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One accepted modification, written as a single conditional write: the call item as it will
/// be, the new intent, and optionally the idempotency record.
#[derive(Debug, Clone, Copy)]
pub struct IntentWrite<'a> {
    /// The call after the modification.
    pub call: &'a Call,
    /// The write applies only if the stored call still has this version; `None`: only if there
    /// is no such call yet (creating it).
    pub expected_version: Option<u64>,
    /// Written only if no intent has this call and sequence number yet.
    pub intent: &'a Intent,
    /// Written only if the key is unused or expired at `now`.
    pub idempotency: Option<&'a IdempotencyRecord>,
    pub now: Timestamp,
}

/// Undoing an intent whose command could not be sent, in one write: the intent becomes failed
/// (if it is still pending), the call goes back to how it was (if nobody wrote it since), and
/// the idempotency key is released so that a retry runs again.
#[derive(Debug, Clone, Copy)]
pub struct IntentFailure<'a> {
    pub call_sid: &'a CallSid,
    pub seq: u64,
    pub reason: &'a str,
    pub now: Timestamp,
    /// The call to put back, and the version the store must still hold for that to happen.
    pub restore: Option<(&'a Call, u64)>,
    pub release_key: Option<&'a IdempotencyKey>,
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn account(&self, sid: &AccountSid) -> Result<Option<Account>, StoreError>;
    async fn insert_account(&self, account: &Account) -> Result<(), InsertError>;
}

#[async_trait]
pub trait CallStore: Send + Sync {
    /// The call, read consistently (a read after a write sees the write).
    async fn call(&self, sid: &CallSid) -> Result<Option<Call>, StoreError>;

    async fn insert_call(&self, call: &Call) -> Result<(), InsertError>;

    async fn record_intent(&self, write: IntentWrite<'_>) -> Result<(), RecordError>;

    async fn intent(&self, call_sid: &CallSid, seq: u64) -> Result<Option<Intent>, StoreError>;

    /// Moves an intent from `from` to `to`; `false` if it was not in `from` (someone else
    /// settled it first), which changes nothing.
    async fn settle_intent(
        &self,
        call_sid: &CallSid,
        seq: u64,
        from: IntentStatus,
        to: IntentStatus,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// See [`IntentFailure`]. `false` if the intent was no longer pending (nothing changed).
    async fn fail_intent(&self, failure: IntentFailure<'_>) -> Result<bool, StoreError>;

    /// Pending intents created before `created_before`, oldest first, at most `limit`.
    async fn pending_intents(
        &self,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<Intent>, StoreError>;

    /// A page of the account's calls matching `filter`, newest first. Served by the listing
    /// index; reads at most a bounded number of items (see docs/data-model.md).
    async fn list_calls(
        &self,
        account: &AccountSid,
        filter: &CallFilter,
        page: &PageRequest,
    ) -> Result<Page<Call>, StoreError>;

    /// A page of the call's intents, in sequence order.
    async fn list_intents(
        &self,
        call_sid: &CallSid,
        page: &PageRequest,
    ) -> Result<Page<Intent>, StoreError>;

    /// The record of a key, if one is stored and not expired at `now`.
    async fn idempotency_record(
        &self,
        key: &IdempotencyKey,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is unavailable: {0}")]
    Unavailable(String),
    #[error("the queue failed: {0}")]
    Failed(String),
}

/// A message for a FIFO queue: delivered in order within its group, once per deduplication id
/// (within SQS's five-minute window).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub group: String,
    pub dedup_id: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub body: String,
    /// Handle for deleting this delivery of the message.
    pub receipt: String,
    pub group: Option<String>,
    /// How many times the message has been received, this time included.
    pub receive_count: u32,
}

/// A queue of messages (commands for media workers). Each instance has a default queue; a
/// message may be addressed to another queue by URL (the worker that owns a call).
#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, queue: Option<&str>, message: &OutgoingMessage) -> Result<(), QueueError>;

    /// Up to `max` messages, waiting up to `wait` for the first.
    async fn receive(
        &self,
        queue: Option<&str>,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError>;

    async fn delete(&self, queue: Option<&str>, receipt: &str) -> Result<(), QueueError>;
}

/// The time, behind a port so that tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
