//! Conference rooms: who is in each, who is muted, on hold or coaching whom, and
//! when a room starts and ends, reported as conference events (docs/messages.md, "Conference
//! events") in order, numbered per conference. Until a room starts, its media hears its
//! participants as on hold: they wait, hearing nobody.
//!
//! A room is an account's `<Conference>` name while anyone is in it. Its events go through one
//! task per room, so that they reach the events queue in the order they were numbered even
//! when several legs join or leave at once. Who hears whom is the media's ([`Media::room`]).
//!
//! [`Media::room`]: crate::media::Media::room

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use teleapi_domain::conference::{EndReason, ParticipantState};
use teleapi_domain::sid::random_hex32;
use teleapi_domain::wire::conference::{
    ConferenceCommand, ConferenceCommandType, ConferenceEvent, ConferenceEventKind,
};
use teleapi_domain::wire::event::EVENT_VERSION;
use teleapi_domain::{AccountSid, CallSid, ConferenceSid, IntentSid, Timestamp};
use teleapi_ports::OutgoingMessage;
use tokio::sync::mpsc;

use crate::inbox::Message;
use crate::media::{PlayId, Prompt};
use crate::rcml::{self, ConferenceNoun, Verb};
use crate::shared::Shared;

/// Every room of this worker.
#[derive(Default)]
pub(crate) struct Rooms {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    rooms: HashMap<ConferenceSid, Room>,
    by_name: HashMap<(AccountSid, String), ConferenceSid>,
    /// Rooms that ended here: their late commands are this worker's to refuse. (A few bytes a
    /// room, for the life of the process.)
    ended: std::collections::HashSet<ConferenceSid>,
}

struct Room {
    account_sid: AccountSid,
    name: String,
    seq: u64,
    /// The conference command applied last: its `seq` and intent.
    last_command: (u64, Option<IntentSid>),
    started: bool,
    members: BTreeMap<CallSid, Member>,
    /// Events, numbered, on their way to the events queue in order.
    events: mpsc::UnboundedSender<ConferenceEvent>,
}

struct Member {
    state: ParticipantState,
    /// The room beeps when it leaves.
    beep_on_exit: bool,
    /// The leg, to tell it the conference ended (or to hang up).
    leg: mpsc::UnboundedSender<Message>,
}

/// What rooms play to their participants is numbered apart from the legs' own prompts (which
/// count from 1), so that a leg ignores their end.
static ROOM_PLAYS: AtomicU64 = AtomicU64::new(1 << 62);

fn room_play() -> PlayId {
    PlayId(ROOM_PLAYS.fetch_add(1, Ordering::Relaxed))
}

impl Room {
    /// The room beeps to everyone who hears it (it has started; not on hold), but `except`.
    fn beep(&self, shared: &Shared, except: &CallSid) {
        if !self.started {
            return;
        }
        for (call_sid, member) in &self.members {
            if call_sid != except && !member.state.hold {
                shared.media.play(call_sid, room_play(), Prompt::Beep);
            }
        }
    }

    fn report(&mut self, sid: &ConferenceSid, kind: impl FnOnce(u64) -> ConferenceEventKind) {
        self.seq += 1;
        let event = ConferenceEvent {
            version: EVENT_VERSION,
            conference_sid: sid.clone(),
            timestamp: Timestamp::now().millis(),
            kind: kind(self.seq),
        };
        let _ = self.events.send(event);
    }
}

/// Sends a room's events one after the other, until the room is gone.
async fn forward(shared: Shared, mut events: mpsc::UnboundedReceiver<ConferenceEvent>) {
    while let Some(event) = events.recv().await {
        if !shared.speaks() {
            continue;
        }
        let message = OutgoingMessage::fifo(
            event.conference_sid.as_str(),
            random_hex32(),
            event.to_json(),
        );
        if let Err(err) = shared.events.send(None, &message).await {
            tracing::warn!(error = %err, "worker: conference event not sent");
        }
    }
}

impl Rooms {
    /// Whether the room is (or was) this worker's.
    pub(crate) fn knows(&self, sid: &ConferenceSid) -> bool {
        let inner = self.inner.lock().unwrap();
        inner.rooms.contains_key(sid) || inner.ended.contains(sid)
    }

    /// `call_sid` joins the account's room `noun.name` (created if nobody is in it), as `noun`
    /// says; the room starts when someone who starts it is in.
    pub(crate) fn join(
        self: &Arc<Self>,
        shared: &Shared,
        account_sid: &AccountSid,
        call_sid: &CallSid,
        noun: &ConferenceNoun,
        leg: mpsc::UnboundedSender<Message>,
    ) -> ConferenceSid {
        let mut inner = self.inner.lock().unwrap();
        let key = (account_sid.clone(), noun.name.clone());
        let sid = match inner.by_name.get(&key) {
            Some(sid) => sid.clone(),
            None => {
                let sid = noun.sid.clone().unwrap_or_else(ConferenceSid::generate);
                let (events, receiver) = mpsc::unbounded_channel();
                tokio::spawn(forward(shared.clone(), receiver));
                let mut room = Room {
                    account_sid: account_sid.clone(),
                    name: noun.name.clone(),
                    seq: 0,
                    last_command: (0, None),
                    started: false,
                    members: BTreeMap::new(),
                    events,
                };
                room.report(&sid, |seq| ConferenceEventKind::Created {
                    seq,
                    account_sid: account_sid.clone(),
                    friendly_name: noun.name.clone(),
                    command_queue_url: shared.queue_url.clone(),
                    worker_id: Some(shared.worker_id.clone()),
                    status_callback: noun.status_callback.clone(),
                });
                inner.by_name.insert(key, sid.clone());
                inner.rooms.insert(sid.clone(), room);
                sid
            }
        };
        let room = inner.rooms.get_mut(&sid).expect("named rooms exist");
        let coach = noun
            .coach
            .as_deref()
            .and_then(|c| c.parse::<CallSid>().ok());
        let state = ParticipantState {
            call_sid: call_sid.clone(),
            label: noun.label.clone(),
            muted: noun.muted,
            hold: false,
            coaching: coach.is_some(),
            call_sid_to_coach: coach,
            start_conference_on_enter: noun.start_conference_on_enter,
            end_conference_on_exit: noun.end_conference_on_exit,
        };
        room.report(&sid, |seq| ConferenceEventKind::ParticipantJoined {
            seq,
            participant: state.clone(),
        });
        shared.media.room(&sid, &heard(&state, room.started));
        let member = Member {
            state,
            beep_on_exit: noun.beep_on_exit,
            leg,
        };
        room.members.insert(call_sid.clone(), member);
        if noun.start_conference_on_enter && !room.started {
            room.started = true;
            room.report(&sid, |seq| ConferenceEventKind::Started { seq });
            // Those who waited hear the room, and are heard, from now on; their music stops.
            for (waited, member) in &room.members {
                shared.media.room(&sid, &member.state);
                if waited != call_sid && !member.state.hold {
                    shared.media.stop_playing(waited);
                }
            }
        }
        if noun.beep_on_enter {
            room.beep(shared, call_sid);
        }
        if let (false, Some((url, method))) = (room.started, &noun.wait) {
            // Waiting for someone who starts the room: its waitUrl plays meanwhile.
            play(
                (shared, self),
                &sid,
                Playing::Music(call_sid.clone()),
                url,
                Some(*method),
            );
        }
        tracing::info!(conference_sid = %sid, call_sid = %call_sid, "worker: joined");
        sid
    }

    /// `call_sid` leaves the room (hung up, redirected, removed). The room ends when the last
    /// one leaves, or when someone with `endConferenceOnExit` does: everyone else leaves it
    /// then and goes on with their RCML.
    pub(crate) fn leave(&self, shared: &Shared, sid: &ConferenceSid, call_sid: &CallSid) {
        shared.media.leave_room(sid, call_sid);
        let mut inner = self.inner.lock().unwrap();
        let Some(room) = inner.rooms.get_mut(sid) else {
            return;
        };
        let Some(member) = room.members.remove(call_sid) else {
            return;
        };
        room.report(sid, |seq| ConferenceEventKind::ParticipantLeft {
            seq,
            call_sid: call_sid.clone(),
        });
        let reason = if member.state.end_conference_on_exit {
            EndReason::ParticipantWithEndConferenceOnExitLeft
        } else if room.members.is_empty() {
            EndReason::LastParticipantLeft
        } else {
            if member.beep_on_exit {
                room.beep(shared, call_sid);
            }
            return;
        };
        end(&mut inner, sid, reason, Some(call_sid.clone()));
    }

    /// Plays `prompt` (fetched for `what`) to whom it is for, if they are still there and (for
    /// music) still waiting or on hold.
    fn play_to(&self, shared: &Shared, sid: &ConferenceSid, what: &Playing, prompt: Prompt) {
        let inner = self.inner.lock().unwrap();
        let Some(room) = inner.rooms.get(sid) else {
            return;
        };
        let listeners: Vec<&CallSid> = match what {
            Playing::Music(call_sid) => room
                .members
                .get(call_sid)
                .filter(|m| m.state.hold || !room.started)
                .map(|_| call_sid)
                .into_iter()
                .collect(),
            Playing::Announcement(Some(call_sid)) => room
                .members
                .get_key_value(call_sid)
                .map(|(c, _)| c)
                .into_iter()
                .collect(),
            Playing::Announcement(None) => room.members.keys().collect(),
        };
        for call_sid in listeners {
            shared.media.play(call_sid, room_play(), prompt.clone());
        }
    }

    /// An announcement finished (or could not be played): reported in the room's order.
    fn announced(&self, sid: &ConferenceSid, call_sid: Option<CallSid>, completed: bool) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(room) = inner.rooms.get_mut(sid) {
            room.report(sid, |seq| ConferenceEventKind::Announcement {
                seq,
                call_sid,
                completed,
            });
        }
    }

    /// Carries out a conference command (docs/messages.md, "Conference commands") and reports
    /// its outcome in the conference's group.
    pub(crate) fn command(self: &Arc<Self>, shared: &Shared, command: ConferenceCommand) {
        let mut inner = self.inner.lock().unwrap();
        let sid = command.conference_sid.clone();
        let outcome = |reason: Option<&str>| {
            let kind = match reason {
                None => ConferenceEventKind::CommandApplied {
                    intent_sid: command.intent_sid.clone(),
                    seq: command.seq,
                },
                Some(reason) => ConferenceEventKind::CommandRejected {
                    intent_sid: command.intent_sid.clone(),
                    seq: command.seq,
                    reason: reason.into(),
                },
            };
            ConferenceEvent {
                version: EVENT_VERSION,
                conference_sid: sid.clone(),
                timestamp: Timestamp::now().millis(),
                kind,
            }
        };
        let Some(room) = inner.rooms.get_mut(&sid) else {
            // Ended (or never here): its events' forwarder is gone; say so directly.
            let event = outcome(Some("conference-ended"));
            let (sender, receiver) = mpsc::unbounded_channel();
            let _ = sender.send(event);
            drop(sender);
            tokio::spawn(forward(shared.clone(), receiver));
            return;
        };
        let (last_seq, last_intent) = &room.last_command;
        if command.seq == *last_seq && last_intent.as_ref() == Some(&command.intent_sid) {
            return; // the command applied last, delivered again
        }
        if command.seq <= *last_seq {
            let _ = room.events.send(outcome(Some("superseded")));
            return;
        }
        let p = &command.parameters;
        let member = p.call_sid.as_ref().and_then(|c| room.members.get_mut(c));
        let applied = match (command.kind, member) {
            (ConferenceCommandType::ParticipantUpdate, Some(member)) => {
                if let Some(beep) = p.beep_on_exit {
                    member.beep_on_exit = beep;
                }
                let state = &mut member.state;
                let was_on_hold = state.hold;
                if let Some(muted) = p.muted {
                    state.muted = muted;
                }
                if let Some(hold) = p.hold {
                    state.hold = hold;
                }
                if let Some(coaching) = p.coaching {
                    state.coaching = coaching;
                    if !coaching {
                        state.call_sid_to_coach = None;
                    }
                }
                if let Some(coached) = &p.call_sid_to_coach {
                    state.call_sid_to_coach = Some(coached.clone());
                }
                if let Some(end) = p.end_conference_on_exit {
                    state.end_conference_on_exit = end;
                }
                let state = state.clone();
                shared.media.room(&sid, &heard(&state, room.started));
                if was_on_hold && !state.hold && room.started {
                    shared.media.stop_playing(&state.call_sid); // its hold music
                }
                if let (Some(true), Some(url)) = (p.hold, &p.hold_url) {
                    let music = Playing::Music(state.call_sid.clone());
                    play((shared, self), &sid, music, url, p.hold_method);
                }
                if let Some(url) = &p.announce_url {
                    let announcement = Playing::Announcement(Some(state.call_sid.clone()));
                    play((shared, self), &sid, announcement, url, p.announce_method);
                }
                room.report(&sid, |seq| ConferenceEventKind::ParticipantUpdated {
                    seq,
                    participant: state,
                });
                true
            }
            (ConferenceCommandType::ParticipantRemove, Some(member)) => {
                // The leg hangs up, and leaves the room as it ends.
                let _ = member.leg.send(Message::HangUp);
                true
            }
            (
                ConferenceCommandType::ParticipantUpdate | ConferenceCommandType::ParticipantRemove,
                None,
            ) => {
                let _ = room.events.send(outcome(Some("participant-left")));
                return;
            }
            (ConferenceCommandType::ConferenceAnnounce, _) => {
                if let Some(url) = &p.announce_url {
                    play(
                        (shared, self),
                        &sid,
                        Playing::Announcement(None),
                        url,
                        p.announce_method,
                    );
                }
                true
            }
            (ConferenceCommandType::ConferenceEnd, _) => false,
        };
        room.last_command = (command.seq, Some(command.intent_sid.clone()));
        let _ = room.events.send(outcome(None));
        if !applied {
            end(&mut inner, &sid, EndReason::ConferenceEndedViaApi, None);
        }
    }
}

/// A participant's state as the media is told it: until the room starts, everyone in it waits
/// as if on hold (Twilio's participants hear the wait music, not each other, until someone
/// who starts the conference joins).
fn heard(state: &ParticipantState, started: bool) -> ParticipantState {
    ParticipantState {
        hold: state.hold || !started,
        ..state.clone()
    }
}

/// What is played in a room.
enum Playing {
    /// To a participant on hold, or waiting for the room to start.
    Music(CallSid),
    /// To one participant, or to everyone.
    Announcement(Option<CallSid>),
}

/// Fetches what `url` says to play in the room, and has the media play it: an audio file, or
/// the first `<Play>` or `<Say>` of an RCML document (music loops). Music that cannot be
/// fetched falls back to the default music (the media's: silence on the SIP/RTP worker); an
/// announcement is reported as ended, or as failed if it could not be fetched.
fn play(
    (shared, rooms): (&Shared, &SharedRooms),
    sid: &ConferenceSid,
    what: Playing,
    url: &teleapi_domain::WebhookUrl,
    method: Option<teleapi_domain::Method>,
) {
    let mut params = vec![("ConferenceSid", sid.to_string())];
    let call_sid = match &what {
        Playing::Music(call) | Playing::Announcement(Some(call)) => Some(call.clone()),
        Playing::Announcement(None) => None,
    };
    if let Some(call_sid) = &call_sid {
        params.push(("CallSid", call_sid.to_string()));
    }
    let request = match method.unwrap_or_default() {
        teleapi_domain::Method::Get => shared.http.get(url.as_str()).query(&params),
        teleapi_domain::Method::Post => shared.http.post(url.as_str()).form(&params),
    };
    let (sid, rooms, shared) = (sid.clone(), rooms.clone(), shared.clone());
    let url = url.to_string();
    tokio::spawn(async move {
        let answer = request
            .send()
            .await
            .ok()
            .filter(|a| a.status().is_success());
        let fetched = answer.is_some();
        let music = matches!(what, Playing::Music(_));
        let prompt = match answer {
            Some(answer) => prompt_of(answer, &url, music).await,
            None => None,
        };
        if let Some(prompt) = prompt {
            rooms.play_to(&shared, &sid, &what, prompt);
        }
        match what {
            Playing::Music(_) => {
                tracing::info!(conference_sid = %sid, fetched, "worker: hold music (the default if not fetched)");
            }
            Playing::Announcement(_) => rooms.announced(&sid, call_sid, fetched),
        }
    });
}

/// What an answer for a room says to play: an audio file is played from `url`; an RCML
/// document's first `<Play>` or `<Say>` (a relative `<Play>` against `url`). Music loops.
async fn prompt_of(answer: reqwest::Response, url: &str, music: bool) -> Option<Prompt> {
    let content_type = answer
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let loops = |given: u32| if music { 0 } else { given };
    if content_type.starts_with("audio/") {
        return Some(Prompt::Play {
            url: url.to_owned(),
            loops: loops(1),
        });
    }
    let body = crate::fetch::bounded_body(answer, crate::fetch::MAX_DOCUMENT_BYTES)
        .await
        .ok()?;
    let (verbs, _) = rcml::parse(std::str::from_utf8(&body).ok()?).ok()?;
    verbs.into_iter().find_map(|verb| match verb {
        Verb::Prompt(Prompt::Play {
            url: file,
            loops: n,
        }) => Some(Prompt::Play {
            url: url::Url::parse(url)
                .and_then(|base| base.join(&file))
                .map_or(file, |u| u.to_string()),
            loops: loops(n),
        }),
        Verb::Prompt(say @ Prompt::Say { .. }) => Some(say),
        _ => None,
    })
}

fn end(inner: &mut Inner, sid: &ConferenceSid, reason: EndReason, ending: Option<CallSid>) {
    let Some(mut room) = inner.rooms.remove(sid) else {
        return;
    };
    inner.ended.insert(sid.clone());
    inner
        .by_name
        .remove(&(room.account_sid.clone(), room.name.clone()));
    let members = std::mem::take(&mut room.members);
    for (call_sid, member) in members {
        room.report(sid, |seq| ConferenceEventKind::ParticipantLeft {
            seq,
            call_sid: call_sid.clone(),
        });
        let _ = member.leg.send(Message::ConferenceEnded(sid.clone()));
    }
    room.report(sid, |seq| ConferenceEventKind::Ended {
        seq,
        reason,
        call_sid_ending: ending,
    });
    tracing::info!(conference_sid = %sid, reason = %reason.as_str(), "worker: conference ended");
}

/// The rooms of one worker, shared by its legs.
pub(crate) type SharedRooms = Arc<Rooms>;
