//! What a room's events do to a conference and its participants, and what a dead worker's
//! rooms become.

use super::*;
use crate::time::Timestamp;
use crate::wire::conference::ConferenceEvent;
use crate::wire::conference::ConferenceEventKind;
use crate::wire::event::EVENT_VERSION;
use std::time::Duration;

/// One write: of the conference item (a conference event) or of one participant's item (a
/// participant event). A room's participants are items of their own, so that the conference
/// item (and the account's listing of conferences) changes only with the conference's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConferenceChange {
    /// The conference as it will be, written only if the stored one still has
    /// `expected_version` (`None`: only if there is none yet).
    Conference {
        conference: Conference,
        expected_version: Option<u64>,
    },
    /// The participant as it will be, written only if the stored one (if any) applied an
    /// earlier event than this one (`Participant::event_seq`).
    Participant(Participant),
}

/// What `event` does to the conference as stored (`current`, and `participant`, the stored item
/// of the participant the event is about): the write to make, or why there is none. Ended
/// conferences, and participants who left, are kept for `retention`.
pub fn apply(
    current: Option<&Conference>,
    participant: Option<&Participant>,
    event: &ConferenceEvent,
    now: Timestamp,
    retention: Duration,
) -> Result<ConferenceChange, String> {
    let seq = event.kind.seq();
    let sid = &event.conference_sid;
    let Some(current) = current else {
        let ConferenceEventKind::Created {
            account_sid,
            friendly_name,
            command_queue_url,
            worker_id,
            status_callback,
            ..
        } = &event.kind
        else {
            return Err(format!("{} for unknown conference {sid}", event.name()));
        };
        return Ok(ConferenceChange::Conference {
            conference: Conference {
                sid: sid.clone(),
                account_sid: account_sid.clone(),
                friendly_name: friendly_name.clone(),
                status: ConferenceStatus::Init,
                command_queue: command_queue_url.clone(),
                worker: worker_id.clone(),
                event_seq: seq,
                seq: 0,
                version: 1,
                date_created: now,
                date_updated: now,
                reason_ended: None,
                call_sid_ending: None,
                status_callback: status_callback.clone(),
                expires_at: None,
            },
            expected_version: None,
        });
    };
    let last = match event.kind.call_sid() {
        Some(_) => participant.map_or(0, |p| p.event_seq),
        None => current.event_seq,
    };
    if seq <= last {
        return Err(format!(
            "{} #{seq} of {sid}: duplicate or stale (last applied #{last})",
            event.name()
        ));
    }
    if current.status == ConferenceStatus::Completed {
        return Err(format!(
            "{} of {sid}: the conference has ended",
            event.name()
        ));
    }
    let mut next = current.clone();
    next.event_seq = seq;
    next.version += 1;
    next.date_updated = now;
    let participant_now = |state: &ParticipantState, status: ParticipantStatus| Participant {
        conference_sid: sid.clone(),
        account_sid: current.account_sid.clone(),
        state: state.clone(),
        status,
        event_seq: seq,
        date_created: participant.map_or(now, |stored| stored.date_created),
        date_updated: now,
        expires_at: (status == ParticipantStatus::Complete)
            .then(|| now.plus(retention).whole_seconds()),
    };
    match &event.kind {
        ConferenceEventKind::Created { .. } => {
            return Err(format!("conference.created of {sid}: it exists already"));
        }
        ConferenceEventKind::Announcement { .. } => {
            return Err(format!("{} of {sid}: nothing to record", event.name()));
        }
        ConferenceEventKind::CommandApplied { .. }
        | ConferenceEventKind::CommandRejected { .. } => {
            return Err(format!("{} of {sid}: settles an intent", event.name()));
        }
        ConferenceEventKind::Started { .. } => next.status = ConferenceStatus::InProgress,
        ConferenceEventKind::Ended {
            reason,
            call_sid_ending,
            ..
        } => {
            next.status = ConferenceStatus::Completed;
            next.reason_ended = Some(*reason);
            next.call_sid_ending = call_sid_ending.clone();
            next.expires_at = Some(now.plus(retention).whole_seconds());
        }
        ConferenceEventKind::ParticipantJoined { participant: p, .. }
        | ConferenceEventKind::ParticipantUpdated { participant: p, .. } => {
            return Ok(ConferenceChange::Participant(participant_now(
                p,
                ParticipantStatus::Connected,
            )));
        }
        ConferenceEventKind::ParticipantLeft { call_sid, .. } => {
            let Some(stored) = participant else {
                return Err(format!(
                    "participant.left of {sid}: {call_sid} never joined"
                ));
            };
            return Ok(ConferenceChange::Participant(participant_now(
                &stored.state,
                ParticipantStatus::Complete,
            )));
        }
    }
    Ok(ConferenceChange::Conference {
        conference: next,
        expected_version: Some(current.version),
    })
}

/// The events a worker that lost `conference` (its lease ran out) can no longer send, for the
/// control plane to send in its place, each with its deduplication id: everyone still in the
/// room (`participants`) leaves, then the room ends, `last-participant-left`, named by the last
/// to leave. Numbered after every event applied to the room and to its participants, so that
/// the worker's own reports still on their way (ahead in the room's group) come first.
pub fn lost_room(
    conference: &Conference,
    participants: &[Participant],
    now: Timestamp,
) -> Vec<(String, ConferenceEvent)> {
    let last_applied = participants
        .iter()
        .map(|p| p.event_seq)
        .fold(conference.event_seq, u64::max);
    let event = |kind| ConferenceEvent {
        version: EVENT_VERSION,
        conference_sid: conference.sid.clone(),
        timestamp: now.millis(),
        kind,
    };
    let sid = &conference.sid;
    let mut events: Vec<(String, ConferenceEvent)> = participants
        .iter()
        .zip(last_applied + 1..)
        .map(|(p, seq)| {
            let call_sid = p.state.call_sid.clone();
            let left = ConferenceEventKind::ParticipantLeft { seq, call_sid };
            (format!("{sid}-{}-lost", p.state.call_sid), event(left))
        })
        .collect();
    let ended = ConferenceEventKind::Ended {
        seq: last_applied + participants.len() as u64 + 1,
        reason: EndReason::LastParticipantLeft,
        call_sid_ending: participants.last().map(|p| p.state.call_sid.clone()),
    };
    events.push((format!("{sid}-lost"), event(ended)));
    events
}
