//! A leg's program: its RCML fetched (or given) and run verb by verb, the prompts it plays,
//! and what a `<Gather>` collects.

use super::*;
use crate::inbox::Source;
use crate::media::{PlayId, Prompt};
use crate::rcml::{self, DialTarget, DialVerb, Verb};
use teleapi_domain::call_log::LogLevel;
use teleapi_domain::wire::event::EventKind;
use teleapi_domain::{CallStatus, Direction, Method};
use tokio::time::Instant;

impl Leg {
    /// Plays `prompt`; the leg waits for its end.
    pub(super) fn play(&mut self, prompt: Prompt) -> PlayId {
        self.plays += 1;
        let id = PlayId(self.plays);
        self.shared.media.play(self.sid(), id, prompt);
        id
    }

    /// The caller pressed `keys`: heard by the leg's streams, and by a `<Gather>` waiting.
    pub(super) async fn press(&mut self, keys: &str) {
        let keys: String = keys
            .chars()
            .filter(|c| c.is_ascii_digit() || "*#".contains(*c))
            .collect();
        for key in keys.chars() {
            for stream in &self.streams {
                stream.dtmf(key);
            }
            if self.hangs_up_on(key) {
                self.end_connected().await;
                continue;
            }
            if self.ends_recording(key) {
                self.recorded(&key.to_string()).await;
                continue;
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
    pub(super) async fn gathered(&mut self, finished_on_key: String) {
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
    pub(super) fn resolve(&self, action: &str) -> String {
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

    /// Fetches (or parses) a document; on failure reports `rcml.failed` and waits for the
    /// control plane.
    pub(super) async fn load(&mut self, source: &Source) -> Option<Vec<Verb>> {
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

    /// An inbound call not answered yet: its first verbs decide whether it is.
    fn ringing_inbound(&self) -> bool {
        self.status == CallStatus::Ringing && self.info.direction == Direction::Inbound
    }

    /// A warning in the call's log (Twilio's code), about the document running.
    pub(super) async fn warn(&self, code: u32, message: String) {
        let kind = EventKind::CallNotification {
            account_sid: self.info.account_sid.clone(),
            level: LogLevel::Warning,
            error_code: code,
            message,
            url: self.document.as_ref().map(|(url, _)| url.clone()),
            method: self.document.as_ref().map(|(_, method)| *method),
        };
        self.emit(kind).await;
    }

    /// Requests a document with the call's parameters (Twilio's), reporting the request.
    pub(super) async fn fetch(
        &self,
        url: &str,
        method: Method,
        extra: &[(&'static str, String)],
    ) -> Result<String, (u32, String)> {
        crate::fetch::fetch(&self.shared, &self.info, self.status, (url, method), extra).await
    }

    /// Leaves the conference the leg is in, if it is in one.
    pub(super) fn leave_conference(&mut self) {
        if let Some(sid) = self.conference.take() {
            self.rooms.leave(&self.shared, &sid, &self.info.sid);
        }
    }

    pub(super) async fn run(&mut self, source: Source) {
        self.leave_conference();
        if matches!(
            self.wait,
            Wait::Playing(_) | Wait::Gather { .. } | Wait::Record(_)
        ) {
            self.shared.media.stop_playing(&self.info.sid);
        }
        if matches!(self.wait, Wait::Record(_)) {
            self.wait = Wait::Idle;
            // Redirected mid-recording: the recording is kept, and its action not asked.
            self.relisten();
            self.stop_recording().await;
        }
        if let Some(verbs) = self.load(&source).await {
            self.program = verbs;
            self.pc = 0;
            self.advance().await;
        }
    }

    /// Runs verbs until one takes time, or the document ends (which completes the call).
    pub(super) async fn advance(&mut self) {
        while !self.status.is_final() {
            let Some(verb) = self.program.get(self.pc).cloned() else {
                if self.screening {
                    // A dialled leg's `url` ran to its end: it is connected now.
                    self.screening = false;
                    self.wait = Wait::Idle;
                    if let Some(parent) = &self.parent {
                        let _ = parent.send(Message::LegAnswered(self.info.sid.clone()));
                    }
                    return;
                }
                if self.waiting_in_queue() {
                    // The wait music's document is over: asked again, with where it stands.
                    let music = self.wait_music();
                    match self.load(&music).await {
                        Some(verbs) => {
                            self.program = verbs;
                            self.pc = 0;
                            continue;
                        }
                        None => return,
                    }
                }
                if self.ringing_inbound() {
                    // A document that runs nothing for the caller still answers, and hangs up:
                    // the call is `completed`, not left unanswered.
                    self.shared.media.answer(self.sid()).await;
                    self.answered().await;
                }
                self.end(CallStatus::Completed).await;
                return;
            };
            self.pc += 1;
            if self.ringing_inbound() {
                match &verb {
                    // Refused while it rings: never answered.
                    Verb::Reject { busy } => {
                        self.shared.media.reject(self.sid(), *busy);
                        self.rejected = true;
                        let status = if *busy {
                            CallStatus::Busy
                        } else {
                            CallStatus::NoAnswer
                        };
                        self.end(status).await;
                        return;
                    }
                    // Answered once a dialled leg is.
                    Verb::Dial(dial) if dial.answer_on_bridge => {}
                    _ => {
                        self.shared.media.answer(self.sid()).await;
                        self.answered().await;
                    }
                }
            }
            match verb {
                Verb::Prompt(prompt) => {
                    let id = self.play(prompt);
                    self.wait = Wait::Playing(id);
                    return;
                }
                Verb::Dial(DialVerb {
                    target: DialTarget::Conference(mut noun),
                    ..
                }) => {
                    noun.sid = self.room_sid.take();
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
                Verb::Dial(_) if self.screening => {
                    let message = "Dial: a dialled party cannot dial before it is connected; \
                                   skipped"
                        .into();
                    self.warn(13201, message).await;
                }
                Verb::Dial(
                    verb @ DialVerb {
                        target: DialTarget::Queue(_),
                        ..
                    },
                ) => {
                    let DialTarget::Queue(noun) = verb.target.clone() else {
                        unreachable!("matched above")
                    };
                    self.dial_queue(verb, noun).await;
                    return;
                }
                Verb::Dial(
                    verb @ DialVerb {
                        target: DialTarget::Legs(_),
                        ..
                    },
                ) => {
                    let DialTarget::Legs(legs) = verb.target.clone() else {
                        unreachable!("matched above")
                    };
                    self.dial(verb, legs).await;
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
                Verb::Enqueue(verb) => {
                    if let Some(next) = self.enqueue(verb).await {
                        match self.load(&next).await {
                            Some(verbs) => {
                                self.program = verbs;
                                self.pc = 0;
                            }
                            None => return,
                        }
                    }
                }
                Verb::Leave => {
                    if let Some(next) = self.leave_queue().await {
                        match self.load(&next).await {
                            Some(verbs) => {
                                self.program = verbs;
                                self.pc = 0;
                            }
                            None => return,
                        }
                    }
                }
                Verb::Record(verb) => {
                    self.record_verb(verb).await;
                    return;
                }
                Verb::Hangup => self.end(CallStatus::Completed).await,
                Verb::Reject { .. } => self.end(CallStatus::Completed).await,
            }
        }
    }
}
