//! A queue in memory with SQS's semantics: FIFO groups, deduplication, visibility timeouts,
//! retention.

use super::*;
use async_trait::async_trait;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use teleapi_ports::{OutgoingMessage, Queue, QueueError, ReceivedMessage};
use tokio::sync::Notify;

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
            let name = self.name(queue);
            // The queue's name copied once, when it is first sent to; not on every send.
            if !queues.contains_key(name) {
                queues.insert(name.to_owned(), QueueState::default());
            }
            let state = queues.get_mut(name).expect("inserted above");
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

    async fn release(&self, queue: Option<&str>, receipt: &str) -> Result<(), QueueError> {
        let mut queues = lock(&self.queues);
        if let Some(state) = queues.get_mut(self.name(queue)) {
            for message in &mut state.messages {
                if message.receipt.as_deref() == Some(receipt) {
                    message.receipt = None;
                    message.invisible_until = None;
                }
            }
            state.arrived.notify_waiters();
        }
        Ok(())
    }
}
