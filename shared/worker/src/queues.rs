//! A worker's call queues: who waits in each (an account's queue by name, first come first
//! served), and the agents waiting for someone to arrive. A caller `<Enqueue>`d waits here; an
//! agent's `<Dial><Queue>` takes the first, or waits for the next. The legs meet through their
//! inboxes: the agent tells the caller it is dequeued, the caller answers as a dialled leg does.
//! A line is this worker's: an agent with no caller here meets one of another worker through the
//! control plane (a bridge between workers: relay.rs); each caller's joining and leaving is reported, so the API
//! lists and dequeues every queue's callers. How many callers a queue holds is what the
//! application set (`MaxSize`), read from the queues' store, counted over every worker from the
//! queue's index ([`QueueSizes`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use teleapi_domain::queue::DEFAULT_MAX_SIZE;
use teleapi_domain::{AccountSid, CallSid, QueueSid, Timestamp};
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

use crate::inbox::Message;

/// How many callers each queue holds: the `MaxSize` the application set, read from the queues'
/// store and used for [`QueueSizes::TTL`] (a change reaches the workers within it); Twilio's 100
/// for a queue it has not set, or when the store cannot be read.
#[derive(Clone)]
pub struct QueueSizes {
    queues: Arc<dyn teleapi_ports::CallQueueStore>,
    read: Arc<Mutex<HashMap<QueueSid, (u32, Timestamp)>>>,
}

impl QueueSizes {
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(10);

    pub fn new(queues: Arc<dyn teleapi_ports::CallQueueStore>) -> Self {
        Self {
            queues,
            read: Arc::default(),
        }
    }

    /// How many callers wait in the queue on every worker, as its index lists them (within a
    /// second or so); 0 if the store cannot be read (this worker's line still counts).
    pub(crate) async fn listed(&self, sid: &QueueSid) -> usize {
        match self.queues.members(sid).await {
            Ok(members) => members.len(),
            Err(err) => {
                tracing::warn!(queue_sid = %sid, error = %err, "worker: queue's members not read; only this worker's are counted");
                0
            }
        }
    }

    pub(crate) async fn max_size(&self, sid: &QueueSid) -> u32 {
        let now = Timestamp::now();
        if let Some((size, at)) = self.read.lock().unwrap().get(sid)
            && now.millis() - at.millis() < Self::TTL.as_millis() as i64
        {
            return *size;
        }
        let size = match self.queues.call_queue(sid).await {
            Ok(found) => found.map_or(DEFAULT_MAX_SIZE, |q| q.max_size),
            Err(err) => {
                tracing::warn!(queue_sid = %sid, error = %err, "worker: queue not read; it holds 100");
                return DEFAULT_MAX_SIZE;
            }
        };
        let mut read = self.read.lock().unwrap();
        // Queues not asked for in a while are forgotten, so the map holds the busy ones.
        read.retain(|_, (_, at)| now.millis() - at.millis() < Self::TTL.as_millis() as i64);
        read.insert(sid.clone(), (size, now));
        size
    }
}

/// A caller waiting.
pub(crate) struct Member {
    pub call: CallSid,
    pub leg: mpsc::UnboundedSender<Message>,
    pub since: Instant,
}

/// An agent waiting for a caller.
struct Agent {
    call: CallSid,
    leg: mpsc::UnboundedSender<Message>,
}

struct Line {
    sid: QueueSid,
    members: VecDeque<Member>,
    agents: VecDeque<Agent>,
    /// Callers who left it so far, and how long they waited in all (`AvgQueueTime`).
    served: (u32, Duration),
}

/// Where a caller `<Enqueue>`d is now.
pub(crate) enum Enqueued {
    /// Waiting.
    Waiting { sid: QueueSid },
    /// An agent was waiting: it is told, and takes the caller at once.
    Taken { sid: QueueSid },
    /// The queue holds its most callers already.
    Full { sid: QueueSid },
}

/// What a waiting caller's `waitUrl` is told (Twilio's parameters).
pub(crate) struct Standing {
    pub position: usize,
    pub size: usize,
    pub average: Duration,
}

#[derive(Clone, Default)]
pub(crate) struct SharedQueues {
    lines: Arc<Mutex<HashMap<(AccountSid, String), Line>>>,
}

impl SharedQueues {
    /// `f` on the queue `name` of `account`; a queue nobody is in is forgotten (its average
    /// wait starts afresh when it is used again), so the worker holds only busy queues.
    fn with<T>(&self, account: &AccountSid, name: &str, f: impl FnOnce(&mut Line) -> T) -> T {
        let mut lines = self.lines.lock().unwrap();
        let key = (account.clone(), name.to_owned());
        let line = lines.entry(key.clone()).or_insert_with(|| Line {
            sid: QueueSid::named(account, name),
            members: VecDeque::new(),
            agents: VecDeque::new(),
            served: (0, Duration::ZERO),
        });
        let result = f(line);
        if line.members.is_empty() && line.agents.is_empty() {
            lines.remove(&key);
        }
        result
    }

    /// `member` joins the queue `name` of `account`, which holds at most `max_size` callers:
    /// this worker's, or `listed` (every worker's, as the queue's index lists them), whichever
    /// is more. An agent waiting here takes it, full or not.
    pub(crate) fn enqueue(
        &self,
        account: &AccountSid,
        name: &str,
        member: Member,
        max_size: u32,
        listed: usize,
    ) -> Enqueued {
        self.with(account, name, |line| {
            let sid = line.sid.clone();
            while let Some(agent) = line.agents.pop_front() {
                let taken = agent.leg.send(Message::QueueMember {
                    queue: name.to_owned(),
                    call: member.call.clone(),
                    leg: member.leg.clone(),
                    since: member.since,
                });
                if taken.is_ok() {
                    line.served.0 += 1;
                    return Enqueued::Taken { sid };
                }
            }
            if line.members.len().max(listed) >= max_size as usize {
                return Enqueued::Full { sid };
            }
            line.members.push_back(member);
            Enqueued::Waiting { sid }
        })
    }

    /// `member` goes back where it waited (an agent it reached stopped waiting, or a bridge to
    /// one was not answered): it was counted in already, so the queue is never full for it;
    /// an agent waiting here takes it.
    pub(crate) fn put_back(&self, account: &AccountSid, name: &str, member: Member) -> Enqueued {
        self.enqueue(account, name, member, u32::MAX, 0)
    }

    /// Where `call` stands in the queue, if it waits there.
    pub(crate) fn standing(
        &self,
        account: &AccountSid,
        name: &str,
        call: &CallSid,
    ) -> Option<Standing> {
        self.with(account, name, |line| {
            let position = line.members.iter().position(|m| m.call == *call)? + 1;
            let (served, waited) = line.served;
            Some(Standing {
                position,
                size: line.members.len(),
                average: waited.checked_div(served).unwrap_or_default(),
            })
        })
    }

    /// `call` leaves the queue (it left, hung up, or was redirected); how long it waited.
    pub(crate) fn leave(
        &self,
        account: &AccountSid,
        name: &str,
        call: &CallSid,
    ) -> Option<Duration> {
        self.with(account, name, |line| {
            let at = line.members.iter().position(|m| m.call == *call)?;
            let member = line.members.remove(at)?;
            let waited = member.since.elapsed();
            line.served.0 += 1;
            line.served.1 += waited;
            Some(waited)
        })
    }

    /// The first caller of the queue, for the agent `call`; if there is none, the agent waits
    /// for the next (told with [`Message::QueueMember`]).
    pub(crate) fn take_first(
        &self,
        account: &AccountSid,
        name: &str,
        call: &CallSid,
        leg: mpsc::UnboundedSender<Message>,
    ) -> Option<Member> {
        self.with(account, name, |line| match line.members.pop_front() {
            Some(member) => {
                line.served.0 += 1;
                line.served.1 += member.since.elapsed();
                Some(member)
            }
            None => {
                line.agents.push_back(Agent {
                    call: call.clone(),
                    leg,
                });
                None
            }
        })
    }

    /// The agent `call` no longer waits (its dial timed out, or it hung up).
    pub(crate) fn give_up(&self, account: &AccountSid, name: &str, call: &CallSid) {
        self.with(account, name, |line| {
            line.agents.retain(|a| a.call != *call)
        });
    }
}
