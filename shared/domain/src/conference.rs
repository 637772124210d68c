//! Conferences and their participants, as the control plane records them from what the media
//! worker that runs each room reports (docs/messages.md, "Conference events"), and the pure
//! rules that turn one such event into one write ([`apply`]).
//!
//! A room is run by one worker. It names the conference (`CF` + 32 hex) when its first
//! participant arrives and reports, in order on the events queue (group = ConferenceSid),
//! `conference.created`, `participant.joined`, `participant.updated`, `participant.left`,
//! `conference.started` and `conference.ended`, numbered per conference from 1: as for calls, an
//! event applies only if its `seq` is above the last one applied, so that a duplicate or a stale
//! event changes nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::callback::{CallbackJob, JOB_VERSION, JobKind};
use super::command::{COMMAND_VERSION, CommandDecodeError};
use super::error::InvalidParameter;
use super::event::{EVENT_VERSION, EventDecodeError};
use super::form::Form;
use super::listing::{Paging, parse_time};
use super::params::{Params, conflict, invalid};
use super::sid::shorten;
use super::sid::{AccountSid, CallSid, ConferenceSid, IntentSid};
use super::time::Timestamp;
use super::webhook::{Method, WebhookUrl};
use super::worker::WorkerId;

/// Twilio's conference statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConferenceStatus {
    /// Participants are waiting for one who starts it (`startConferenceOnEnter`).
    Init,
    InProgress,
    Completed,
}

impl ConferenceStatus {
    pub const ALL: [ConferenceStatus; 3] = [Self::Init, Self::InProgress, Self::Completed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// Why a conference ended, in Twilio's words (`reason_conference_ended`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    ConferenceEndedViaApi,
    ParticipantWithEndConferenceOnExitLeft,
    LastParticipantLeft,
    LastParticipantKicked,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConferenceEndedViaApi => "conference-ended-via-api",
            Self::ParticipantWithEndConferenceOnExitLeft => {
                "participant-with-end-conference-on-exit-left"
            }
            Self::LastParticipantLeft => "last-participant-left",
            Self::LastParticipantKicked => "last-participant-kicked",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::ConferenceEndedViaApi,
            Self::ParticipantWithEndConferenceOnExitLeft,
            Self::LastParticipantLeft,
            Self::LastParticipantKicked,
        ]
        .into_iter()
        .find(|r| r.as_str() == value)
    }
}

/// What a conference's StatusCallback is told about (`statusCallbackEvent` of `<Conference>`:
/// Twilio's names). `speaker` is accepted and never sent: the simulator has no audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConferenceCallbackEvent {
    Start,
    End,
    Join,
    Leave,
    Mute,
    Hold,
    Modify,
    Speaker,
    Announcement,
}

impl ConferenceCallbackEvent {
    pub const ALL: [ConferenceCallbackEvent; 9] = [
        Self::Start,
        Self::End,
        Self::Join,
        Self::Leave,
        Self::Mute,
        Self::Hold,
        Self::Modify,
        Self::Speaker,
        Self::Announcement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::End => "end",
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Mute => "mute",
            Self::Hold => "hold",
            Self::Modify => "modify",
            Self::Speaker => "speaker",
            Self::Announcement => "announcement",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(value))
    }
}

/// Where a conference's events are reported, from the `<Conference>` that created the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConferenceCallback {
    pub url: WebhookUrl,
    #[serde(default)]
    pub method: Method,
    /// `start` and `end` when the RCML named none.
    #[serde(default = "default_callback_events")]
    pub events: Vec<ConferenceCallbackEvent>,
}

fn default_callback_events() -> Vec<ConferenceCallbackEvent> {
    vec![ConferenceCallbackEvent::Start, ConferenceCallbackEvent::End]
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conference {
    pub sid: ConferenceSid,
    pub account_sid: AccountSid,
    /// The room's name in RCML (`<Conference>name</Conference>`).
    pub friendly_name: String,
    pub status: ConferenceStatus,
    /// The commands queue of the worker that runs the room.
    pub command_queue: String,
    pub worker: Option<WorkerId>,
    /// `seq` of the last conference-level event applied (participants keep their own).
    pub event_seq: u64,
    /// Sequence number of the conference's latest intent (its changes through the API); 0
    /// before the first.
    pub seq: u64,
    /// Bumped by every write: the optimistic-concurrency token.
    pub version: u64,
    pub date_created: Timestamp,
    pub date_updated: Timestamp,
    pub reason_ended: Option<EndReason>,
    /// The participant whose leaving ended it, when one did.
    pub call_sid_ending: Option<CallSid>,
    /// Where its events are reported (`statusCallback` of the `<Conference>` that created it).
    pub status_callback: Option<ConferenceCallback>,
    /// When the store may forget it (set when it completes; DynamoDB TTL, whole seconds).
    pub expires_at: Option<Timestamp>,
}

/// Twilio's participant statuses. A participant is `connected` while it is in the room and
/// `complete` once it left, when it is no longer listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParticipantStatus {
    Queued,
    Connecting,
    Ringing,
    Connected,
    Complete,
    Failed,
}

impl ParticipantStatus {
    pub const ALL: [ParticipantStatus; 6] = [
        Self::Queued,
        Self::Connecting,
        Self::Ringing,
        Self::Connected,
        Self::Complete,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Connecting => "connecting",
            Self::Ringing => "ringing",
            Self::Connected => "connected",
            Self::Complete => "complete",
            Self::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// How a participant is in the room: what the worker reports and the API shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantState {
    pub call_sid: CallSid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub muted: bool,
    pub hold: bool,
    pub coaching: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_sid_to_coach: Option<CallSid>,
    pub start_conference_on_enter: bool,
    pub end_conference_on_exit: bool,
}

impl ParticipantState {
    /// `call_sid` in the room as `<Conference>`'s defaults have it: unlabelled, heard, not on
    /// hold nor coaching, starting the room on entering and not ending it on leaving.
    pub fn new(call_sid: CallSid) -> Self {
        Self {
            call_sid,
            label: None,
            muted: false,
            hold: false,
            coaching: false,
            call_sid_to_coach: None,
            start_conference_on_enter: true,
            end_conference_on_exit: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub conference_sid: ConferenceSid,
    pub account_sid: AccountSid,
    pub state: ParticipantState,
    /// `connected` while in the room, `complete` once it left (no longer listed).
    pub status: ParticipantStatus,
    /// `seq` of the last conference event applied to the participant.
    pub event_seq: u64,
    pub date_created: Timestamp,
    pub date_updated: Timestamp,
    /// When the store may forget it (set when it leaves; DynamoDB TTL, whole seconds).
    pub expires_at: Option<Timestamp>,
}

/// One event about a conference, from the worker that runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConferenceEvent {
    pub version: u32,
    pub conference_sid: ConferenceSid,
    /// When it happened, milliseconds since the Unix epoch.
    pub timestamp: i64,
    #[serde(flatten)]
    pub kind: ConferenceEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ConferenceEventKind {
    /// The room exists (its first participant is arriving): `init` until a participant who
    /// starts it is in.
    #[serde(rename = "conference.created")]
    Created {
        seq: u64,
        account_sid: AccountSid,
        friendly_name: String,
        command_queue_url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worker_id: Option<WorkerId>,
        /// `statusCallback`, `statusCallbackMethod` and `statusCallbackEvent` of the
        /// `<Conference>` that created the room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status_callback: Option<ConferenceCallback>,
    },
    /// A participant who starts it is in: `in-progress`.
    #[serde(rename = "conference.started")]
    Started { seq: u64 },
    /// Everyone has left (each reported with `participant.left` first).
    #[serde(rename = "conference.ended")]
    Ended {
        seq: u64,
        reason: EndReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call_sid_ending: Option<CallSid>,
    },
    #[serde(rename = "participant.joined")]
    ParticipantJoined {
        seq: u64,
        participant: ParticipantState,
    },
    /// A participant's state changed (mute, hold, coaching): the whole new state.
    #[serde(rename = "participant.updated")]
    ParticipantUpdated {
        seq: u64,
        participant: ParticipantState,
    },
    #[serde(rename = "participant.left")]
    ParticipantLeft { seq: u64, call_sid: CallSid },
    /// An announcement finished playing (`completed`) or could not be played (`failed`), to
    /// one participant or to everyone. Recorded nowhere: it is only reported to the
    /// application (`announcement-end`, `announcement-fail`).
    #[serde(rename = "conference.announcement")]
    Announcement {
        seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        call_sid: Option<CallSid>,
        completed: bool,
    },
    /// The worker carried out a conference command; `seq` is the intent's.
    #[serde(rename = "conference.command.applied")]
    CommandApplied { intent_sid: IntentSid, seq: u64 },
    /// The worker refused a conference command (`superseded`, `conference-ended`,
    /// `participant-left`); `seq` is the intent's.
    #[serde(rename = "conference.command.rejected")]
    CommandRejected {
        intent_sid: IntentSid,
        seq: u64,
        reason: String,
    },
}

impl ConferenceEventKind {
    pub fn seq(&self) -> u64 {
        match self {
            Self::Created { seq, .. }
            | Self::Started { seq }
            | Self::Ended { seq, .. }
            | Self::ParticipantJoined { seq, .. }
            | Self::ParticipantUpdated { seq, .. }
            | Self::ParticipantLeft { seq, .. }
            | Self::Announcement { seq, .. }
            | Self::CommandApplied { seq, .. }
            | Self::CommandRejected { seq, .. } => *seq,
        }
    }

    /// The participant the event is about, if it is about one.
    pub fn call_sid(&self) -> Option<&CallSid> {
        match self {
            Self::ParticipantJoined { participant, .. }
            | Self::ParticipantUpdated { participant, .. } => Some(&participant.call_sid),
            Self::ParticipantLeft { call_sid, .. } => Some(call_sid),
            _ => None,
        }
    }
}

/// Whether a message of the events queue is about a conference: its `type` starts with
/// `conference.` or `participant.`.
pub fn is_conference_event(json: &str) -> bool {
    super::event::message_type(json)
        .is_some_and(|kind| kind.starts_with("conference.") || kind.starts_with("participant."))
}

impl ConferenceEvent {
    pub fn from_json(json: &str) -> Result<Self, EventDecodeError> {
        let event: ConferenceEvent = serde_json::from_str(json)?;
        if event.version != EVENT_VERSION {
            return Err(EventDecodeError::Version(event.version));
        }
        Ok(event)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an event always serialises")
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            ConferenceEventKind::Created { .. } => "conference.created",
            ConferenceEventKind::Started { .. } => "conference.started",
            ConferenceEventKind::Ended { .. } => "conference.ended",
            ConferenceEventKind::ParticipantJoined { .. } => "participant.joined",
            ConferenceEventKind::ParticipantUpdated { .. } => "participant.updated",
            ConferenceEventKind::ParticipantLeft { .. } => "participant.left",
            ConferenceEventKind::Announcement { .. } => "conference.announcement",
            ConferenceEventKind::CommandApplied { .. } => "conference.command.applied",
            ConferenceEventKind::CommandRejected { .. } => "conference.command.rejected",
        }
    }
}

/// What the control plane asks of the worker that runs a conference (docs/messages.md,
/// "Conference commands"): on the commands FIFO queue, group = ConferenceSid, deduplication id =
/// IntentSid, in the conference's worker's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConferenceCommandType {
    /// Change how a participant is in the room (mute, hold, coaching, announcement to it,
    /// whether its leaving ends the room).
    #[serde(rename = "participant.update")]
    ParticipantUpdate,
    /// Take a participant out of the room; its call hangs up.
    #[serde(rename = "participant.remove")]
    ParticipantRemove,
    /// Play an announcement to everyone in the room.
    #[serde(rename = "conference.announce")]
    ConferenceAnnounce,
    /// End the room: everyone leaves it and goes on with the RCML after their `<Dial>`.
    #[serde(rename = "conference.end")]
    ConferenceEnd,
}

impl ConferenceCommandType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ParticipantUpdate => "participant.update",
            Self::ParticipantRemove => "participant.remove",
            Self::ConferenceAnnounce => "conference.announce",
            Self::ConferenceEnd => "conference.end",
        }
    }
}

/// A conference command's parameters; absent means "as it is".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConferenceCommandParameters {
    /// The participant (participant commands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_sid: Option<CallSid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<bool>,
    /// What a participant put on hold hears (`hold`), or default hold music if absent or if it
    /// cannot be fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_url: Option<WebhookUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_method: Option<Method>,
    /// RCML (`<Play>`/`<Say>`) to play to the participant, or to everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce_url: Option<WebhookUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce_method: Option<Method>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coaching: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_sid_to_coach: Option<CallSid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beep_on_exit: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_conference_on_exit: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConferenceCommand {
    pub version: u32,
    #[serde(rename = "type")]
    pub kind: ConferenceCommandType,
    pub conference_sid: ConferenceSid,
    pub account_sid: AccountSid,
    pub intent_sid: IntentSid,
    /// The intent's number among the conference's intents: a worker applies a command only if
    /// its `seq` is above the last it applied for the conference.
    pub seq: u64,
    pub parameters: ConferenceCommandParameters,
}

impl ConferenceCommand {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a command always serialises")
    }

    pub fn from_json(json: &str) -> Result<Self, CommandDecodeError> {
        let command: ConferenceCommand = serde_json::from_str(json)?;
        if command.version != COMMAND_VERSION {
            return Err(CommandDecodeError::Version(command.version));
        }
        Ok(command)
    }
}

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

/// The filters `GET …/Conferences` accepts, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConferenceFilter {
    pub friendly_name: Option<String>,
    pub status: Option<ConferenceStatus>,
    pub created_from: Option<Timestamp>,
    pub created_to: Option<Timestamp>,
    pub updated_from: Option<Timestamp>,
    pub updated_to: Option<Timestamp>,
}

impl ConferenceFilter {
    pub fn matches(&self, conference: &Conference) -> bool {
        let within = |at: Timestamp, from: Option<Timestamp>, to: Option<Timestamp>| {
            from.is_none_or(|from| at >= from) && to.is_none_or(|to| at <= to)
        };
        self.friendly_name
            .as_ref()
            .is_none_or(|name| *name == conference.friendly_name)
            && self.status.is_none_or(|s| s == conference.status)
            && within(conference.date_created, self.created_from, self.created_to)
            && within(conference.date_updated, self.updated_from, self.updated_to)
    }
}

/// The filters `GET …/Participants` accepts, parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParticipantFilter {
    pub muted: Option<bool>,
    pub hold: Option<bool>,
    pub coaching: Option<bool>,
}

impl ParticipantFilter {
    pub fn matches(&self, participant: &Participant) -> bool {
        let s = &participant.state;
        self.muted.is_none_or(|m| m == s.muted)
            && self.hold.is_none_or(|h| h == s.hold)
            && self.coaching.is_none_or(|c| c == s.coaching)
    }
}

/// The filters `GET …/Conferences` accepts (Twilio's), `<` and `>` forms included.
pub const CONFERENCE_FILTERS: [&str; 8] = [
    "FriendlyName",
    "Status",
    "DateCreated",
    "DateCreated<",
    "DateCreated>",
    "DateUpdated",
    "DateUpdated<",
    "DateUpdated>",
];

/// `GET …/Conferences`: filters and paging, parsed and checked.
#[derive(Debug, Clone)]
pub struct ListConferencesRequest {
    pub filter: ConferenceFilter,
    pub paging: Paging,
    /// The filters as given, for the envelope's URIs.
    pub query: Vec<(&'static str, String)>,
}

impl ListConferencesRequest {
    pub fn parse(query: &Form) -> Result<Self, InvalidParameter> {
        let accepted: Vec<&str> = CONFERENCE_FILTERS
            .iter()
            .chain(&Paging::PARAMETERS)
            .copied()
            .collect();
        let raw = Params::collect(query, &accepted, &[])?;
        let mut filter = ConferenceFilter::default();
        let mut echo: Vec<(&'static str, String)> = Vec::new();
        for name in CONFERENCE_FILTERS {
            let Some(value) = raw.get(name) else { continue };
            match name {
                "FriendlyName" => filter.friendly_name = Some(value.to_owned()),
                "Status" => {
                    let status =
                        ConferenceStatus::parse(&value.to_ascii_lowercase()).ok_or_else(|| {
                            invalid(
                                "Status",
                                format!(
                                    "Status must be one of init, in-progress, completed, not '{}'",
                                    shorten(value)
                                ),
                            )
                        })?;
                    filter.status = Some(status);
                    echo.push((name, status.as_str().to_owned()));
                    continue;
                }
                "DateCreated" | "DateUpdated" => {
                    let (start, end) = parse_time(name, value)?;
                    if name == "DateCreated" {
                        (filter.created_from, filter.created_to) = (Some(start), Some(end));
                    } else {
                        (filter.updated_from, filter.updated_to) = (Some(start), Some(end));
                    }
                }
                "DateCreated>" => filter.created_from = Some(parse_time(name, value)?.0),
                "DateCreated<" => filter.created_to = Some(parse_time(name, value)?.1),
                "DateUpdated>" => filter.updated_from = Some(parse_time(name, value)?.0),
                _ => filter.updated_to = Some(parse_time(name, value)?.1),
            }
            echo.push((name, value.to_owned()));
        }
        for field in ["DateCreated", "DateUpdated"] {
            if raw.has(field) && (raw.has(&format!("{field}>")) || raw.has(&format!("{field}<"))) {
                return Err(conflict(
                    field,
                    format!("Give {field}, or {field}> and/or {field}<, not both"),
                ));
            }
        }
        Ok(Self {
            filter,
            paging: Paging::parse(&raw)?,
            query: echo,
        })
    }
}

/// The filters `GET …/Participants` accepts.
pub const PARTICIPANT_FILTERS: [&str; 3] = ["Muted", "Hold", "Coaching"];

/// `GET …/Conferences/{ConferenceSid}/Participants`: filters and paging.
#[derive(Debug, Clone)]
pub struct ListParticipantsRequest {
    pub filter: ParticipantFilter,
    pub paging: Paging,
    pub query: Vec<(&'static str, String)>,
}

impl ListParticipantsRequest {
    pub fn parse(query: &Form) -> Result<Self, InvalidParameter> {
        let accepted: Vec<&str> = PARTICIPANT_FILTERS
            .iter()
            .chain(&Paging::PARAMETERS)
            .copied()
            .collect();
        let raw = Params::collect(query, &accepted, &[])?;
        let filter = ParticipantFilter {
            muted: raw.boolean("Muted")?,
            hold: raw.boolean("Hold")?,
            coaching: raw.boolean("Coaching")?,
        };
        let query = [
            ("Muted", filter.muted),
            ("Hold", filter.hold),
            ("Coaching", filter.coaching),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v.to_string())))
        .collect();
        Ok(Self {
            filter,
            paging: Paging::parse(&raw)?,
            query,
        })
    }
}

/// A participant's place in its room's listing: when it joined, then its CallSid.
pub fn participant_position(participant: &Participant) -> String {
    format!(
        "{:015}#{}",
        participant.date_created.millis().max(0),
        participant.state.call_sid
    )
}

/// A conference's place in its account's listing, newest first: creation time, then sid.
pub fn conference_position(conference: &Conference) -> String {
    super::listing::created_position(conference.date_created, &conference.sid)
}

/// The ConferenceSid of a well-formed conference position.
pub fn conference_position_sid(position: &str) -> Option<ConferenceSid> {
    super::listing::created_position_sid(position)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example in docs/messages.md's "Conference commands" decodes and encodes back to
    /// itself, and reads as an intent's command.
    #[test]
    fn documented_commands_round_trip() {
        let examples = crate::doc_examples("## Conference commands");
        assert_eq!(examples.len(), 4, "one example per command type");
        for example in examples {
            let command =
                ConferenceCommand::from_json(example).unwrap_or_else(|e| panic!("{e}: {example}"));
            let expected: serde_json::Value = serde_json::from_str(example).unwrap();
            assert_eq!(serde_json::to_value(&command).unwrap(), expected);
            assert!(matches!(
                crate::IntentCommand::from_json(example),
                Some(crate::IntentCommand::Conference(_))
            ));
        }
    }

    /// Every example in docs/messages.md's "Conference events" decodes and encodes back to
    /// itself.
    #[test]
    fn documented_examples_round_trip() {
        let examples = crate::doc_examples("## Conference events");
        assert_eq!(examples.len(), 9, "one example per event type");
        for example in examples {
            assert!(is_conference_event(example), "{example}");
            let event =
                ConferenceEvent::from_json(example).unwrap_or_else(|e| panic!("{e}: {example}"));
            let expected: serde_json::Value = serde_json::from_str(example).unwrap();
            assert_eq!(serde_json::to_value(&event).unwrap(), expected);
        }
    }

    fn event(seq: u64, kind: impl FnOnce(u64) -> ConferenceEventKind) -> ConferenceEvent {
        ConferenceEvent {
            version: EVENT_VERSION,
            conference_sid: "CF0123456789abcdef0123456789abcdef".parse().unwrap(),
            timestamp: 1,
            kind: kind(seq),
        }
    }

    fn state(call_sid: &CallSid) -> ParticipantState {
        ParticipantState::new(call_sid.clone())
    }

    const DAY: Duration = Duration::from_secs(86_400);

    fn conference_of(change: ConferenceChange) -> Conference {
        match change {
            ConferenceChange::Conference { conference, .. } => conference,
            other => panic!("not a conference write: {other:?}"),
        }
    }

    fn participant_of(change: ConferenceChange) -> Participant {
        match change {
            ConferenceChange::Participant(participant) => participant,
            other => panic!("not a participant write: {other:?}"),
        }
    }

    #[test]
    fn a_conference_goes_from_created_to_ended_and_then_changes_no_more() {
        let t = |ms| Timestamp::from_millis(ms);
        let created = event(1, |seq| ConferenceEventKind::Created {
            seq,
            account_sid: "AC0123456789abcdef0123456789abcdef".parse().unwrap(),
            friendly_name: "room-1".into(),
            command_queue_url: "https://sqs.example/w.fifo".into(),
            worker_id: None,
            status_callback: None,
        });
        let change = apply(None, None, &created, t(10), DAY).unwrap();
        assert!(matches!(
            change,
            ConferenceChange::Conference {
                expected_version: None,
                ..
            }
        ));
        let mut conference = conference_of(change);
        assert_eq!(conference.status, ConferenceStatus::Init);
        assert!(apply(Some(&conference), None, &created, t(11), DAY).is_err());

        let caller = CallSid::generate();
        let joined = event(2, |seq| ConferenceEventKind::ParticipantJoined {
            seq,
            participant: state(&caller),
        });
        let participant =
            participant_of(apply(Some(&conference), None, &joined, t(20), DAY).unwrap());
        assert_eq!(participant.status, ParticipantStatus::Connected);
        assert_eq!(participant.event_seq, 2);

        let mut muted = state(&caller);
        muted.muted = true;
        let updated = event(3, |seq| ConferenceEventKind::ParticipantUpdated {
            seq,
            participant: muted,
        });
        let after = participant_of(
            apply(Some(&conference), Some(&participant), &updated, t(30), DAY).unwrap(),
        );
        assert!(after.state.muted);
        assert_eq!((after.date_created, after.date_updated), (t(20), t(30)));
        // The same event again, or an older one: nothing.
        assert!(apply(Some(&conference), Some(&after), &updated, t(31), DAY).is_err());
        assert!(apply(Some(&conference), Some(&after), &joined, t(31), DAY).is_err());

        let started = event(4, |seq| ConferenceEventKind::Started { seq });
        let change = apply(Some(&conference), None, &started, t(40), DAY).unwrap();
        assert!(matches!(
            change,
            ConferenceChange::Conference {
                expected_version: Some(1),
                ..
            }
        ));
        conference = conference_of(change);
        assert_eq!(conference.status, ConferenceStatus::InProgress);
        assert_eq!((conference.date_updated, conference.version), (t(40), 2));
        assert!(apply(Some(&conference), None, &started, t(41), DAY).is_err());

        let left = event(5, |seq| ConferenceEventKind::ParticipantLeft {
            seq,
            call_sid: caller.clone(),
        });
        let gone =
            participant_of(apply(Some(&conference), Some(&after), &left, t(50), DAY).unwrap());
        assert_eq!(gone.status, ParticipantStatus::Complete);
        assert!(gone.state.muted, "it left as it was");
        assert_eq!(gone.expires_at, Some(t(50).plus(DAY).whole_seconds()));
        assert!(
            apply(Some(&conference), None, &left, t(50), DAY).is_err(),
            "never joined"
        );

        let ended = event(6, |seq| ConferenceEventKind::Ended {
            seq,
            reason: EndReason::LastParticipantLeft,
            call_sid_ending: Some(caller.clone()),
        });
        conference = conference_of(apply(Some(&conference), None, &ended, t(60), DAY).unwrap());
        assert_eq!(conference.status, ConferenceStatus::Completed);
        assert_eq!(
            conference.reason_ended,
            Some(EndReason::LastParticipantLeft)
        );
        assert_eq!(conference.expires_at, Some(t(60).plus(DAY).whole_seconds()));
        let late = event(7, |seq| ConferenceEventKind::ParticipantJoined {
            seq,
            participant: state(&caller),
        });
        assert!(apply(Some(&conference), None, &late, t(70), DAY).is_err());
    }

    /// What the application hears: Twilio's StatusCallbackEvent names and parameters, only for
    /// the events it subscribed to, one request per change.
    #[test]
    fn status_callbacks_name_each_change_once() {
        let caller = CallSid::generate();
        let account: AccountSid = "AC0123456789abcdef0123456789abcdef".parse().unwrap();
        let created = event(1, |seq| ConferenceEventKind::Created {
            seq,
            account_sid: account,
            friendly_name: "room-1".into(),
            command_queue_url: "https://sqs.example/w.fifo".into(),
            worker_id: None,
            status_callback: Some(ConferenceCallback {
                url: WebhookUrl::parse("https://app.example.com/cb", Default::default()).unwrap(),
                method: Method::Post,
                events: vec![
                    ConferenceCallbackEvent::Join,
                    ConferenceCallbackEvent::Mute,
                    ConferenceCallbackEvent::Modify,
                    ConferenceCallbackEvent::End,
                ],
            }),
        });
        let now = Timestamp::from_millis(1_000);
        let conference = conference_of(apply(None, None, &created, now, DAY).unwrap());
        let names = |before: Option<&Participant>, event: &ConferenceEvent| -> Vec<String> {
            callbacks(&conference, before, event, now)
                .iter()
                .map(|job| job.parameters["StatusCallbackEvent"].clone())
                .collect()
        };
        let joined = event(2, |seq| ConferenceEventKind::ParticipantJoined {
            seq,
            participant: state(&caller),
        });
        let jobs = callbacks(&conference, None, &joined, now);
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        assert_eq!(
            job.job_id,
            format!("{}-e2-participant-join", conference.sid)
        );
        for (name, value) in [
            ("ConferenceSid", conference.sid.as_str()),
            ("FriendlyName", "room-1"),
            ("CallSid", caller.as_str()),
            ("Muted", "false"),
            ("SequenceNumber", "2"),
        ] {
            assert_eq!(job.parameters[name], value, "{name}");
        }
        assert_eq!(job.call_sid.as_ref(), Some(&caller));
        let before = participant_of(apply(Some(&conference), None, &joined, now, DAY).unwrap());
        // Muted and put on hold at once: a mute (subscribed) and a hold (not subscribed).
        let mut after = state(&caller);
        after.muted = true;
        after.hold = true;
        let updated = event(3, |seq| ConferenceEventKind::ParticipantUpdated {
            seq,
            participant: after.clone(),
        });
        assert_eq!(names(Some(&before), &updated), ["participant-mute"]);
        after.coaching = true;
        after.call_sid_to_coach = Some(CallSid::generate());
        let coaching = event(4, |seq| ConferenceEventKind::ParticipantUpdated {
            seq,
            participant: after,
        });
        let muted =
            participant_of(apply(Some(&conference), Some(&before), &updated, now, DAY).unwrap());
        assert_eq!(names(Some(&muted), &coaching), ["participant-modify"]);
        let started = event(5, |seq| ConferenceEventKind::Started { seq });
        assert!(names(None, &started).is_empty(), "start is not subscribed");
        let ended = event(6, |seq| ConferenceEventKind::Ended {
            seq,
            reason: EndReason::ConferenceEndedViaApi,
            call_sid_ending: None,
        });
        let jobs = callbacks(&conference, None, &ended, now);
        assert_eq!(
            jobs[0].parameters["ReasonConferenceEnded"],
            "conference-ended-via-api"
        );
        assert_eq!(jobs[0].call_sid, None);
    }

    #[test]
    fn events_of_an_unknown_conference_are_ignored() {
        let started = event(2, |seq| ConferenceEventKind::Started { seq });
        let err = apply(None, None, &started, Timestamp::from_millis(1), DAY).unwrap_err();
        assert!(err.contains("unknown conference"), "{err}");
    }

    #[test]
    fn other_types_and_versions_are_refused() {
        for bad in [
            r#"{"version":2,"type":"conference.started","conference_sid":"CF0123456789abcdef0123456789abcdef","timestamp":1,"seq":2}"#,
            r#"{"version":1,"type":"conference.exploded","conference_sid":"CF0123456789abcdef0123456789abcdef","timestamp":1,"seq":2}"#,
            r#"{"version":1,"type":"conference.started","conference_sid":"CA0123456789abcdef0123456789abcdef","timestamp":1,"seq":2}"#,
        ] {
            assert!(ConferenceEvent::from_json(bad).is_err(), "{bad}");
        }
        assert!(!is_conference_event(r#"{"type":"call.status"}"#));
        assert!(!is_conference_event("not json"));
    }
}
