//! Stopping a media stream: the request, and the intent and command.

use super::*;
use crate::call::Call;
use crate::error::InvalidParameter;
use crate::form::Form;
use crate::intent::{CallCommand, IntentAction, next_call_intent};
use crate::params::{Params, invalid, missing};
use crate::sid::{IntentSid, shorten};
use crate::stream::prune;
use crate::time::Timestamp;
use crate::wire::command::{CommandParameters, CommandType};
use std::collections::BTreeMap;
use std::time::Duration;

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

/// The call's stream named `name_or_sid` (its StreamSid, or its `Name`: a running one first).
pub fn find<'a>(call: &'a Call, name_or_sid: &str) -> Option<&'a Stream> {
    let named = || call.streams.iter().filter(|s| s.named(name_or_sid));
    named()
        .find(|s| s.status == StreamStatus::InProgress)
        .or_else(|| named().next_back())
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
