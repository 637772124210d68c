//! A `<Dial>` of legs: they ring at once, the first to answer (and to pass its `url`'s
//! screening) is connected and the others are hung up; when the dial ends, its `action` is
//! requested with Twilio's `Dial*` parameters, or the document goes on.

use super::*;
use crate::inbox::Start;
use crate::rcml::{DialLeg, DialVerb, QueueNoun};
use std::time::Duration;
use teleapi_domain::recording::{RecordingSource, RecordingSpec};
use teleapi_domain::{Direction, RecordingSid};

/// A `<Dial>` of legs in progress.
pub(super) struct Dialling {
    verb: DialVerb,
    /// The legs still ringing (or screening), and how to reach each.
    ringing: Vec<(CallSid, mpsc::UnboundedSender<Message>)>,
    /// The leg connected to the caller, and since when.
    connected: Option<(CallSid, mpsc::UnboundedSender<Message>, Instant)>,
    /// How the last leg that ended unconnected ended (no leg: nobody came).
    unconnected: Option<(Option<CallSid>, CallStatus)>,
    /// The recording `record` started.
    recording: Option<RecordingSid>,
    /// `<Dial><Queue>`: the queue, and its `url` for the caller taken; its legs are queued
    /// callers, who go on with their own RCML when the dial ends.
    queue: Option<QueueNoun>,
    /// Callers of other workers, each by its bridge's leg: `(relay, caller)` (the action
    /// names the caller).
    remote: Vec<(CallSid, CallSid)>,
    /// While an agent waits with no caller: its wait, open to bridges from other workers, and
    /// the timer that has it say so again.
    waiting: Option<(crate::relay::Wait, Reminder)>,
}

/// A task that ends with its owner.
pub(super) struct Reminder(tokio::task::JoinHandle<()>);

impl Drop for Reminder {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How a dial ended, as its `action` is told.
struct Outcome {
    status: CallStatus,
    call_sid: Option<CallSid>,
    /// Seconds connected, if it was.
    duration: Option<u64>,
}

impl Dialling {
    /// The connected leg, if one is.
    pub(super) fn connected(&self) -> Option<&mpsc::UnboundedSender<Message>> {
        self.connected.as_ref().map(|(_, leg, _)| leg)
    }

    /// Every leg of the dial, connected or ringing.
    fn legs(&self) -> impl Iterator<Item = &mpsc::UnboundedSender<Message>> {
        self.connected()
            .into_iter()
            .chain(self.ringing.iter().map(|(_, leg)| leg))
    }

    fn outcome(&self, ended: Option<CallStatus>) -> Outcome {
        match (&self.connected, &self.unconnected) {
            (Some((sid, _, since)), _) => Outcome {
                status: CallStatus::Completed,
                call_sid: Some(self.shown(sid)),
                duration: Some(since.elapsed().as_secs()),
            },
            (None, last) => Outcome {
                status: ended
                    .or(last.as_ref().map(|(_, s)| *s))
                    .unwrap_or(CallStatus::Canceled),
                call_sid: last
                    .as_ref()
                    .and_then(|(sid, _)| sid.as_ref().map(|s| self.shown(s))),
                duration: None,
            },
        }
    }

    /// The call a leg of the dial is: itself, or the caller a bridge's leg stands for.
    fn shown(&self, leg: &CallSid) -> CallSid {
        self.remote
            .iter()
            .find(|(relay, _)| relay == leg)
            .map_or_else(|| leg.clone(), |(_, caller)| caller.clone())
    }

    /// Lets go of the dial's legs: dialled legs are hung up; queued callers go on with their
    /// own RCML; an agent still waiting for one stops waiting.
    fn release(&self, shared: &crate::shared::Shared, agent: &LegInfo) {
        match &self.queue {
            Some(queue) => {
                for leg in self.legs() {
                    let _ = leg.send(Message::AgentLeft);
                }
                shared
                    .call_queues
                    .give_up(&agent.account_sid, &queue.name, &agent.sid);
            }
            None => {
                for leg in self.legs() {
                    let _ = leg.send(Message::HangUp);
                }
            }
        }
    }

    /// An agent waiting for a caller to arrive.
    pub(super) fn waits_for_caller(&self) -> bool {
        self.queue.is_some() && self.ringing.is_empty() && self.connected.is_none()
    }
}

impl Leg {
    /// `<Dial><Queue>`: the queue's first caller is taken, or the leg waits for the next (the
    /// dial's `timeout` at most).
    pub(super) async fn dial_queue(&mut self, verb: DialVerb, noun: QueueNoun) {
        let timeout = f64::from(verb.timeout);
        let first = self.shared.call_queues.take_first(
            &self.info.account_sid,
            &noun.name,
            &self.info.sid,
            self.sender.clone(),
        );
        self.dialling = Some(Dialling {
            verb,
            ringing: Vec::new(),
            connected: None,
            unconnected: None,
            recording: None,
            queue: Some(noun),
            remote: Vec::new(),
            waiting: None,
        });
        match first {
            Some(member) => self.take_caller(member.call, member.leg),
            None => {
                self.wait = Wait::Dial {
                    until: Some(Instant::now() + self.shared.scaled(timeout)),
                };
                self.waiting_for_remote().await;
            }
        }
    }

    /// An agent waits with no caller here: if other workers can reach it, the control plane
    /// is told (`queue.agent_waiting`), now and again every `agent_report` while it waits, so
    /// that a caller on another worker is taken for it.
    async fn waiting_for_remote(&mut self) {
        let Some(address) = self.shared.config.bridge_address.clone() else {
            return;
        };
        let Some(noun) = self.dialling.as_ref().and_then(|d| d.queue.clone()) else {
            return;
        };
        let token = match self.dialling.as_ref().and_then(|d| d.waiting.as_ref()) {
            Some((wait, _)) => wait.token.clone(),
            None => {
                let every = self
                    .shared
                    .scaled(self.shared.config.agent_report.as_secs_f64());
                let inbox = self.sender.clone();
                let reminder = Reminder(tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(every).await;
                        if inbox.send(Message::StillWaiting).is_err() {
                            return;
                        }
                    }
                }));
                let wait = crate::relay::Wait::open(&self.shared, &self.info);
                let token = wait.token.clone();
                if let Some(dialling) = &mut self.dialling {
                    dialling.waiting = Some((wait, reminder));
                }
                token
            }
        };
        let url = noun.url.as_ref().map(|(url, _)| self.resolve(url));
        let kind = EventKind::QueueAgentWaiting {
            queue_sid: teleapi_domain::QueueSid::named(&self.info.account_sid, &noun.name),
            address,
            token,
            url,
            method: noun.url.map(|(_, method)| method),
        };
        self.emit(kind).await;
    }

    /// The agent's timer: said again if it still waits.
    pub(super) async fn still_waiting(&mut self) {
        if self
            .dialling
            .as_ref()
            .is_some_and(Dialling::waits_for_caller)
        {
            self.waiting_for_remote().await;
        }
    }

    /// A caller of another worker, taken for this agent by the control plane, reaches it over
    /// the bridge `relay`: taken if the agent still waits, else refused.
    pub(super) fn remote_caller(
        &mut self,
        caller: CallSid,
        relay: CallSid,
        leg: mpsc::UnboundedSender<Message>,
    ) {
        let Some(dialling) = self.dialling.as_mut().filter(|d| d.waits_for_caller()) else {
            let _ = leg.send(Message::LegEnded(self.info.sid.clone(), CallStatus::Busy));
            return;
        };
        dialling.remote.push((relay.clone(), caller));
        self.take_caller(relay, leg);
    }

    /// The agent takes the queued caller `call`: told so (with the `url` to run first).
    pub(super) fn take_caller(&mut self, call: CallSid, leg: mpsc::UnboundedSender<Message>) {
        let url = self
            .dialling
            .as_ref()
            .and_then(|d| d.queue.as_ref())
            .and_then(|q| q.url.clone())
            .map(|(url, method)| Source::fetch(self.resolve(&url), method));
        let _ = leg.send(Message::Dequeued {
            agent: self.info.sid.clone(),
            leg: self.sender.clone(),
            url,
        });
        if let Some(dialling) = &mut self.dialling {
            dialling.ringing.push((call, leg));
            dialling.waiting = None;
        }
        self.wait = Wait::Dial { until: None };
    }

    /// A caller of `queue` arrived for this agent, which waited: taken, unless the agent has
    /// stopped waiting, in which case the caller goes back to its queue.
    pub(super) fn caller_arrived(
        &mut self,
        queue: &str,
        call: CallSid,
        leg: mpsc::UnboundedSender<Message>,
        since: Instant,
    ) {
        if self
            .dialling
            .as_ref()
            .is_some_and(Dialling::waits_for_caller)
        {
            self.take_caller(call, leg);
            return;
        }
        let member = crate::queues::Member { call, leg, since };
        self.shared
            .call_queues
            .put_back(&self.info.account_sid, queue, member);
    }

    /// The agent's timeout passed with nobody in the queue: the dial ends, `no-answer`.
    pub(super) async fn nobody_came(&mut self) {
        if let Some(dialling) = &mut self.dialling {
            dialling.unconnected = Some((None, CallStatus::NoAnswer));
        }
        self.dial_over().await;
    }

    /// Rings `legs` for `verb`; the leg waits for the dial to end.
    pub(super) async fn dial(&mut self, verb: DialVerb, legs: Vec<DialLeg>) {
        // The caller's number is the dialled legs' caller ID unless `callerId` says.
        let from = verb
            .caller_id
            .clone()
            .unwrap_or_else(|| self.info.from.clone());
        let mut ringing = Vec::new();
        for leg in legs {
            let child = Leg::new(
                &self.shared,
                &self.rooms,
                LegInfo {
                    sid: CallSid::generate(),
                    account_sid: self.info.account_sid.clone(),
                    from: from.clone(),
                    to: leg.to,
                    direction: Direction::OutboundDial,
                    parent: Some(self.info.sid.clone()),
                },
            );
            ringing.push((child.info.sid.clone(), child.sender.clone()));
            let whisper = leg
                .url
                .map(|(url, method)| Source::fetch(self.resolve(&url), method));
            child.spawn(Start::Dialled {
                timeout: Duration::from_secs(u64::from(verb.timeout)),
                parent: self.sender.clone(),
                whisper,
                digits: leg.send_digits,
            });
        }
        let from_ringing = verb.record.as_ref().is_some_and(|r| r.from_ringing);
        self.dialling = Some(Dialling {
            verb,
            ringing,
            connected: None,
            unconnected: None,
            recording: None,
            queue: None,
            remote: Vec::new(),
            waiting: None,
        });
        self.wait = Wait::Dial { until: None };
        if from_ringing {
            self.record_dial().await;
        }
    }

    /// `record`: the dial's recording starts (unless one of the call's is running: one at a
    /// time, which is warned of).
    async fn record_dial(&mut self) {
        let Some(record) = self.dialling.as_ref().and_then(|d| d.verb.record.clone()) else {
            return;
        };
        if self.recorder.is_some() {
            let message = "Dial: the call is already being recorded; record is ignored".into();
            self.warn(13217, message).await;
            return;
        }
        let spec = RecordingSpec {
            recording_sid: RecordingSid::generate(),
            channels: record.channels,
            track: record.track,
            trim: record.trim,
            source: RecordingSource::DialVerb,
            status_callback: record.status_callback,
        };
        if let Some(dialling) = &mut self.dialling {
            dialling.recording = Some(spec.recording_sid.clone());
        }
        self.start_recording(spec).await;
    }

    /// A dialled leg answered (and passed its screening): the first is connected, and the
    /// others hung up; a later one too.
    pub(super) async fn dialled_answered(&mut self, sid: CallSid) {
        let Some(dialling) = &mut self.dialling else {
            return;
        };
        let Some(at) = dialling.ringing.iter().position(|(s, _)| *s == sid) else {
            return;
        };
        let (sid, leg) = dialling.ringing.remove(at);
        if dialling.connected.is_some() {
            let _ = leg.send(Message::HangUp);
            return;
        }
        for (_, other) in &dialling.ringing {
            let _ = other.send(Message::HangUp);
        }
        dialling.connected = Some((sid.clone(), leg, Instant::now()));
        let time_limit = f64::from(dialling.verb.time_limit);
        let from_answer = dialling
            .verb
            .record
            .as_ref()
            .is_some_and(|r| !r.from_ringing);
        if self.status.is_unanswered() {
            // answerOnBridge: the caller is answered now.
            self.shared.media.answer(self.sid()).await;
            self.answered().await;
        }
        self.shared.media.bridge(&self.info.sid, &sid);
        self.wait = Wait::Dial {
            until: Some(Instant::now() + self.shared.scaled(time_limit)),
        };
        if from_answer {
            self.record_dial().await;
        }
    }

    /// A dialled leg ended: the dial is over once the connected leg has, or every leg has.
    pub(super) async fn dialled_ended(&mut self, sid: CallSid, status: CallStatus) {
        let Some(dialling) = &mut self.dialling else {
            return;
        };
        if dialling.connected.as_ref().is_some_and(|(s, ..)| *s == sid) {
            self.dial_over().await;
            return;
        }
        let before = dialling.ringing.len();
        dialling.ringing.retain(|(s, _)| *s != sid);
        if dialling.ringing.len() == before {
            return;
        }
        // What an application most needs to hear: that someone answered (and declined),
        // else that nobody answered, else busy, else failed.
        let rank = |s: CallStatus| match s {
            CallStatus::Completed => 0,
            CallStatus::NoAnswer => 1,
            CallStatus::Busy => 2,
            CallStatus::Failed => 3,
            _ => 4,
        };
        if dialling
            .unconnected
            .as_ref()
            .is_none_or(|(_, last)| rank(status) <= rank(*last))
        {
            dialling.unconnected = Some((Some(sid), status));
        }
        if dialling.ringing.is_empty() && dialling.connected.is_none() {
            self.dial_over().await;
        }
    }

    /// The time limit passed, or the caller pressed `*` (`hangupOnStar`): the connected leg
    /// is hung up, and the dial ends when it has. A queued caller is not hung up: the dial ends
    /// now, and the caller goes on with its own RCML.
    pub(super) async fn end_connected(&mut self) {
        let Some(dialling) = &self.dialling else {
            return;
        };
        if dialling.queue.is_some() {
            self.dial_over().await;
        } else if let Some(leg) = dialling.connected() {
            let _ = leg.send(Message::HangUp);
        }
    }

    /// Whether a key `key` ends the connected leg (`hangupOnStar`).
    pub(super) fn hangs_up_on(&self, key: char) -> bool {
        key == '*'
            && self
                .dialling
                .as_ref()
                .is_some_and(|d| d.verb.hangup_on_star && d.connected.is_some())
    }

    /// The dial is over: its `action`'s answer runs next, or the document goes on.
    pub(super) async fn dial_over(&mut self) {
        match self.finish_dial(None).await {
            Some(source) => self.run(source).await,
            None => self.advance().await,
        }
    }

    /// Ends the dial: its legs hung up, its recording stopped; what runs next is its `action`,
    /// requested with how it ended (none: the document goes on). If the call itself has ended
    /// (`ended`), the application is still told, and nothing runs.
    pub(super) async fn finish_dial(&mut self, ended: Option<CallStatus>) -> Option<Source> {
        let dialling = self.dialling.take()?;
        dialling.release(&self.shared, &self.info);
        self.shared.media.unbridge(&self.info.sid);
        if ended.is_none() {
            self.wait = Wait::Idle;
        }
        let outcome = dialling.outcome(ended.map(|_| CallStatus::Canceled));
        let mut extra = vec![
            ("DialCallStatus", outcome.status.as_str().to_owned()),
            ("DialBridged", outcome.duration.is_some().to_string()),
        ];
        if let Some(sid) = &outcome.call_sid {
            extra.push(("DialCallSid", sid.to_string()));
        }
        if let Some(duration) = outcome.duration {
            extra.push(("DialCallDuration", duration.to_string()));
        }
        let ours = self
            .recorder
            .as_ref()
            .is_some_and(|r| Some(&r.spec.recording_sid) == dialling.recording.as_ref());
        if ours {
            extra.extend(self.stop_recording_for_action().await);
        }
        let action = dialling.verb.action.as_ref()?;
        let (url, method) = (self.resolve(action), dialling.verb.method);
        if ended.is_some() {
            let _ = self.fetch(&url, method, &extra).await;
            return None;
        }
        Some(Source::Fetch { url, method, extra })
    }

    /// Hands the dial's legs over as a redirect of the caller says: the connected leg runs
    /// `moved` on its own (`MoveConnectedCallLeg`), or is hung up with the others.
    pub(super) fn abandon_dial(&mut self, moved: Option<Source>) {
        let Some(dialling) = self.dialling.take() else {
            return;
        };
        self.shared.media.unbridge(&self.info.sid);
        match (moved, dialling.connected()) {
            (Some(source), Some(leg)) if dialling.queue.is_none() => {
                let _ = leg.send(Message::Run(source));
                for (_, leg) in &dialling.ringing {
                    let _ = leg.send(Message::HangUp);
                }
            }
            _ => dialling.release(&self.shared, &self.info),
        }
    }
}
