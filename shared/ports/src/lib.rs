//! The ports: what the product needs from storage, queues and time. Each has an AWS adapter and an
//! in-memory twin, and one contract test suite (tests/contract.rs) holds both to the same
//! semantics. Beside them, the rules for using them that the API and the pipeline share: retry
//! with backoff ([`retry`]), merging a listing's partitions into pages ([`paging`]), the
//! accounts' cache ([`account_cache`]), notes in a call's log ([`insight`]) and which of the
//! pool's API keys an account borrows ([`key_pool`]).

pub mod account_cache;
pub mod insight;
pub mod key_pool;
pub mod paging;
pub mod retry;

use std::time::Duration;

use async_trait::async_trait;

use teleapi_domain::call::{CallFilter, ListedCall};
use teleapi_domain::call_log::{LogEntry, Notification, NotificationFilter, RequestEntry};
use teleapi_domain::conference::{Conference, ConferenceChange, ConferenceFilter, Participant};
use teleapi_domain::number::{IncomingNumber, NumberFilter};
use teleapi_domain::paging::{Page, PageRequest};
use teleapi_domain::queue::{CallQueue, Member};
use teleapi_domain::recording::{PlannedRecording, Recording, RecordingFilter};
use teleapi_domain::sid::WorkerId;
use teleapi_domain::wire::callback::Delivery;
use teleapi_domain::worker::Worker;
use teleapi_domain::{
    Account, AccountSid, Call, CallSid, Command, ConferenceSid, IdempotencyKey, IdempotencyRecord,
    Intent, IntentCommand, IntentSid, IntentStatus, Method, NotificationSid, PhoneNumberSid,
    QueueSid, RecordingSid, Subject, Timestamp,
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

/// A change of a call, written as a single conditional write: the call item as it will be, the
/// intent that records why (an accepted request, or the control plane's own), and the
/// idempotency record of the request.
#[derive(Debug, Clone, Copy)]
pub struct CallWrite<'a> {
    /// The call after the modification.
    pub call: &'a Call,
    /// The write applies only if the stored call still has this version; `None`: only if there
    /// is no such call yet (creating it).
    pub expected_version: Option<u64>,
    /// Written only if no intent has this call and sequence number yet.
    pub intent: Option<&'a Intent>,
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

/// Settling an intent: see [`CallStore::settle_intent`].
#[derive(Debug, Clone, Copy)]
pub struct Settlement<'a> {
    pub subject: &'a Subject,
    pub seq: u64,
    pub intent_sid: Option<&'a IntentSid>,
    pub from: &'a [IntentStatus],
    pub to: IntentStatus,
    /// Kept as the intent's reason; `None` leaves the reason as it is.
    pub reason: Option<&'a str>,
    pub now: Timestamp,
}

#[async_trait]
pub trait AccountStore: Send + Sync {
    async fn account(&self, sid: &AccountSid) -> Result<Option<Account>, StoreError>;
    async fn insert_account(&self, account: &Account) -> Result<(), InsertError>;
    /// Replaces what may change of an account (AuthToken, status, listing partitions, rate
    /// limit) with `account`'s; `false` if there is no such account.
    async fn update_account(&self, account: &Account) -> Result<bool, StoreError>;
}

/// The API keys lent to accounts that have no key of their own (docs/decisions.md, "Rate
/// limits"; docs/data-model.md, "key-pool"): slots `0..size`, each holding one key of the
/// default usage plan and, while it is lent, the account it is lent to and until when.
/// [`key_pool::lend`] is how an account borrows one.
#[async_trait]
pub trait KeyPool: Send + Sync {
    /// How many slots the pool has (read consistently).
    async fn pool_size(&self) -> Result<u32, StoreError>;

    /// Lends slot `slot`'s key to `account` until `until` if the slot exists and is free: never
    /// lent, its lease over by `now`, or lent to `account` already (then the lease is renewed).
    /// The key's value, or `None` (nothing written).
    async fn lend_slot(
        &self,
        slot: u32,
        account: &AccountSid,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<String>, StoreError>;

    /// Adds `key` to the pool as its last slot, lent to `lent.0` until `lent.1` if given (a key
    /// that was an account's own, handed on while that account's cached authorizer answers may
    /// still name it). A key already in the pool is not added again. The key's slot.
    async fn add_key(
        &self,
        key: &str,
        lent: Option<(&AccountSid, Timestamp)>,
    ) -> Result<u32, StoreError>;

    /// Takes the last slot's key out of the pool if nobody holds it at `now`; `None` if the pool
    /// is empty or its last key is lent.
    async fn take_last_key(&self, now: Timestamp) -> Result<Option<String>, StoreError>;
}

/// The media workers the control plane knows (docs/messages.md, "Worker events").
#[async_trait]
pub trait WorkerStore: Send + Sync {
    /// The worker, read consistently.
    async fn worker(&self, id: &WorkerId) -> Result<Option<Worker>, StoreError>;

    /// Writes `worker` whole if there is no such worker yet, or if the stored one is still live
    /// (active or draining) and its last event came before `worker`'s; `false` if not (a
    /// duplicate or stale event, a worker that left or expired, a concurrent writer that got
    /// there first), which changes nothing.
    async fn record_worker(&self, worker: &Worker) -> Result<bool, StoreError>;

    /// Up to `limit` live workers whose lease ran out before `now`, the longest gone first.
    /// Served by a sparse index (no Scan).
    async fn expired_workers(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Worker>, StoreError>;

    /// Marks the worker `expired` if it is still live and its lease ran out before `now`;
    /// `false` if not (a heartbeat renewed it, or it left), which changes nothing.
    async fn expire_worker(&self, id: &WorkerId, now: Timestamp) -> Result<bool, StoreError>;
}

/// A change of a conference through the API, in one conditional write: the conference item
/// (only if it still has `expected_version`), the participant the change names (only if it is
/// still connected and no worker event changed it since it was read), the intent (only if its
/// number is free) and the request's idempotency record (only if its key is unused or expired).
#[derive(Debug, Clone, Copy)]
pub struct ConferenceWrite<'a> {
    pub conference: &'a Conference,
    pub expected_version: u64,
    /// The participant to put, and the `event_seq` the stored one must still have.
    pub participant: Option<(&'a Participant, u64)>,
    pub intent: &'a Intent,
    pub idempotency: Option<&'a IdempotencyRecord>,
    pub now: Timestamp,
}

/// Conferences and their participants (docs/data-model.md, "conferences").
#[async_trait]
pub trait ConferenceStore: Send + Sync {
    /// The conference, read consistently.
    async fn conference(&self, sid: &ConferenceSid) -> Result<Option<Conference>, StoreError>;

    /// One participant (in the room or gone), read consistently.
    async fn participant(
        &self,
        sid: &ConferenceSid,
        call_sid: &CallSid,
    ) -> Result<Option<Participant>, StoreError>;

    /// The participants in the room (`connected`), in the order they joined. A room holds at
    /// most a few hundred.
    async fn participants(&self, sid: &ConferenceSid) -> Result<Vec<Participant>, StoreError>;

    /// Writes `change` under its condition; `false` if the condition failed (a concurrent or
    /// later write got there first), which changes nothing.
    async fn write_conference(&self, change: &ConferenceChange) -> Result<bool, StoreError>;

    /// Writes an API change of the conference (see [`ConferenceWrite`]): all of it or nothing.
    /// `CallChanged` if the conference or the participant changed since they were read (or the
    /// participant left), `KeyTaken` if the idempotency key is taken.
    async fn write_conference_intent(&self, write: ConferenceWrite<'_>) -> Result<(), RecordError>;

    /// Up to `limit` of the conferences `worker` runs that have not ended (the `worker` index),
    /// for when its lease runs out.
    async fn live_conferences(
        &self,
        worker: &WorkerId,
        limit: usize,
    ) -> Result<Vec<ConferenceSid>, StoreError>;

    /// A page of the account's conferences that match `filter`, newest first.
    async fn list_conferences(
        &self,
        account: &AccountSid,
        filter: &ConferenceFilter,
        page: &PageRequest,
    ) -> Result<Page<Conference>, StoreError>;
}

/// A recording change through the API (start, pause, resume, stop), in one conditional write:
/// the call with its next intent number (only if it still has `call_version`), the recording
/// (only if it still has `recording_version`; `None`: only if there is none yet), the intent
/// (only if its number is free) and the request's idempotency record (only if its key is
/// unused or expired).
#[derive(Debug, Clone, Copy)]
pub struct RecordingWrite<'a> {
    pub planned: &'a PlannedRecording,
    pub idempotency: Option<&'a IdempotencyRecord>,
    pub now: Timestamp,
}

/// Recordings of calls (docs/data-model.md, "recordings").
#[async_trait]
pub trait RecordingStore: Send + Sync {
    /// The recording, read consistently.
    async fn recording(&self, sid: &RecordingSid) -> Result<Option<Recording>, StoreError>;

    /// Writes a worker's report: `recording` whole, only if the stored one still has
    /// `expected_version` (`None`: only if there is none yet); `false` if not (a concurrent
    /// write got there first), which changes nothing.
    async fn write_recording(
        &self,
        recording: &Recording,
        expected_version: Option<u64>,
    ) -> Result<bool, StoreError>;

    /// See [`RecordingWrite`]: all of it or nothing. `CallChanged` if the call or the recording
    /// changed since they were read, `KeyTaken` if the idempotency key is taken.
    async fn write_recording_intent(&self, write: RecordingWrite<'_>) -> Result<(), RecordError>;

    /// A page of the account's recordings that match `filter` (a call's, when it names one),
    /// newest first.
    async fn list_recordings(
        &self,
        account: &AccountSid,
        filter: &RecordingFilter,
        page: &PageRequest,
    ) -> Result<Page<Recording>, StoreError>;

    /// Deletes the recording if it still has `version`; `false` if not.
    async fn delete_recording(&self, sid: &RecordingSid, version: u64) -> Result<bool, StoreError>;
}

/// An account's phone numbers (docs/data-model.md, "numbers"): each number once in the
/// deployment, found by its sid (the API) and by its `PhoneNumber` (an inbound call).
#[async_trait]
pub trait NumberStore: Send + Sync {
    /// The number, read consistently.
    async fn number(&self, sid: &PhoneNumberSid) -> Result<Option<IncomingNumber>, StoreError>;

    /// The number an inbound call to `phone_number` (E.164) reaches, read consistently.
    async fn number_called(&self, phone_number: &str)
    -> Result<Option<IncomingNumber>, StoreError>;

    /// Adds the number; `AlreadyExists` if its `PhoneNumber` is taken (by any account), which
    /// changes nothing.
    async fn insert_number(&self, number: &IncomingNumber) -> Result<(), InsertError>;

    /// Writes the number whole, only if the stored one still has `expected_version`; `false` if
    /// not (or it is gone). Its `PhoneNumber` never changes.
    async fn update_number(
        &self,
        number: &IncomingNumber,
        expected_version: u64,
    ) -> Result<bool, StoreError>;

    /// Deletes the number (and frees its `PhoneNumber`) if it still has `version`; `false` if
    /// not.
    async fn delete_number(
        &self,
        number: &IncomingNumber,
        version: u64,
    ) -> Result<bool, StoreError>;

    /// A page of the account's numbers that match `filter`, newest first.
    async fn list_numbers(
        &self,
        account: &AccountSid,
        filter: &NumberFilter,
        page: &PageRequest,
    ) -> Result<Page<IncomingNumber>, StoreError>;
}

/// An account's call queues (docs/data-model.md, "queues"): what the application set of each
/// (the `queues` table), and who waits in each (the calls' sparse `queue` index).
#[async_trait]
pub trait CallQueueStore: Send + Sync {
    /// The queue, read consistently.
    async fn call_queue(&self, sid: &QueueSid) -> Result<Option<CallQueue>, StoreError>;

    /// Adds the queue; `AlreadyExists` if its account has one of that name (its sid), which
    /// changes nothing.
    async fn insert_call_queue(&self, queue: &CallQueue) -> Result<(), InsertError>;

    /// Writes the queue whole, only if the stored one still has `expected_version`; `false` if
    /// not (or it is gone).
    async fn update_call_queue(
        &self,
        queue: &CallQueue,
        expected_version: u64,
    ) -> Result<bool, StoreError>;

    /// Deletes the queue if it still has `version`; `false` if not.
    async fn delete_call_queue(&self, sid: &QueueSid, version: u64) -> Result<bool, StoreError>;

    /// A page of the account's queues, newest first.
    async fn list_call_queues(
        &self,
        account: &AccountSid,
        page: &PageRequest,
    ) -> Result<Page<CallQueue>, StoreError>;

    /// Who waits in the queue: the calls, not ended, whose `queue` it is, in no particular
    /// order. Read from an index (eventually consistent): a call that joined or left in the
    /// last second may be missing or still there.
    async fn members(&self, sid: &QueueSid) -> Result<Vec<Member>, StoreError>;
}

/// Where calls' logs are kept (docs/data-model.md, "call_log"): the requests the platform made
/// for each call and the problems it met.
#[async_trait]
pub trait CallLogStore: Send + Sync {
    /// Adds `entry` to its call's log, kept until `expires_at` (the TTL). The same entry twice
    /// is one entry. `Ok(false)`: the call's log is full ([`MAX_ENTRIES`]); nothing was written.
    ///
    /// [`MAX_ENTRIES`]: teleapi_domain::call_log::MAX_ENTRIES
    async fn append(&self, entry: &LogEntry, expires_at: Timestamp) -> Result<bool, StoreError>;

    /// A call's requests, newest first.
    async fn requests(
        &self,
        call: &CallSid,
        page: &PageRequest,
    ) -> Result<Page<RequestEntry>, StoreError>;

    /// The account's notifications, or one call's (`call`), newest first.
    async fn notifications(
        &self,
        account: &AccountSid,
        call: Option<&CallSid>,
        filter: &NotificationFilter,
        page: &PageRequest,
    ) -> Result<Page<Notification>, StoreError>;

    async fn notification(
        &self,
        call: &CallSid,
        sid: &NotificationSid,
    ) -> Result<Option<Notification>, StoreError>;
}

#[async_trait]
pub trait CallStore: Send + Sync {
    /// The call, read consistently (a read after a write sees the write).
    async fn call(&self, sid: &CallSid) -> Result<Option<Call>, StoreError>;

    async fn insert_call(&self, call: &Call) -> Result<(), InsertError>;

    async fn write_call(&self, write: CallWrite<'_>) -> Result<(), RecordError>;

    async fn intent(&self, subject: &Subject, seq: u64) -> Result<Option<Intent>, StoreError>;

    /// Moves an intent to a new status, if it is in one of `from` (and has the given sid);
    /// `false` if not (someone else settled it first, or it is not that intent), which changes
    /// nothing.
    async fn settle_intent(&self, settlement: Settlement<'_>) -> Result<bool, StoreError>;

    /// See [`IntentFailure`]. `false` if the intent was no longer pending (nothing changed).
    async fn fail_intent(&self, failure: IntentFailure<'_>) -> Result<bool, StoreError>;

    /// Up to `limit` live calls (not ended) owned by `worker`, oldest first. Served by a sparse
    /// index, which lags the table by a moment: read each call before acting on it.
    async fn live_calls(&self, worker: &WorkerId, limit: usize)
    -> Result<Vec<CallSid>, StoreError>;

    /// Intents awaiting their worker's report (`pending` or `enqueued`) created before
    /// `created_before`, oldest first, at most `limit`.
    async fn pending_intents(
        &self,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<Intent>, StoreError>;

    /// A page of the account's calls matching `filter`, newest first, from its `shards` listing
    /// partitions (the account's `listing_shards`), as the listing holds them. Served by the
    /// listing index alone; reads at most a bounded number of entries (see docs/data-model.md).
    async fn list_calls(
        &self,
        account: &AccountSid,
        shards: u8,
        filter: &CallFilter,
        page: &PageRequest,
    ) -> Result<Page<ListedCall<'static>>, StoreError>;

    /// A page of the call's intents, in sequence order.
    async fn list_intents(
        &self,
        subject: &Subject,
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

/// A message to send. On a FIFO queue it has a group (delivered in order within it) and a
/// deduplication id (delivered once per id within SQS's five-minute window); on a standard queue
/// it may instead be delayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub body: String,
    pub group: Option<String>,
    pub dedup_id: Option<String>,
    /// Standard queues only: invisible for this long after sending (whole seconds, at most 15
    /// minutes).
    pub delay: Duration,
}

impl OutgoingMessage {
    pub fn fifo(group: impl Into<String>, dedup_id: impl Into<String>, body: String) -> Self {
        Self {
            body,
            group: Some(group.into()),
            dedup_id: Some(dedup_id.into()),
            delay: Duration::ZERO,
        }
    }

    pub fn standard(body: String, delay: Duration) -> Self {
        Self {
            body,
            group: None,
            dedup_id: None,
            delay,
        }
    }

    /// A command for its call's worker: group = CallSid, deduplication id = IntentSid.
    pub fn command(command: &Command) -> Self {
        Self::fifo(
            command.call_sid.as_str(),
            command.intent_sid.as_str(),
            command.to_json(),
        )
    }

    /// An intent's command: a call's (group = CallSid) or a conference's (group =
    /// ConferenceSid); deduplication id = IntentSid.
    pub fn intent_command(command: &IntentCommand) -> Self {
        match command {
            IntentCommand::Call(command) => Self::command(command),
            IntentCommand::Conference(command) => Self::fifo(
                command.conference_sid.as_str(),
                command.intent_sid.as_str(),
                command.to_json(),
            ),
        }
    }
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

    /// Gives a received message back at once, for another receiver (SQS's
    /// `ChangeMessageVisibility` to 0): a worker hands on a command for a call it does not own.
    /// Its receive count stays, so a redrive policy still bounds how often it goes round.
    async fn release(&self, queue: Option<&str>, receipt: &str) -> Result<(), QueueError>;
}

/// A request to the application (StatusCallback, FallbackUrl).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    pub method: Method,
    /// The URL to request, query included, fragment removed.
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    /// Form body (POST).
    pub body: Option<String>,
    pub delivery: Delivery,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    pub status: u16,
    /// Its `Content-Type`, if it had one.
    pub content_type: Option<String>,
    pub body: String,
}

/// Why a request did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The address is not one we may reach (private, loopback, link-local, …), directly, after
    /// resolving the name, or after a redirect.
    #[error("refused: {0}")]
    Refused(String),
    #[error("connect timeout")]
    ConnectTimeout,
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("read timeout")]
    ReadTimeout,
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
}

/// Makes requests to applications, within the address policy.
#[async_trait]
pub trait WebhookClient: Send + Sync {
    async fn send(&self, request: &WebhookRequest) -> Result<WebhookResponse, DeliveryError>;
}

/// A recording's media, as the API hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    /// Fetch it from there: a short-lived presigned URL.
    Redirect(String),
    /// The file itself (`audio/x-wav`).
    Bytes(Vec<u8>),
}

/// Where media workers put recordings: an S3 bucket deployed, a folder in teleapi-local.
#[async_trait]
pub trait MediaStore: Send + Sync {
    /// The media at `location` (as the worker reported it); `None` if there is none there, or
    /// `location` is not a place of this store.
    async fn fetch(&self, location: &str) -> Result<Option<Media>, StoreError>;

    /// Deletes the media at `location`; nothing there is not an error.
    async fn delete(&self, location: &str) -> Result<(), StoreError>;

    /// Keeps `bytes` (of `content_type`) as `key` (`{AccountSid}/{RecordingSid}.wav`: segments
    /// of letters, digits and dots), replacing what was there; the location a worker reports.
    async fn put(
        &self,
        key: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, StoreError>;
}

/// Whether `key` is one a [`MediaStore`] takes: segments of ASCII letters, digits and dots,
/// none empty nor only dots, joined by `/`.
pub fn is_media_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|segment| {
            !segment.is_empty()
                && segment.bytes().any(|b| b != b'.')
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.')
        })
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
