//! Intents: one record per accepted modification of a call, numbered per call.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sid::{AccountSid, IntentSid, Subject};
use crate::time::Timestamp;
use crate::wire::command::Command;
use crate::wire::conference::ConferenceCommand;

/// The primary action of an intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntentAction {
    /// The first intent of a call created through the API: place it.
    Dial,
    Redirect,
    Execute,
    Hangup,
    Mute,
    Unmute,
    /// Only settings changed (callbacks, fallback, time limit).
    Update,
    /// A conference's: a participant's mute, hold, coaching or announcement changed.
    ParticipantUpdate,
    /// A conference's: a participant taken out of the room (and hung up).
    ParticipantRemove,
    /// A conference's: an announcement to everyone in the room.
    Announce,
    /// A conference's: ended through the API.
    End,
    /// A recording of the call started through the API.
    RecordingStart,
    /// A recording of the call paused, resumed or stopped through the API.
    RecordingUpdate,
    /// A media stream of the call started through the API.
    StreamStart,
    /// A media stream of the call stopped through the API.
    StreamStop,
    /// A queued caller taken for an agent on another worker (`queue.bridge`).
    QueueBridge,
}

impl IntentAction {
    pub const ALL: [IntentAction; 16] = [
        Self::Dial,
        Self::Redirect,
        Self::Execute,
        Self::Hangup,
        Self::Mute,
        Self::Unmute,
        Self::Update,
        Self::ParticipantUpdate,
        Self::ParticipantRemove,
        Self::Announce,
        Self::End,
        Self::RecordingStart,
        Self::RecordingUpdate,
        Self::StreamStart,
        Self::StreamStop,
        Self::QueueBridge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dial => "dial",
            Self::Redirect => "redirect",
            Self::Execute => "execute",
            Self::Hangup => "hangup",
            Self::Mute => "mute",
            Self::Unmute => "unmute",
            Self::Update => "update",
            Self::ParticipantUpdate => "participant-update",
            Self::ParticipantRemove => "participant-remove",
            Self::Announce => "announce",
            Self::End => "end",
            Self::RecordingStart => "recording-start",
            Self::RecordingUpdate => "recording-update",
            Self::StreamStart => "stream-start",
            Self::StreamStop => "stream-stop",
            Self::QueueBridge => "queue-bridge",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == value)
    }
}

/// Where an intent stands. `pending` until something settles it; see docs/data-model.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IntentStatus {
    /// Recorded; its command is being sent, or was sent and the worker has not reported yet.
    Pending,
    /// The reconciler found it pending and confirmed its command is on the queue.
    Enqueued,
    /// The worker applied it, or it needed no worker (settings only).
    Applied,
    /// The worker refused it (for instance superseded by a later intent).
    Rejected,
    /// Its command could not be delivered; the call was left as it was.
    Failed,
    /// Accepted but nothing to do: `Status=canceled` on a call already in progress.
    NoEffect,
}

impl IntentStatus {
    pub const ALL: [IntentStatus; 6] = [
        Self::Pending,
        Self::Enqueued,
        Self::Applied,
        Self::Rejected,
        Self::Failed,
        Self::NoEffect,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Enqueued => "enqueued",
            Self::Applied => "applied",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
            Self::NoEffect => "no-effect",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Settled: nothing will change it any more.
    pub fn is_settled(self) -> bool {
        !matches!(self, Self::Pending | Self::Enqueued)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub sid: IntentSid,
    /// The call or conference it is about; its `seq` counts that subject's intents.
    pub subject: Subject,
    pub account_sid: AccountSid,
    pub seq: u64,
    pub action: IntentAction,
    /// The request's parameters in canonical form (API names, normalised values).
    pub parameters: BTreeMap<String, String>,
    pub status: IntentStatus,
    /// Why it settled as it did, when there is something to say.
    pub reason: Option<String>,
    /// The command sent for it, kept so that the reconciler can send the very same message.
    pub command: Option<IntentCommand>,
    /// The queue the command goes to; `None` is the default commands queue.
    pub queue: Option<String>,
    pub date_created: Timestamp,
    pub date_updated: Timestamp,
    /// When the store may forget it (DynamoDB TTL).
    pub expires_at: Timestamp,
}

/// The command an intent sends: to a call's worker, or to the worker that runs a conference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntentCommand {
    Call(Command),
    Conference(ConferenceCommand),
}

impl IntentCommand {
    /// The call command, if it is one.
    pub fn call(&self) -> Option<&Command> {
        match self {
            Self::Call(command) => Some(command),
            Self::Conference(_) => None,
        }
    }

    /// The call command, if it is one.
    pub fn into_call(self) -> Option<Command> {
        match self {
            Self::Call(command) => Some(command),
            Self::Conference(_) => None,
        }
    }

    pub fn to_json(&self) -> String {
        match self {
            Self::Call(command) => command.to_json(),
            Self::Conference(command) => command.to_json(),
        }
    }

    /// A stored command, as [`Self::to_json`] wrote it.
    pub fn from_json(json: &str) -> Option<Self> {
        Command::from_json(json)
            .map(Self::Call)
            .or_else(|_| ConferenceCommand::from_json(json).map(Self::Conference))
            .ok()
    }
}

impl From<Command> for IntentCommand {
    fn from(command: Command) -> Self {
        Self::Call(command)
    }
}

/// What a change of a call asks of its worker: the intent's action and canonical parameters,
/// and the command that carries it out.
pub struct CallCommand {
    pub action: IntentAction,
    pub parameters: BTreeMap<String, String>,
    pub kind: crate::wire::command::CommandType,
    pub command: crate::wire::command::CommandParameters,
}

/// `call` with its next intent number (and version), and that intent, pending, with `change`'s
/// command for the call's worker.
pub fn next_call_intent(
    call: &crate::call::Call,
    change: CallCommand,
    intent_sid: IntentSid,
    now: Timestamp,
    retention: std::time::Duration,
) -> (crate::call::Call, Intent) {
    let mut next = call.clone();
    next.seq += 1;
    next.version += 1;
    next.date_updated = now;
    let command = Command {
        version: crate::wire::command::COMMAND_VERSION,
        kind: change.kind,
        call_sid: call.sid.clone(),
        account_sid: call.account_sid.clone(),
        intent_sid: intent_sid.clone(),
        seq: next.seq,
        parameters: change.command,
    };
    let intent = Intent {
        sid: intent_sid,
        subject: call.sid.clone().into(),
        account_sid: call.account_sid.clone(),
        seq: next.seq,
        action: change.action,
        parameters: change.parameters,
        status: IntentStatus::Pending,
        reason: None,
        command: Some(IntentCommand::Call(command)),
        queue: call.command_queue.clone(),
        date_created: now,
        date_updated: now,
        expires_at: now.plus(retention).whole_seconds(),
    };
    (next, intent)
}
