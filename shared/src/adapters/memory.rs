//! In-process twins of the DynamoDB and SQS adapters, with the same semantics: conditional
//! writes that are all-or-nothing, FIFO order per message group, deduplication for five minutes,
//! visibility timeouts. The embedded `teleapi-local` runs on them; the contract suite keeps them
//! honest.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::paging::{Round, fill_page};
use crate::domain::listing::{CallFilter, Page, PageRequest, call_position, intent_position};
use crate::domain::{
    Account, AccountSid, AccountStatus, AuthToken, Call, CallSid, IdempotencyKey,
    IdempotencyRecord, Intent, IntentStatus, Timestamp,
};
use crate::ports::{
    AccountStore, CallStore, CallWrite, InsertError, IntentFailure, OutgoingMessage, Queue,
    QueueError, ReceivedMessage, RecordError, Settlement, StoreError,
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
    intents: BTreeMap<(CallSid, u64), Intent>,
    idempotency: HashMap<IdempotencyKey, IdempotencyRecord>,
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

    async fn update_account(
        &self,
        sid: &AccountSid,
        auth_token: &AuthToken,
        status: AccountStatus,
    ) -> Result<bool, StoreError> {
        match lock(&self.tables).accounts.get_mut(sid) {
            Some(account) => {
                account.auth_token = auth_token.clone();
                account.status = status;
                Ok(true)
            }
            None => Ok(false),
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
        tables.calls.insert(call.sid.clone(), call.clone());
        Ok(())
    }

    async fn write_call(&self, write: CallWrite<'_>) -> Result<(), RecordError> {
        let mut tables = lock(&self.tables);
        let stored = tables.calls.get(&write.call.sid);
        let version_holds = match write.expected_version {
            Some(expected) => stored.is_some_and(|stored| stored.version == expected),
            None => stored.is_none(),
        };
        let intent_taken = write
            .intent
            .is_some_and(|i| tables.intents.contains_key(&(i.call_sid.clone(), i.seq)));
        if !version_holds || intent_taken {
            return Err(RecordError::CallChanged);
        }
        if let Some(record) = write.idempotency {
            let taken = tables
                .idempotency
                .get(&record.key)
                .is_some_and(|stored| stored.is_live(write.now));
            if taken {
                return Err(RecordError::KeyTaken);
            }
            tables
                .idempotency
                .insert(record.key.clone(), record.clone());
        }
        tables
            .calls
            .insert(write.call.sid.clone(), write.call.clone());
        if let Some(intent) = write.intent {
            tables
                .intents
                .insert((intent.call_sid.clone(), intent.seq), intent.clone());
        }
        Ok(())
    }

    async fn intent(&self, call_sid: &CallSid, seq: u64) -> Result<Option<Intent>, StoreError> {
        Ok(lock(&self.tables)
            .intents
            .get(&(call_sid.clone(), seq))
            .cloned())
    }

    async fn settle_intent(&self, settlement: Settlement<'_>) -> Result<bool, StoreError> {
        let mut tables = lock(&self.tables);
        match tables
            .intents
            .get_mut(&(settlement.call_sid.clone(), settlement.seq))
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
        let key = (failure.call_sid.clone(), failure.seq);
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

    async fn pending_intents(
        &self,
        created_before: Timestamp,
        limit: usize,
    ) -> Result<Vec<Intent>, StoreError> {
        let tables = lock(&self.tables);
        let mut pending: Vec<Intent> = tables
            .intents
            .values()
            .filter(|i| i.status == IntentStatus::Pending && i.date_created < created_before)
            .cloned()
            .collect();
        pending.sort_by_key(|i| i.date_created);
        pending.truncate(limit);
        Ok(pending)
    }

    async fn list_calls(
        &self,
        account: &AccountSid,
        filter: &CallFilter,
        page: &PageRequest,
    ) -> Result<Page<Call>, StoreError> {
        // The listing index, as DynamoDB keeps it: the account's calls by position, newest
        // first, bounded above by the start-time filter (a call starts after it is created).
        let upper = filter
            .started_at_or_before
            .map(|t| format!("{:015}#~", t.millis().max(0)));
        let mut listing: Vec<(String, Call)> = lock(&self.tables)
            .calls
            .values()
            .filter(|call| call.account_sid == *account)
            .map(|call| (call_position(call), call.clone()))
            .filter(|(position, _)| upper.as_ref().is_none_or(|upper| position <= upper))
            .collect();
        listing.sort_by(|a, b| b.0.cmp(&a.0));
        if page.backward {
            listing.reverse();
        }
        fill_page(page, call_position, |after, limit| {
            std::future::ready(Ok(read_round(
                &listing,
                after,
                limit,
                !page.backward,
                |call| filter.matches(call),
            )))
        })
        .await
    }

    async fn list_intents(
        &self,
        call_sid: &CallSid,
        page: &PageRequest,
    ) -> Result<Page<Intent>, StoreError> {
        let mut listing: Vec<(String, Intent)> = lock(&self.tables)
            .intents
            .range((call_sid.clone(), 0)..=(call_sid.clone(), u64::MAX))
            .map(|(_, intent)| (intent_position(intent.seq), intent.clone()))
            .collect();
        // Display order is ascending; the store's key order already is.
        if page.backward {
            listing.reverse();
        }
        fill_page(
            page,
            |i: &Intent| intent_position(i.seq),
            |after, limit| {
                std::future::ready(Ok(read_round(
                    &listing,
                    after,
                    limit,
                    page.backward,
                    |_| true,
                )))
            },
        )
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

/// One read of `listing` (already in reading order, with positions): up to `limit` items after
/// `after`, as DynamoDB's Query with `Limit` and `ExclusiveStartKey` reads them. `descending`
/// says whether positions decrease along `listing`.
fn read_round<T: Clone>(
    listing: &[(String, T)],
    after: Option<String>,
    limit: usize,
    descending: bool,
    matches: impl Fn(&T) -> bool,
) -> Round<T> {
    let start = match &after {
        None => 0,
        Some(after) => listing.partition_point(|(position, _)| {
            if descending {
                position >= after
            } else {
                position <= after
            }
        }),
    };
    let read = &listing[start.min(listing.len())..(start + limit).min(listing.len())];
    Round {
        items: read
            .iter()
            .filter(|(_, item)| matches(item))
            .map(|(_, item)| item.clone())
            .collect(),
        last_evaluated: (read.len() == limit)
            .then(|| read.last().map(|(position, _)| position.clone()))
            .flatten(),
        scanned: read.len(),
    }
}

/// SQS's deduplication interval.
const DEDUP_WINDOW: Duration = Duration::from_secs(300);

struct Stored {
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
    /// Deduplication ids seen in the last `DEDUP_WINDOW`, and the same ids oldest first, so
    /// that expiring them costs nothing per send.
    dedup: HashSet<String>,
    dedup_order: VecDeque<(Instant, String)>,
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
            queues: Arc::default(),
            receipts: Arc::default(),
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
            while let Some((sent, _)) = state.dedup_order.front()
                && now.duration_since(*sent) >= DEDUP_WINDOW
            {
                let (_, expired) = state.dedup_order.pop_front().expect("front exists");
                state.dedup.remove(&expired);
            }
            if let Some(dedup_id) = &message.dedup_id {
                if !state.dedup.insert(dedup_id.clone()) {
                    return Ok(()); // accepted and dropped, as SQS does
                }
                state.dedup_order.push_back((now, dedup_id.clone()));
            }
            state.messages.push_back(Stored {
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
