//! A call leg, run by its worker: an actor (a task with an inbox) that applies its call's
//! commands in order, fetches and runs its RCML verb by verb, places the legs it `<Dial>`s, and
//! reports everything on the events queue. What it plays, records and streams is its media's;
//! what the media hears (answered, busy, a prompt's end, digits) comes back to the inbox.
//!
//! A leg waits on one thing at a time (a prompt, a dialled leg, a room, a bidirectional stream,
//! a `<Gather>`, ringing, or the control plane after an RCML failure) and answers commands
//! whatever it waits on.

mod capture;
mod detect;
mod dial;
mod program;
mod queue;
mod record;

use std::time::Duration;

use teleapi_domain::recording::RecordingSpec;
use teleapi_domain::wire::command::{Command, CommandType};
use teleapi_domain::wire::event::EventKind;
use teleapi_domain::{
    CallSid, CallStatus, ConferenceSid, Direction, HangupStatus, IntentSid, Method, StreamSid,
    Timestamp, WebhookUrl,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::inbox::{InboundCall, Message, Source, Start};
use crate::media::{Inputs, LegInfo, LegInput, PlayId};
use crate::rcml::{GatherVerb, Verb};
use crate::recorder::Recorder;
use crate::rooms::SharedRooms;
use crate::shared::Shared;
use crate::streams::StreamHandle;

/// What a leg is waiting for.
enum Wait {
    /// A prompt to end.
    Playing(PlayId),
    /// A `<Dial>` of legs ([`Leg::dialling`]): ringing, then connected until `until` (its
    /// `timeLimit`) at most.
    Dial { until: Option<Instant> },
    /// A conference room, until it ends, or the leg is hung up or redirected.
    Conference(ConferenceSid),
    /// A bidirectional stream (`<Connect><Stream>`), until it closes.
    Stream(StreamSid),
    /// A `<Gather>`: its prompt while it plays, then digits so far, until `until` passes with
    /// no new one.
    Gather {
        verb: GatherVerb,
        digits: String,
        prompt: Option<PlayId>,
        until: Option<Instant>,
    },
    /// A `<Record>`: its beep, then the caller recorded until it ends.
    Record(record::Recording),
    /// Nothing to do until the control plane says (after an RCML failure, or connected as a
    /// dialled leg).
    Idle,
    /// Ringing: given up on then, if not answered.
    Ringing { until: Instant },
}

pub(crate) struct Leg {
    shared: Shared,
    rooms: SharedRooms,
    info: LegInfo,
    status: CallStatus,
    seq: u64,
    last_command: u64,
    /// The intent of the command applied last, to tell its redelivery from an older command.
    last_intent: Option<IntentSid>,
    answered_at: Option<Timestamp>,
    program: Vec<Verb>,
    pc: usize,
    wait: Wait,
    plays: u64,
    /// The `<Dial>` of legs in progress.
    dialling: Option<dial::Dialling>,
    /// The leg that dialled this one.
    parent: Option<mpsc::UnboundedSender<Message>>,
    /// A dialled leg running its `<Number url>` before it is connected: connected at its end.
    screening: bool,
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
    /// DTMF to send once answered (`SendDigits`).
    digits_on_answer: Option<String>,
    /// The document running, when it was fetched: a `<Gather>` without `action` requests it.
    document: Option<(String, Method)>,
    /// The media was told no (an inbound `<Reject>`): nothing to hang up.
    rejected: bool,
    /// The queue this call waits in (`<Enqueue>`), or was taken from by an agent.
    queued: Option<queue::Queued>,
    /// The sid of the room this call's `<Dial><Conference>` creates, if it creates one (the
    /// API named it: a participant added by the room's name).
    room_sid: Option<ConferenceSid>,
    /// Answering-machine detection the call asked for, until it has decided.
    machine_detection: Option<Box<teleapi_domain::call::MachineDetection>>,
    /// The detection running, from the answer.
    detection: Option<detect::Detection>,
    inbox: mpsc::UnboundedReceiver<Message>,
    sender: mpsc::UnboundedSender<Message>,
}

impl Leg {
    pub(crate) fn new(shared: &Shared, rooms: &SharedRooms, info: LegInfo) -> Self {
        let (sender, inbox) = mpsc::unbounded_channel();
        shared
            .legs
            .lock()
            .unwrap()
            .insert(info.sid.clone(), sender.clone());
        Self {
            shared: shared.clone(),
            rooms: rooms.clone(),
            info,
            status: CallStatus::Queued,
            seq: 0,
            last_command: 0,
            last_intent: None,
            answered_at: None,
            program: Vec::new(),
            pc: 0,
            wait: Wait::Idle,
            plays: 0,
            dialling: None,
            parent: None,
            screening: false,
            conference: None,
            pending: None,
            record_on_answer: None,
            recorder: None,
            streams: Vec::new(),
            queued: None,
            room_sid: None,
            machine_detection: None,
            detection: None,
            digits_on_answer: None,
            document: None,
            rejected: false,
            inbox,
            sender,
        }
    }

    pub(crate) fn spawn(self, start: Start) {
        tokio::spawn(self.live(start));
    }

    fn sid(&self) -> &CallSid {
        &self.info.sid
    }

    /// Where the media reports this leg's inputs: its inbox.
    fn inputs(&self) -> Inputs {
        let sender = self.sender.clone();
        Inputs::new(move |input| {
            let _ = sender.send(Message::Media(input));
        })
    }

    async fn emit(&self, kind: EventKind) {
        self.shared.emit(self.sid(), kind).await;
    }

    async fn event(&mut self, kind: impl FnOnce(u64) -> EventKind) {
        self.seq += 1;
        let kind = kind(self.seq);
        self.emit(kind).await;
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
        let info = self.info.clone();
        let inbound = match &start {
            Start::Inbound { call, .. } => Some(call.as_ref().clone()),
            _ => None,
        };
        let inbound = inbound.as_ref();
        let webhook = |pick: fn(&InboundCall) -> Option<&(WebhookUrl, Method)>| {
            inbound.and_then(pick).cloned().unzip()
        };
        let (fallback_url, fallback_method) = webhook(|c| c.fallback.as_ref());
        let (status_callback, status_callback_method) = webhook(|c| c.status_callback.as_ref());
        let worker_id = Some(self.shared.worker_id.clone());
        self.event(|seq| EventKind::CallInitiated {
            seq,
            account_sid: info.account_sid,
            direction: info.direction,
            from: info.from,
            to: info.to,
            parent_call_sid: info.parent,
            command_queue_url: queue_url,
            worker_id,
            url: inbound.map(|c| c.url.clone()),
            method: inbound.map(|c| c.method),
            fallback_url,
            fallback_method,
            status_callback,
            status_callback_method,
        })
        .await;
        match start {
            Start::Inbound { source, .. } => {
                self.shared.media.attach(&self.info, self.inputs());
                self.status = CallStatus::Ringing;
                self.report_status().await;
                // An inbound call's RCML is fetched while it rings, and it is answered by the
                // first verb that needs it: never by `<Reject>`, and by `<Dial answerOnBridge>`
                // only once a dialled leg answers.
                if let Some(verbs) = self.load(&source).await {
                    self.program = verbs;
                    self.pc = 0;
                    self.advance().await;
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
                self.machine_detection = intent.parameters.machine_detection.clone();
                self.room_sid = intent.parameters.conference_sid.clone();
                self.ring(timeout).await;
            }
            Start::Dialled {
                timeout,
                parent,
                whisper,
                digits,
            } => {
                self.parent = Some(parent);
                self.screening = whisper.is_some();
                self.pending = whisper;
                self.digits_on_answer = digits;
                self.ring(timeout).await;
            }
        }
        if !self.run_until_ended().await {
            return; // the worker died
        }
        // Commands that reached the inbox as the call ended: refused, so their intents settle.
        self.inbox.close();
        while let Ok(message) = self.inbox.try_recv() {
            if let Message::QueueMember {
                queue,
                call,
                leg,
                since,
            } = message
            {
                // A caller that arrived as this agent ended: back to its queue.
                self.caller_arrived(&queue, call, leg, since);
                continue;
            }
            if let Message::RemoteCaller { leg, .. } = message {
                // A caller of another worker, for this agent which has ended: refused.
                let _ = leg.send(Message::LegEnded(self.info.sid.clone(), CallStatus::Busy));
                continue;
            }
            if let Message::Command(command) = message
                && !self.is_redelivery(&command)
            {
                let kind = EventKind::CommandRejected {
                    intent_sid: command.intent_sid.clone(),
                    seq: command.seq,
                    reason: "call-ended".into(),
                };
                self.emit(kind).await;
            }
        }
    }

    /// Rings the far end, for at most `timeout` (of the worker's time).
    async fn ring(&mut self, timeout: Duration) {
        self.status = CallStatus::Ringing;
        self.report_status().await;
        self.shared.media.place(&self.info, self.inputs());
        let until = Instant::now() + self.shared.scaled(timeout.as_secs_f64());
        self.wait = Wait::Ringing { until };
    }

    /// The far end answered (or the worker answered an inbound call).
    async fn answered(&mut self) {
        self.status = CallStatus::InProgress;
        self.answered_at = Some(Timestamp::now());
        self.report_status().await;
        if let Some(spec) = self.record_on_answer.take() {
            self.start_recording(spec).await;
        }
        if let Some(digits) = self.digits_on_answer.take() {
            self.shared.media.send_digits(self.sid(), &digits);
        }
    }

    /// Runs the leg until its call has ended; `false` if the worker died first.
    async fn run_until_ended(&mut self) -> bool {
        while !self.status.is_final() {
            let deadline = match &self.wait {
                Wait::Ringing { until } => Some(*until),
                Wait::Gather { until, .. } | Wait::Dial { until } => *until,
                Wait::Record(recording) => recording.deadline(),
                _ => None,
            };
            let detecting = self.detection.as_ref().map(detect::Detection::deadline);
            let first = match (deadline, detecting) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let message = match first {
                Some(at) => tokio::select! {
                    message = self.inbox.recv() => message,
                    () = tokio::time::sleep_until(at) => {
                        if detecting.is_some_and(|d| d <= Instant::now()) {
                            self.detect_time().await;
                        }
                        if deadline.is_some_and(|d| d <= Instant::now()) {
                            self.on_time().await;
                        }
                        continue;
                    }
                },
                None => self.inbox.recv().await,
            };
            match message {
                None | Some(Message::Die) => return false,
                Some(message) => self.on_message(message).await,
            }
        }
        true
    }

    async fn on_time(&mut self) {
        match std::mem::replace(&mut self.wait, Wait::Idle) {
            Wait::Ringing { .. } => {
                self.shared.media.hang_up(&self.info.sid);
                self.end(CallStatus::NoAnswer).await;
            }
            gather @ Wait::Gather { .. } => {
                // No key for `timeout` seconds: what was pressed so far is the answer.
                self.wait = gather;
                self.gathered(String::new()).await;
            }
            recording @ Wait::Record(_) => {
                // Silence for `timeout` seconds, or `maxLength`.
                self.wait = recording;
                self.recorded("").await;
            }
            Wait::Dial { .. }
                if self
                    .dialling
                    .as_ref()
                    .is_some_and(dial::Dialling::waits_for_caller) =>
            {
                // Nobody came to the queue within the dial's timeout.
                self.nobody_came().await;
            }
            Wait::Dial { .. } => {
                // The time limit: the connected leg is hung up, and the dial ends with it.
                self.wait = Wait::Dial { until: None };
                self.end_connected().await;
            }
            other => self.wait = other,
        }
    }

    async fn on_media(&mut self, input: LegInput) {
        match input {
            LegInput::Answered if matches!(self.wait, Wait::Ringing { .. }) => {
                self.wait = Wait::Idle;
                self.answered().await;
                if !self.screening
                    && let Some(parent) = &self.parent
                {
                    let _ = parent.send(Message::LegAnswered(self.info.sid.clone()));
                }
                if !self.start_detection() {
                    // Its RCML waits for the detection's answer.
                    return;
                }
                match self.pending.take() {
                    // Its own RCML (a dialled leg: its `url`, before it is connected).
                    Some(source) => self.run(source).await,
                    // A dialled leg: connected to its parent, nothing of its own to run.
                    None => self.wait = Wait::Idle,
                }
            }
            LegInput::Busy if matches!(self.wait, Wait::Ringing { .. }) => {
                self.end(CallStatus::Busy).await;
            }
            LegInput::NoAnswer if matches!(self.wait, Wait::Ringing { .. }) => {
                self.end(CallStatus::NoAnswer).await;
            }
            LegInput::Failed(why) if matches!(self.wait, Wait::Ringing { .. }) => {
                tracing::info!(call_sid = %self.info.sid, %why, "worker: leg failed");
                self.end(CallStatus::Failed).await;
            }
            LegInput::HungUp => {
                let status = if self.status.is_unanswered() {
                    CallStatus::Canceled
                } else {
                    CallStatus::Completed
                };
                self.end(status).await;
            }
            LegInput::Played(id) => match &mut self.wait {
                Wait::Playing(playing) if *playing == id => self.advance().await,
                Wait::Record(recording) if recording.beep == Some(id) => {
                    self.start_record_verb().await;
                }
                Wait::Gather {
                    prompt,
                    until,
                    verb,
                    ..
                } if *prompt == Some(id) => {
                    // The prompt is over: the time to press a key runs from now.
                    *prompt = None;
                    *until = Some(Instant::now() + self.shared.scaled(verb.timeout));
                }
                _ => {}
            },
            LegInput::Digits(keys) => self.press(&keys).await,
            LegInput::Speech(speaking) => {
                self.heard_speech(speaking);
                self.detect_speech(speaking).await;
            }
            // What the leg is no longer waiting for.
            LegInput::Answered | LegInput::Busy | LegInput::NoAnswer | LegInput::Failed(_) => {}
        }
    }

    async fn on_message(&mut self, message: Message) {
        match message {
            Message::Command(command) => self.on_command(*command).await,
            Message::Media(input) => self.on_media(input).await,
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
                self.screening = false;
                self.shared.media.unbridge(&self.info.sid);
                self.run(source).await;
            }
            Message::ConferenceEnded(sid) => {
                if self.conference.as_ref() == Some(&sid) {
                    self.conference = None;
                    self.shared.media.leave_room(&sid, &self.info.sid);
                    if matches!(&self.wait, Wait::Conference(s) if *s == sid) {
                        self.advance().await;
                    }
                }
            }
            Message::StreamEnded(sid) => {
                self.streams.retain(|s| s.sid != sid);
                if matches!(&self.wait, Wait::Stream(s) if *s == sid) {
                    self.advance().await;
                }
            }
            Message::LegAnswered(sid) => self.dialled_answered(sid).await,
            Message::QueueMember {
                queue,
                call,
                leg,
                since,
            } => self.caller_arrived(&queue, call, leg, since),
            Message::Dequeued { agent, leg, url } => self.dequeued(agent, leg, url).await,
            Message::AgentLeft => self.agent_left().await,
            Message::RemoteCaller { caller, relay, leg } => self.remote_caller(caller, relay, leg),
            Message::Requeue => self.requeue().await,
            Message::StillWaiting => self.still_waiting().await,
            Message::LegEnded(sid, status) => self.dialled_ended(sid, status).await,
            Message::Die => {}
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
            tracing::debug!(call_sid = %self.info.sid, intent_sid = %command.intent_sid, "worker: duplicate command");
            return;
        }
        if command.seq <= self.last_command {
            self.emit(reject("superseded")).await;
            return;
        }
        if self.status.is_final() {
            self.emit(reject("call-ended")).await;
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
                    let muted = command.kind == CommandType::Mute;
                    self.shared.media.set_muted(&self.info.sid, muted);
                    tracing::info!(call_sid = %self.info.sid, muted, "worker: mute");
                    true
                } else {
                    self.emit(reject("not-in-progress")).await;
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
                    self.emit(reject("not-in-progress")).await;
                    let failed = EventKind::StreamFailed {
                        seq: 1,
                        stream_sid: spec.stream_sid,
                        error: "the call is not in progress".into(),
                    };
                    self.emit(failed).await;
                    return;
                }
                None => false,
            },
            CommandType::QueueBridge => {
                self.taken_for_agent(&command).await;
                return;
            }
            CommandType::StreamStop => {
                // A stream that has already ended is stopped: nothing left to do.
                if let Some(sid) = &p.stream_sid {
                    self.stop_stream(sid.as_str());
                }
                true
            }
            CommandType::Redirect | CommandType::Execute => {
                if let Some(mute) = p.mute {
                    self.shared.media.set_muted(&self.info.sid, mute);
                }
                let source = match (&p.url, &p.rcml) {
                    (Some(url), _) => Source::fetch(url.to_string(), p.method.unwrap_or_default()),
                    (None, Some(rcml)) => Source::Inline(rcml.as_str().to_owned()),
                    (None, None) => return,
                };
                self.applied(&command).await;
                if self.status.is_unanswered() && self.info.direction != Direction::Inbound {
                    // Runs once the call is answered.
                    self.pending = Some(source);
                } else {
                    let moved = (p.move_connected_call_leg == Some(true)).then(|| source.clone());
                    self.redirected_out_of_queue().await;
                    self.abandon_dial(moved);
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
        self.emit(kind).await;
    }

    async fn end(&mut self, status: CallStatus) {
        if self.status.is_final() {
            return;
        }
        self.status = status;
        let waited = std::mem::replace(&mut self.wait, Wait::Idle);
        self.leave_conference();
        // From now on the dispatcher refuses this call's commands (a `dial` too) itself.
        self.shared
            .ended
            .lock()
            .unwrap()
            .insert(self.info.sid.clone(), self.last_intent.clone());
        self.shared.legs.lock().unwrap().remove(&self.info.sid);
        if !self.rejected {
            self.shared.media.hang_up(&self.info.sid);
        }
        if let Some(parent) = self.parent.take() {
            let _ = parent.send(Message::LegEnded(self.info.sid.clone(), status));
        }
        self.report_status().await;
        self.detection_cut_short().await;
        self.finish_dial(Some(status)).await;
        self.queued_call_ended().await;
        if let Wait::Record(_) = waited {
            self.wait = waited;
            self.finish_record_verb("hangup", true).await;
        }
        // A recording ends with its call, and completes; its streams stop.
        self.stop_recording().await;
        for stream in &self.streams {
            stream.stop();
        }
    }
}
