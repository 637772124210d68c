//! Commands: what the control plane asks the media worker that owns a call to do.
//!
//! One JSON message per intent on the commands FIFO queue (group = CallSid, deduplication id =
//! IntentSid). `version` changes only for incompatible changes; workers ignore fields they do not
//! know. See docs/messages.md.

use serde::{Deserialize, Serialize};

use crate::call::HangupStatus;
use crate::rcml::Rcml;
use crate::recording::{PauseBehavior, RecordingSpec, RecordingStatus};
use crate::sid::{AccountSid, CallSid, IntentSid, RecordingSid, StreamSid};
use crate::stream::StreamSpec;
use crate::webhook::{Method, WebhookUrl};
pub const COMMAND_VERSION: u32 = 1;

/// The primary thing a command asks for. Optional parameters (`mute`, `time_limit`) ride along
/// with it and are applied first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommandType {
    /// Fetch RCML from `url` with `method` and run it instead of what the call is doing.
    Redirect,
    /// Run the inline `rcml` instead of what the call is doing.
    Execute,
    /// End the call; `status` says whether as canceled or completed.
    Hangup,
    Mute,
    Unmute,
    /// Only the ride-along parameters changed (today: `time_limit`).
    Update,
    /// Place the outgoing call `from` -> `to`; when answered, run `url`/`method` or `rcml`.
    /// With `recording`, record it from answer.
    Dial,
    /// Start recording the call as `recording` says.
    #[serde(rename = "recording.start")]
    RecordingStart,
    /// Pause, resume or stop the recording `recording_sid` (`recording_status`).
    #[serde(rename = "recording.update")]
    RecordingUpdate,
    /// Stream the call's audio to the WebSocket `stream` names.
    #[serde(rename = "stream.start")]
    StreamStart,
    /// Stop the stream `stream_sid`.
    #[serde(rename = "stream.stop")]
    StreamStop,
    /// The call, waiting in its queue, is taken for the agent `bridge` names, on another
    /// worker: reach it there (the control plane took the caller out of the queue).
    #[serde(rename = "queue.bridge")]
    QueueBridge,
}

impl CommandType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redirect => "redirect",
            Self::Execute => "execute",
            Self::Hangup => "hangup",
            Self::Mute => "mute",
            Self::Unmute => "unmute",
            Self::Update => "update",
            Self::Dial => "dial",
            Self::RecordingStart => "recording.start",
            Self::RecordingUpdate => "recording.update",
            Self::StreamStart => "stream.start",
            Self::StreamStop => "stream.stop",
            Self::QueueBridge => "queue.bridge",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommandParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<WebhookUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcml: Option<Rcml>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<HangupStatus>,
    /// Redirect and execute: also move the leg this call is connected to (true), or hang that
    /// leg up (false, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub move_connected_call_leg: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mute: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<u32>,
    /// Dial: the caller shown to the callee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Dial: an E.164 number, `client:NAME` or a `sip:` URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Dial: seconds to let the callee ring before giving up (no-answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    /// Recording.start, and dial with `Record=true`: what to record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<Box<RecordingSpec>>,
    /// Recording.update: the recording to change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_sid: Option<RecordingSid>,
    /// Recording.update: `paused`, `in-progress` (resume) or `stopped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_status: Option<RecordingStatus>,
    /// Recording.update with `paused`: `skip` or `silence` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_behavior: Option<PauseBehavior>,
    /// Stream.start: what to stream, and where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<Box<StreamSpec>>,
    /// Stream.stop: the stream to stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_sid: Option<StreamSid>,
    /// Dial: DTMF to play once the callee answers (`0-9 * #`; `w` waits half a second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_digits: Option<String>,
    /// Dial: the sid the conference gets if this call's RCML creates it (a participant added
    /// by the conference's name before it runs: the API answered with this sid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conference_sid: Option<crate::sid::ConferenceSid>,
    /// Dial: answering-machine detection, once the callee answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_detection: Option<Box<crate::call::MachineDetection>>,
    /// Queue.bridge: the agent the caller is taken for, and where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<Box<crate::queue::Bridge>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub version: u32,
    #[serde(rename = "type")]
    pub kind: CommandType,
    pub call_sid: CallSid,
    pub account_sid: AccountSid,
    pub intent_sid: IntentSid,
    /// The intent's per-call sequence number. Workers apply a command only if its `seq` is above
    /// the last one they applied for the call, and report an older one as rejected (superseded).
    pub seq: u64,
    pub parameters: CommandParameters,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandDecodeError {
    #[error("not a command: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported command version {0}")]
    Version(u32),
}

impl Command {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a command always serialises")
    }

    pub fn from_json(json: &str) -> Result<Self, CommandDecodeError> {
        let command: Command = serde_json::from_str(json)?;
        if command.version != COMMAND_VERSION {
            return Err(CommandDecodeError::Version(command.version));
        }
        Ok(command)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every JSON example in docs/messages.md is a command that encodes back to itself.
    #[test]
    fn documented_examples_round_trip() {
        let examples = crate::doc_examples("## Commands");
        assert!(examples.len() >= 6, "docs/messages.md lost its examples");
        for example in examples {
            let command = Command::from_json(example).unwrap_or_else(|e| panic!("{e}: {example}"));
            let expected: serde_json::Value = serde_json::from_str(example).unwrap();
            assert_eq!(serde_json::to_value(&command).unwrap(), expected);
        }
    }

    #[test]
    fn other_versions_are_refused() {
        let json = r#"{"version":2,"type":"mute","call_sid":"CA5f2b9d0c6e1a4b3f8c7d6e5f4a3b2c1d",
            "account_sid":"AC1b2c3d4e5f60718293a4b5c6d7e8f901",
            "intent_sid":"MI3d4e5f60718293a4b5c6d7e8f90a1b2c","seq":6,"parameters":{}}"#;
        assert!(matches!(
            Command::from_json(json),
            Err(CommandDecodeError::Version(2))
        ));
        assert!(Command::from_json("{}").is_err());
        assert!(Command::from_json("not json").is_err());
    }
}
