//! What every leg, room and stream of one worker shares: its id and queues, its life (active,
//! draining, left, dead), its media, its HTTP client, the calls it holds; and how it reports
//! events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use teleapi_domain::sid::{WorkerId, digest_hex};
use teleapi_domain::wire::event::{EVENT_VERSION, Event, EventKind};
use teleapi_domain::wire::worker::{WorkerEvent, WorkerEventKind};
use teleapi_domain::worker::HEARTBEAT_INTERVAL;
use teleapi_domain::{CallSid, IntentSid, Timestamp};
use teleapi_ports::retry::backoff;
use teleapi_ports::{OutgoingMessage, Queue};
use tokio::sync::{Notify, mpsc};

use crate::inbox::Message;
use crate::media::Media;

/// How a worker signs its requests to the application: with the account's AuthToken, read
/// from the accounts (cached for [`Signing::TTL`], as the API and the callback function do).
#[derive(Clone)]
pub struct Signing {
    accounts: Arc<dyn teleapi_ports::AccountStore>,
    cache: teleapi_ports::account_cache::AccountCache,
}

impl Signing {
    /// How long a token read is used: a rotated token may sign requests this long after.
    pub const TTL: Duration = Duration::from_secs(10);

    pub fn new(accounts: Arc<dyn teleapi_ports::AccountStore>) -> Self {
        Self {
            accounts,
            cache: Default::default(),
        }
    }

    /// The account's AuthToken; `None` (the request goes unsigned) if it cannot be read.
    pub(crate) async fn auth_token(&self, account: &teleapi_domain::AccountSid) -> Option<String> {
        let read = self
            .cache
            .account(
                self.accounts.as_ref(),
                account,
                Timestamp::now(),
                Self::TTL,
                |_| true,
            )
            .await;
        match read {
            Ok(found) => found.map(|a| a.auth_token.expose().to_owned()),
            Err(err) => {
                tracing::warn!(account_sid = %account, error = %err, "worker: account not read; request unsigned");
                None
            }
        }
    }
}

/// What a worker reads of the control plane's stores: the accounts, to sign its requests
/// ([`Signing`]), and the call queues, for the `MaxSize` the application set of each.
#[derive(Clone)]
pub struct Stores {
    pub accounts: Arc<dyn teleapi_ports::AccountStore>,
    pub queues: Arc<dyn teleapi_ports::CallQueueStore>,
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This run's id: a new one each time the worker starts.
    pub id: WorkerId,
    /// How often it sends `worker.heartbeat` (every 10 s as deployed; its lease is three times
    /// that).
    pub heartbeat: Duration,
    /// Multiplies the worker's own timers (a `<Dial>`'s or `<Gather>`'s timeout, the pauses
    /// of `SendDigits`): 1 for a real worker; less to run a simulated world faster.
    pub time_scale: f64,
    /// How many calls it says it can hold.
    pub capacity: u32,
    /// How long an RCML fetch may take before it counts as failed (11205).
    pub fetch_timeout: Duration,
    /// Where the API is reached (`TELEAPI_PUBLIC_URL`), for the `RecordingUrl` an action URL
    /// is given; relative to the API's host if empty.
    pub public_url: String,
    /// Where other workers reach this one to bridge a queued caller of theirs to an agent of
    /// this one (its SIP address; a simulated worker's id). `None`: its agents take only its
    /// own callers.
    pub bridge_address: Option<String>,
    /// How often (of the worker's own time) an agent that waits with no caller says so again:
    /// a caller may have joined on another worker since.
    pub agent_report: Duration,
}

impl WorkerConfig {
    pub fn new(id: WorkerId) -> Self {
        Self {
            id,
            heartbeat: HEARTBEAT_INTERVAL,
            time_scale: 1.0,
            capacity: 10_000,
            fetch_timeout: Duration::from_secs(10),
            public_url: String::new(),
            bridge_address: None,
            agent_report: Duration::from_secs(5),
        }
    }
}

/// Where a worker is in its life, as `GET /dev/Workers` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Takes new calls.
    Active,
    /// Takes no new call; leaves once its calls have ended.
    Draining,
    /// Said `worker.left`; gone.
    Left,
    /// Killed: silent from then on, as a crashed process.
    Dead,
}

impl Life {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Draining => "draining",
            Self::Left => "left",
            Self::Dead => "dead",
        }
    }

    pub(crate) fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Active,
            1 => Self::Draining,
            2 => Self::Left,
            _ => Self::Dead,
        }
    }
}

/// An agent that waits for a caller of another worker: its wait's token, and its account (its
/// inbox is its entry in `legs`).
pub(crate) struct Waiting {
    pub token: String,
    pub account_sid: teleapi_domain::AccountSid,
}

/// The agents of a worker that wait for callers of other workers, by their calls.
pub(crate) type WaitingAgents = Arc<Mutex<HashMap<CallSid, Waiting>>>;

/// What every leg, room and stream of one worker shares.
#[derive(Clone)]
pub(crate) struct Shared {
    pub worker_id: WorkerId,
    /// The worker's own commands queue, as it names it in `call.initiated`.
    pub queue_url: String,
    pub events: Arc<dyn Queue>,
    pub http: reqwest::Client,
    pub legs: Arc<Mutex<HashMap<CallSid, mpsc::UnboundedSender<Message>>>>,
    /// Calls that ended here, with the intent of the last command each applied: a `dial`
    /// delivered again after its call ended must not place the call a second time, and the last
    /// command delivered again is a redelivery, not news. (A few bytes per call, for the life of
    /// the process.)
    pub ended: Arc<Mutex<HashMap<CallSid, Option<IntentSid>>>>,
    pub config: Arc<WorkerConfig>,
    pub(crate) life: Arc<AtomicU8>,
    /// Wakes the loops when the worker's life changes.
    pub(crate) changed: Arc<Notify>,
    /// How its requests to the application are signed (none: unsigned).
    pub(crate) signing: Option<Signing>,
    /// The timestamp of its last worker event (ms).
    pub(crate) last_stamp: Arc<AtomicI64>,
    pub media: Arc<dyn Media>,
    /// Its call queues (`<Enqueue>`, `<Dial><Queue>`).
    pub(crate) call_queues: crate::queues::SharedQueues,
    /// Where it reads how many callers each queue holds (none: Twilio's 100 each).
    pub(crate) queue_sizes: Option<crate::queues::QueueSizes>,
    /// Its agents that wait for callers of other workers (relay.rs: bridges between workers).
    pub(crate) waiting_agents: WaitingAgents,
}

impl Shared {
    pub fn life(&self) -> Life {
        Life::from_u8(self.life.load(Ordering::SeqCst))
    }

    pub(crate) fn set_life(&self, life: Life) {
        self.life.store(life as u8, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Whether the worker still says anything (not killed).
    pub fn speaks(&self) -> bool {
        self.life() != Life::Dead
    }

    /// `seconds` of the worker's own time.
    pub fn scaled(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64((seconds * self.config.time_scale).max(0.0))
    }

    pub async fn emit(&self, call_sid: &CallSid, kind: EventKind) {
        self.emit_at(call_sid, Timestamp::now(), kind).await;
    }

    /// An event of `call_sid` that happened at `at`, in the call's message group.
    pub async fn emit_at(&self, call_sid: &CallSid, at: Timestamp, kind: EventKind) {
        if !self.speaks() {
            return;
        }
        let event = Event {
            version: EVENT_VERSION,
            call_sid: call_sid.clone(),
            timestamp: at.millis(),
            kind,
        };
        self.send_event(call_sid.as_str(), event.to_json()).await;
    }

    /// Sends an event in `group`, deduplicated by its content, so that sending it again after
    /// a failed attempt cannot report it twice; tries a few times before giving up on it.
    pub async fn send_event(&self, group: &str, body: String) {
        let message = OutgoingMessage::fifo(group, digest_hex(&body), body);
        for attempt in 0..4 {
            match self.events.send(None, &message).await {
                Ok(()) => return,
                Err(err) if attempt == 3 => {
                    tracing::warn!(error = %err, "worker: event not sent");
                }
                Err(_) => tokio::time::sleep(backoff(attempt)).await,
            }
        }
    }

    /// A worker event, stamped strictly after every earlier one of this worker: the control
    /// plane applies a worker's events only in timestamp order, so a heartbeat made a moment
    /// before `worker.left` (and sent after it) must not look newer, or stamped the same.
    pub(crate) fn worker_event(&self, kind: WorkerEventKind) -> String {
        let now = Timestamp::now().millis();
        let stamped = self
            .last_stamp
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last + 1))
            })
            .map_or(now, |last| now.max(last + 1));
        WorkerEvent {
            version: EVENT_VERSION,
            worker_id: self.worker_id.clone(),
            timestamp: stamped,
            kind,
        }
        .to_json()
    }
}
