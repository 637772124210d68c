//! Events: what media workers report about the calls they own, on the events FIFO queue
//! (group = CallSid). Versioned JSON; see docs/messages.md.

use serde::{Deserialize, Serialize};

use crate::call::{CallStatus, Direction};
use crate::call_log::{LogLevel, LoggedRequest, LoggedResponse};
use crate::recording::{RecordingSpec, RecordingStatus};
use crate::sid::WorkerId;
use crate::sid::{AccountSid, CallSid, IntentSid, RecordingSid, StreamSid};
use crate::stream::StreamSpec;
use crate::webhook::{Method, WebhookUrl};

pub const EVENT_VERSION: u32 = 1;

/// One event. `seq` numbers a call's events (call.*, rcml.failed) from 1, in the order the worker
/// emitted them: the control plane applies an event only if its `seq` is above the last one it
/// applied for the call, so a duplicate or a stale event changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub version: u32,
    pub call_sid: CallSid,
    /// When it happened, milliseconds since the Unix epoch.
    pub timestamp: i64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    /// A leg exists: an inbound call arrived, an API-created call is being placed, or a `<Dial>`
    /// placed a child leg. Names the worker's own commands queue, where the call's commands go
    /// from now on.
    #[serde(rename = "call.initiated")]
    CallInitiated {
        seq: u64,
        account_sid: AccountSid,
        direction: Direction,
        from: String,
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent_call_sid: Option<CallSid>,
        command_queue_url: String,
        /// The worker that owns the call from now on (docs/messages.md, "Worker events"):
        /// if its lease runs out, the control plane ends the call.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worker_id: Option<WorkerId>,
        /// Inbound calls: the RCML the number is configured with.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<WebhookUrl>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<Method>,
        /// Inbound calls: the number's fallback, asked for RCML when `url`'s fails.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fallback_url: Option<WebhookUrl>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fallback_method: Option<Method>,
        /// Inbound calls: the number's StatusCallback (told when the call ends).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status_callback: Option<WebhookUrl>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status_callback_method: Option<Method>,
    },
    /// The call's status changed.
    #[serde(rename = "call.status")]
    CallStatus {
        seq: u64,
        status: CallStatus,
        /// When the call was answered (in-progress and after), ms since the epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_time: Option<i64>,
        /// When it ended (final statuses), ms since the epoch.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_time: Option<i64>,
        /// Seconds from answer to end (final statuses).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration: Option<u64>,
    },
    /// The worker carried out an intent's command.
    #[serde(rename = "command.applied")]
    CommandApplied { intent_sid: IntentSid, seq: u64 },
    /// The worker refused an intent's command (`superseded`, `call-ended`, …).
    #[serde(rename = "command.rejected")]
    CommandRejected {
        intent_sid: IntentSid,
        seq: u64,
        reason: String,
    },
    /// Fetching or running the call's RCML failed.
    #[serde(rename = "rcml.failed")]
    RcmlFailed {
        seq: u64,
        url: String,
        /// 11200 (HTTP retrieval failure), 11205 (connection failure), 12100 (parse failure), …
        error_code: u32,
        detail: String,
    },
    /// Answering-machine detection decided who answered (`MachineDetection` on the call).
    /// `callback`: where an asynchronous detection's outcome is posted.
    #[serde(rename = "call.answered_by")]
    CallAnsweredBy {
        seq: u64,
        answered_by: crate::call::AnsweredBy,
        /// Milliseconds from the answer to the decision (`MachineDetectionDuration`).
        machine_detection_duration: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        callback: Option<crate::call::AmdCallback>,
    },
    /// The caller joined its account's queue `queue` (`<Enqueue>`), whose sid is
    /// `QueueSid::named(account, queue)`; the queue exists from now on if it did not.
    #[serde(rename = "call.enqueued")]
    CallEnqueued {
        seq: u64,
        queue_sid: crate::sid::QueueSid,
        queue: String,
    },
    /// The caller left its queue: an agent took it, it `<Leave>`s, hung up, or was redirected.
    #[serde(rename = "call.dequeued")]
    CallDequeued {
        seq: u64,
        queue_sid: crate::sid::QueueSid,
    },
    /// The call is an agent whose `<Dial><Queue>` waits and whose worker has no caller of that
    /// queue: the control plane takes the queue's first caller on another worker for it (a
    /// `queue.bridge` command to that caller's worker). Not numbered: it changes nothing about
    /// the call, and the worker says it again while the agent waits (a caller may arrive later).
    #[serde(rename = "queue.agent_waiting")]
    QueueAgentWaiting {
        queue_sid: crate::sid::QueueSid,
        /// Where the agent's worker takes bridges, and the token a bridge must carry.
        address: String,
        token: String,
        /// The `<Queue url>` for the caller, resolved, and its method.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<Method>,
    },
    /// The worker made an HTTP request for the call (an RCML fetch, a verb's `action`) and got
    /// this answer, or none: an entry of the call's request log (docs/data-model.md,
    /// "call_log"). Not numbered: it changes nothing about the call.
    #[serde(rename = "http.request")]
    HttpRequest {
        /// The call's account, as the worker knows it: the entry is the account's, and written
        /// without reading the call.
        account_sid: AccountSid,
        request: LoggedRequest,
        response: LoggedResponse,
    },
    /// The worker met a problem it carried on after (a verb it skipped: 12200; a verb it could
    /// not run: 13xxx): a notification of the call. Not numbered.
    #[serde(rename = "call.notification")]
    CallNotification {
        account_sid: AccountSid,
        level: LogLevel,
        error_code: u32,
        message: String,
        /// The document or request the problem is in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<Method>,
    },
    /// A recording of the call began (asked by `recording.start`, or by a `dial` with
    /// `recording`). Its `seq` numbers the recording's own events, from 1.
    #[serde(rename = "recording.started")]
    RecordingStarted {
        seq: u64,
        account_sid: AccountSid,
        recording: RecordingSpec,
        /// When the first audio was recorded, ms since the epoch.
        start_time: i64,
    },
    /// A recording paused, resumed, or ended: `completed` with its media, `absent` (nothing
    /// was heard), `failed`. `seq` numbers the recording's events.
    #[serde(rename = "recording.status")]
    RecordingChanged {
        seq: u64,
        recording_sid: RecordingSid,
        status: RecordingStatus,
        /// Seconds of media (final statuses).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration: Option<u64>,
        /// Where the media is: `s3://bucket/key`, or `file://…` in teleapi-local.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        media_url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_code: Option<u32>,
    },
    /// A media stream's WebSocket is connected and its `start` message sent (asked by
    /// `stream.start`, or by `<Start><Stream>`, whose stream it creates). `seq` numbers the
    /// stream's own events, from 1.
    #[serde(rename = "stream.started")]
    StreamStarted { seq: u64, stream: StreamSpec },
    /// A stream ended: stopped (`stream.stop`, `<Stop><Stream>`, the call's end, or the
    /// application closed the WebSocket); its `stop` message was sent if the socket was open.
    #[serde(rename = "stream.stopped")]
    StreamStopped { seq: u64, stream_sid: StreamSid },
    /// A stream could not connect, or its connection failed; it is over.
    #[serde(rename = "stream.failed")]
    StreamFailed {
        seq: u64,
        stream_sid: StreamSid,
        error: String,
    },
}

impl EventKind {
    /// The recording report this event is, if it is one.
    pub fn recording(&self) -> Option<RecordingReport<'_>> {
        match self {
            Self::RecordingStarted {
                seq,
                account_sid,
                recording,
                start_time,
            } => Some(RecordingReport::Started {
                seq: *seq,
                account_sid,
                spec: recording,
                start_time: *start_time,
            }),
            Self::RecordingChanged {
                seq,
                recording_sid,
                status,
                duration,
                media_url,
                error_code,
            } => Some(RecordingReport::Changed {
                seq: *seq,
                recording_sid,
                status: *status,
                duration: *duration,
                media_url: media_url.as_deref(),
                error_code: *error_code,
            }),
            _ => None,
        }
    }

    /// The stream report this event is, if it is one.
    pub fn stream(&self) -> Option<StreamReport<'_>> {
        match self {
            Self::StreamStarted { seq, stream } => Some(StreamReport::Started {
                seq: *seq,
                spec: stream,
            }),
            Self::StreamStopped { seq, stream_sid } => Some(StreamReport::Stopped {
                seq: *seq,
                stream_sid,
            }),
            Self::StreamFailed {
                seq,
                stream_sid,
                error,
            } => Some(StreamReport::Failed {
                seq: *seq,
                stream_sid,
                error,
            }),
            _ => None,
        }
    }
}

/// The `type` of a message of the events queue, read without decoding the rest: which family
/// of events (call, worker, conference) it belongs to.
pub fn message_type(json: &str) -> Option<std::borrow::Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Type<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_str::<Type>(json).ok().and_then(|t| t.kind)
}

#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    #[error("not an event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported event version {0}")]
    Version(u32),
}

impl Event {
    pub fn from_json(json: &str) -> Result<Self, EventDecodeError> {
        let event: Event = serde_json::from_str(json)?;
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
            EventKind::CallInitiated { .. } => "call.initiated",
            EventKind::CallStatus { .. } => "call.status",
            EventKind::CommandApplied { .. } => "command.applied",
            EventKind::CommandRejected { .. } => "command.rejected",
            EventKind::RcmlFailed { .. } => "rcml.failed",
            EventKind::CallAnsweredBy { .. } => "call.answered_by",
            EventKind::CallEnqueued { .. } => "call.enqueued",
            EventKind::CallDequeued { .. } => "call.dequeued",
            EventKind::QueueAgentWaiting { .. } => "queue.agent_waiting",
            EventKind::RecordingStarted { .. } => "recording.started",
            EventKind::RecordingChanged { .. } => "recording.status",
            EventKind::StreamStarted { .. } => "stream.started",
            EventKind::StreamStopped { .. } => "stream.stopped",
            EventKind::StreamFailed { .. } => "stream.failed",
            EventKind::HttpRequest { .. } => "http.request",
            EventKind::CallNotification { .. } => "call.notification",
        }
    }
}

/// A `recording.*` event, as the worker reports it (see [`crate::wire::event::EventKind`]).
#[derive(Debug, Clone, Copy)]
pub enum RecordingReport<'a> {
    Started {
        seq: u64,
        account_sid: &'a AccountSid,
        spec: &'a RecordingSpec,
        start_time: i64,
    },
    Changed {
        seq: u64,
        recording_sid: &'a RecordingSid,
        status: RecordingStatus,
        duration: Option<u64>,
        media_url: Option<&'a str>,
        error_code: Option<u32>,
    },
}

impl RecordingReport<'_> {
    pub fn seq(&self) -> u64 {
        match self {
            Self::Started { seq, .. } | Self::Changed { seq, .. } => *seq,
        }
    }

    pub fn recording_sid(&self) -> &RecordingSid {
        match self {
            Self::Started { spec, .. } => &spec.recording_sid,
            Self::Changed { recording_sid, .. } => recording_sid,
        }
    }
}

/// A `stream.*` event, as the worker reports it.
#[derive(Debug, Clone, Copy)]
pub enum StreamReport<'a> {
    Started {
        seq: u64,
        spec: &'a StreamSpec,
    },
    Stopped {
        seq: u64,
        stream_sid: &'a StreamSid,
    },
    Failed {
        seq: u64,
        stream_sid: &'a StreamSid,
        error: &'a str,
    },
}

impl StreamReport<'_> {
    pub fn seq(&self) -> u64 {
        match self {
            Self::Started { seq, .. } | Self::Stopped { seq, .. } | Self::Failed { seq, .. } => {
                *seq
            }
        }
    }

    pub fn stream_sid(&self) -> &StreamSid {
        match self {
            Self::Started { spec, .. } => &spec.stream_sid,
            Self::Stopped { stream_sid, .. } | Self::Failed { stream_sid, .. } => stream_sid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event example in docs/messages.md decodes and encodes back to itself.
    #[test]
    fn documented_examples_round_trip() {
        let examples = crate::doc_examples("## Events");
        assert_eq!(examples.len(), 11, "one example per event type");
        for example in examples {
            let event = Event::from_json(example).unwrap_or_else(|e| panic!("{e}: {example}"));
            let expected: serde_json::Value = serde_json::from_str(example).unwrap();
            assert_eq!(serde_json::to_value(&event).unwrap(), expected);
        }
    }

    #[test]
    fn unknown_types_and_versions_are_refused() {
        for bad in [
            r#"{"version":1,"type":"call.exploded","call_sid":"CA5f2b9d0c6e1a4b3f8c7d6e5f4a3b2c1d","timestamp":1}"#,
            r#"{"version":2,"type":"command.applied","call_sid":"CA5f2b9d0c6e1a4b3f8c7d6e5f4a3b2c1d","timestamp":1,"intent_sid":"MI0a1b2c3d4e5f60718293a4b5c6d7e8f9","seq":1}"#,
            r#"{"version":1,"type":"call.status","call_sid":"CAnope","timestamp":1,"seq":1,"status":"completed"}"#,
            "[]",
            "",
        ] {
            assert!(Event::from_json(bad).is_err(), "{bad}");
        }
    }
}
