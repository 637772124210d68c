//! What the application is told about a conference: the requests of its StatusCallback.

use super::*;
use crate::time::Timestamp;
use crate::wire::callback::{CallbackJob, JOB_VERSION, JobKind};
use crate::wire::conference::ConferenceEvent;
use crate::wire::conference::ConferenceEventKind;
use std::collections::BTreeMap;

/// The StatusCallback requests `event` makes, given the conference as stored and the
/// participant it is about as it was before: Twilio's `StatusCallbackEvent` names and
/// parameters, numbered by the event's `seq` (`SequenceNumber`), each with a job id stable
/// across redeliveries of the event.
pub fn callbacks(
    conference: &Conference,
    before: Option<&Participant>,
    event: &ConferenceEvent,
    now: Timestamp,
) -> Vec<CallbackJob> {
    use ConferenceCallbackEvent as E;
    let Some(callback) = &conference.status_callback else {
        return Vec::new();
    };
    let participant = |state: &ParticipantState| {
        let mut p = BTreeMap::new();
        p.insert("CallSid".to_owned(), state.call_sid.to_string());
        p.insert("Muted".to_owned(), state.muted.to_string());
        p.insert("Hold".to_owned(), state.hold.to_string());
        p.insert("Coaching".to_owned(), state.coaching.to_string());
        p.insert(
            "StartConferenceOnEnter".to_owned(),
            state.start_conference_on_enter.to_string(),
        );
        p.insert(
            "EndConferenceOnExit".to_owned(),
            state.end_conference_on_exit.to_string(),
        );
        if let Some(label) = &state.label {
            p.insert("ParticipantLabel".to_owned(), label.clone());
        }
        if let Some(coached) = &state.call_sid_to_coach {
            p.insert("CallSidToCoach".to_owned(), coached.to_string());
        }
        p
    };
    let mut requests: Vec<(E, &str, BTreeMap<String, String>)> = Vec::new();
    match &event.kind {
        ConferenceEventKind::Started { .. } => {
            requests.push((E::Start, "conference-start", BTreeMap::new()));
        }
        ConferenceEventKind::Ended {
            reason,
            call_sid_ending,
            ..
        } => {
            let mut p = BTreeMap::from([(
                "ReasonConferenceEnded".to_owned(),
                reason.as_str().to_owned(),
            )]);
            if let Some(ending) = call_sid_ending {
                p.insert("CallSidEndingConference".to_owned(), ending.to_string());
            }
            requests.push((E::End, "conference-end", p));
        }
        ConferenceEventKind::ParticipantJoined { participant: p, .. } => {
            requests.push((E::Join, "participant-join", participant(p)));
        }
        ConferenceEventKind::ParticipantLeft { call_sid, .. } => {
            let p = before.map_or_else(
                || BTreeMap::from([("CallSid".to_owned(), call_sid.to_string())]),
                |b| participant(&b.state),
            );
            requests.push((E::Leave, "participant-leave", p));
        }
        ConferenceEventKind::ParticipantUpdated { participant: p, .. } => {
            let was = before.map(|b| &b.state);
            if was.is_none_or(|w| w.muted != p.muted) {
                let name = if p.muted {
                    "participant-mute"
                } else {
                    "participant-unmute"
                };
                requests.push((E::Mute, name, participant(p)));
            }
            if was.is_none_or(|w| w.hold != p.hold) {
                let name = if p.hold {
                    "participant-hold"
                } else {
                    "participant-unhold"
                };
                requests.push((E::Hold, name, participant(p)));
            }
            let modified = was.is_none_or(|w| {
                (w.coaching, &w.call_sid_to_coach, w.end_conference_on_exit)
                    != (p.coaching, &p.call_sid_to_coach, p.end_conference_on_exit)
            });
            if modified {
                requests.push((E::Modify, "participant-modify", participant(p)));
            }
        }
        ConferenceEventKind::Announcement {
            call_sid,
            completed,
            ..
        } => {
            let name = if *completed {
                "announcement-end"
            } else {
                "announcement-fail"
            };
            let mut p = BTreeMap::new();
            if let Some(call_sid) = call_sid {
                p.insert("CallSid".to_owned(), call_sid.to_string());
            }
            requests.push((E::Announcement, name, p));
        }
        _ => {}
    }
    let seq = event.kind.seq();
    requests
        .into_iter()
        .filter(|(subscription, _, _)| callback.events.contains(subscription))
        .map(|(_, name, mut parameters)| {
            parameters.insert("ConferenceSid".into(), conference.sid.to_string());
            parameters.insert("FriendlyName".into(), conference.friendly_name.clone());
            parameters.insert("AccountSid".into(), conference.account_sid.to_string());
            parameters.insert("StatusCallbackEvent".into(), name.to_owned());
            parameters.insert("SequenceNumber".into(), seq.to_string());
            parameters.insert("Timestamp".into(), now.rfc2822());
            CallbackJob {
                version: JOB_VERSION,
                job_id: format!("{}-e{seq}-{name}", conference.sid),
                kind: JobKind::StatusCallback,
                account_sid: conference.account_sid.clone(),
                call_sid: parameters.get("CallSid").and_then(|c| c.parse().ok()),
                conference_sid: Some(conference.sid.clone()),
                url: callback.url.clone(),
                method: callback.method,
                parameters,
                attempts: 0,
                history: Vec::new(),
            }
        })
        .collect()
}
