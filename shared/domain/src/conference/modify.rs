//! Changing a live conference through the API: a participant's mute, hold, coaching and
//! announcements, removing a participant, announcing to the room, ending it. Each request is
//! read whole and checked before anything is written ([`ParticipantUpdate::parse`],
//! [`ConferenceUpdate::parse`]); each accepted one is planned as one write (the conference item
//! with its next intent number, the participant as it is to be, the intent) and one command to
//! the worker that runs the room ([`plan`]). Twilio's parameter names and rules.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::conference::{Conference, ConferenceStatus, Participant, ParticipantStatus};
use crate::error::{ConferenceStateError, InvalidParameter};
use crate::form::Form;
use crate::intent::{Intent, IntentAction, IntentStatus};
use crate::params::{Params, conflict, invalid};
use crate::sid::{CallSid, IntentSid, shorten};
use crate::time::Timestamp;
use crate::webhook::{AddressPolicy, Method, WebhookUrl};
use crate::wire::command::COMMAND_VERSION;
use crate::wire::conference::{
    ConferenceCommand, ConferenceCommandParameters, ConferenceCommandType,
};
/// What `POST …/Participants/{CallSid}` accepts.
pub const PARTICIPANT_PARAMETERS: [&str; 10] = [
    "Muted",
    "Hold",
    "HoldUrl",
    "HoldMethod",
    "AnnounceUrl",
    "AnnounceMethod",
    "Coaching",
    "CallSidToCoach",
    "BeepOnExit",
    "EndConferenceOnExit",
];

/// What `POST …/Conferences/{ConferenceSid}` accepts.
pub const CONFERENCE_PARAMETERS: [&str; 3] = ["Status", "AnnounceUrl", "AnnounceMethod"];

/// What `POST …/Conferences/{ConferenceSid}/Participants` accepts.
pub const ADD_PARTICIPANT_PARAMETERS: [&str; 20] = [
    "From",
    "To",
    "Timeout",
    "StatusCallback",
    "StatusCallbackMethod",
    "StatusCallbackEvent",
    "Muted",
    "Beep",
    "StartConferenceOnEnter",
    "EndConferenceOnExit",
    "Coaching",
    "CallSidToCoach",
    "Label",
    "WaitUrl",
    "WaitMethod",
    "EarlyMedia",
    "ConferenceStatusCallback",
    "ConferenceStatusCallbackMethod",
    "ConferenceStatusCallbackEvent",
    "CallerId",
];

/// The longest `Label`.
const MAX_LABEL: usize = 128;

/// A new participant: a call dialled with the API's create-call pipeline whose RCML, once
/// answered, joins it to the room as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddParticipant {
    /// The outgoing call, as `POST …/Calls` would take it (its `Twiml` joins the room).
    pub call: crate::call::CreateRequest,
    pub muted: bool,
    /// `true`, `false`, `onEnter` or `onExit`.
    pub beep: String,
    pub start_conference_on_enter: bool,
    pub end_conference_on_exit: bool,
    pub call_sid_to_coach: Option<CallSid>,
    pub label: Option<String>,
    /// `EarlyMedia`: accepted for Twilio's clients; no worker plays early media yet.
    pub early_media: bool,
    /// `WaitUrl`, `ConferenceStatusCallback*`, `CallerId`, canonical: the rest of the request.
    extra: BTreeMap<String, String>,
}

impl AddParticipant {
    /// Reads the request whole; `room` is the conference's name, which the new call's RCML
    /// joins.
    pub fn parse(form: &Form, room: &str, policy: AddressPolicy) -> Result<Self, InvalidParameter> {
        let raw = Params::collect(
            form,
            &ADD_PARTICIPANT_PARAMETERS,
            &["StatusCallbackEvent", "ConferenceStatusCallbackEvent"],
        )?;
        let coaching = raw.boolean("Coaching")?;
        let call_sid_to_coach: Option<CallSid> = raw
            .get("CallSidToCoach")
            .map(|value| {
                value.parse().map_err(|e: crate::sid::InvalidSid| {
                    invalid("CallSidToCoach", format!("CallSidToCoach: {e}"))
                })
            })
            .transpose()?;
        match (coaching, &call_sid_to_coach) {
            (Some(true), None) => {
                return Err(invalid(
                    "CallSidToCoach",
                    "Coaching=true needs CallSidToCoach, the participant to coach".into(),
                ));
            }
            (Some(false) | None, Some(_)) => {
                return Err(conflict(
                    "CallSidToCoach",
                    "CallSidToCoach names whom to coach; give it with Coaching=true".into(),
                ));
            }
            _ => {}
        }
        let beep = match raw.get("Beep") {
            None => "true".to_owned(),
            Some(value) => ["true", "false", "onEnter", "onExit"]
                .into_iter()
                .find(|b| b.eq_ignore_ascii_case(value))
                .ok_or_else(|| {
                    invalid(
                        "Beep",
                        format!(
                            "Beep must be true, false, onEnter or onExit, not '{}'",
                            shorten(value)
                        ),
                    )
                })?
                .to_owned(),
        };
        let label = raw.get("Label").map(str::to_owned);
        if let Some(label) = &label
            && (label.is_empty() || label.chars().count() > MAX_LABEL)
        {
            return Err(invalid(
                "Label",
                format!("Label must be 1 to {MAX_LABEL} characters"),
            ));
        }
        let muted = raw.boolean("Muted")?.unwrap_or(false);
        let start_conference_on_enter = raw.boolean("StartConferenceOnEnter")?.unwrap_or(true);
        let end_conference_on_exit = raw.boolean("EndConferenceOnExit")?.unwrap_or(false);
        // The call itself: create-call's own parameters and rules, with RCML that joins the
        // room as asked.
        let mut attributes = vec![
            ("muted", muted.to_string()),
            ("beep", beep.clone()),
            (
                "startConferenceOnEnter",
                start_conference_on_enter.to_string(),
            ),
            ("endConferenceOnExit", end_conference_on_exit.to_string()),
        ];
        if let Some(label) = &label {
            attributes.push(("participantLabel", label.clone()));
        }
        if let Some(coached) = &call_sid_to_coach {
            attributes.push(("coach", coached.to_string()));
        }
        let mut extra = BTreeMap::new();
        if let Some((url, method)) = raw.webhook("WaitUrl", "WaitMethod", policy)? {
            attributes.push(("waitUrl", url.to_string()));
            attributes.push(("waitMethod", method.as_str().to_owned()));
            extra.insert("WaitUrl".to_owned(), url.to_string());
            extra.insert("WaitMethod".to_owned(), method.as_str().to_owned());
        }
        let callback = raw.webhook(
            "ConferenceStatusCallback",
            "ConferenceStatusCallbackMethod",
            policy,
        )?;
        let mut events = Vec::new();
        for value in raw.get_all("ConferenceStatusCallbackEvent") {
            for name in value.split([' ', ',']).filter(|n| !n.is_empty()) {
                let event =
                    crate::conference::ConferenceCallbackEvent::parse(name).ok_or_else(|| {
                        invalid(
                            "ConferenceStatusCallbackEvent",
                            format!(
                                "ConferenceStatusCallbackEvent '{}' is not one of {}",
                                shorten(name),
                                crate::conference::ConferenceCallbackEvent::ALL
                                    .map(|e| e.as_str())
                                    .join(", ")
                            ),
                        )
                    })?;
                events.push(event.as_str());
            }
        }
        match (&callback, events.is_empty()) {
            (Some((url, method)), _) => {
                attributes.push(("statusCallback", url.to_string()));
                attributes.push(("statusCallbackMethod", method.as_str().to_owned()));
                extra.insert("ConferenceStatusCallback".to_owned(), url.to_string());
                extra.insert(
                    "ConferenceStatusCallbackMethod".to_owned(),
                    method.as_str().to_owned(),
                );
                if !events.is_empty() {
                    attributes.push(("statusCallbackEvent", events.join(" ")));
                    extra.insert("ConferenceStatusCallbackEvent".to_owned(), events.join(" "));
                }
            }
            (None, false) => {
                return Err(conflict(
                    "ConferenceStatusCallbackEvent",
                    "ConferenceStatusCallbackEvent says which events ConferenceStatusCallback \
                     hears; give it with ConferenceStatusCallback"
                        .into(),
                ));
            }
            (None, true) => {}
        }
        let early_media = raw.boolean("EarlyMedia")?.unwrap_or(true);
        let attributes: String = attributes
            .iter()
            .map(|(name, value)| format!(" {name}=\"{}\"", quick_xml::escape::escape(value)))
            .collect();
        let rcml = format!(
            "<Response><Dial><Conference{attributes}>{}</Conference></Dial></Response>",
            quick_xml::escape::escape(room)
        );
        // `CallerId` is what the called party sees, in place of `From`.
        let caller_id = raw.get("CallerId");
        if let Some(caller_id) = caller_id {
            extra.insert("CallerId".to_owned(), caller_id.to_owned());
        }
        let mut pairs: Vec<(String, String)> =
            ["To", "Timeout", "StatusCallback", "StatusCallbackMethod"]
                .into_iter()
                .filter_map(|name| raw.get(name).map(|v| (name.to_owned(), v.to_owned())))
                .collect();
        let from = match (caller_id, raw.get("From")) {
            (Some(caller_id), _) => Some(("From", caller_id)),
            (None, Some(from)) => Some(("From", from)),
            (None, None) => None,
        };
        if raw.get("From").is_none() && caller_id.is_some() {
            return Err(InvalidParameter::new(
                "From",
                crate::error::ProblemKind::Missing,
                "From is required (CallerId only changes what the called party sees)".into(),
            ));
        }
        if let Some((name, value)) = from {
            pairs.push((name.to_owned(), value.to_owned()));
        }
        for event in raw.get_all("StatusCallbackEvent") {
            pairs.push(("StatusCallbackEvent".into(), event.to_owned()));
        }
        pairs.push(("Twiml".into(), rcml));
        let call = crate::call::CreateRequest::parse(&Form::from_pairs(pairs), policy)?;
        Ok(Self {
            call,
            muted,
            beep,
            start_conference_on_enter,
            end_conference_on_exit,
            call_sid_to_coach,
            label,
            early_media,
            extra,
        })
    }

    /// The request in canonical form: the call's parameters, and how it joins.
    pub fn parameters(&self) -> BTreeMap<String, String> {
        let mut out = self.call.parameters();
        out.insert("Muted".into(), self.muted.to_string());
        out.insert("Beep".into(), self.beep.clone());
        out.insert(
            "StartConferenceOnEnter".into(),
            self.start_conference_on_enter.to_string(),
        );
        out.insert(
            "EndConferenceOnExit".into(),
            self.end_conference_on_exit.to_string(),
        );
        if let Some(label) = &self.label {
            out.insert("Label".into(), label.clone());
        }
        if let Some(coached) = &self.call_sid_to_coach {
            out.insert("CallSidToCoach".into(), coached.to_string());
        }
        out.insert("EarlyMedia".into(), self.early_media.to_string());
        out.extend(self.extra.clone());
        out
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParticipantUpdate {
    pub muted: Option<bool>,
    pub hold: Option<bool>,
    /// What the participant hears on hold; default hold music when absent or when it cannot be
    /// fetched.
    pub hold_music: Option<(WebhookUrl, Method)>,
    /// RCML played to this participant alone.
    pub announce: Option<(WebhookUrl, Method)>,
    pub coaching: Option<bool>,
    pub call_sid_to_coach: Option<CallSid>,
    pub beep_on_exit: Option<bool>,
    pub end_conference_on_exit: Option<bool>,
}

impl ParticipantUpdate {
    pub fn parse(form: &Form, policy: AddressPolicy) -> Result<Self, InvalidParameter> {
        let raw = Params::collect(form, &PARTICIPANT_PARAMETERS, &[])?;
        let update = Self {
            muted: raw.boolean("Muted")?,
            hold: raw.boolean("Hold")?,
            hold_music: raw.webhook("HoldUrl", "HoldMethod", policy)?,
            announce: raw.webhook("AnnounceUrl", "AnnounceMethod", policy)?,
            coaching: raw.boolean("Coaching")?,
            call_sid_to_coach: raw
                .get("CallSidToCoach")
                .map(|value| {
                    value.parse().map_err(|e: crate::sid::InvalidSid| {
                        invalid("CallSidToCoach", format!("CallSidToCoach: {e}"))
                    })
                })
                .transpose()?,
            beep_on_exit: raw.boolean("BeepOnExit")?,
            end_conference_on_exit: raw.boolean("EndConferenceOnExit")?,
        };
        if update == Self::default() {
            return Err(invalid(
                "Muted",
                format!(
                    "The request changes nothing: give at least one of {}",
                    PARTICIPANT_PARAMETERS.join(", ")
                ),
            ));
        }
        if update.hold == Some(false) && update.hold_music.is_some() {
            return Err(conflict(
                "HoldUrl",
                "HoldUrl is what a participant on hold hears; it cannot be combined with Hold=false"
                    .into(),
            ));
        }
        match (update.coaching, &update.call_sid_to_coach) {
            (Some(true), None) => {
                return Err(invalid(
                    "CallSidToCoach",
                    "Coaching=true needs CallSidToCoach, the participant to coach".into(),
                ));
            }
            (Some(false), Some(_)) => {
                return Err(conflict(
                    "CallSidToCoach",
                    "CallSidToCoach names whom to coach; it cannot be combined with Coaching=false"
                        .into(),
                ));
            }
            _ => {}
        }
        Ok(update)
    }

    /// The request in canonical form, as the intent records it.
    pub fn parameters(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut flag = |name: &str, value: Option<bool>| {
            if let Some(value) = value {
                out.insert(name.to_owned(), value.to_string());
            }
        };
        flag("Muted", self.muted);
        flag("Hold", self.hold);
        flag("Coaching", self.coaching);
        flag("BeepOnExit", self.beep_on_exit);
        flag("EndConferenceOnExit", self.end_conference_on_exit);
        let mut webhook = |url: &str, method: &str, value: &Option<(WebhookUrl, Method)>| {
            if let Some((u, m)) = value {
                out.insert(url.to_owned(), u.to_string());
                out.insert(method.to_owned(), m.as_str().to_owned());
            }
        };
        webhook("HoldUrl", "HoldMethod", &self.hold_music);
        webhook("AnnounceUrl", "AnnounceMethod", &self.announce);
        if let Some(coached) = &self.call_sid_to_coach {
            out.insert("CallSidToCoach".into(), coached.to_string());
        }
        out
    }
}

/// A conference's change, as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConferenceUpdate {
    /// `Status=completed`: everyone leaves; their calls go on with the RCML after `<Dial>`.
    End,
    /// `AnnounceUrl`: RCML played to everyone in the room.
    Announce(WebhookUrl, Method),
}

impl ConferenceUpdate {
    pub fn parse(form: &Form, policy: AddressPolicy) -> Result<Self, InvalidParameter> {
        let raw = Params::collect(form, &CONFERENCE_PARAMETERS, &[])?;
        let announce = raw.webhook("AnnounceUrl", "AnnounceMethod", policy)?;
        let end = raw
            .get("Status")
            .map(|value| {
                if value.eq_ignore_ascii_case("completed") {
                    Ok(())
                } else {
                    Err(invalid(
                        "Status",
                        format!("Status must be completed, not '{}'", shorten(value)),
                    ))
                }
            })
            .transpose()?;
        match (end, announce) {
            (Some(()), Some(_)) => Err(conflict(
                "Status",
                "Status=completed ends the conference and cannot be combined with AnnounceUrl"
                    .into(),
            )),
            (Some(()), None) => Ok(Self::End),
            (None, Some((url, method))) => Ok(Self::Announce(url, method)),
            (None, None) => Err(invalid(
                "Status",
                "The request changes nothing: give Status=completed or AnnounceUrl".into(),
            )),
        }
    }

    pub fn parameters(&self) -> BTreeMap<String, String> {
        match self {
            Self::End => BTreeMap::from([("Status".to_owned(), "completed".to_owned())]),
            Self::Announce(url, method) => BTreeMap::from([
                ("AnnounceUrl".to_owned(), url.to_string()),
                ("AnnounceMethod".to_owned(), method.as_str().to_owned()),
            ]),
        }
    }
}

/// What a request asks of a conference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConferenceChangeRequest {
    Participant(CallSid, ParticipantUpdate),
    /// `DELETE …/Participants/{CallSid}`: the participant leaves and its call hangs up.
    Remove(CallSid),
    Conference(ConferenceUpdate),
}

/// Why a conference change cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    State(#[from] ConferenceStateError),
    /// The call was never a participant of the conference (404, as its `GET` answers).
    #[error("The participant {0} was not found in the conference")]
    NoSuchParticipant(String),
    #[error(transparent)]
    Invalid(#[from] InvalidParameter),
}

/// An accepted change: what to write (in one conditional write) and the command to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedConference {
    /// The conference with its next intent number.
    pub conference: Conference,
    /// The participant as it is to be once the worker applies the change (the answer shows
    /// it; the store keeps what the worker reports).
    pub participant: Option<Participant>,
    pub intent: Intent,
}

/// Plans `request` on the conference as stored, and the room's `connected` participants (the
/// one the request names among them). Refused with 409 if the room or the participant is gone;
/// 400 if coaching names no one else in the room.
pub fn plan(
    conference: &Conference,
    participants: &[Participant],
    request: &ConferenceChangeRequest,
    intent_sid: IntentSid,
    now: Timestamp,
    retention: Duration,
) -> Result<PlannedConference, PlanError> {
    if conference.status == ConferenceStatus::Completed {
        return Err(ConferenceStateError::Ended(conference.sid.to_string()).into());
    }
    // The participant named: connected, else 409 if it left, 404 if it never joined.
    let present = |sid: &CallSid| {
        participants
            .iter()
            .find(|p| p.state.call_sid == *sid && p.status == ParticipantStatus::Connected)
    };
    let named = |sid: &CallSid| {
        present(sid).ok_or_else(|| {
            if participants.iter().any(|p| p.state.call_sid == *sid) {
                PlanError::from(ConferenceStateError::ParticipantLeft(sid.to_string()))
            } else {
                PlanError::NoSuchParticipant(sid.to_string())
            }
        })
    };
    let mut next = conference.clone();
    next.seq += 1;
    next.version += 1;
    let mut parameters = CommandParametersBuilder::default();
    let (kind, action, call_parameters, participant) = match request {
        ConferenceChangeRequest::Participant(call_sid, update) => {
            let stored = named(call_sid)?;
            let mut after = stored.clone();
            let state = &mut after.state;
            if let Some(muted) = update.muted {
                state.muted = muted;
            }
            if let Some(hold) = update.hold {
                state.hold = hold;
            }
            if let Some(end) = update.end_conference_on_exit {
                state.end_conference_on_exit = end;
            }
            if let Some(coaching) = update.coaching {
                state.coaching = coaching;
                if !coaching {
                    state.call_sid_to_coach = None;
                }
            }
            if let Some(coached) = &update.call_sid_to_coach {
                if !state.coaching {
                    return Err(invalid(
                        "CallSidToCoach",
                        "CallSidToCoach needs Coaching=true: the participant is not coaching"
                            .into(),
                    )
                    .into());
                }
                if coached == call_sid || present(coached).is_none() {
                    return Err(invalid(
                        "CallSidToCoach",
                        format!(
                            "CallSidToCoach {coached} is not another participant of conference {}",
                            conference.sid
                        ),
                    )
                    .into());
                }
                state.call_sid_to_coach = Some(coached.clone());
            }
            after.date_updated = now;
            parameters.participant(call_sid, update);
            (
                ConferenceCommandType::ParticipantUpdate,
                IntentAction::ParticipantUpdate,
                update.parameters(),
                Some(after),
            )
        }
        ConferenceChangeRequest::Remove(call_sid) => {
            named(call_sid)?;
            parameters.0.call_sid = Some(call_sid.clone());
            (
                ConferenceCommandType::ParticipantRemove,
                IntentAction::ParticipantRemove,
                BTreeMap::from([("CallSid".to_owned(), call_sid.to_string())]),
                None,
            )
        }
        ConferenceChangeRequest::Conference(update) => {
            let (kind, action) = match update {
                ConferenceUpdate::End => (ConferenceCommandType::ConferenceEnd, IntentAction::End),
                ConferenceUpdate::Announce(url, method) => {
                    parameters.0.announce_url = Some(url.clone());
                    parameters.0.announce_method = Some(*method);
                    (
                        ConferenceCommandType::ConferenceAnnounce,
                        IntentAction::Announce,
                    )
                }
            };
            (kind, action, update.parameters(), None)
        }
    };
    let command = ConferenceCommand {
        version: COMMAND_VERSION,
        kind,
        conference_sid: conference.sid.clone(),
        account_sid: conference.account_sid.clone(),
        intent_sid: intent_sid.clone(),
        seq: next.seq,
        parameters: parameters.0,
    };
    let intent = Intent {
        sid: intent_sid,
        subject: conference.sid.clone().into(),
        account_sid: conference.account_sid.clone(),
        seq: next.seq,
        action,
        parameters: call_parameters,
        status: IntentStatus::Pending,
        reason: None,
        command: Some(crate::intent::IntentCommand::Conference(command)),
        queue: Some(conference.command_queue.clone()),
        date_created: now,
        date_updated: now,
        expires_at: now.plus(retention).whole_seconds(),
    };
    Ok(PlannedConference {
        conference: next,
        participant,
        intent,
    })
}

/// A participant command's parameters, from its request.
#[derive(Default)]
struct CommandParametersBuilder(ConferenceCommandParameters);

impl CommandParametersBuilder {
    fn participant(&mut self, call_sid: &CallSid, update: &ParticipantUpdate) {
        let p = &mut self.0;
        p.call_sid = Some(call_sid.clone());
        p.muted = update.muted;
        p.hold = update.hold;
        if let Some((url, method)) = &update.hold_music {
            p.hold_url = Some(url.clone());
            p.hold_method = Some(*method);
        }
        if let Some((url, method)) = &update.announce {
            p.announce_url = Some(url.clone());
            p.announce_method = Some(*method);
        }
        p.coaching = update.coaching;
        p.call_sid_to_coach = update.call_sid_to_coach.clone();
        p.beep_on_exit = update.beep_on_exit;
        p.end_conference_on_exit = update.end_conference_on_exit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conference::ParticipantState;
    use crate::{AccountSid, ConferenceSid};

    fn form(body: &str) -> Form {
        Form::parse(body.as_bytes()).unwrap()
    }

    fn participant_error(body: &str) -> String {
        ParticipantUpdate::parse(&form(body), AddressPolicy::default())
            .unwrap_err()
            .parameter
    }

    #[test]
    fn participant_requests_are_checked_whole() {
        let ok = ParticipantUpdate::parse(
            &form("Muted=TRUE&Hold=true&HoldUrl=https://a.example/music&HoldMethod=get"),
            AddressPolicy::default(),
        )
        .unwrap();
        assert_eq!(ok.muted, Some(true));
        assert_eq!(
            ok.parameters().get("HoldMethod").map(String::as_str),
            Some("GET")
        );
        for (body, parameter) in [
            ("", "Muted"),
            ("Muted=perhaps", "Muted"),
            ("Hold=false&HoldUrl=https://a.example/m", "HoldUrl"),
            ("HoldMethod=GET", "HoldMethod"),
            ("AnnounceUrl=ftp://a.example/x", "AnnounceUrl"),
            ("Coaching=true", "CallSidToCoach"),
            (
                "Coaching=false&CallSidToCoach=CA0123456789abcdef0123456789abcdef",
                "CallSidToCoach",
            ),
            ("Coaching=true&CallSidToCoach=CAnope", "CallSidToCoach"),
            ("Label=x", "Label"),
        ] {
            assert_eq!(participant_error(body), parameter, "{body}");
        }
    }

    #[test]
    fn conference_requests_are_checked_whole() {
        let parse = |body| ConferenceUpdate::parse(&form(body), AddressPolicy::default());
        assert_eq!(parse("Status=Completed").unwrap(), ConferenceUpdate::End);
        assert!(matches!(
            parse("AnnounceUrl=https://a.example/a").unwrap(),
            ConferenceUpdate::Announce(_, Method::Post)
        ));
        for (body, parameter) in [
            ("", "Status"),
            ("Status=in-progress", "Status"),
            ("Status=completed&AnnounceUrl=https://a.example/a", "Status"),
            ("AnnounceMethod=GET", "AnnounceMethod"),
        ] {
            assert_eq!(parse(body).unwrap_err().parameter, parameter, "{body}");
        }
    }

    fn room() -> (Conference, Vec<Participant>) {
        let sid = ConferenceSid::generate();
        let account = AccountSid::generate();
        let conference = Conference {
            sid: sid.clone(),
            account_sid: account.clone(),
            friendly_name: "room".into(),
            status: ConferenceStatus::InProgress,
            command_queue: "https://sqs.example/w.fifo".into(),
            worker: None,
            event_seq: 4,
            seq: 2,
            version: 7,
            date_created: Timestamp::from_millis(1),
            date_updated: Timestamp::from_millis(1),
            reason_ended: None,
            call_sid_ending: None,
            status_callback: None,
            expires_at: None,
        };
        let participants = (0..2)
            .map(|i| Participant {
                conference_sid: sid.clone(),
                account_sid: account.clone(),
                state: ParticipantState::new(CallSid::generate()),
                status: ParticipantStatus::Connected,
                event_seq: 2 + i,
                date_created: Timestamp::from_millis(1),
                date_updated: Timestamp::from_millis(1),
                expires_at: None,
            })
            .collect();
        (conference, participants)
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_participant_change_is_one_intent_of_the_conference_and_one_command() {
        let (conference, people) = room();
        let (agent, caller) = (&people[0].state.call_sid, &people[1].state.call_sid);
        let body = format!("Coaching=true&CallSidToCoach={caller}&Muted=true");
        let update = ParticipantUpdate::parse(&form(&body), AddressPolicy::default()).unwrap();
        let request = ConferenceChangeRequest::Participant(agent.clone(), update);
        let sid = IntentSid::generate();
        let now = Timestamp::from_millis(5_000);
        let planned = plan(&conference, &people, &request, sid.clone(), now, DAY).unwrap();
        assert_eq!((planned.conference.seq, planned.conference.version), (3, 8));
        let after = planned.participant.unwrap();
        assert!(after.state.muted && after.state.coaching);
        assert_eq!(after.state.call_sid_to_coach.as_ref(), Some(caller));
        assert_eq!(
            after.event_seq, people[0].event_seq,
            "the worker's report is to come"
        );
        let intent = planned.intent;
        assert_eq!(intent.subject, conference.sid.clone().into());
        assert_eq!(
            (intent.seq, intent.action),
            (3, IntentAction::ParticipantUpdate)
        );
        assert_eq!(intent.queue.as_deref(), Some("https://sqs.example/w.fifo"));
        let Some(crate::intent::IntentCommand::Conference(command)) = intent.command else {
            panic!("a conference command")
        };
        assert_eq!(command.kind, ConferenceCommandType::ParticipantUpdate);
        assert_eq!((command.seq, &command.intent_sid), (3, &sid));
        assert_eq!(command.parameters.call_sid.as_ref(), Some(agent));
        assert_eq!(command.parameters.muted, Some(true));
    }

    #[test]
    fn gone_rooms_and_participants_and_bad_coaching_are_refused() {
        let (mut conference, people) = room();
        let agent = people[0].state.call_sid.clone();
        let plan_with = |conference: &Conference, request: &ConferenceChangeRequest| {
            plan(
                conference,
                &people,
                request,
                IntentSid::generate(),
                Timestamp::from_millis(1),
                DAY,
            )
        };
        let stranger = CallSid::generate();
        let left = plan_with(
            &conference,
            &ConferenceChangeRequest::Remove(stranger.clone()),
        );
        assert!(
            matches!(left, Err(PlanError::NoSuchParticipant(_))),
            "never a participant: 404"
        );
        for coached in [&agent, &stranger] {
            let update = ParticipantUpdate {
                coaching: Some(true),
                call_sid_to_coach: Some(coached.clone()),
                ..Default::default()
            };
            let request = ConferenceChangeRequest::Participant(agent.clone(), update);
            assert!(matches!(
                plan_with(&conference, &request),
                Err(PlanError::Invalid(p)) if p.parameter == "CallSidToCoach"
            ));
        }
        conference.status = ConferenceStatus::Completed;
        let end = ConferenceChangeRequest::Conference(ConferenceUpdate::End);
        assert!(matches!(
            plan_with(&conference, &end),
            Err(PlanError::State(ConferenceStateError::Ended(_)))
        ));
    }
}
