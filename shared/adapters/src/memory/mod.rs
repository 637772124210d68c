//! In-process twins of the DynamoDB and SQS adapters, with the same semantics: conditional
//! writes that are all-or-nothing, FIFO order per message group, deduplication within a message
//! group for five minutes (high-throughput FIFO, as deployed), visibility timeouts. The embedded
//! `teleapi-local` runs on them; the contract suite keeps them honest. (moto deduplicates per
//! queue whatever the queue's scope, so the suite checks deduplication within one group only.)

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use teleapi_domain::call::call_position;
use teleapi_domain::call_log::LogEntry;
use teleapi_domain::conference::{Conference, Participant};
use teleapi_domain::paging::{Page, PageRequest, partition_key};
use teleapi_domain::recording::Recording;
use teleapi_domain::sid::WorkerId;
use teleapi_domain::worker::Worker;
use teleapi_domain::{
    Account, AccountSid, Call, CallSid, ConferenceSid, IdempotencyKey, IdempotencyRecord, Intent,
    RecordingSid, Subject, Timestamp,
};
use teleapi_ports::StoreError;
use teleapi_ports::paging::{Order, Round, fill_page};

mod accounts;
mod call_log;
mod calls;
mod conferences;
mod key_pool;
mod numbers;
mod queue;
mod queues;
mod recordings;
mod workers;

pub use queue::*;

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
    /// Intents by subject, then seq (as DynamoDB's partition and sort key).
    intents: HashMap<Subject, BTreeMap<u64, Intent>>,
    idempotency: HashMap<IdempotencyKey, IdempotencyRecord>,
    workers: HashMap<WorkerId, Worker>,
    conferences: HashMap<ConferenceSid, Conference>,
    participants: HashMap<ConferenceSid, BTreeMap<CallSid, Participant>>,
    recordings: HashMap<RecordingSid, Recording>,
    /// Numbers by sid, and their sids by `PhoneNumber`.
    numbers: HashMap<teleapi_domain::PhoneNumberSid, teleapi_domain::number::IncomingNumber>,
    called: HashMap<String, teleapi_domain::PhoneNumberSid>,
    /// Call queues by sid (their members are the calls that wait in them).
    queues: HashMap<teleapi_domain::QueueSid, teleapi_domain::queue::CallQueue>,
    /// Calls' logs: entries by position, how many were written, and until when the log is kept.
    call_log: HashMap<CallSid, CallLog>,
    /// The listing index: by partition (account and shard), call positions.
    listing: HashMap<String, BTreeMap<String, CallSid>>,
    /// What the TTL attributes (`ExpiresAt`) will delete, in the order it was written: with one
    /// retention per process that is nearly expiry order, and an item written out of order is
    /// deleted when it reaches the front (DynamoDB's TTL is no more punctual: within days).
    expiring: VecDeque<(Timestamp, Expiring)>,
    /// The API keys lent to accounts: each slot's key and, while lent, to whom and until when.
    key_pool: Vec<(String, Option<(AccountSid, Timestamp)>)>,
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

    fn intent(&self, subject: &Subject, seq: u64) -> Option<&Intent> {
        self.intents.get(subject)?.get(&seq)
    }

    fn intent_taken(&self, intent: &Intent) -> bool {
        self.intent(&intent.subject, intent.seq).is_some()
    }

    fn intent_mut(&mut self, subject: &Subject, seq: u64) -> Option<&mut Intent> {
        self.intents.get_mut(subject)?.get_mut(&seq)
    }

    fn put_intent(&mut self, intent: &Intent) {
        self.expiring.push_back((
            intent.expires_at,
            Expiring::Intent(intent.subject.clone(), intent.seq),
        ));
        self.intents
            .entry(intent.subject.clone())
            .or_default()
            .insert(intent.seq, intent.clone());
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
                Expiring::Intent(subject, seq) => {
                    if let Some(intents) = self.intents.get_mut(&subject)
                        && intents.get(&seq).is_some_and(|i| i.expires_at == at)
                    {
                        intents.remove(&seq);
                        if intents.is_empty() {
                            self.intents.remove(&subject);
                        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use teleapi_ports::{CallStore, CallWrite, OutgoingMessage, Queue};

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
            (
                tables.intents.values().map(BTreeMap::len).sum::<usize>(),
                tables.idempotency.len(),
            )
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
