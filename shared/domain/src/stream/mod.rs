//! Media streams of a live call: the call's audio forked to a WebSocket of the application's
//! (Twilio's Media Streams). Started by `POST …/Calls/{Sid}/Streams` or `<Start><Stream>`,
//! stopped by `POST …/Streams/{Sid or Name}` with `Status=stopped`, `<Stop><Stream>` or the
//! call's end. The call item keeps its streams (a call has at most [`MAX_ACTIVE`] running), so
//! a start or a stop is one conditional write of the call and its intent, as a modification is.

mod apply;
mod callbacks;
mod create;
mod modify;

pub use apply::*;
pub use callbacks::*;
pub use create::*;
pub use modify::*;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sid::StreamSid;
use crate::webhook::{AddressPolicy, Method, UrlProblem, WebhookUrl};
/// Streams a call may run at once (Twilio's limit of forks per call).
pub const MAX_ACTIVE: usize = 4;

/// Stopped streams a call item keeps, besides the running ones (the oldest go first): the call
/// item is written by every change of the call, and its size is what each write costs.
const KEPT_STOPPED: usize = 2;

/// Most bytes of custom parameters (names and values together) a stream may carry, so that a
/// call's streams stay a few kilobytes of its item.
pub const MAX_PARAMETER_BYTES: usize = 2_000;

/// Custom parameters a stream may carry (`Parameter1` … `Parameter99`).
pub const MAX_PARAMETERS: usize = 99;

/// Longest `Name`.
const MAX_NAME: usize = 64;

words!(
    /// Which audio is sent: what the platform receives from the caller, what it sends them, or
    /// both.
    StreamTrack {
        Inbound = "inbound_track",
        Outbound = "outbound_track",
        Both = "both_tracks",
    }
);

impl StreamTrack {
    /// The `tracks` of the protocol's `start` message.
    pub fn tracks(self) -> &'static [&'static str] {
        match self {
            Self::Inbound => &["inbound"],
            Self::Outbound => &["outbound"],
            Self::Both => &["inbound", "outbound"],
        }
    }
}

words!(
    /// Twilio's stream statuses.
    StreamStatus {
        InProgress = "in-progress",
        Stopped = "stopped",
    }
);

/// A `ws://` or `wss://` URL of the application, checked as webhook URLs are (length, host,
/// and the address policy: no private or reserved addresses; loopback only in teleapi-local).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamUrl(String);

impl StreamUrl {
    pub fn parse(value: &str, policy: AddressPolicy) -> Result<Self, UrlProblem> {
        let as_http = if let Some(rest) = value.strip_prefix("wss://") {
            format!("https://{rest}")
        } else if let Some(rest) = value.strip_prefix("ws://") {
            format!("http://{rest}")
        } else {
            return Err(UrlProblem::Scheme);
        };
        WebhookUrl::parse(&as_http, policy)?;
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a stream's status changes are reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCallback {
    pub url: WebhookUrl,
    pub method: Method,
}

/// What to stream, as the worker is told in `stream.start` and tells back in
/// `stream.started`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSpec {
    pub stream_sid: StreamSid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub url: StreamUrl,
    pub track: StreamTrack,
    /// The `customParameters` of the protocol's `start` message.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_callback: Option<StreamCallback>,
}

/// A stream as the call item keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    #[serde(flatten)]
    pub spec: StreamSpec,
    pub status: StreamStatus,
    /// `seq` of the last `stream.*` event applied (0 before the first).
    #[serde(default)]
    pub event_seq: u64,
    /// ms since the epoch.
    pub date_updated: i64,
}

impl Stream {
    pub fn sid(&self) -> &StreamSid {
        &self.spec.stream_sid
    }

    fn named(&self, name_or_sid: &str) -> bool {
        self.spec.stream_sid.as_str() == name_or_sid
            || self.spec.name.as_deref() == Some(name_or_sid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use crate::call::Call;
    use crate::call::CallStatus;
    use crate::form::Form;
    use crate::sid::IntentSid;
    use crate::time::Timestamp;
    use crate::wire::command::CommandType;
    use crate::wire::event::Event;
    use crate::wire::event::StreamReport;
    use std::time::Duration;

    #[test]
    fn documented_commands_round_trip() {
        let examples = crate::doc_examples("## Stream commands");
        assert_eq!(examples.len(), 2, "one example per command type");
        for example in examples {
            let command = Command::from_json(example).unwrap_or_else(|e| panic!("{e}: {example}"));
            assert!(matches!(
                command.kind,
                CommandType::StreamStart | CommandType::StreamStop
            ));
            let expected: serde_json::Value = serde_json::from_str(example).unwrap();
            assert_eq!(serde_json::to_value(&command).unwrap(), expected);
        }
    }

    #[test]
    fn documented_events_round_trip() {
        let examples = crate::doc_examples("## Stream events");
        assert_eq!(examples.len(), 3, "one example per event type");
        for example in examples {
            let event = Event::from_json(example).unwrap_or_else(|e| panic!("{e}: {example}"));
            assert!(event.kind.stream().is_some(), "{example}");
            let expected: serde_json::Value = serde_json::from_str(example).unwrap();
            assert_eq!(serde_json::to_value(&event).unwrap(), expected);
        }
    }

    fn form(body: &str) -> Form {
        Form::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn start_parameters() {
        let policy = AddressPolicy::default();
        let start = StartStream::parse(
            &form("Url=wss%3A%2F%2Fbot.example.com%2Fm&Name=bot&Track=both_tracks&Parameter2.Name=b&Parameter2.Value=2&Parameter1.Name=a&Parameter1.Value=1"),
            policy,
        )
        .unwrap();
        assert_eq!(start.track, StreamTrack::Both);
        assert_eq!(
            start.parameters,
            BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())])
        );
        assert_eq!(
            StartStream::parse(&form("Url=ws%3A%2F%2Fbot.example.com"), policy)
                .unwrap()
                .track,
            StreamTrack::Inbound
        );
        for bad in [
            "",
            "Name=x",
            "Url=https%3A%2F%2Fbot.example.com",
            "Url=ws%3A%2F%2F10.1.2.3%2Fm",
            "Url=ws%3A%2F%2F127.0.0.1%2Fm",
            "Url=wss%3A%2F%2Fbot.example.com&Track=inbound",
            "Url=wss%3A%2F%2Fbot.example.com&Name=",
            "Url=wss%3A%2F%2Fbot.example.com&Name=MZ0123456789abcdef0123456789abcdef",
            "Url=wss%3A%2F%2Fbot.example.com&Parameter1.Value=v",
            "Url=wss%3A%2F%2Fbot.example.com&Parameter1.Name=a&Parameter2.Name=a",
            "Url=wss%3A%2F%2Fbot.example.com&Parameter100.Name=a",
            "Url=wss%3A%2F%2Fbot.example.com&StatusCallbackMethod=GET",
        ] {
            assert!(StartStream::parse(&form(bad), policy).is_err(), "{bad}");
        }
        let big = format!(
            "Url=wss%3A%2F%2Fbot.example.com&Parameter1.Name=a&Parameter1.Value={}",
            "x".repeat(MAX_PARAMETER_BYTES)
        );
        assert!(StartStream::parse(&form(&big), policy).is_err(), "too big");
        let local = AddressPolicy {
            allow_loopback: true,
        };
        assert!(StartStream::parse(&form("Url=ws%3A%2F%2F127.0.0.1%3A9000%2Fm"), local).is_ok());
        assert!(parse_stop(&form("Status=stopped")).is_ok());
        assert!(parse_stop(&form("Status=in-progress")).is_err());
        assert!(parse_stop(&form("")).is_err());
    }

    fn live_call() -> Call {
        let mut call = Call::inbound(
            "AC0123456789abcdef0123456789abcdef".parse().unwrap(),
            "+15551230001".into(),
            "+15551230002".into(),
            Default::default(),
            CallStatus::InProgress,
            Timestamp::from_millis(1_000),
        );
        call.command_queue = Some("https://sqs.example/worker.fifo".into());
        call
    }

    const RETENTION: Duration = Duration::from_secs(3600);

    #[test]
    fn starts_and_stops_with_the_call_item() {
        let now = Timestamp::from_millis(2_000);
        let request = |name: &str| {
            StartStream::parse(
                &form(&format!("Url=wss%3A%2F%2Fbot.example.com&Name={name}")),
                AddressPolicy::default(),
            )
            .unwrap()
        };
        let mut call = live_call();
        for n in 0..MAX_ACTIVE {
            let planned = plan_start(
                &call,
                &request(&format!("s{n}")),
                StreamSid::generate(),
                IntentSid::generate(),
                now,
                RETENTION,
            )
            .unwrap();
            assert_eq!(planned.call.seq, call.seq + 1);
            let command = planned
                .intent
                .command
                .as_ref()
                .and_then(|c| c.call())
                .unwrap();
            assert_eq!(command.kind, CommandType::StreamStart);
            call = planned.call;
        }
        assert_eq!(
            plan_start(
                &call,
                &request("more"),
                StreamSid::generate(),
                IntentSid::generate(),
                now,
                RETENTION
            ),
            Err(StreamStateError::TooMany)
        );
        let s0 = find(&call, "s0").unwrap().clone();
        let stopped = plan_stop(&call, &s0, IntentSid::generate(), now, RETENTION).unwrap();
        assert_eq!(stopped.stream.status, StreamStatus::Stopped);
        call = stopped.call;
        assert!(matches!(
            plan_stop(
                &call,
                find(&call, s0.sid().as_str()).unwrap(),
                IntentSid::generate(),
                now,
                RETENTION
            ),
            Err(StreamStateError::Stopped(_))
        ));
        // A name is free again once its stream stopped; one running stream per name.
        let again = plan_start(
            &call,
            &request("s0"),
            StreamSid::generate(),
            IntentSid::generate(),
            now,
            RETENTION,
        )
        .unwrap();
        assert_eq!(
            find(&again.call, "s0").unwrap().status,
            StreamStatus::InProgress
        );
        assert_eq!(
            plan_start(
                &again.call,
                &request("s1"),
                StreamSid::generate(),
                IntentSid::generate(),
                now,
                RETENTION
            ),
            Err(StreamStateError::TooMany)
        );
        let ringing = Call {
            status: CallStatus::Ringing,
            ..live_call()
        };
        assert!(matches!(
            plan_start(
                &ringing,
                &request("x"),
                StreamSid::generate(),
                IntentSid::generate(),
                now,
                RETENTION
            ),
            Err(StreamStateError::CallNotInProgress(CallStatus::Ringing))
        ));
    }

    #[test]
    fn worker_reports_apply_once_and_rcml_streams_are_added() {
        let now = Timestamp::from_millis(3_000);
        let call = live_call();
        let spec = StreamSpec {
            stream_sid: StreamSid::generate(),
            name: Some("rcml".into()),
            url: StreamUrl::parse("wss://bot.example.com", AddressPolicy::default()).unwrap(),
            track: StreamTrack::Inbound,
            parameters: BTreeMap::new(),
            status_callback: Some(StreamCallback {
                url: WebhookUrl::parse("https://app.example.com/s", AddressPolicy::default())
                    .unwrap(),
                method: Method::Post,
            }),
        };
        let started = StreamReport::Started {
            seq: 1,
            spec: &spec,
        };
        let (with, stream) = apply(&call, &started, now).unwrap();
        assert_eq!(
            (with.streams.len(), stream.status),
            (1, StreamStatus::InProgress)
        );
        assert_eq!(with.version, call.version + 1);
        assert!(apply(&with, &started, now).is_err(), "a duplicate");
        let job = callback(&with, &stream, &started, now).unwrap();
        assert_eq!(job.parameters["StreamEvent"], "stream-started");
        assert_eq!(job.parameters["StreamName"], "rcml");
        let failed = StreamReport::Failed {
            seq: 2,
            stream_sid: &spec.stream_sid,
            error: "refused",
        };
        let (after, stream) = apply(&with, &failed, now).unwrap();
        assert_eq!(stream.status, StreamStatus::Stopped);
        let job = callback(&after, &stream, &failed, now).unwrap();
        assert_eq!(
            (
                job.parameters["StreamEvent"].as_str(),
                job.parameters["StreamError"].as_str()
            ),
            ("stream-error", "refused")
        );
        let unknown = StreamReport::Stopped {
            seq: 1,
            stream_sid: &StreamSid::generate(),
        };
        assert!(apply(&call, &unknown, now).is_err());
    }
}
