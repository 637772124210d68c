//! Media streams of a live call: the call's audio forked to a WebSocket of the application's
//! (Twilio's Media Streams). Started by `POST …/Calls/{Sid}/Streams` or `<Start><Stream>`,
//! stopped by `POST …/Streams/{Sid or Name}` with `Status=stopped`, `<Stop><Stream>` or the
//! call's end. The call item keeps its streams (a call has at most [`MAX_ACTIVE`] running), so
//! a start or a stop is one conditional write of the call and its intent, as a modification is.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::call::{Call, CallStatus};
use super::callback::{CallbackJob, JOB_VERSION, JobKind};
use super::command::{CommandParameters, CommandType};
use super::error::InvalidParameter;
use super::form::Form;
use super::intent::{CallCommand, Intent, IntentAction, next_call_intent};
use super::params::{Params, conflict, invalid, missing};
use super::sid::{IntentSid, StreamSid, shorten};
use super::time::Timestamp;
use super::webhook::{AddressPolicy, Method, UrlProblem, WebhookUrl};

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

/// The names `POST …/Streams` accepts: its own and `Parameter1.Name` … `Parameter99.Value`.
static START_PARAMETERS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut names: Vec<String> = [
        "Url",
        "Name",
        "Track",
        "StatusCallback",
        "StatusCallbackMethod",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    for n in 1..=MAX_PARAMETERS {
        names.push(format!("Parameter{n}.Name"));
        names.push(format!("Parameter{n}.Value"));
    }
    names
});

/// The parameters of `POST …/Streams` other than the numbered custom ones.
pub const STREAM_PARAMETERS: [&str; 5] = [
    "Url",
    "Name",
    "Track",
    "StatusCallback",
    "StatusCallbackMethod",
];

/// `POST …/Calls/{Sid}/Streams`, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartStream {
    pub url: StreamUrl,
    pub name: Option<String>,
    pub track: StreamTrack,
    pub parameters: BTreeMap<String, String>,
    pub status_callback: Option<StreamCallback>,
}

impl StartStream {
    pub fn parse(form: &Form, policy: AddressPolicy) -> Result<Self, InvalidParameter> {
        let accepted: Vec<&str> = START_PARAMETERS.iter().map(String::as_str).collect();
        let raw = Params::collect(form, &accepted, &[])?;
        let value = raw
            .get("Url")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing("Url"))?;
        let url = StreamUrl::parse(value, policy).map_err(|problem| {
            invalid(
                "Url",
                format!("Url is not a valid WebSocket URL (ws:// or wss://): {problem}"),
            )
        })?;
        let name = match raw.get("Name") {
            Some(name) if name.is_empty() || name.chars().count() > MAX_NAME => {
                return Err(invalid(
                    "Name",
                    format!("Name must be 1 to {MAX_NAME} characters"),
                ));
            }
            Some(name) if name.parse::<StreamSid>().is_ok() => {
                return Err(invalid(
                    "Name",
                    "Name may not look like a StreamSid: it names the stream in its place".into(),
                ));
            }
            other => other.map(str::to_owned),
        };
        let track = match raw.get("Track") {
            None => StreamTrack::Inbound,
            Some(value) => StreamTrack::parse(value).ok_or_else(|| {
                invalid(
                    "Track",
                    format!(
                        "Track must be {}, not '{}'",
                        StreamTrack::choices(),
                        shorten(value)
                    ),
                )
            })?,
        };
        let mut parameters = BTreeMap::new();
        for n in 1..=MAX_PARAMETERS {
            let (name_key, value_key) =
                (format!("Parameter{n}.Name"), format!("Parameter{n}.Value"));
            match (raw.get(&name_key), raw.get(&value_key)) {
                (None, None) => {}
                (Some(name), value) if !name.is_empty() => {
                    if parameters
                        .insert(name.to_owned(), value.unwrap_or_default().to_owned())
                        .is_some()
                    {
                        return Err(conflict(
                            &name_key,
                            format!("{name_key} '{}' is given twice", shorten(name)),
                        ));
                    }
                }
                _ => {
                    return Err(invalid(
                        &name_key,
                        format!("{value_key} needs {name_key}, a non-empty name"),
                    ));
                }
            }
        }
        let size: usize = parameters.iter().map(|(n, v)| n.len() + v.len()).sum();
        if size > MAX_PARAMETER_BYTES {
            return Err(invalid(
                "Parameter1.Name",
                format!(
                    "The custom parameters' names and values are {size} bytes; at most {MAX_PARAMETER_BYTES} are allowed"
                ),
            ));
        }
        let status_callback = raw
            .webhook("StatusCallback", "StatusCallbackMethod", policy)?
            .map(|(url, method)| StreamCallback { url, method });
        Ok(Self {
            url,
            name,
            track,
            parameters,
            status_callback,
        })
    }

    /// What the intent records, in canonical form.
    pub fn parameters(&self) -> BTreeMap<String, String> {
        let mut p = BTreeMap::from([
            ("Url".to_owned(), self.url.as_str().to_owned()),
            ("Track".to_owned(), self.track.as_str().to_owned()),
        ]);
        if let Some(name) = &self.name {
            p.insert("Name".into(), name.clone());
        }
        if let Some(callback) = &self.status_callback {
            p.insert("StatusCallback".into(), callback.url.as_str().to_owned());
            p.insert(
                "StatusCallbackMethod".into(),
                callback.method.as_str().to_owned(),
            );
        }
        for (n, (name, value)) in self.parameters.iter().enumerate() {
            p.insert(format!("Parameter{}.Name", n + 1), name.clone());
            p.insert(format!("Parameter{}.Value", n + 1), value.clone());
        }
        p
    }

    pub fn spec(&self, sid: StreamSid) -> StreamSpec {
        StreamSpec {
            stream_sid: sid,
            name: self.name.clone(),
            url: self.url.clone(),
            track: self.track,
            parameters: self.parameters.clone(),
            status_callback: self.status_callback.clone(),
        }
    }
}

/// `POST …/Streams/{Sid or Name}`: `Status=stopped`, the only change a stream takes.
pub fn parse_stop(form: &Form) -> Result<(), InvalidParameter> {
    let raw = Params::collect(form, &["Status"], &[])?;
    match raw.get("Status") {
        None => Err(missing("Status")),
        Some(value) if value.eq_ignore_ascii_case("stopped") => Ok(()),
        Some(value) => Err(invalid(
            "Status",
            format!("Status must be stopped, not '{}'", shorten(value)),
        )),
    }
}

/// The request is valid but the call's or the stream's state does not allow it (409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamStateError {
    #[error("The call is {} and can only be streamed while it is in progress", .0.as_str())]
    CallNotInProgress(CallStatus),
    #[error("The call already runs {MAX_ACTIVE} streams, the most it may; stop one first")]
    TooMany,
    #[error("The call already runs a stream named '{0}'")]
    NameTaken(String),
    #[error("The stream {0} is stopped")]
    Stopped(StreamSid),
}

/// The call's stream named `name_or_sid` (its StreamSid, or its `Name`: a running one first).
pub fn find<'a>(call: &'a Call, name_or_sid: &str) -> Option<&'a Stream> {
    let named = || call.streams.iter().filter(|s| s.named(name_or_sid));
    named()
        .find(|s| s.status == StreamStatus::InProgress)
        .or_else(|| named().next_back())
}

/// A start or a stop, as it is to be written: the call (with its streams and next intent
/// number; only if it still has `call.version - 1`) and the intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStream {
    pub call: Call,
    pub intent: Intent,
    /// The stream as the answer shows it.
    pub stream: Stream,
}

/// Keeps the call's streams bounded: every running one, and the last few stopped.
fn prune(streams: &mut Vec<Stream>) {
    let stopped = streams
        .iter()
        .filter(|s| s.status == StreamStatus::Stopped)
        .count();
    let mut excess = stopped.saturating_sub(KEPT_STOPPED);
    streams.retain(|s| {
        if excess > 0 && s.status == StreamStatus::Stopped {
            excess -= 1;
            return false;
        }
        true
    });
}

pub fn plan_start(
    call: &Call,
    request: &StartStream,
    sid: StreamSid,
    intent_sid: IntentSid,
    now: Timestamp,
    retention: Duration,
) -> Result<PlannedStream, StreamStateError> {
    if call.status != CallStatus::InProgress {
        return Err(StreamStateError::CallNotInProgress(call.status));
    }
    let running: Vec<&Stream> = call
        .streams
        .iter()
        .filter(|s| s.status == StreamStatus::InProgress)
        .collect();
    if running.len() >= MAX_ACTIVE {
        return Err(StreamStateError::TooMany);
    }
    if let Some(name) = &request.name
        && running.iter().any(|s| s.spec.name.as_ref() == Some(name))
    {
        return Err(StreamStateError::NameTaken(name.clone()));
    }
    let spec = request.spec(sid.clone());
    let mut parameters = request.parameters();
    parameters.insert("StreamSid".into(), sid.to_string());
    let command = CommandParameters {
        stream: Some(Box::new(spec.clone())),
        ..CommandParameters::default()
    };
    let (mut next, intent) = next_call_intent(
        call,
        CallCommand {
            action: IntentAction::StreamStart,
            parameters,
            kind: CommandType::StreamStart,
            command,
        },
        intent_sid,
        now,
        retention,
    );
    let stream = Stream {
        spec,
        status: StreamStatus::InProgress,
        event_seq: 0,
        date_updated: now.millis(),
    };
    next.streams.push(stream.clone());
    prune(&mut next.streams);
    Ok(PlannedStream {
        call: next,
        intent,
        stream,
    })
}

pub fn plan_stop(
    call: &Call,
    stream: &Stream,
    intent_sid: IntentSid,
    now: Timestamp,
    retention: Duration,
) -> Result<PlannedStream, StreamStateError> {
    if stream.status == StreamStatus::Stopped {
        return Err(StreamStateError::Stopped(stream.sid().clone()));
    }
    if call.status.is_final() {
        return Err(StreamStateError::CallNotInProgress(call.status));
    }
    let parameters = BTreeMap::from([
        ("Status".to_owned(), "stopped".to_owned()),
        ("StreamSid".to_owned(), stream.sid().to_string()),
    ]);
    let command = CommandParameters {
        stream_sid: Some(stream.sid().clone()),
        ..CommandParameters::default()
    };
    let (mut next, intent) = next_call_intent(
        call,
        CallCommand {
            action: IntentAction::StreamStop,
            parameters,
            kind: CommandType::StreamStop,
            command,
        },
        intent_sid,
        now,
        retention,
    );
    let mut stopped = stream.clone();
    stopped.status = StreamStatus::Stopped;
    stopped.date_updated = now.millis();
    for s in &mut next.streams {
        if s.sid() == stream.sid() {
            *s = stopped.clone();
        }
    }
    prune(&mut next.streams);
    Ok(PlannedStream {
        call: next,
        intent,
        stream: stopped,
    })
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

/// What a worker's report does to the call as stored: the call with the stream as it now is
/// (to write under the call's version), or why nothing. A stream started by RCML
/// (`<Start><Stream>`) is added by its `stream.started`.
pub fn apply(call: &Call, report: &StreamReport, now: Timestamp) -> Result<(Call, Stream), String> {
    let sid = report.stream_sid();
    let seq = report.seq();
    let mut next = call.clone();
    let index = match next.streams.iter().position(|s| s.sid() == sid) {
        Some(index) => index,
        None => match report {
            StreamReport::Started { spec, .. } => {
                next.streams.push(Stream {
                    spec: (*spec).clone(),
                    status: StreamStatus::InProgress,
                    event_seq: 0,
                    date_updated: now.millis(),
                });
                next.streams.len() - 1
            }
            _ => return Err(format!("stream event #{seq} for unknown stream {sid}")),
        },
    };
    let stream = &mut next.streams[index];
    if seq <= stream.event_seq {
        return Err(format!(
            "stream event #{seq} of {sid}: duplicate or stale (last applied #{})",
            stream.event_seq
        ));
    }
    stream.event_seq = seq;
    stream.date_updated = now.millis();
    if !matches!(report, StreamReport::Started { .. }) {
        stream.status = StreamStatus::Stopped;
    }
    let stream = stream.clone();
    next.version += 1;
    next.date_updated = now;
    prune(&mut next.streams);
    Ok((next, stream))
}

/// The stream's StatusCallback for a worker's report, if it has one (Twilio's
/// `StreamEvent`: `stream-started`, `stream-stopped`, `stream-error`).
pub fn callback(
    call: &Call,
    stream: &Stream,
    report: &StreamReport,
    now: Timestamp,
) -> Option<CallbackJob> {
    let callback = stream.spec.status_callback.as_ref()?;
    let (event, error) = match report {
        StreamReport::Started { .. } => ("stream-started", None),
        StreamReport::Stopped { .. } => ("stream-stopped", None),
        StreamReport::Failed { error, .. } => ("stream-error", Some(*error)),
    };
    let mut p = BTreeMap::new();
    p.insert("AccountSid".to_owned(), call.account_sid.to_string());
    p.insert("CallSid".to_owned(), call.sid.to_string());
    p.insert("StreamSid".to_owned(), stream.sid().to_string());
    if let Some(name) = &stream.spec.name {
        p.insert("StreamName".to_owned(), name.clone());
    }
    p.insert("StreamEvent".to_owned(), event.to_owned());
    if let Some(error) = error {
        p.insert("StreamError".to_owned(), error.to_owned());
    }
    p.insert("Timestamp".to_owned(), now.rfc2822());
    Some(CallbackJob {
        version: JOB_VERSION,
        job_id: format!("{}-e{}-{event}", stream.sid(), report.seq()),
        kind: JobKind::StatusCallback,
        account_sid: call.account_sid.clone(),
        call_sid: Some(call.sid.clone()),
        conference_sid: None,
        url: callback.url.clone(),
        method: callback.method,
        parameters: p,
        attempts: 0,
        history: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use crate::event::Event;

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
