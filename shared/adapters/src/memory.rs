//! In-process twins of the DynamoDB and SQS adapters, with the same semantics: conditional
//! writes that are all-or-nothing, FIFO order per message group, deduplication within a message
//! group for five minutes (high-throughput FIFO, as deployed), visibility timeouts. The embedded
//! `teleapi-local` runs on them; the contract suite keeps them honest. (moto deduplicates per
//! queue whatever the queue's scope, so the suite checks deduplication within one group only.)

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use teleapi_domain::call::{CallFilter, call_position};
use teleapi_domain::call_log::{
    LogEntry, MAX_ENTRIES, Notification, NotificationFilter, RequestEntry,
};
use teleapi_domain::conference::{
    Conference, ConferenceChange, ConferenceFilter, Participant, ParticipantStatus,
    conference_position,
};
use teleapi_domain::paging::{Page, PageRequest, intent_position, partition_key};
use teleapi_domain::recording::{Recording, RecordingFilter, recording_position};
use teleapi_domain::sid::WorkerId;
use teleapi_domain::worker::{Worker, WorkerStatus};
use teleapi_domain::{
    Account, AccountSid, Call, CallSid, ConferenceSid, IdempotencyKey, IdempotencyRecord, Intent,
    IntentStatus, NotificationSid, RecordingSid, Subject, Timestamp,
};
use teleapi_ports::paging::{Order, Round, fill_page};
use teleapi_ports::{
    AccountStore, CallLogStore, CallStore, CallWrite, ConferenceStore, ConferenceWrite,
    InsertError, IntentFailure, OutgoingMessage, Queue, QueueError, ReceivedMessage, RecordError,
    RecordingStore, RecordingWrite, Settlement, StoreError, WorkerStore,
};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps half-written (every mutation is a
    // single insert or a check-then-insert without await), so a poisoned lock is still usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
struct Tables {
    accounts: HashMap<AccountSid, Account>,
    calls: HashMap<CallSid, Call>,
    intents: BTreeMap<(Subject, u64), Intent>,
    idempotency: HashMap<IdempotencyKey, IdempotencyRecord>,
    workers: HashMap<WorkerId, Worker>,
    conferences: HashMap<ConferenceSid, Conference>,
    participants: HashMap<ConferenceSid, BTreeMap<CallSid, Participant>>,
    recordings: HashMap<RecordingSid, Recording>,
    /// Calls' logs: entries by position, how many were written, and until when the log is kept.
    call_log: HashMap<CallSid, CallLog>,
    /// The listing index: by partition (account and shard), call positions.
    listing: HashMap<String, BTreeMap<String, CallSid>>,
    /// What the TTL attributes (`ExpiresAt`) will delete, in the order it was written: with one
    /// retention per process that is nearly expiry order, and an item written out of order is
    /// deleted when it reaches the front (DynamoDB's TTL is no more punctual: within days).
    expiring: VecDeque<(Timestamp, Expiring)>,
}

/// One call's log: its entries (with their expiry) by position, and its counter item.
#[derive(Default)]
struct CallLog {
    entries: BTreeMap<String, (LogEntry, Timestamp)>,
    written: u64,
    expires_at: Option<Timestamp>,
}

/// An item with a TTL, by key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expiring {
    /// A call's log: its entries that expired by then, and the whole log if the last did.
    Log(CallSid),
    Intent(Subject, u64),
    Key(IdempotencyKey),
    Conference(ConferenceSid),
    Participant(ConferenceSid, CallSid),
}

impl Tables {
    /// Whether `record`'s key is held by a live record at `now`.
    fn key_taken(&self, record: Option<&IdempotencyRecord>, now: Timestamp) -> bool {
        record.is_some_and(|record| {
            self.idempotency
                .get(&record.key)
                .is_some_and(|stored| stored.is_live(now))
        })
    }

    fn intent_taken(&self, intent: &Intent) -> bool {
        self.intents
            .contains_key(&(intent.subject.clone(), intent.seq))
    }

    fn put_intent(&mut self, intent: &Intent) {
        self.expiring.push_back((
            intent.expires_at,
            Expiring::Intent(intent.subject.clone(), intent.seq),
        ));
        self.intents
            .insert((intent.subject.clone(), intent.seq), intent.clone());
    }

    fn put_key(&mut self, record: Option<&IdempotencyRecord>) {
        if let Some(record) = record {
            self.expiring
                .push_back((record.expires_at, Expiring::Key(record.key.clone())));
            self.idempotency.insert(record.key.clone(), record.clone());
        }
    }

    /// Stores `call`, and its entry in the listing index (where it stays: its account, shard
    /// and position never change).
    fn put_call(&mut self, call: &Call) {
        if self.calls.insert(call.sid.clone(), call.clone()).is_none() {
            self.listing
                .entry(partition_key(&call.account_sid, call.listing_shard))
                .or_default()
                .insert(call_position(call), call.sid.clone());
        }
    }

    /// Deletes what expired by `now`, as DynamoDB's TTL does (DynamoDB within days, lazily; here
    /// at the next write), so that a long-running local stack keeps a bounded history.
    fn expire(&mut self, now: Timestamp) {
        while let Some((at, _)) = self.expiring.front()
            && *at <= now
        {
            let (at, item) = self.expiring.pop_front().expect("a front");
            match item {
                Expiring::Log(call) => {
                    if let Some(log) = self.call_log.get_mut(&call) {
                        log.entries.retain(|_, (_, expires)| *expires > at);
                        if log.expires_at.is_none_or(|e| e <= at) {
                            self.call_log.remove(&call);
                        }
                    }
                }
                Expiring::Intent(call, seq) => {
                    let key = (call, seq);
                    if self.intents.get(&key).is_some_and(|i| i.expires_at == at) {
                        self.intents.remove(&key);
                    }
                }
                Expiring::Conference(sid) => {
                    if self
                        .conferences
                        .get(&sid)
                        .is_some_and(|c| c.expires_at == Some(at))
                    {
                        self.conferences.remove(&sid);
                    }
                }
                Expiring::Participant(sid, call) => {
                    if let Some(room) = self.participants.get_mut(&sid)
                        && room.get(&call).is_some_and(|p| p.expires_at == Some(at))
                    {
                        room.remove(&call);
                        if room.is_empty() {
                            self.participants.remove(&sid);
                        }
                    }
                }
                // A key taken again after it expired has a later expiry of its own.
                Expiring::Key(key) => {
                    if self
                        .idempotency
                        .get(&key)
                        .is_some_and(|r| r.expires_at == at)
                    {
                        self.idempotency.remove(&key);
                    }
                }
            }
        }
    }
}

/// Accounts, calls, intents and idempotency records in memory.
#[derive(Default, Clone)]
pub struct MemoryStore {
    tables: Arc<Mutex<Tables>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl AccountStore for MemoryStore {
    async fn account(&self, sid: &AccountSid) -> Result<Option<Account>, StoreError> {
        Ok(lock(&self.tables).accounts.get(sid).cloned())
    }

    async fn insert_account(&self, account: &Account) -> Result<(), InsertError> {
        let mut tables = lock(&self.tables);
        if tables.accounts.contains_key(&account.sid) {
            return Err(InsertError::AlreadyExists);
        }
        tables.accounts.insert(account.sid.clone(), account.clone());
        Ok(())
    }

    async fn update_account(&self, account: &Account) -> Result<bool, StoreError> {
        match lock(&self.tables).accounts.get_mut(&account.sid) {
            Some(stored) => {
                stored.auth_token = account.auth_token.clone();
                stored.status = account.status;
                stored.listing_shards = account.listing_shards;
                stored.rate_limit = account.rate_limit;
                stored.usage_key = account.usage_key.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

#[async_trait]
impl ConferenceStore for MemoryStore {
    async fn live_conferences(
        &self,
        worker: &WorkerId,
        limit: usize,
    ) -> Result<Vec<ConferenceSid>, StoreError> {
        let tables = lock(&self.tables);
        let mut live: Vec<(Timestamp, ConferenceSid)> = tables
            .conferences
            .values()
            .filter(|c| c.worker.as_ref() == Some(worker))
            .filter(|c| c.status != teleapi_domain::conference::ConferenceStatus::Completed)
            .map(|c| (c.date_created, c.sid.clone()))
            .collect();
        live.sort();
        Ok(live.into_iter().take(limit).map(|(_, sid)| sid).collect())
    }

    async fn conference(&self, sid: &ConferenceSid) -> Result<Option<Conference>, StoreError> {
        Ok(lock(&self.tables).conferences.get(sid).cloned())
    }

    async fn participant(
        &self,
        sid: &ConferenceSid,
        call_sid: &CallSid,
    ) -> Result<Option<Participant>, StoreError> {
        Ok(lock(&self.tables)
            .participants
            .get(sid)
            .and_then(|room| room.get(call_sid))
            .cloned())
    }

    async fn participants(&self, sid: &ConferenceSid) -> Result<Vec<Participant>, StoreError> {
        let tables = lock(&self.tables);
        let mut participants: Vec<Participant> = tables
            .participants
            .get(sid)
            .into_iter()
            .flat_map(|room| room.values())
            .filter(|p| p.status == ParticipantStatus::Connected)
            .cloned()
            .collect();
        participants.sort_by(|a, b| {
            (a.date_created, &a.state.call_sid).cmp(&(b.date_created, &b.state.call_sid))
        });
        Ok(participants)
    }

    async fn write_conference(&self, change: &ConferenceChange) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        match change {
            ConferenceChange::Conference {
                conference,
                expected_version,
            } => {
                let stored = tables.conferences.get(&conference.sid).map(|c| c.version);
                if stored != *expected_version {
                    return Ok(false);
                }
                tables.expire(conference.date_updated);
                if let Some(at) = conference.expires_at {
                    let key = Expiring::Conference(conference.sid.clone());
                    tables.expiring.push_back((at, key));
                }
                tables
                    .conferences
                    .insert(conference.sid.clone(), conference.clone());
            }
            ConferenceChange::Participant(participant) => {
                let (sid, call) = (&participant.conference_sid, &participant.state.call_sid);
                let later = tables
                    .participants
                    .get(sid)
                    .and_then(|room| room.get(call))
                    .is_none_or(|stored| stored.event_seq < participant.event_seq);
                if !later {
                    return Ok(false);
                }
                tables.expire(participant.date_updated);
                if let Some(at) = participant.expires_at {
                    let expiring = Expiring::Participant(sid.clone(), call.clone());
                    tables.expiring.push_back((at, expiring));
                }
                tables
                    .participants
                    .entry(sid.clone())
                    .or_default()
                    .insert(call.clone(), participant.clone());
            }
        }
        Ok(true)
    }

    async fn write_conference_intent(&self, write: ConferenceWrite<'_>) -> Result<(), RecordError> {
        let mut tables = lock(&self.tables);
        tables.expire(write.now);
        let sid = &write.conference.sid;
        let conference_moved = tables
            .conferences
            .get(sid)
            .is_none_or(|c| c.version != write.expected_version);
        let participant_moved = write.participant.is_some_and(|(p, seq)| {
            tables
                .participants
                .get(sid)
                .and_then(|room| room.get(&p.state.call_sid))
                .is_none_or(|stored| {
                    stored.event_seq != seq || stored.status != ParticipantStatus::Connected
                })
        });
        let number_taken = tables.intent_taken(write.intent);
        if tables.key_taken(write.idempotency, write.now) {
            return Err(RecordError::KeyTaken);
        }
        if conference_moved || participant_moved || number_taken {
            return Err(RecordError::CallChanged);
        }
        tables
            .conferences
            .insert(sid.clone(), write.conference.clone());
        if let Some((participant, _)) = write.participant {
            tables
                .participants
                .entry(sid.clone())
                .or_default()
                .insert(participant.state.call_sid.clone(), participant.clone());
        }
        tables.put_intent(write.intent);
        tables.put_key(write.idempotency);
        Ok(())
    }

    async fn list_conferences(
        &self,
        account: &AccountSid,
        filter: &ConferenceFilter,
        page: &PageRequest,
    ) -> Result<Page<Conference>, StoreError> {
        let listing: BTreeMap<String, Conference> = lock(&self.tables)
            .conferences
            .values()
            .filter(|c| c.account_sid == *account)
            .map(|c| (conference_position(c), c.clone()))
            .collect();
        newest_first(&listing, page, |c| filter.matches(c)).await
    }
}

#[async_trait]
impl RecordingStore for MemoryStore {
    async fn recording(&self, sid: &RecordingSid) -> Result<Option<Recording>, StoreError> {
        Ok(lock(&self.tables).recordings.get(sid).cloned())
    }

    async fn write_recording(
        &self,
        recording: &Recording,
        expected_version: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        let stored = tables.recordings.get(&recording.sid).map(|r| r.version);
        if stored != expected_version {
            return Ok(false);
        }
        tables
            .recordings
            .insert(recording.sid.clone(), recording.clone());
        Ok(true)
    }

    async fn write_recording_intent(&self, write: RecordingWrite<'_>) -> Result<(), RecordError> {
        let planned = write.planned;
        let mut tables = lock(&self.tables);
        tables.expire(write.now);
        let call_moved = tables
            .calls
            .get(&planned.call.sid)
            .is_none_or(|c| c.version != planned.call_version);
        let recording_moved = tables
            .recordings
            .get(&planned.recording.sid)
            .map(|r| r.version)
            != planned.recording_version;
        let number_taken = tables.intent_taken(&planned.intent);
        if tables.key_taken(write.idempotency, write.now) {
            return Err(RecordError::KeyTaken);
        }
        if call_moved || recording_moved || number_taken {
            return Err(RecordError::CallChanged);
        }
        tables.put_call(&planned.call);
        tables
            .recordings
            .insert(planned.recording.sid.clone(), planned.recording.clone());
        tables.put_intent(&planned.intent);
        tables.put_key(write.idempotency);
        Ok(())
    }

    async fn list_recordings(
        &self,
        account: &AccountSid,
        filter: &RecordingFilter,
        page: &PageRequest,
    ) -> Result<Page<Recording>, StoreError> {
        let listing: BTreeMap<String, Recording> = lock(&self.tables)
            .recordings
            .values()
            .filter(|r| r.account_sid == *account)
            .map(|r| (recording_position(r), r.clone()))
            .collect();
        newest_first(&listing, page, |r| filter.matches(r)).await
    }

    async fn delete_recording(&self, sid: &RecordingSid, version: u64) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        if tables
            .recordings
            .get(sid)
            .is_some_and(|r| r.version == version)
        {
            tables.recordings.remove(sid);
            return Ok(true);
        }
        Ok(false)
    }
}

#[async_trait]
impl CallLogStore for MemoryStore {
    async fn append(&self, entry: &LogEntry, expires_at: Timestamp) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        tables.expire(Timestamp::now());
        let call = entry.call_sid().clone();
        let log = tables.call_log.entry(call.clone()).or_default();
        if log.written >= MAX_ENTRIES {
            return Ok(false);
        }
        // As the DynamoDB adapter: the counter counts writes, the entry lands on its key.
        log.written += 1;
        log.expires_at = Some(log.expires_at.map_or(expires_at, |e| e.max(expires_at)));
        log.entries
            .insert(entry.position(), (entry.clone(), expires_at));
        tables.expiring.push_back((expires_at, Expiring::Log(call)));
        Ok(true)
    }

    async fn requests(
        &self,
        call: &CallSid,
        page: &PageRequest,
    ) -> Result<Page<RequestEntry>, StoreError> {
        let listing: BTreeMap<String, RequestEntry> = lock(&self.tables)
            .call_log
            .get(call)
            .map(|log| {
                log.entries
                    .iter()
                    .filter_map(|(position, (entry, _))| match entry {
                        LogEntry::Request(request) => Some((position.clone(), request.clone())),
                        LogEntry::Notification(_) => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        newest_first(&listing, page, |_| true).await
    }

    async fn notifications(
        &self,
        account: &AccountSid,
        call: Option<&CallSid>,
        filter: &NotificationFilter,
        page: &PageRequest,
    ) -> Result<Page<Notification>, StoreError> {
        let listing: BTreeMap<String, Notification> = lock(&self.tables)
            .call_log
            .iter()
            .filter(|(sid, _)| call.is_none_or(|c| c == *sid))
            .flat_map(|(_, log)| log.entries.iter())
            .filter_map(|(position, (entry, _))| match entry {
                LogEntry::Notification(n) if n.account_sid == *account => {
                    Some((position.clone(), n.clone()))
                }
                _ => None,
            })
            .collect();
        newest_first(&listing, page, |n| filter.matches(n)).await
    }

    async fn notification(
        &self,
        call: &CallSid,
        sid: &NotificationSid,
    ) -> Result<Option<Notification>, StoreError> {
        Ok(lock(&self.tables).call_log.get(call).and_then(|log| {
            log.entries.values().find_map(|(entry, _)| match entry {
                LogEntry::Notification(n) if n.sid == *sid => Some(n.clone()),
                _ => None,
            })
        }))
    }
}

#[async_trait]
impl WorkerStore for MemoryStore {
    async fn worker(&self, id: &WorkerId) -> Result<Option<Worker>, StoreError> {
        Ok(lock(&self.tables).workers.get(id).cloned())
    }

    async fn record_worker(&self, worker: &Worker) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        let writable = tables
            .workers
            .get(&worker.id)
            .is_none_or(|stored| stored.status.is_live() && stored.last_event < worker.last_event);
        if writable {
            tables.workers.insert(worker.id.clone(), worker.clone());
        }
        Ok(writable)
    }

    async fn expired_workers(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Worker>, StoreError> {
        let tables = lock(&self.tables);
        let mut expired: Vec<Worker> = tables
            .workers
            .values()
            .filter(|w| w.status.is_live() && w.lease_expires_at < now)
            .cloned()
            .collect();
        expired.sort_by_key(|w| w.lease_expires_at);
        expired.truncate(limit);
        Ok(expired)
    }

    async fn expire_worker(&self, id: &WorkerId, now: Timestamp) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        match tables.workers.get_mut(id) {
            Some(worker) if worker.status.is_live() && worker.lease_expires_at < now => {
                worker.status = WorkerStatus::Expired;
                worker.date_updated = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

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
        Ok(lock(&self.tables)
            .intents
            .get(&(subject.clone(), seq))
            .cloned())
    }

    async fn settle_intent(&self, settlement: Settlement<'_>) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        tables.expire(settlement.now);
        match tables
            .intents
            .get_mut(&(settlement.subject.clone(), settlement.seq))
        {
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
        let key = (Subject::Call(failure.call_sid.clone()), failure.seq);
        match tables.intents.get_mut(&key) {
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
    ) -> Result<Page<Call>, StoreError> {
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
                                .filter(|call| filter.matches(call))
                                .cloned()
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
            .range((subject.clone(), 0)..=(subject.clone(), u64::MAX))
            .map(|(_, intent)| (intent_position(intent.seq), intent.clone()))
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

/// One read of an index partition (entries by position), as DynamoDB's Query with `Limit` and
/// `ExclusiveStartKey` reads it: up to `limit` entries after `after` in `reading` order, none
/// above `upper`; `fetch` gives the item of an entry if it matches the filter.
/// A page of `listing` (items by position), newest first, of the items `matches` keeps.
async fn newest_first<T: Clone>(
    listing: &BTreeMap<String, T>,
    page: &PageRequest,
    matches: impl Fn(&T) -> bool,
) -> Result<Page<T>, StoreError> {
    let reading = Order::Descending.reading(page);
    fill_page(page, Order::Descending, 1, |_, after, limit| {
        std::future::ready(Ok(read_round(
            listing,
            after.as_deref(),
            None,
            limit,
            reading,
            |item| matches(item).then(|| item.clone()),
        )))
    })
    .await
}

fn read_round<V, T>(
    partition: &BTreeMap<String, V>,
    after: Option<&str>,
    upper: Option<&str>,
    limit: usize,
    reading: Order,
    fetch: impl Fn(&V) -> Option<T>,
) -> Round<T> {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let (low, high) = match reading {
        Order::Descending => {
            let high = match (after, upper) {
                (Some(after), Some(upper)) if upper < after => Included(upper),
                (Some(after), _) => Excluded(after),
                (None, Some(upper)) => Included(upper),
                (None, None) => Unbounded,
            };
            (Unbounded, high)
        }
        Order::Ascending => (
            after.map_or(Unbounded, Excluded),
            upper.map_or(Unbounded, Included),
        ),
    };
    if let (Excluded(low) | Included(low), Excluded(high) | Included(high)) = (low, high)
        && low > high
    {
        return Round {
            items: Vec::new(),
            last_evaluated: None,
            scanned: 0,
        };
    }
    let range = partition.range::<str, _>((low, high));
    let read: Vec<(&String, &V)> = match reading {
        Order::Descending => range.rev().take(limit).collect(),
        Order::Ascending => range.take(limit).collect(),
    };
    Round {
        items: read
            .iter()
            .filter_map(|(position, value)| fetch(value).map(|item| ((*position).clone(), item)))
            .collect(),
        last_evaluated: (read.len() == limit)
            .then(|| read.last().map(|(position, _)| (*position).clone()))
            .flatten(),
        scanned: read.len(),
    }
}

/// SQS's deduplication interval.
const DEDUP_WINDOW: Duration = Duration::from_secs(300);

/// SQS's default message retention (`MessageRetentionPeriod`), which the deployed commands and
/// events queues keep.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(4 * 24 * 3600);

struct Stored {
    /// When it was sent: it is deleted `retention` later, received or not.
    sent: Instant,
    body: String,
    group: Option<String>,
    /// Set while a receiver holds it; the message is invisible until then.
    invisible_until: Option<Instant>,
    receipt: Option<String>,
    receive_count: u32,
}

#[derive(Default)]
struct QueueState {
    messages: VecDeque<Stored>,
    /// Deduplication ids seen in the last `DEDUP_WINDOW`, with their message group (the
    /// deployed FIFO queues deduplicate per group: high-throughput mode), and the same ids
    /// oldest first, so that expiring them costs nothing per send.
    dedup: HashSet<Arc<str>>,
    dedup_order: VecDeque<(Instant, Arc<str>)>,
    /// Wakes this queue's receivers (only them: a send to one queue leaves the others' pollers
    /// asleep).
    arrived: Arc<Notify>,
}

/// Queues in memory, addressed by name; `None` is the default queue. A message sent with a group
/// is FIFO within it; without one, the queue behaves as a standard queue.
#[derive(Clone)]
pub struct MemoryQueue {
    default_queue: String,
    visibility: Duration,
    /// SQS's redrive policy: after this many receives, a message moves to the named queue.
    redrive: Option<(u32, String)>,
    /// How long a message is kept (SQS's `MessageRetentionPeriod`); deduplication ids are kept
    /// for SQS's five minutes, or this long if it is shorter (nothing outlives the retention).
    retention: Duration,
    queues: Arc<Mutex<HashMap<String, QueueState>>>,
    receipts: Arc<std::sync::atomic::AtomicU64>,
}

impl MemoryQueue {
    pub fn new(default_queue: impl Into<String>) -> Self {
        Self::with_visibility(default_queue, Duration::from_secs(30))
    }

    pub fn with_visibility(default_queue: impl Into<String>, visibility: Duration) -> Self {
        Self {
            default_queue: default_queue.into(),
            visibility,
            redrive: None,
            retention: DEFAULT_RETENTION,
            queues: Arc::default(),
            receipts: Arc::default(),
        }
    }

    /// Messages are deleted this long after they were sent (every queue of this store).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Drops the messages sent more than `retention` ago, and the deduplication ids past their
    /// window. Messages sit in the order they were sent, but for the few a redrive moved, which
    /// go when they reach the front.
    fn expire(&self, state: &mut QueueState, now: Instant) {
        while state
            .messages
            .front()
            .is_some_and(|m| now.duration_since(m.sent) >= self.retention)
        {
            state.messages.pop_front();
        }
        let window = DEDUP_WINDOW.min(self.retention);
        while let Some((sent, _)) = state.dedup_order.front()
            && now.duration_since(*sent) >= window
        {
            let (_, expired) = state.dedup_order.pop_front().expect("front exists");
            state.dedup.remove(&expired);
        }
    }

    /// The same queues, seen with `default_queue` as the default: one store, several queues.
    pub fn queue(&self, default_queue: impl Into<String>) -> Self {
        Self {
            default_queue: default_queue.into(),
            redrive: None,
            ..self.clone()
        }
    }

    /// Messages received `max_receives` times without being deleted move to `dead_letters`
    /// (a queue of the same store) instead of being delivered again.
    pub fn with_redrive(mut self, max_receives: u32, dead_letters: impl Into<String>) -> Self {
        self.redrive = Some((max_receives, dead_letters.into()));
        self
    }

    fn name<'a>(&'a self, queue: Option<&'a str>) -> &'a str {
        queue.unwrap_or(&self.default_queue)
    }

    /// Messages currently in `queue`, in order, delivered or not: for tests and the local
    /// stack's introspection.
    pub fn bodies(&self, queue: Option<&str>) -> Vec<String> {
        let queues = lock(&self.queues);
        queues
            .get(self.name(queue))
            .map(|q| q.messages.iter().map(|m| m.body.clone()).collect())
            .unwrap_or_default()
    }

    fn take_visible(&self, queue: &str, max: usize) -> Vec<ReceivedMessage> {
        let now = Instant::now();
        let mut queues = lock(&self.queues);
        let Some(state) = queues.get_mut(queue) else {
            return Vec::new();
        };
        self.expire(state, now);
        let mut blocked_groups: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        let mut dead = Vec::new();
        let mut index = 0;
        while index < state.messages.len() && out.len() < max {
            let message = &mut state.messages[index];
            index += 1;
            if message
                .group
                .as_ref()
                .is_some_and(|g| blocked_groups.contains(g))
            {
                continue;
            }
            if message.invisible_until.is_some_and(|until| until > now) {
                // In flight (or delayed): FIFO holds back the rest of its group until it is
                // deleted.
                if let Some(group) = &message.group {
                    blocked_groups.insert(group.clone());
                }
                continue;
            }
            if let Some((max_receives, _)) = &self.redrive
                && message.receive_count >= *max_receives
            {
                index -= 1;
                dead.extend(state.messages.remove(index));
                continue;
            }
            let receipt = format!(
                "r{}",
                self.receipts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            message.invisible_until = Some(now + self.visibility);
            message.receipt = Some(receipt.clone());
            message.receive_count += 1;
            out.push(ReceivedMessage {
                body: message.body.clone(),
                receipt,
                group: message.group.clone(),
                receive_count: message.receive_count,
            });
        }
        if let Some((_, dead_letters)) = &self.redrive {
            let target = queues.entry(dead_letters.clone()).or_default();
            for mut message in dead {
                message.invisible_until = None;
                message.receipt = None;
                target.messages.push_back(message);
            }
        }
        out
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, queue: Option<&str>, message: &OutgoingMessage) -> Result<(), QueueError> {
        let now = Instant::now();
        let arrived = {
            let mut queues = lock(&self.queues);
            let state = queues.entry(self.name(queue).to_owned()).or_default();
            self.expire(state, now);
            if let Some(dedup_id) = &message.dedup_id {
                // The id within its group: one allocation, shared by the set and the order.
                let key: Arc<str> =
                    format!("{}\u{0}{dedup_id}", message.group.as_deref().unwrap_or("")).into();
                if !state.dedup.insert(key.clone()) {
                    return Ok(()); // accepted and dropped, as SQS does
                }
                state.dedup_order.push_back((now, key));
            }
            state.messages.push_back(Stored {
                sent: now,
                body: message.body.clone(),
                group: message.group.clone(),
                invisible_until: (!message.delay.is_zero()).then(|| now + message.delay),
                receipt: None,
                receive_count: 0,
            });
            state.arrived.clone()
        };
        arrived.notify_waiters();
        Ok(())
    }

    async fn receive(
        &self,
        queue: Option<&str>,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let queue = self.name(queue).to_owned();
        let deadline = tokio::time::Instant::now() + wait;
        let arrived = lock(&self.queues)
            .entry(queue.clone())
            .or_default()
            .arrived
            .clone();
        loop {
            let arrived = arrived.notified();
            let messages = self.take_visible(&queue, max.max(1));
            if !messages.is_empty() {
                return Ok(messages);
            }
            // Wake on a new message, or soon, for messages whose visibility timeout ran out.
            let next_check =
                (tokio::time::Instant::now() + Duration::from_millis(100)).min(deadline);
            if tokio::time::timeout_at(next_check, arrived).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return Ok(Vec::new());
            }
        }
    }

    async fn delete(&self, queue: Option<&str>, receipt: &str) -> Result<(), QueueError> {
        let mut queues = lock(&self.queues);
        if let Some(state) = queues.get_mut(self.name(queue)) {
            state
                .messages
                .retain(|m| m.receipt.as_deref() != Some(receipt));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teleapi_domain::call::plan;
    use teleapi_domain::{AddressPolicy, CallStatus, Form, Instructions, IntentSid, ModifyRequest};

    const HOUR: Duration = Duration::from_secs(3600);

    /// A modification of `call` at `now`, kept for `retention`, written with an idempotency
    /// record that lives as long.
    async fn modify(store: &MemoryStore, call: &Call, now: Timestamp, retention: Duration) -> Call {
        let request = ModifyRequest::parse(
            &Form::parse(b"Mute=true").unwrap(),
            AddressPolicy::default(),
        )
        .unwrap();
        let planned = plan(call, &request, IntentSid::generate(), now, retention).unwrap();
        let record = IdempotencyRecord {
            key: IdempotencyKey::from_stored(format!("{}:{}", call.account_sid, planned.call.seq)),
            fingerprint: String::new(),
            status: 200,
            response: String::new(),
            expires_at: now.plus(retention).whole_seconds(),
        };
        store
            .write_call(CallWrite {
                call: &planned.call,
                expected_version: Some(call.version),
                intent: Some(&planned.intent),
                idempotency: Some(&record),
                now,
            })
            .await
            .unwrap();
        planned.call
    }

    #[tokio::test]
    async fn intents_and_keys_go_when_their_ttl_has_passed() {
        let store = MemoryStore::new();
        let start = Timestamp::from_millis(1_795_478_400_000);
        let call = Call::inbound(
            AccountSid::generate(),
            "+15551230001".into(),
            "+15551230002".into(),
            Instructions::default(),
            CallStatus::InProgress,
            start,
        );
        store.insert_call(&call).await.unwrap();
        let call = modify(&store, &call, start, HOUR).await;
        let call = modify(&store, &call, start.plus(HOUR / 2), HOUR).await;
        let sizes = |store: &MemoryStore| {
            let tables = lock(&store.tables);
            (tables.intents.len(), tables.idempotency.len())
        };
        assert_eq!(sizes(&store), (2, 2));
        // An hour after the first: the first intent and key are gone at the next write, the
        // second (half an hour younger) stays.
        let call = modify(&store, &call, start.plus(HOUR), HOUR).await;
        assert_eq!(sizes(&store), (2, 2));
        assert!(
            store
                .intent(&call.sid.clone().into(), 1)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .intent(&call.sid.clone().into(), 2)
                .await
                .unwrap()
                .is_some()
        );
        // Long after: only what the last write added.
        modify(&store, &call, start.plus(HOUR * 10), HOUR).await;
        assert_eq!(sizes(&store), (1, 1));
    }

    #[tokio::test]
    async fn a_key_taken_again_keeps_its_new_lifetime() {
        let store = MemoryStore::new();
        let key = IdempotencyKey::from_stored("AC:k".into());
        let mut tables = lock(&store.tables);
        let start = Timestamp::from_millis(1_795_478_400_000);
        for at in [start.plus(HOUR), start.plus(HOUR * 3)] {
            tables.idempotency.insert(
                key.clone(),
                IdempotencyRecord {
                    key: key.clone(),
                    fingerprint: String::new(),
                    status: 200,
                    response: String::new(),
                    expires_at: at,
                },
            );
            tables.expiring.push_back((at, Expiring::Key(key.clone())));
        }
        tables.expire(start.plus(HOUR * 2));
        assert!(
            tables.idempotency.contains_key(&key),
            "the later lifetime holds"
        );
        tables.expire(start.plus(HOUR * 3));
        assert!(tables.idempotency.is_empty());
    }

    #[tokio::test]
    async fn messages_and_deduplication_ids_go_after_the_retention() {
        let queue = MemoryQueue::new("q.fifo").with_retention(Duration::from_millis(200));
        let message = OutgoingMessage::fifo("G", "d1", "first".into());
        queue.send(None, &message).await.unwrap();
        queue.send(None, &message).await.unwrap();
        assert_eq!(queue.bodies(None), ["first"], "deduplicated");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(
            queue
                .receive(None, 10, Duration::ZERO)
                .await
                .unwrap()
                .is_empty(),
            "expired unreceived"
        );
        // The id went with it: the same id is a new message now.
        queue.send(None, &message).await.unwrap();
        assert_eq!(queue.bodies(None), ["first"]);
        // Deduplication is per message group, as on the deployed (high-throughput) queues.
        queue
            .send(
                None,
                &OutgoingMessage::fifo("H", "d1", "other group".into()),
            )
            .await
            .unwrap();
        assert_eq!(queue.bodies(None), ["first", "other group"]);
    }
}
