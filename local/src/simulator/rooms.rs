//! Conference rooms, run for real: who is in each, who is muted, on hold or coaching whom, and
//! when a room starts and ends, reported as conference events (docs/messages.md, "Conference
//! events") in order, numbered per conference.
//!
//! A room is an account's `<Conference>` name while anyone is in it. Its events go through one
//! task per room, so that they reach the events queue in the order they were numbered even
//! when several legs join or leave at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use teleapi::domain::conference::{
    ConferenceEvent, ConferenceEventKind, EndReason, ParticipantState,
};
use teleapi::domain::event::EVENT_VERSION;
use teleapi::domain::sid::random_hex32;
use teleapi::domain::{AccountSid, CallSid, ConferenceSid, Timestamp};
use teleapi::ports::OutgoingMessage;
use tokio::sync::mpsc;

use super::rcml::ConferenceNoun;
use super::{Message, Shared};

/// Every room of this worker.
#[derive(Default)]
pub(super) struct Rooms {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    rooms: HashMap<ConferenceSid, Room>,
    by_name: HashMap<(AccountSid, String), ConferenceSid>,
}

struct Room {
    account_sid: AccountSid,
    name: String,
    seq: u64,
    started: bool,
    members: BTreeMap<CallSid, Member>,
    /// Events, numbered, on their way to the events queue in order.
    events: mpsc::UnboundedSender<ConferenceEvent>,
}

struct Member {
    state: ParticipantState,
    /// The leg, to tell it the conference ended.
    leg: mpsc::UnboundedSender<Message>,
    joined: u64,
}

impl Room {
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
        if shared.crashed.load(Ordering::SeqCst) {
            continue;
        }
        let message = OutgoingMessage::fifo(
            event.conference_sid.as_str(),
            random_hex32(),
            event.to_json(),
        );
        if let Err(err) = shared.events.send(None, &message).await {
            tracing::warn!(error = %err, "simulator: conference event not sent");
        }
    }
}

impl Rooms {
    /// `call_sid` joins the account's room `noun.name` (created if nobody is in it), as `noun`
    /// says; the room starts when someone who starts it is in.
    pub(super) fn join(
        &self,
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
                let sid = ConferenceSid::generate();
                let (events, receiver) = mpsc::unbounded_channel();
                tokio::spawn(forward(shared.clone(), receiver));
                let mut room = Room {
                    account_sid: account_sid.clone(),
                    name: noun.name.clone(),
                    seq: 0,
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
        let joined = room.seq + 1;
        room.report(&sid, |seq| ConferenceEventKind::ParticipantJoined {
            seq,
            participant: state.clone(),
        });
        room.members
            .insert(call_sid.clone(), Member { state, leg, joined });
        if noun.start_conference_on_enter && !room.started {
            room.started = true;
            room.report(&sid, |seq| ConferenceEventKind::Started { seq });
        }
        tracing::info!(conference_sid = %sid, call_sid = %call_sid, "simulator: joined");
        sid
    }

    /// `call_sid` leaves the room (hung up, redirected, removed). The room ends when the last
    /// one leaves, or when someone with `endConferenceOnExit` does: everyone else leaves it
    /// then and goes on with their RCML.
    pub(super) fn leave(&self, sid: &ConferenceSid, call_sid: &CallSid) {
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
            return;
        };
        end(&mut inner, sid, reason, Some(call_sid.clone()));
    }

    /// Ends the room: everyone leaves it (and goes on with their RCML).
    #[allow(dead_code)]
    pub(super) fn end(&self, sid: &ConferenceSid, reason: EndReason) {
        let mut inner = self.inner.lock().unwrap();
        end(&mut inner, sid, reason, None);
    }

    /// The participants of a room, in the order they joined (for tests and the dev routes).
    #[allow(dead_code)]
    pub(super) fn members(&self, sid: &ConferenceSid) -> Vec<ParticipantState> {
        let inner = self.inner.lock().unwrap();
        let Some(room) = inner.rooms.get(sid) else {
            return Vec::new();
        };
        let mut members: Vec<&Member> = room.members.values().collect();
        members.sort_by_key(|m| m.joined);
        members.into_iter().map(|m| m.state.clone()).collect()
    }
}

fn end(inner: &mut Inner, sid: &ConferenceSid, reason: EndReason, ending: Option<CallSid>) {
    let Some(mut room) = inner.rooms.remove(sid) else {
        return;
    };
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
    tracing::info!(conference_sid = %sid, reason = reason.as_str(), "simulator: conference ended");
}

/// The rooms of one worker, shared by its legs.
pub(super) type SharedRooms = Arc<Rooms>;
