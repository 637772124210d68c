//! A worker's life: it announces itself and renews its lease with heartbeats, takes commands
//! from its queues and hands each to its call, takes new calls while it is active, and, asked
//! to drain, takes no new call, lets its calls finish and says `worker.left`. Killed, it falls
//! silent at once, as a crashed process does (docs/messages.md, "Worker events").

use std::sync::Arc;
use std::sync::atomic::AtomicU8;
use std::time::Duration;

use teleapi_domain::sid::WorkerId;
use teleapi_domain::wire::command::{Command, CommandType};
use teleapi_domain::wire::conference::ConferenceCommand;
use teleapi_domain::wire::event::EventKind;
use teleapi_domain::wire::worker::WorkerEventKind;
use teleapi_domain::worker::WorkerState;
use teleapi_domain::{CallSid, Direction};
use teleapi_ports::{Queue, ReceivedMessage};

use crate::inbox::{InboundCall, Message, Source, Start};
use crate::leg::Leg;
use crate::media::{LegInfo, Media};
use crate::rooms::SharedRooms;
use crate::shared::{Life, Shared, Signing, Stores, WorkerConfig};

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

/// A media worker: the commands it takes, the legs it runs on `media`, the events it sends.
pub struct Worker {
    shared: Shared,
    rooms: SharedRooms,
    queues: WorkerQueues,
}

/// What the rest of a process may do with a running worker: offer it a call, drain it, kill
/// it, look at it.
#[derive(Clone)]
pub struct WorkerHandle {
    shared: Shared,
    rooms: SharedRooms,
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
                signing: None,
                last_stamp: Arc::default(),
                media,
                call_queues: Default::default(),
                queue_sizes: None,
                waiting_agents: Default::default(),
            },
            rooms: Arc::default(),
            queues,
        }
    }

    /// Reads the control plane's `stores`: signs its requests to the application (RCML
    /// fetches) with the accounts' AuthTokens, as every request of the platform is, and holds
    /// as many callers in each queue as the application set.
    pub fn reading(mut self, stores: Stores) -> Self {
        self.shared.signing = Some(Signing::new(stores.accounts));
        self.shared.queue_sizes = Some(crate::queues::QueueSizes::new(stores.queues));
        self
    }

    pub fn handle(&self) -> WorkerHandle {
        WorkerHandle {
            shared: self.shared.clone(),
            rooms: self.rooms.clone(),
        }
    }

    /// Runs the worker until it has left or is killed: heartbeats from the start, its own
    /// queue, and the shared queue while it takes new calls.
    pub async fn run(self) {
        let heartbeats = tokio::spawn(heartbeats(self.shared.clone()));
        let own = tokio::spawn(consume(
            self.shared.clone(),
            self.rooms.clone(),
            self.queues.commands.clone(),
            Some(self.queues.own_url.clone()),
            false,
        ));
        let shared = self.queues.shared.clone().map(|s| {
            tokio::spawn(consume(
                self.shared.clone(),
                self.rooms.clone(),
                s.queue,
                s.url,
                true,
            ))
        });
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
        // Gone before it says so: whoever hears `worker.left` finds it gone.
        self.shared.set_life(Life::Left);
        let body = self.shared.worker_event(WorkerEventKind::Left);
        self.shared
            .send_event(self.shared.worker_id.as_str(), body)
            .await;
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
            sid: call.sid.clone(),
            account_sid: call.account_sid.clone(),
            from: call.from.clone(),
            to: call.to.clone(),
            direction: Direction::Inbound,
            parent: None,
        };
        let leg = Leg::new(&self.shared, &self.rooms, info);
        let source = Source::fetch(call.url.to_string(), call.method);
        leg.spawn(Start::Inbound {
            source,
            call: Box::new(call),
        });
        true
    }

    /// A leg from another worker, the media's `sid`, to bridge its queued caller to an agent
    /// of this one: `to` is [`crate::bridge_uri`] (or its user part), `from` the caller's
    /// CallSid (or a SIP URI of it). Handed to the agent if it waits and the URI carries its wait's token; the
    /// agent takes it if it still waits (else the leg is refused, busy, and the caller waits
    /// in its queue again). `false`: no agent of this worker waits with that token; nothing
    /// was attached, and the media refuses the leg. A draining worker takes it too: its
    /// agent's call is still running.
    pub fn bridge_in(&self, sid: CallSid, from: &str, to: &str) -> bool {
        self.shared.life() != Life::Dead && crate::relay::from_caller(&self.shared, sid, from, to)
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
async fn consume(
    shared: Shared,
    rooms: SharedRooms,
    queue: Arc<dyn Queue>,
    url: Option<String>,
    new_calls: bool,
) {
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
            let taken = take(&shared, &rooms, &message, new_calls);
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
fn take(
    shared: &Shared,
    rooms: &SharedRooms,
    message: &ReceivedMessage,
    from_shared: bool,
) -> bool {
    // Passed round long enough: no worker owns it, and this one answers for all.
    let from_shared = from_shared && message.receive_count < RELEASE_LIMIT;
    match Command::from_json(&message.body) {
        Ok(command) => dispatch(shared, rooms, command, from_shared),
        Err(err) => match ConferenceCommand::from_json(&message.body) {
            Ok(command) => {
                // A room this worker never had, on the queue it shares: its owner takes it.
                if from_shared && !rooms.knows(&command.conference_sid) {
                    return false;
                }
                rooms.command(shared, command);
                true
            }
            Err(_) => {
                tracing::warn!(error = %err, "worker: not a command; dropped");
                true
            }
        },
    }
}

fn dispatch(shared: &Shared, rooms: &SharedRooms, command: Command, from_shared: bool) -> bool {
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
            let leg = Leg::new(shared, rooms, info);
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
