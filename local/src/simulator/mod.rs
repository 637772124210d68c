//! A media worker, simulated: it owns calls, consumes their commands in order, fetches and runs
//! their RCML, places `<Dial>`ed legs, and reports everything on the events queue, as a real
//! worker would. Enough telephony to watch a call being transferred, with no telephony at all.
//!
//! Each call leg is an actor (a task with an inbox). The dispatcher reads the worker's commands
//! queue and hands each command to its call's actor, creating one for a `dial`; an actor runs its
//! document verb by verb, waiting on timers (Say, Play, Pause), on its dialled leg, or on the
//! control plane (after an RCML failure), and answers commands as they come.

pub mod rcml;
mod recorder;
mod rooms;
mod streams;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use teleapi_domain::call_log::{
    LogLevel, LoggedRequest, LoggedResponse, MAX_BODY_BYTES, RequestKind, bounded,
};
use teleapi_domain::sid::WorkerId;
use teleapi_domain::sid::random_hex32;
use teleapi_domain::wire::command::{Command, CommandType};
use teleapi_domain::wire::conference::ConferenceCommand;
use teleapi_domain::wire::event::{EVENT_VERSION, Event, EventKind};
use teleapi_domain::wire::worker::{WorkerEvent, WorkerEventKind};
use teleapi_domain::worker::{HEARTBEAT_INTERVAL, WorkerState};
use teleapi_domain::{
    AccountSid, CallSid, CallStatus, ConferenceSid, Direction, HangupStatus, IntentSid, Method,
    StreamSid, Timestamp, WebhookUrl,
};
use teleapi_ports::{OutgoingMessage, Queue};
use tokio::sync::mpsc;
use tokio::time::Instant;

use rcml::{DialTarget, Verb};
use recorder::Recorder;
use streams::StreamHandle;
use teleapi_domain::recording::{RecordingSpec, RecordingStatus};
use teleapi_domain::stream::{StreamCallback, StreamSpec, StreamTrack, StreamUrl};

/// How the simulated world behaves.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// How long a leg rings before it is answered.
    pub ring: Duration,
    /// Multiplies every simulated duration (Say, Play, Pause, ring timeouts): 0.01 runs a
    /// minute-long call in 600 ms.
    pub speed: f64,
    /// Whether the worker runs at all (`--no-simulator`: commands stay on the queue, for a real
    /// worker or for measuring the API alone).
    pub enabled: bool,
    /// How often it sends `worker.heartbeat` (every 10 s, as a real worker; less in tests).
    pub heartbeat: Duration,
    /// Where recordings' media is written (`--recordings-dir`).
    pub recordings_dir: PathBuf,
}

/// Where a local stack keeps recordings unless told otherwise.
pub fn default_recordings_dir() -> PathBuf {
    std::env::temp_dir().join("teleapi-local-recordings")
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            ring: Duration::from_millis(1500),
            speed: 1.0,
            enabled: true,
            heartbeat: HEARTBEAT_INTERVAL,
            recordings_dir: default_recordings_dir(),
        }
    }
}

/// Where a leg's RCML comes from.
#[derive(Debug, Clone)]
enum Source {
    Fetch {
        url: String,
        method: Method,
        /// Parameters besides the call's (a `<Gather>`'s `Digits`).
        extra: Vec<(&'static str, String)>,
    },
    Inline(String),
}

impl Source {
    fn fetch(url: String, method: Method) -> Self {
        Self::Fetch {
            url,
            method,
            extra: Vec::new(),
        }
    }
}

/// The DTMF of one call, as the simulated phones heard it: what the platform played
/// (`SendDigits`, `<Play digits>`) and what the caller pressed (`POST /dev/Calls/{Sid}/Digits`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dtmf {
    pub sent: String,
    pub pressed: String,
}

/// What an inbound call looks like when it arrives.
#[derive(Debug, Clone)]
pub struct InboundCall {
    pub sid: CallSid,
    pub account_sid: AccountSid,
    pub from: String,
    pub to: String,
    pub url: WebhookUrl,
    pub method: Method,
}

enum Message {
    Command(Box<Command>),
    /// From the parent: hang up (the parent moved on or ended).
    HangUp,
    /// From the parent: run this RCML, on your own from now on (MoveConnectedCallLeg).
    Run(Source),
    /// From a dialled leg: it ended.
    LegEnded(CallSid),
    /// From the room: the conference this leg is in ended; on with the RCML after `<Dial>`.
    ConferenceEnded(ConferenceSid),
    /// From one of the leg's streams: it is over.
    StreamEnded(StreamSid),
    /// The caller pressed these keys.
    Press(String),
}

#[derive(Clone)]
struct Shared {
    /// This run's worker id (docs/messages.md, "Worker events").
    worker_id: WorkerId,
    queue_url: String,
    events: Arc<dyn Queue>,
    http: reqwest::Client,
    legs: Arc<Mutex<HashMap<CallSid, mpsc::UnboundedSender<Message>>>>,
    /// Calls that ended here, with the intent of the last command each applied: a `dial`
    /// delivered again after its call ended must not place the call a second time, and the last
    /// command delivered again is a redelivery, not news. (A few bytes per call, for the life of
    /// the process.)
    ended: Arc<Mutex<HashMap<CallSid, Option<IntentSid>>>>,
    config: SimulatorConfig,
    /// Set by [`Simulator::crash`]: the worker says nothing more, as if its process had died.
    crashed: Arc<AtomicBool>,
    rooms: rooms::SharedRooms,
    /// Every call's DTMF (only calls that played or heard some), for `GET /dev/Calls/{Sid}/Digits`.
    dtmf: Arc<Mutex<HashMap<CallSid, Dtmf>>>,
}

/// The simulated media worker.
#[derive(Clone)]
pub struct Simulator {
    shared: Shared,
    commands: Arc<dyn Queue>,
}

impl Simulator {
    /// A worker that reads `commands` (whose URL is `queue_url`, what it reports as its own
    /// queue) and writes to `events`.
    pub fn new(
        commands: Arc<dyn Queue>,
        queue_url: impl Into<String>,
        events: Arc<dyn Queue>,
        config: SimulatorConfig,
    ) -> Self {
        Self {
            shared: Shared {
                worker_id: WorkerId::try_from(format!(
                    "teleapi-local.{}",
                    Timestamp::now().millis()
                ))
                .expect("a valid worker id"),
                queue_url: queue_url.into(),
                events,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .expect("an HTTP client builds"),
                legs: Arc::default(),
                ended: Arc::default(),
                config,
                crashed: Arc::default(),
                rooms: Arc::default(),
                dtmf: Arc::default(),
            },
            commands,
        }
    }

    pub fn enabled(&self) -> bool {
        self.shared.config.enabled
    }

    pub fn queue_url(&self) -> &str {
        &self.shared.queue_url
    }

    /// An inbound call arrives: it rings, its RCML is fetched, and it is answered (or rejected).
    pub fn start_inbound(&self, call: InboundCall) {
        let leg = Leg::new(
            &self.shared,
            call.sid,
            call.account_sid,
            call.from,
            call.to,
            Direction::Inbound,
            None,
        );
        let source = Source::fetch(call.url.to_string(), call.method);
        leg.spawn(Start::Inbound {
            source,
            url: call.url,
            method: call.method,
        });
    }

    /// The caller of a live call presses `digits`; `false` if the call is not live here.
    pub fn press(&self, call: &CallSid, digits: &str) -> bool {
        let legs = self.shared.legs.lock().unwrap();
        legs.get(call)
            .is_some_and(|leg| leg.send(Message::Press(digits.to_owned())).is_ok())
    }

    /// The DTMF a call played and heard here, if it did.
    pub fn dtmf(&self, call: &CallSid) -> Option<Dtmf> {
        self.shared.dtmf.lock().unwrap().get(call).cloned()
    }

    /// The worker dies, as far as the control plane can tell: no heartbeat, no event, from now
    /// on (for tests of what the control plane does then).
    pub fn crash(&self) {
        self.shared.crashed.store(true, Ordering::SeqCst);
    }

    /// This run's worker id.
    pub fn worker_id(&self) -> &WorkerId {
        &self.shared.worker_id
    }

    /// Reads the commands queue forever, handing each command to its call, and sends a
    /// heartbeat every `config.heartbeat` from the start.
    pub async fn run(self) {
        tokio::spawn(heartbeats(self.shared.clone()));
        loop {
            let received = match self
                .commands
                .receive(None, 10, Duration::from_secs(1))
                .await
            {
                Ok(received) => received,
                Err(err) => {
                    tracing::warn!(error = %err, "simulator: commands queue unavailable");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for message in received {
                match Command::from_json(&message.body) {
                    Ok(command) => self.dispatch(command),
                    Err(err) => match ConferenceCommand::from_json(&message.body) {
                        Ok(command) => self.shared.rooms.command(&self.shared, command),
                        Err(_) => tracing::warn!(error = %err, "simulator: not a command; dropped"),
                    },
                }
                if let Err(err) = self.commands.delete(None, &message.receipt).await {
                    tracing::warn!(error = %err, "simulator: could not delete a command");
                }
            }
        }
    }

    fn dispatch(&self, command: Command) {
        let sender = self
            .shared
            .legs
            .lock()
            .unwrap()
            .get(&command.call_sid)
            .cloned();
        let ended = self
            .shared
            .ended
            .lock()
            .unwrap()
            .get(&command.call_sid)
            .cloned();
        match (sender, ended) {
            (Some(sender), _) => {
                let _ = sender.send(Message::Command(Box::new(command)));
            }
            (None, Some(Some(last))) if last == command.intent_sid => {
                tracing::debug!(call_sid = %command.call_sid, "simulator: duplicate command");
            }
            (None, None) if command.kind == CommandType::Dial => {
                let p = &command.parameters;
                let leg = Leg::new(
                    &self.shared,
                    command.call_sid.clone(),
                    command.account_sid.clone(),
                    p.from.clone().unwrap_or_default(),
                    p.to.clone().unwrap_or_default(),
                    Direction::OutboundApi,
                    None,
                );
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
            (None, _) => {
                // Not a call of ours (ended, or never ours): say so, so the intent settles.
                let shared = self.shared.clone();
                tokio::spawn(async move {
                    let kind = EventKind::CommandRejected {
                        intent_sid: command.intent_sid.clone(),
                        seq: command.seq,
                        reason: "call-ended".into(),
                    };
                    emit(&shared, &command.call_sid, kind).await;
                });
            }
        }
    }
}

/// How many calls the simulated worker says it can hold.
const CAPACITY: u32 = 10_000;

/// The worker's heartbeats, for as long as the process runs.
async fn heartbeats(shared: Shared) {
    let mut ticks = tokio::time::interval(shared.config.heartbeat);
    loop {
        ticks.tick().await;
        if shared.crashed.load(Ordering::SeqCst) {
            return;
        }
        let calls = u32::try_from(shared.legs.lock().unwrap().len()).unwrap_or(u32::MAX);
        let event = WorkerEvent {
            version: EVENT_VERSION,
            worker_id: shared.worker_id.clone(),
            timestamp: Timestamp::now().millis(),
            kind: WorkerEventKind::Heartbeat {
                command_queue_url: shared.queue_url.clone(),
                capacity: CAPACITY,
                calls,
                state: WorkerState::Active,
            },
        };
        let message =
            OutgoingMessage::fifo(shared.worker_id.as_str(), random_hex32(), event.to_json());
        if let Err(err) = shared.events.send(None, &message).await {
            tracing::warn!(error = %err, "simulator: heartbeat not sent");
        }
    }
}

async fn emit(shared: &Shared, call_sid: &CallSid, kind: EventKind) {
    emit_at(shared, call_sid, Timestamp::now(), kind).await;
}

/// [`emit`], for something that happened at `at`.
async fn emit_at(shared: &Shared, call_sid: &CallSid, at: Timestamp, kind: EventKind) {
    if shared.crashed.load(Ordering::SeqCst) {
        return;
    }
    let event = Event {
        version: EVENT_VERSION,
        call_sid: call_sid.clone(),
        timestamp: at.millis(),
        kind,
    };
    let message = OutgoingMessage::fifo(call_sid.as_str(), random_hex32(), event.to_json());
    if let Err(err) = shared.events.send(None, &message).await {
        tracing::warn!(error = %err, "simulator: event not sent");
    }
}

/// How a leg begins.
enum Start {
    Inbound {
        source: Source,
        url: WebhookUrl,
        method: Method,
    },
    Outbound {
        source: Source,
        timeout: Duration,
        intent: Box<Command>,
    },
    Dialled {
        timeout: Duration,
        parent: mpsc::UnboundedSender<Message>,
    },
}

/// What a leg is waiting for.
enum Wait {
    /// The current verb takes until then.
    Until(Instant),
    /// A dialled leg, connected until it or this leg hangs up.
    Leg(CallSid),
    /// A conference room, until it ends, or the leg is hung up or redirected.
    Conference(ConferenceSid),
    /// A bidirectional stream (`<Connect><Stream>`), until it closes.
    Stream(StreamSid),
    /// A `<Gather>`: digits so far, until `until` passes with no new one.
    Gather {
        verb: rcml::GatherVerb,
        digits: String,
        until: Instant,
    },
    /// Nothing to do until the control plane says (after an RCML failure, or connected as a
    /// dialled leg).
    Idle,
    /// Ringing: answered (or given up) then.
    Ringing { until: Instant, answer: bool },
}

struct Leg {
    shared: Shared,
    sid: CallSid,
    account_sid: AccountSid,
    from: String,
    to: String,
    direction: Direction,
    parent_call_sid: Option<CallSid>,
    status: CallStatus,
    seq: u64,
    last_command: u64,
    /// The intent of the command applied last, to tell its redelivery from an older command.
    last_intent: Option<IntentSid>,
    answered_at: Option<Timestamp>,
    muted: bool,
    program: Vec<Verb>,
    pc: usize,
    wait: Wait,
    /// The leg this one dialled, and how to reach it.
    dialled: Option<(CallSid, mpsc::UnboundedSender<Message>)>,
    /// The leg that dialled this one.
    parent: Option<mpsc::UnboundedSender<Message>>,
    /// The conference the leg is in.
    conference: Option<ConferenceSid>,
    /// What to run once answered.
    pending: Option<Source>,
    /// What to record once answered (`Record=true`).
    record_on_answer: Option<RecordingSpec>,
    /// The recording in progress, if any (one at a time).
    recorder: Option<Recorder>,
    /// The leg's media streams that are running.
    streams: Vec<StreamHandle>,
    /// DTMF to play once answered (`SendDigits`).
    digits_on_answer: Option<String>,
    /// The document running, when it was fetched: a `<Gather>` without `action` requests it.
    document: Option<(String, Method)>,
    inbox: mpsc::UnboundedReceiver<Message>,
    sender: mpsc::UnboundedSender<Message>,
}

impl Leg {
    fn new(
        shared: &Shared,
        sid: CallSid,
        account_sid: AccountSid,
        from: String,
        to: String,
        direction: Direction,
        parent_call_sid: Option<CallSid>,
    ) -> Self {
        let (sender, inbox) = mpsc::unbounded_channel();
        shared
            .legs
            .lock()
            .unwrap()
            .insert(sid.clone(), sender.clone());
        Self {
            shared: shared.clone(),
            sid,
            account_sid,
            from,
            to,
            direction,
            parent_call_sid,
            status: CallStatus::Queued,
            seq: 0,
            last_command: 0,
            last_intent: None,
            answered_at: None,
            muted: false,
            program: Vec::new(),
            pc: 0,
            wait: Wait::Idle,
            dialled: None,
            parent: None,
            conference: None,
            pending: None,
            record_on_answer: None,
            recorder: None,
            streams: Vec::new(),
            digits_on_answer: None,
            document: None,
            inbox,
            sender,
        }
    }

    fn scaled(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64((seconds * self.shared.config.speed).max(0.0))
    }

    fn spawn(self, start: Start) {
        tokio::spawn(self.live(start));
    }

    async fn event(&mut self, kind: impl FnOnce(u64) -> EventKind) {
        self.seq += 1;
        let kind = kind(self.seq);
        emit(&self.shared, &self.sid, kind).await;
    }

    async fn report_status(&mut self) {
        let status = self.status;
        let start_time = self.answered_at.map(Timestamp::millis);
        let (end_time, duration) = if status.is_final() {
            let now = Timestamp::now();
            (
                Some(now.millis()),
                self.answered_at.map(|a| now.seconds_since(a)),
            )
        } else {
            (None, None)
        };
        self.event(|seq| EventKind::CallStatus {
            seq,
            status,
            start_time,
            end_time,
            duration,
        })
        .await;
    }

    async fn live(mut self, start: Start) {
        let queue_url = self.shared.queue_url.clone();
        let (account_sid, direction, from, to, parent) = (
            self.account_sid.clone(),
            self.direction,
            self.from.clone(),
            self.to.clone(),
            self.parent_call_sid.clone(),
        );
        let (url, method) = match &start {
            Start::Inbound { url, method, .. } => (Some(url.clone()), Some(*method)),
            _ => (None, None),
        };
        let worker_id = Some(self.shared.worker_id.clone());
        self.event(|seq| EventKind::CallInitiated {
            seq,
            account_sid,
            direction,
            from,
            to,
            parent_call_sid: parent,
            command_queue_url: queue_url,
            worker_id,
            url,
            method,
        })
        .await;
        let ring = self.shared.config.ring;
        match start {
            Start::Inbound { source, .. } => {
                self.status = CallStatus::Ringing;
                self.report_status().await;
                // An inbound call's RCML is fetched while it rings; <Reject> never answers.
                match self.load(&source).await {
                    Some(verbs) if matches!(verbs.first(), Some(Verb::Reject { .. })) => {
                        let busy = matches!(verbs.first(), Some(Verb::Reject { busy: true }));
                        self.end(if busy {
                            CallStatus::Busy
                        } else {
                            CallStatus::NoAnswer
                        })
                        .await;
                    }
                    Some(verbs) => {
                        tokio::time::sleep(ring).await;
                        self.answer().await;
                        self.program = verbs;
                        self.pc = 0;
                        self.advance().await;
                    }
                    None => {}
                }
            }
            Start::Outbound {
                source,
                timeout,
                intent,
            } => {
                self.applied(&intent).await;
                self.pending = Some(source);
                self.record_on_answer = intent.parameters.recording.as_deref().cloned();
                self.digits_on_answer = intent.parameters.send_digits.clone();
                self.ring(ring, timeout).await;
            }
            Start::Dialled { timeout, parent } => {
                self.parent = Some(parent);
                self.ring(ring, timeout).await;
            }
        }
        self.run_until_ended().await;
        // Commands that reached the inbox as the call ended: refused, so their intents settle.
        self.inbox.close();
        while let Ok(message) = self.inbox.try_recv() {
            if let Message::Command(command) = message
                && !self.is_redelivery(&command)
            {
                let kind = EventKind::CommandRejected {
                    intent_sid: command.intent_sid.clone(),
                    seq: command.seq,
                    reason: "call-ended".into(),
                };
                emit(&self.shared, &self.sid, kind).await;
            }
        }
    }

    /// Rings; the callee's number decides: `busy`, `fail` and `noanswer` end that way.
    async fn ring(&mut self, ring: Duration, timeout: Duration) {
        self.status = CallStatus::Ringing;
        self.report_status().await;
        let to = self.to.to_ascii_lowercase();
        if to.contains("busy") {
            self.end(CallStatus::Busy).await;
        } else if to.contains("fail") {
            self.end(CallStatus::Failed).await;
        } else if to.contains("noanswer") {
            let until = Instant::now() + self.scaled(timeout.as_secs_f64());
            self.wait = Wait::Ringing {
                until,
                answer: false,
            };
        } else {
            self.wait = Wait::Ringing {
                until: Instant::now() + ring,
                answer: true,
            };
        }
    }

    async fn answer(&mut self) {
        self.status = CallStatus::InProgress;
        self.answered_at = Some(Timestamp::now());
        self.report_status().await;
        if let Some(spec) = self.record_on_answer.take() {
            self.start_recording(spec).await;
        }
        if let Some(digits) = self.digits_on_answer.take() {
            // Played to the callee while the call goes on, a digit every 100 ms.
            let (shared, sid) = (self.shared.clone(), self.sid.clone());
            let speed = self.shared.config.speed;
            tokio::spawn(async move {
                for digit in digits.chars() {
                    let pause = if digit == 'w' { 0.5 } else { 0.1 };
                    tokio::time::sleep(Duration::from_secs_f64(pause * speed)).await;
                    if digit != 'w' {
                        shared
                            .dtmf
                            .lock()
                            .unwrap()
                            .entry(sid.clone())
                            .or_default()
                            .sent
                            .push(digit);
                    }
                }
            });
        }
    }

    /// How long DTMF takes to play: 100 ms a digit, 500 ms a `w` (unscaled seconds).
    fn digits_time(digits: &str) -> f64 {
        digits
            .chars()
            .map(|c| if c == 'w' { 0.5 } else { 0.1 })
            .sum()
    }

    /// The caller pressed `keys`: heard by the leg's streams, and by a `<Gather>` waiting.
    async fn press(&mut self, keys: &str) {
        let keys: String = keys
            .chars()
            .filter(|c| c.is_ascii_digit() || "*#".contains(*c))
            .collect();
        self.shared
            .dtmf
            .lock()
            .unwrap()
            .entry(self.sid.clone())
            .or_default()
            .pressed
            .push_str(&keys);
        for key in keys.chars() {
            for stream in &self.streams {
                stream.dtmf(key);
            }
            let Wait::Gather {
                verb,
                digits,
                until,
            } = &mut self.wait
            else {
                continue;
            };
            let finished = verb.finish_on_key.contains(key) && !verb.finish_on_key.is_empty();
            if !finished {
                digits.push(key);
                *until = Instant::now()
                    + Duration::from_secs_f64(verb.timeout * self.shared.config.speed);
            }
            let complete = verb.num_digits.is_some_and(|n| digits.len() >= n);
            if finished || complete {
                let on_key = if finished {
                    key.to_string()
                } else {
                    String::new()
                };
                self.gathered(on_key).await;
            }
        }
    }

    /// The `<Gather>` is over: its digits go to its action, whose document runs next; with
    /// none, the document goes on.
    async fn gathered(&mut self, finished_on_key: String) {
        let Wait::Gather { verb, digits, .. } = std::mem::replace(&mut self.wait, Wait::Idle)
        else {
            return;
        };
        if digits.is_empty() && finished_on_key.is_empty() {
            self.advance().await;
            return;
        }
        let Some((url, method)) = verb
            .action
            .as_ref()
            .map(|action| (self.resolve(action), verb.method))
            .or_else(|| self.document.clone())
        else {
            self.advance().await;
            return;
        };
        let source = Source::Fetch {
            url,
            method,
            extra: vec![("Digits", digits), ("FinishedOnKey", finished_on_key)],
        };
        self.run(source).await;
    }

    /// An action URL, relative ones against the document's.
    fn resolve(&self, action: &str) -> String {
        match self
            .document
            .as_ref()
            .and_then(|(url, _)| url::Url::parse(url).ok())
        {
            Some(base) => base
                .join(action)
                .map_or_else(|_| action.to_owned(), |u| u.to_string()),
            None => action.to_owned(),
        }
    }

    async fn start_recording(&mut self, spec: RecordingSpec) {
        let (recorder, started) = Recorder::start(spec, self.account_sid.clone());
        tracing::info!(call_sid = %self.sid, recording_sid = %recorder.spec.recording_sid, "simulator: recording");
        self.recorder = Some(recorder);
        emit(&self.shared, &self.sid, started).await;
    }

    /// The recording command `command`: applied, or refused (and a refused start reports its
    /// recording failed, so that it does not stay in progress).
    async fn on_recording(&mut self, command: &Command) {
        let p = &command.parameters;
        let refuse = match (command.kind, p.recording.as_deref(), &p.recording_sid) {
            (CommandType::RecordingStart, Some(spec), _) => {
                if self.status != CallStatus::InProgress {
                    Some(("not-in-progress", Some(spec.recording_sid.clone())))
                } else if self.recorder.is_some() {
                    Some(("recording-active", Some(spec.recording_sid.clone())))
                } else {
                    self.applied(command).await;
                    self.start_recording(spec.clone()).await;
                    None
                }
            }
            (CommandType::RecordingUpdate, _, Some(sid)) => {
                let ours = self
                    .recorder
                    .as_ref()
                    .is_some_and(|r| r.spec.recording_sid == *sid);
                match (ours, p.recording_status) {
                    (true, Some(RecordingStatus::Stopped)) => {
                        self.applied(command).await;
                        self.stop_recording().await;
                        None
                    }
                    (true, Some(status)) => {
                        self.applied(command).await;
                        let changed = self
                            .recorder
                            .as_mut()
                            .and_then(|r| r.set(status, p.pause_behavior));
                        if let Some(event) = changed {
                            emit(&self.shared, &self.sid, event).await;
                        }
                        None
                    }
                    _ => Some(("no-such-recording", None)),
                }
            }
            _ => Some(("malformed", None)),
        };
        if let Some((reason, failed)) = refuse {
            let kind = EventKind::CommandRejected {
                intent_sid: command.intent_sid.clone(),
                seq: command.seq,
                reason: reason.into(),
            };
            emit(&self.shared, &self.sid, kind).await;
            if let Some(recording_sid) = failed {
                let kind = EventKind::RecordingChanged {
                    seq: 1,
                    recording_sid,
                    status: RecordingStatus::Failed,
                    duration: None,
                    media_url: None,
                    error_code: Some(16_105),
                };
                emit(&self.shared, &self.sid, kind).await;
            }
        }
    }

    fn start_stream(&mut self, spec: StreamSpec, bidirectional: bool) -> StreamSid {
        tracing::info!(call_sid = %self.sid, stream_sid = %spec.stream_sid, url = %spec.url.as_str(), "simulator: stream");
        let handle = streams::start(
            &self.shared,
            (&self.sid, &self.account_sid),
            spec,
            bidirectional,
            self.sender.clone(),
        );
        let sid = handle.sid.clone();
        self.streams.push(handle);
        sid
    }

    /// Stops the running stream named `name_or_sid`.
    fn stop_stream(&mut self, name_or_sid: &str) {
        for stream in &self.streams {
            if stream.sid.as_str() == name_or_sid || stream.name.as_deref() == Some(name_or_sid) {
                stream.stop();
            }
        }
    }

    /// A stream of the leg's RCML: the URL under the local address policy (as the API checks
    /// an application's), a sid of its own.
    fn rcml_stream(&self, noun: &rcml::StreamNoun, bidirectional: bool) -> Option<StreamSpec> {
        let local = teleapi_domain::AddressPolicy {
            allow_loopback: true,
        };
        let url = match StreamUrl::parse(&noun.url, local) {
            Ok(url) => url,
            Err(problem) => {
                tracing::info!(call_sid = %self.sid, url = %noun.url, %problem, "simulator: <Stream> url refused");
                return None;
            }
        };
        let track = match StreamTrack::parse(&noun.track) {
            Some(track) if !bidirectional => track,
            _ => StreamTrack::Inbound,
        };
        Some(StreamSpec {
            stream_sid: StreamSid::generate(),
            name: noun.name.clone(),
            url,
            track,
            parameters: noun.parameters.iter().cloned().collect(),
            status_callback: noun.status_callback.as_ref().and_then(|(url, method)| {
                WebhookUrl::parse(url, local)
                    .ok()
                    .map(|url| StreamCallback {
                        url,
                        method: *method,
                    })
            }),
        })
    }

    /// Ends the recording in progress, if any, and reports its media.
    async fn stop_recording(&mut self) {
        if let Some(recorder) = self.recorder.take() {
            let dir = self.shared.config.recordings_dir.clone();
            let event = recorder.stop(&dir).await;
            emit(&self.shared, &self.sid, event).await;
        }
    }

    async fn run_until_ended(&mut self) {
        while !self.status.is_final() {
            let deadline = match &self.wait {
                Wait::Until(at)
                | Wait::Ringing { until: at, .. }
                | Wait::Gather { until: at, .. } => Some(*at),
                _ => None,
            };
            let message = match deadline {
                Some(at) => tokio::select! {
                    message = self.inbox.recv() => message,
                    () = tokio::time::sleep_until(at) => {
                        self.on_time().await;
                        continue;
                    }
                },
                None => self.inbox.recv().await,
            };
            let Some(message) = message else { return };
            self.on_message(message).await;
        }
    }

    async fn on_time(&mut self) {
        match std::mem::replace(&mut self.wait, Wait::Idle) {
            Wait::Ringing { answer: false, .. } => self.end(CallStatus::NoAnswer).await,
            Wait::Ringing { answer: true, .. } => {
                self.answer().await;
                match self.pending.take() {
                    Some(source) => self.run(source).await,
                    // A dialled leg: connected to its parent, nothing of its own to run.
                    None => self.wait = Wait::Idle,
                }
            }
            gather @ Wait::Gather { .. } => {
                // No key for `timeout` seconds: what was pressed so far is the answer.
                self.wait = gather;
                self.gathered(String::new()).await;
            }
            _ => self.advance().await,
        }
    }

    async fn on_message(&mut self, message: Message) {
        match message {
            Message::Command(command) => self.on_command(*command).await,
            Message::HangUp => {
                let status = if self.status.is_unanswered() {
                    CallStatus::Canceled
                } else {
                    CallStatus::Completed
                };
                self.end(status).await;
            }
            Message::Run(source) => {
                self.parent = None;
                self.run(source).await;
            }
            Message::ConferenceEnded(sid) => {
                if self.conference.as_ref() == Some(&sid) {
                    self.conference = None;
                    if matches!(&self.wait, Wait::Conference(s) if *s == sid) {
                        self.advance().await;
                    }
                }
            }
            Message::Press(keys) => self.press(&keys).await,
            Message::StreamEnded(sid) => {
                self.streams.retain(|s| s.sid != sid);
                if matches!(&self.wait, Wait::Stream(s) if *s == sid) {
                    self.advance().await;
                }
            }
            Message::LegEnded(sid) => {
                if self.dialled.as_ref().is_some_and(|(d, _)| *d == sid) {
                    self.dialled = None;
                    if matches!(&self.wait, Wait::Leg(s) if *s == sid) {
                        self.advance().await;
                    }
                }
            }
        }
    }

    async fn on_command(&mut self, command: Command) {
        let reject = |reason: &str| EventKind::CommandRejected {
            intent_sid: command.intent_sid.clone(),
            seq: command.seq,
            reason: reason.into(),
        };
        if self.is_redelivery(&command) {
            // The command applied last, delivered again (queues deliver at least once): done.
            tracing::debug!(call_sid = %self.sid, intent_sid = %command.intent_sid, "simulator: duplicate command");
            return;
        }
        if command.seq <= self.last_command {
            emit(&self.shared, &self.sid, reject("superseded")).await;
            return;
        }
        if self.status.is_final() {
            emit(&self.shared, &self.sid, reject("call-ended")).await;
            return;
        }
        let p = command.parameters.clone();
        let accepted = match command.kind {
            CommandType::Hangup => {
                let status = match p.status {
                    Some(HangupStatus::Failed) => CallStatus::Failed,
                    _ if self.status.is_unanswered() => CallStatus::Canceled,
                    _ => CallStatus::Completed,
                };
                self.applied(&command).await;
                self.end(status).await;
                return;
            }
            CommandType::Mute | CommandType::Unmute => {
                if self.status == CallStatus::InProgress {
                    self.muted = command.kind == CommandType::Mute;
                    tracing::info!(call_sid = %self.sid, muted = self.muted, "simulator: mute");
                    true
                } else {
                    emit(&self.shared, &self.sid, reject("not-in-progress")).await;
                    return;
                }
            }
            CommandType::Update | CommandType::Dial => true,
            CommandType::RecordingStart | CommandType::RecordingUpdate => {
                self.on_recording(&command).await;
                return;
            }
            CommandType::StreamStart => match p.stream.as_deref().cloned() {
                Some(spec) if self.status == CallStatus::InProgress => {
                    self.applied(&command).await;
                    self.start_stream(spec, false);
                    return;
                }
                Some(spec) => {
                    emit(&self.shared, &self.sid, reject("not-in-progress")).await;
                    let failed = EventKind::StreamFailed {
                        seq: 1,
                        stream_sid: spec.stream_sid,
                        error: "the call is not in progress".into(),
                    };
                    emit(&self.shared, &self.sid, failed).await;
                    return;
                }
                None => false,
            },
            CommandType::StreamStop => {
                // A stream that has already ended is stopped: nothing left to do.
                if let Some(sid) = &p.stream_sid {
                    self.stop_stream(sid.as_str());
                }
                true
            }
            CommandType::Redirect | CommandType::Execute => {
                if let Some(mute) = p.mute {
                    self.muted = mute;
                }
                let source = match (&p.url, &p.rcml) {
                    (Some(url), _) => Source::fetch(url.to_string(), p.method.unwrap_or_default()),
                    (None, Some(rcml)) => Source::Inline(rcml.as_str().to_owned()),
                    (None, None) => return,
                };
                self.applied(&command).await;
                if self.status.is_unanswered() {
                    // Runs once the call is answered.
                    self.pending = Some(source);
                } else {
                    let move_leg = p.move_connected_call_leg == Some(true);
                    if let Some((_, leg)) = self.dialled.take() {
                        let _ = leg.send(if move_leg {
                            Message::Run(source.clone())
                        } else {
                            Message::HangUp
                        });
                    }
                    self.run(source).await;
                }
                return;
            }
        };
        if accepted {
            self.applied(&command).await;
        }
    }

    /// The command applied last, delivered again (queues deliver at least once).
    fn is_redelivery(&self, command: &Command) -> bool {
        command.seq == self.last_command && self.last_intent.as_ref() == Some(&command.intent_sid)
    }

    async fn applied(&mut self, command: &Command) {
        self.last_command = command.seq;
        self.last_intent = Some(command.intent_sid.clone());
        let kind = EventKind::CommandApplied {
            intent_sid: command.intent_sid.clone(),
            seq: command.seq,
        };
        emit(&self.shared, &self.sid, kind).await;
    }

    /// Fetches (or parses) a document; on failure reports `rcml.failed` and waits for the
    /// control plane.
    async fn load(&mut self, source: &Source) -> Option<Vec<Verb>> {
        let (text, url) = match source {
            Source::Inline(document) => (Ok(document.clone()), "inline RCML".to_owned()),
            Source::Fetch { url, method, extra } => {
                self.document = Some((url.clone(), *method));
                (self.fetch(url, *method, extra).await, url.clone())
            }
        };
        let failure = match text {
            Err(failure) => Some(failure),
            Ok(document) => match rcml::parse(&document) {
                Ok((verbs, warnings)) => {
                    for warning in warnings {
                        let kind = EventKind::CallNotification {
                            account_sid: self.account_sid.clone(),
                            level: LogLevel::Warning,
                            error_code: warning.code,
                            message: warning.message,
                            url: Some(url.clone()),
                            method: self.document.as_ref().map(|(_, method)| *method),
                        };
                        emit(&self.shared, &self.sid, kind).await;
                    }
                    return Some(verbs);
                }
                Err(detail) => Some((12100, detail)),
            },
        };
        if let Some((error_code, detail)) = failure {
            tracing::info!(call_sid = %self.sid, url = %url, error_code, "simulator: RCML failed");
            self.event(|seq| EventKind::RcmlFailed {
                seq,
                url,
                error_code,
                detail,
            })
            .await;
            self.wait = Wait::Idle;
        }
        None
    }

    /// Requests a document: its text, or Twilio's code for what went wrong (11205: no
    /// connection, or none in time; 11206: an answer that is not HTTP; 11200: no 2xx answer)
    /// and why. Reports the request and its answer as
    /// `http.request`, for the call's log.
    async fn fetch(
        &self,
        url: &str,
        method: Method,
        extra: &[(&'static str, String)],
    ) -> Result<String, (u32, String)> {
        let mut params = vec![
            ("CallSid", self.sid.to_string()),
            ("AccountSid", self.account_sid.to_string()),
            ("From", self.from.clone()),
            ("To", self.to.clone()),
            ("CallStatus", self.status.as_str().to_owned()),
            ("Direction", self.direction.as_str().to_owned()),
            ("ApiVersion", teleapi_domain::API_VERSION.to_owned()),
        ];
        if let Some(parent) = &self.parent_call_sid {
            params.push(("ParentCallSid", parent.to_string()));
        }
        params.extend(extra.iter().cloned());
        let request = match method {
            Method::Get => self.shared.http.get(url).query(&params),
            Method::Post => self.shared.http.post(url).form(&params),
        };
        let sent = Timestamp::now();
        let started = Instant::now();
        let answer = async {
            let response = request.send().await.map_err(|e| {
                let code = if e.is_connect() || e.is_timeout() {
                    11205
                } else {
                    11206
                };
                (code, format!("request failed: {e}"))
            })?;
            let status = response.status();
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response
                .text()
                .await
                .map_err(|e| (11200, format!("reading the answer failed: {e}")))?;
            Ok((status, content_type, body))
        }
        .await;
        let mut logged = LoggedResponse {
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            ..LoggedResponse::default()
        };
        match &answer {
            Ok((status, content_type, body)) => {
                logged.status_code = Some(status.as_u16());
                logged.content_type = content_type.clone();
                logged.body = Some(bounded(body, MAX_BODY_BYTES));
            }
            Err((_, detail)) => logged.error = Some(detail.clone()),
        }
        let kind = EventKind::HttpRequest {
            account_sid: self.account_sid.clone(),
            request: LoggedRequest {
                kind: if extra.is_empty() {
                    RequestKind::Rcml
                } else {
                    RequestKind::Action
                },
                url: url.to_owned(),
                method,
                parameters: params
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value))
                    .collect(),
                signed: false,
                attempt: 1,
            },
            response: logged,
        };
        emit_at(&self.shared, &self.sid, sent, kind).await;
        let (status, _, body) = answer?;
        if status.is_success() {
            Ok(body)
        } else {
            Err((11200, format!("HTTP {}", status.as_u16())))
        }
    }

    /// Leaves the conference the leg is in, if it is in one.
    fn leave_conference(&mut self) {
        if let Some(sid) = self.conference.take() {
            self.shared.rooms.leave(&sid, &self.sid);
        }
    }

    async fn run(&mut self, source: Source) {
        self.leave_conference();
        if let Some(verbs) = self.load(&source).await {
            self.program = verbs;
            self.pc = 0;
            self.advance().await;
        }
    }

    /// Runs verbs until one takes time, or the document ends (which completes the call).
    async fn advance(&mut self) {
        while !self.status.is_final() {
            let Some(verb) = self.program.get(self.pc).cloned() else {
                self.end(CallStatus::Completed).await;
                return;
            };
            self.pc += 1;
            match verb {
                Verb::Speak { seconds } => {
                    self.wait = Wait::Until(Instant::now() + self.scaled(seconds));
                    return;
                }
                Verb::Dial {
                    target: DialTarget::Conference(noun),
                    ..
                } => {
                    let sid = self.shared.rooms.join(
                        &self.shared,
                        &self.account_sid,
                        &self.sid,
                        &noun,
                        self.sender.clone(),
                    );
                    self.conference = Some(sid.clone());
                    self.wait = Wait::Conference(sid);
                    return;
                }
                Verb::Dial {
                    target: DialTarget::Leg(to),
                    timeout,
                } => {
                    // The caller's number is the dialled leg's caller ID, as on Twilio.
                    let child = Leg::new(
                        &self.shared,
                        CallSid::generate(),
                        self.account_sid.clone(),
                        self.from.clone(),
                        to,
                        Direction::OutboundDial,
                        Some(self.sid.clone()),
                    );
                    let sid = child.sid.clone();
                    self.dialled = Some((sid.clone(), child.sender.clone()));
                    child.spawn(Start::Dialled {
                        timeout: Duration::from_secs(u64::from(timeout)),
                        parent: self.sender.clone(),
                    });
                    self.wait = Wait::Leg(sid);
                    return;
                }
                Verb::Redirect { url, method } => {
                    match self.load(&Source::fetch(url, method)).await {
                        Some(verbs) => {
                            self.program = verbs;
                            self.pc = 0;
                        }
                        None => return,
                    }
                }
                Verb::StartStream(noun) => {
                    if let Some(spec) = self.rcml_stream(&noun, false) {
                        self.start_stream(spec, false);
                    }
                }
                Verb::StopStream { name } => self.stop_stream(&name),
                Verb::PlayDigits(digits) => {
                    let sent: String = digits.chars().filter(|c| *c != 'w').collect();
                    self.shared
                        .dtmf
                        .lock()
                        .unwrap()
                        .entry(self.sid.clone())
                        .or_default()
                        .sent
                        .push_str(&sent);
                    let seconds = Self::digits_time(&digits);
                    self.wait = Wait::Until(Instant::now() + self.scaled(seconds));
                    return;
                }
                Verb::Gather(verb) => {
                    let until = Instant::now() + self.scaled(verb.timeout);
                    self.wait = Wait::Gather {
                        verb,
                        digits: String::new(),
                        until,
                    };
                    return;
                }
                Verb::ConnectStream(noun) => {
                    if let Some(spec) = self.rcml_stream(&noun, true) {
                        let sid = self.start_stream(spec, true);
                        self.wait = Wait::Stream(sid);
                        return;
                    }
                }
                Verb::Hangup => self.end(CallStatus::Completed).await,
                Verb::Reject { .. } => self.end(CallStatus::Completed).await,
            }
        }
    }

    async fn end(&mut self, status: CallStatus) {
        if self.status.is_final() {
            return;
        }
        self.status = status;
        self.wait = Wait::Idle;
        self.leave_conference();
        // From now on the dispatcher refuses this call's commands (a `dial` too) itself.
        self.shared
            .ended
            .lock()
            .unwrap()
            .insert(self.sid.clone(), self.last_intent.clone());
        self.shared.legs.lock().unwrap().remove(&self.sid);
        if let Some((_, leg)) = self.dialled.take() {
            let _ = leg.send(Message::HangUp);
        }
        if let Some(parent) = self.parent.take() {
            let _ = parent.send(Message::LegEnded(self.sid.clone()));
        }
        self.report_status().await;
        // A recording ends with its call, and completes; its streams stop.
        self.stop_recording().await;
        for stream in &self.streams {
            stream.stop();
        }
    }
}
