//! A call leg, run by its worker: an actor (a task with an inbox) that applies its call's
//! commands in order, fetches and runs its RCML verb by verb, places the legs it `<Dial>`s, and
//! reports everything on the events queue. What it plays, records and streams is its media's;
//! what the media hears (answered, busy, a prompt's end, digits) comes back to the inbox.
//!
//! A leg waits on one thing at a time (a prompt, a dialled leg, a room, a bidirectional stream,
//! a `<Gather>`, ringing, or the control plane after an RCML failure) and answers commands
//! whatever it waits on.

use std::time::Duration;

use teleapi_domain::call_log::{
    LogLevel, LoggedRequest, LoggedResponse, MAX_BODY_BYTES, RequestKind, bounded,
};
use teleapi_domain::recording::{RecordingSpec, RecordingStatus};
use teleapi_domain::stream::{StreamCallback, StreamSpec, StreamTrack, StreamUrl};
use teleapi_domain::wire::command::{Command, CommandType};
use teleapi_domain::wire::event::EventKind;
use teleapi_domain::{
    CallSid, CallStatus, ConferenceSid, Direction, HangupStatus, IntentSid, Method, StreamSid,
    Timestamp, WebhookUrl,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::inbox::{Message, Source, Start};
use crate::media::{Inputs, LegInfo, LegInput, PlayId, Prompt};
use crate::rcml::{self, DialTarget, GatherVerb, Verb};
use crate::recorder::{RECORDING_FAILED, Recorder};
use crate::rooms::SharedRooms;
use crate::shared::Shared;
use crate::streams::{self, StreamHandle};

/// What a leg is waiting for.
enum Wait {
    /// A prompt to end.
    Playing(PlayId),
    /// A dialled leg, ringing then connected, until it or this leg hangs up.
    Leg(CallSid),
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
    /// DTMF to send once answered (`SendDigits`).
    digits_on_answer: Option<String>,
    /// The document running, when it was fetched: a `<Gather>` without `action` requests it.
    document: Option<(String, Method)>,
    /// The media was told no (an inbound `<Reject>`): nothing to hang up.
    rejected: bool,
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
            dialled: None,
            parent: None,
            conference: None,
            pending: None,
            record_on_answer: None,
            recorder: None,
            streams: Vec::new(),
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
        let (url, method) = match &start {
            Start::Inbound { url, method, .. } => (Some(url.clone()), Some(*method)),
            _ => (None, None),
        };
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
            url,
            method,
        })
        .await;
        match start {
            Start::Inbound { source, .. } => {
                self.shared.media.attach(&self.info, self.inputs());
                self.status = CallStatus::Ringing;
                self.report_status().await;
                // An inbound call's RCML is fetched while it rings; <Reject> never answers.
                match self.load(&source).await {
                    Some(verbs) if matches!(verbs.first(), Some(Verb::Reject { .. })) => {
                        let busy = matches!(verbs.first(), Some(Verb::Reject { busy: true }));
                        self.shared.media.reject(self.sid(), busy);
                        self.rejected = true;
                        self.end(if busy {
                            CallStatus::Busy
                        } else {
                            CallStatus::NoAnswer
                        })
                        .await;
                    }
                    Some(verbs) => {
                        self.shared.media.answer(self.sid()).await;
                        self.answered().await;
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
                self.ring(timeout).await;
            }
            Start::Dialled { timeout, parent } => {
                self.parent = Some(parent);
                self.ring(timeout).await;
            }
        }
        if !self.run_until_ended().await {
            return; // the worker died
        }
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

    /// Plays `prompt`; the leg waits for its end.
    fn play(&mut self, prompt: Prompt) -> PlayId {
        self.plays += 1;
        let id = PlayId(self.plays);
        self.shared.media.play(self.sid(), id, prompt);
        id
    }

    /// The caller pressed `keys`: heard by the leg's streams, and by a `<Gather>` waiting.
    async fn press(&mut self, keys: &str) {
        let keys: String = keys
            .chars()
            .filter(|c| c.is_ascii_digit() || "*#".contains(*c))
            .collect();
        for key in keys.chars() {
            for stream in &self.streams {
                stream.dtmf(key);
            }
            let Wait::Gather {
                verb,
                digits,
                prompt,
                until,
            } = &mut self.wait
            else {
                continue;
            };
            if prompt.take().is_some() {
                // The first key stops the prompt.
                self.shared.media.stop_playing(&self.info.sid);
            }
            let finished = verb.finish_on_key.contains(key) && !verb.finish_on_key.is_empty();
            if !finished {
                digits.push(key);
                *until = Some(Instant::now() + self.shared.scaled(verb.timeout));
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
        let media = self.shared.media.record(self.sid(), &spec);
        let (recorder, started) = Recorder::start(spec, self.info.account_sid.clone(), media);
        tracing::info!(call_sid = %self.info.sid, recording_sid = %recorder.spec.recording_sid, "worker: recording");
        self.recorder = Some(recorder);
        self.emit(started).await;
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
                            self.emit(event).await;
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
            self.emit(kind).await;
            if let Some(recording_sid) = failed {
                let kind = EventKind::RecordingChanged {
                    seq: 1,
                    recording_sid,
                    status: RecordingStatus::Failed,
                    duration: None,
                    media_url: None,
                    error_code: Some(RECORDING_FAILED),
                };
                self.emit(kind).await;
            }
        }
    }

    fn start_stream(&mut self, spec: StreamSpec, bidirectional: bool) -> StreamSid {
        tracing::info!(call_sid = %self.info.sid, stream_sid = %spec.stream_sid, url = %spec.url.as_str(), "worker: stream");
        let handle = streams::start(
            &self.shared,
            (&self.info.sid, &self.info.account_sid),
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
                tracing::info!(call_sid = %self.info.sid, url = %noun.url, %problem, "worker: <Stream> url refused");
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
            let event = recorder.stop().await;
            self.emit(event).await;
        }
    }

    /// Runs the leg until its call has ended; `false` if the worker died first.
    async fn run_until_ended(&mut self) -> bool {
        while !self.status.is_final() {
            let deadline = match &self.wait {
                Wait::Ringing { until } => Some(*until),
                Wait::Gather { until, .. } => *until,
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
            other => self.wait = other,
        }
    }

    async fn on_media(&mut self, input: LegInput) {
        match input {
            LegInput::Answered if matches!(self.wait, Wait::Ringing { .. }) => {
                self.wait = Wait::Idle;
                self.answered().await;
                if let Some(parent) = &self.parent {
                    let _ = parent.send(Message::LegAnswered(self.info.sid.clone()));
                }
                match self.pending.take() {
                    Some(source) => self.run(source).await,
                    // A dialled leg: connected to its parent, nothing of its own to run.
                    None => self.wait = Wait::Idle,
                }
            }
            LegInput::Busy if matches!(self.wait, Wait::Ringing { .. }) => {
                self.end(CallStatus::Busy).await;
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
            // What the leg is no longer waiting for.
            LegInput::Answered | LegInput::Busy | LegInput::Failed(_) => {}
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
            Message::LegAnswered(sid) => {
                if self.dialled.as_ref().is_some_and(|(d, _)| *d == sid) {
                    self.shared.media.bridge(&self.info.sid, &sid);
                }
            }
            Message::LegEnded(sid) => {
                if self.dialled.as_ref().is_some_and(|(d, _)| *d == sid) {
                    self.dialled = None;
                    self.shared.media.unbridge(&self.info.sid);
                    if matches!(&self.wait, Wait::Leg(s) if *s == sid) {
                        self.advance().await;
                    }
                }
            }
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
                if self.status.is_unanswered() {
                    // Runs once the call is answered.
                    self.pending = Some(source);
                } else {
                    let move_leg = p.move_connected_call_leg == Some(true);
                    if let Some((_, leg)) = self.dialled.take() {
                        self.shared.media.unbridge(&self.info.sid);
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
        self.emit(kind).await;
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
                            account_sid: self.info.account_sid.clone(),
                            level: LogLevel::Warning,
                            error_code: warning.code,
                            message: warning.message,
                            url: Some(url.clone()),
                            method: self.document.as_ref().map(|(_, method)| *method),
                        };
                        self.emit(kind).await;
                    }
                    return Some(verbs);
                }
                Err(detail) => Some((12100, detail)),
            },
        };
        if let Some((error_code, detail)) = failure {
            tracing::info!(call_sid = %self.info.sid, url = %url, error_code, "worker: RCML failed");
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

    /// Requests a document with the call's parameters (Twilio's): its text, or Twilio's code
    /// for what went wrong (11205: no connection, or none in time; 11206: an answer that is not
    /// HTTP; 11200: no 2xx answer) and why. Reports the request and its answer as
    /// `http.request`, for the call's log.
    async fn fetch(
        &self,
        url: &str,
        method: Method,
        extra: &[(&'static str, String)],
    ) -> Result<String, (u32, String)> {
        let mut params = vec![
            ("CallSid", self.info.sid.to_string()),
            ("AccountSid", self.info.account_sid.to_string()),
            ("From", self.info.from.clone()),
            ("To", self.info.to.clone()),
            ("CallStatus", self.status.as_str().to_owned()),
            ("Direction", self.info.direction.as_str().to_owned()),
            ("ApiVersion", teleapi_domain::API_VERSION.to_owned()),
        ];
        if let Some(parent) = &self.info.parent {
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
            account_sid: self.info.account_sid.clone(),
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
        self.shared.emit_at(self.sid(), sent, kind).await;
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
            self.rooms.leave(&self.shared, &sid, &self.info.sid);
        }
    }

    async fn run(&mut self, source: Source) {
        self.leave_conference();
        if matches!(self.wait, Wait::Playing(_) | Wait::Gather { .. }) {
            self.shared.media.stop_playing(&self.info.sid);
        }
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
                Verb::Prompt(prompt) => {
                    let id = self.play(prompt);
                    self.wait = Wait::Playing(id);
                    return;
                }
                Verb::Dial {
                    target: DialTarget::Conference(noun),
                    ..
                } => {
                    let sid = self.rooms.join(
                        &self.shared,
                        &self.info.account_sid,
                        &self.info.sid,
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
                        &self.rooms,
                        LegInfo {
                            sid: CallSid::generate(),
                            account_sid: self.info.account_sid.clone(),
                            from: self.info.from.clone(),
                            to,
                            direction: Direction::OutboundDial,
                            parent: Some(self.info.sid.clone()),
                        },
                    );
                    let sid = child.info.sid.clone();
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
                Verb::Gather(verb) => {
                    let prompt = verb.prompt.clone().map(|p| self.play(p));
                    let until = match prompt {
                        Some(_) => None,
                        None => Some(Instant::now() + self.shared.scaled(verb.timeout)),
                    };
                    self.wait = Wait::Gather {
                        verb,
                        digits: String::new(),
                        prompt,
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
            .insert(self.info.sid.clone(), self.last_intent.clone());
        self.shared.legs.lock().unwrap().remove(&self.info.sid);
        if !self.rejected {
            self.shared.media.hang_up(&self.info.sid);
        }
        if let Some((_, leg)) = self.dialled.take() {
            let _ = leg.send(Message::HangUp);
        }
        if let Some(parent) = self.parent.take() {
            let _ = parent.send(Message::LegEnded(self.info.sid.clone()));
        }
        self.report_status().await;
        // A recording ends with its call, and completes; its streams stop.
        self.stop_recording().await;
        for stream in &self.streams {
            stream.stop();
        }
    }
}
