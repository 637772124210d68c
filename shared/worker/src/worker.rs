//! A worker's life: it announces itself and renews its lease with heartbeats, takes commands
//! from its queues and hands each to its call, takes new calls while it is active, and, asked
//! to drain, takes no new call, lets its calls finish and says `worker.left`. Killed, it falls
//! silent at once, as a crashed process does (docs/messages.md, "Worker events").

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use teleapi_domain::sid::{WorkerId, digest_hex};
use teleapi_domain::wire::command::{Command, CommandType};
use teleapi_domain::wire::conference::ConferenceCommand;
use teleapi_domain::wire::event::{EVENT_VERSION, Event, EventKind};
use teleapi_domain::wire::worker::{WorkerEvent, WorkerEventKind};
use teleapi_domain::worker::{HEARTBEAT_INTERVAL, WorkerState};
use teleapi_domain::{CallSid, Direction, IntentSid, Timestamp};
use teleapi_ports::retry::backoff;
use teleapi_ports::{OutgoingMessage, Queue, ReceivedMessage};
use tokio::sync::{Notify, mpsc};

use crate::leg::{InboundCall, Leg, Message, Source, Start};
use crate::media::{LegInfo, Media};
use crate::rooms::SharedRooms;

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
}

impl WorkerConfig {
    pub fn new(id: WorkerId) -> Self {
        Self {
            id,
            heartbeat: HEARTBEAT_INTERVAL,
            time_scale: 1.0,
            capacity: 10_000,
            fetch_timeout: Duration::from_secs(10),
        }
    }
}

/// Where a worker reads its commands and writes its events.
#[derive(Clone)]
pub struct WorkerQueues {
    /// The worker's own commands queue (the commands of the calls it owns), at `own_url` in
    /// `commands`.
    pub commands: Arc<dyn Queue>,
    pub own_url: String,
    /// The queue new calls arrive on, shared by the workers (`None`: the default queue of
    /// `commands`), if the worker takes new calls from it; `None`: only its own.
    pub shared: Option<SharedQueue>,
    pub events: Arc<dyn Queue>,
}

/// The commands queue a worker shares with others: new calls (`dial`) for any of them.
#[derive(Clone)]
pub struct SharedQueue {
    pub queue: Arc<dyn Queue>,
    /// Its URL in `queue`; `None`: the queue's default.
    pub url: Option<String>,
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

    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Active,
            1 => Self::Draining,
            2 => Self::Left,
            _ => Self::Dead,
        }
    }
}

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
    life: Arc<AtomicU8>,
    /// Wakes the loops when the worker's life changes.
    changed: Arc<Notify>,
    pub rooms: SharedRooms,
    pub media: Arc<dyn Media>,
}

impl Shared {
    pub fn life(&self) -> Life {
        Life::from_u8(self.life.load(Ordering::SeqCst))
    }

    fn set_life(&self, life: Life) {
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

    fn worker_event(&self, kind: WorkerEventKind) -> String {
        WorkerEvent {
            version: EVENT_VERSION,
            worker_id: self.worker_id.clone(),
            timestamp: Timestamp::now().millis(),
            kind,
        }
        .to_json()
    }
}

/// A media worker: the commands it takes, the legs it runs on `media`, the events it sends.
pub struct Worker {
    shared: Shared,
    queues: WorkerQueues,
}

/// What the rest of a process may do with a running worker: offer it a call, drain it, kill
/// it, look at it.
#[derive(Clone)]
pub struct WorkerHandle {
    shared: Shared,
}

impl Worker {
    pub fn new(config: WorkerConfig, queues: WorkerQueues, media: Arc<dyn Media>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .build()
            .expect("an HTTP client builds");
        Self {
            shared: Shared {
                worker_id: config.id.clone(),
                queue_url: queues.own_url.clone(),
                events: queues.events.clone(),
                http,
                legs: Arc::default(),
                ended: Arc::default(),
                config: Arc::new(config),
                life: Arc::new(AtomicU8::new(Life::Active as u8)),
                changed: Arc::default(),
                rooms: Arc::default(),
                media,
            },
            queues,
        }
    }

    pub fn handle(&self) -> WorkerHandle {
        WorkerHandle {
            shared: self.shared.clone(),
        }
    }

    /// Runs the worker until it has left or is killed: heartbeats from the start, its own
    /// queue, and the shared queue while it takes new calls.
    pub async fn run(self) {
        let heartbeats = tokio::spawn(heartbeats(self.shared.clone()));
        let own = tokio::spawn(consume(
            self.shared.clone(),
            self.queues.commands.clone(),
            Some(self.queues.own_url.clone()),
            false,
        ));
        let shared = self
            .queues
            .shared
            .clone()
            .map(|s| tokio::spawn(consume(self.shared.clone(), s.queue, s.url, true)));
        // Until it has left, or is dead.
        loop {
            let changed = self.shared.changed.notified();
            match self.shared.life() {
                Life::Left | Life::Dead => break,
                Life::Draining if self.shared.legs.lock().unwrap().is_empty() => {
                    self.leave().await;
                    break;
                }
                _ => {}
            }
            // Legs ending wake it too (a draining worker leaves once the last one has).
            let _ = tokio::time::timeout(Duration::from_millis(200), changed).await;
        }
        for task in [Some(heartbeats), Some(own), shared].into_iter().flatten() {
            task.abort();
        }
    }

    /// Says `worker.left`, and is gone.
    async fn leave(&self) {
        let body = self.shared.worker_event(WorkerEventKind::Left);
        self.shared
            .send_event(self.shared.worker_id.as_str(), body)
            .await;
        self.shared.set_life(Life::Left);
    }
}

impl WorkerHandle {
    pub fn id(&self) -> &WorkerId {
        &self.shared.worker_id
    }

    /// Its own commands queue.
    pub fn queue_url(&self) -> &str {
        &self.shared.queue_url
    }

    pub fn life(&self) -> Life {
        self.shared.life()
    }

    /// The calls it holds (legs included).
    pub fn calls(&self) -> Vec<CallSid> {
        let mut calls: Vec<CallSid> = self.shared.legs.lock().unwrap().keys().cloned().collect();
        calls.sort();
        calls
    }

    /// An inbound call reaches this worker: it rings, its RCML is fetched while it does, and
    /// it is answered (or rejected). `false` if the worker takes no new calls.
    pub fn inbound(&self, call: InboundCall) -> bool {
        if self.shared.life() != Life::Active {
            return false;
        }
        let info = LegInfo {
            sid: call.sid,
            account_sid: call.account_sid,
            from: call.from,
            to: call.to,
            direction: Direction::Inbound,
            parent: None,
        };
        let leg = Leg::new(&self.shared, info);
        let source = Source::fetch(call.url.to_string(), call.method);
        leg.spawn(Start::Inbound {
            source,
            url: call.url,
            method: call.method,
        });
        true
    }

    /// Takes no new call from now on, and leaves once its calls have ended.
    pub fn drain(&self) {
        if self.shared.life() == Life::Active {
            self.shared.set_life(Life::Draining);
        }
    }

    /// Dies, as far as anyone can tell: no heartbeat, no command taken, no event, no goodbye.
    /// Its legs stop where they are.
    pub fn kill(&self) {
        self.shared.set_life(Life::Dead);
        let legs: Vec<_> = self.shared.legs.lock().unwrap().drain().collect();
        for (sid, leg) in legs {
            let _ = leg.send(Message::Die);
            self.shared.media.hang_up(&sid);
        }
    }
}

/// The worker's heartbeats, for as long as it lives and has not left.
async fn heartbeats(shared: Shared) {
    let mut ticks = tokio::time::interval(shared.config.heartbeat);
    loop {
        ticks.tick().await;
        let state = match shared.life() {
            Life::Active => WorkerState::Active,
            Life::Draining => WorkerState::Draining,
            Life::Left | Life::Dead => return,
        };
        let calls = u32::try_from(shared.legs.lock().unwrap().len()).unwrap_or(u32::MAX);
        let body = shared.worker_event(WorkerEventKind::Heartbeat {
            command_queue_url: shared.queue_url.clone(),
            capacity: shared.config.capacity,
            calls,
            state,
        });
        shared.send_event(shared.worker_id.as_str(), body).await;
    }
}

/// How many times a command of a call no worker here has had may go round the shared queue
/// before a worker refuses it (`call-ended`): by then no worker owns the call (it never had
/// one, or its worker is gone). Ownership is settled in the moment between a worker taking a
/// `dial` and the control plane applying its `call.initiated`; each worker that gives a
/// command back waits [`PASS_ON`] before it reads the queue again, so the others see it first.
const RELEASE_LIMIT: u32 = 50;
const PASS_ON: Duration = Duration::from_millis(100);

/// Reads a commands queue and hands each command to its call, until the worker stops reading
/// it: dead, gone, or (`new_calls`: the shared queue) no longer taking new calls.
async fn consume(shared: Shared, queue: Arc<dyn Queue>, url: Option<String>, new_calls: bool) {
    loop {
        match shared.life() {
            Life::Active => {}
            Life::Draining if !new_calls => {}
            _ => return,
        }
        let received = match queue
            .receive(url.as_deref(), 10, Duration::from_secs(1))
            .await
        {
            Ok(received) => received,
            Err(err) => {
                tracing::warn!(error = %err, "worker: commands queue unavailable");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut passed_on = false;
        for message in received {
            if !shared.speaks() {
                return; // killed with commands in hand: they come back to someone else
            }
            let taken = take(&shared, &message, new_calls);
            passed_on |= !taken;
            let done = if taken {
                queue.delete(url.as_deref(), &message.receipt).await
            } else {
                queue.release(url.as_deref(), &message.receipt).await
            };
            if let Err(err) = done {
                tracing::warn!(error = %err, "worker: could not delete or release a command");
            }
        }
        if passed_on {
            tokio::time::sleep(PASS_ON).await;
        }
    }
}

/// Hands a received message to its call or room; `false` if it is not this worker's to take
/// (a command of a call it never had, on the shared queue: its owner takes it).
fn take(shared: &Shared, message: &ReceivedMessage, from_shared: bool) -> bool {
    // Passed round long enough: no worker owns it, and this one answers for all.
    let from_shared = from_shared && message.receive_count < RELEASE_LIMIT;
    match Command::from_json(&message.body) {
        Ok(command) => dispatch(shared, command, from_shared),
        Err(err) => match ConferenceCommand::from_json(&message.body) {
            Ok(command) => {
                // A room this worker never had, on the queue it shares: its owner takes it.
                if from_shared && !shared.rooms.knows(&command.conference_sid) {
                    return false;
                }
                shared.rooms.command(shared, command);
                true
            }
            Err(_) => {
                tracing::warn!(error = %err, "worker: not a command; dropped");
                true
            }
        },
    }
}

fn dispatch(shared: &Shared, command: Command, from_shared: bool) -> bool {
    let sender = shared.legs.lock().unwrap().get(&command.call_sid).cloned();
    let ended = shared.ended.lock().unwrap().get(&command.call_sid).cloned();
    match (sender, ended) {
        (Some(sender), _) => {
            let _ = sender.send(Message::Command(Box::new(command)));
        }
        (None, Some(Some(last))) if last == command.intent_sid => {
            tracing::debug!(call_sid = %command.call_sid, "worker: duplicate command");
        }
        (None, None) if command.kind == CommandType::Dial => {
            if shared.life() != Life::Active {
                return false; // a draining worker takes no new call
            }
            let p = &command.parameters;
            let info = LegInfo {
                sid: command.call_sid.clone(),
                account_sid: command.account_sid.clone(),
                from: p.from.clone().unwrap_or_default(),
                to: p.to.clone().unwrap_or_default(),
                direction: Direction::OutboundApi,
                parent: None,
            };
            let leg = Leg::new(shared, info);
            let source = match (&p.url, &p.rcml) {
                (Some(url), _) => Source::fetch(url.to_string(), p.method.unwrap_or_default()),
                (None, Some(rcml)) => Source::Inline(rcml.as_str().to_owned()),
                (None, None) => Source::Inline("<Response/>".into()),
            };
            let timeout = Duration::from_secs(u64::from(p.timeout.unwrap_or(60)));
            leg.spawn(Start::Outbound {
                source,
                timeout,
                intent: Box::new(command),
            });
        }
        // A call this worker never had, on the queue it shares: not its to answer.
        (None, None) if from_shared => return false,
        (None, _) => {
            // Not a call of ours (ended, or never ours): say so, so the intent settles.
            let shared = shared.clone();
            tokio::spawn(async move {
                let kind = EventKind::CommandRejected {
                    intent_sid: command.intent_sid.clone(),
                    seq: command.seq,
                    reason: "call-ended".into(),
                };
                shared.emit(&command.call_sid, kind).await;
            });
        }
    }
    true
}
