//! Starting a media stream: what an application may ask (`POST …/Calls/{Sid}/Streams`), and
//! the intent and command that start it.

use super::*;
use crate::call::{Call, CallStatus};
use crate::error::InvalidParameter;
use crate::form::Form;
use crate::intent::{CallCommand, Intent, IntentAction, next_call_intent};
use crate::params::{Params, conflict, invalid, missing};
use crate::sid::{IntentSid, StreamSid, shorten};
use crate::time::Timestamp;
use crate::webhook::AddressPolicy;
use crate::wire::command::{CommandParameters, CommandType};
use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

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
pub(crate) fn prune(streams: &mut Vec<Stream>) {
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
