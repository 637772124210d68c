//! A conference's messages: the commands to the worker that runs its room and the events it
//! reports (docs/messages.md, "Conference commands" and "Conference events").

use crate::conference::ConferenceCallback;
use crate::conference::EndReason;
use crate::conference::ParticipantState;
use crate::sid::WorkerId;
use crate::sid::{AccountSid, CallSid, ConferenceSid, IntentSid};
use crate::webhook::{Method, WebhookUrl};
use crate::wire::command::{COMMAND_VERSION, CommandDecodeError};
use crate::wire::event::{EVENT_VERSION, EventDecodeError};
use serde::{Deserialize, Serialize};

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
    crate::wire::event::message_type(json)
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
