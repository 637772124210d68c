//! Starting a recording: what an application may ask (`POST …/Calls/{Sid}/Recordings`,
//! `Record=true`), and the intent and command that start it.

use super::*;
use crate::call::{Call, CallStatus};
use crate::form::Form;
use crate::intent::{CallCommand, Intent, IntentAction, next_call_intent};
use crate::params::{Params, conflict, invalid};
use crate::sid::{IntentSid, RecordingSid, shorten};
use crate::time::Timestamp;
use crate::webhook::AddressPolicy;
use crate::wire::command::{CommandParameters, CommandType};
use std::collections::BTreeMap;
use std::time::Duration;

/// The recording parameters, of `POST …/Recordings` and of a new call with `Record=true`.
pub const RECORDING_PARAMETERS: [&str; 6] = [
    "RecordingChannels",
    "RecordingTrack",
    "Trim",
    "RecordingStatusCallback",
    "RecordingStatusCallbackMethod",
    "RecordingStatusCallbackEvent",
];

/// How to record, as a request asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingOptions {
    pub channels: RecordingChannels,
    pub track: RecordingTrack,
    pub trim: Trim,
    pub status_callback: Option<RecordingCallback>,
}

pub(crate) fn word<T>(
    raw: &Params,
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
    choices: String,
) -> Result<Option<T>, crate::InvalidParameter> {
    raw.get(name)
        .map(|value| {
            parse(value).ok_or_else(|| {
                invalid(
                    name,
                    format!("{name} must be {choices}, not '{}'", shorten(value)),
                )
            })
        })
        .transpose()
}

impl RecordingOptions {
    /// `POST …/Calls/{Sid}/Recordings`: the recording parameters and nothing else.
    pub fn parse_start(
        form: &Form,
        policy: AddressPolicy,
    ) -> Result<Self, crate::InvalidParameter> {
        let raw = Params::collect(
            form,
            &RECORDING_PARAMETERS,
            &["RecordingStatusCallbackEvent"],
        )?;
        Self::read(&raw, policy)
    }

    /// The recording parameters among a request's (Twilio's defaults: mono, both tracks, not
    /// trimmed, `completed` reported).
    pub fn read(raw: &Params, policy: AddressPolicy) -> Result<Self, crate::InvalidParameter> {
        let channels = word(
            raw,
            "RecordingChannels",
            RecordingChannels::parse,
            RecordingChannels::choices(),
        )?;
        let track = word(
            raw,
            "RecordingTrack",
            RecordingTrack::parse,
            RecordingTrack::choices(),
        )?;
        let trim = word(raw, "Trim", Trim::parse, Trim::choices())?;
        let callback = raw.webhook(
            "RecordingStatusCallback",
            "RecordingStatusCallbackMethod",
            policy,
        )?;
        let event_values = raw.get_all("RecordingStatusCallbackEvent");
        let mut events = Vec::new();
        for value in &event_values {
            let mut any = false;
            for name in value.split_ascii_whitespace() {
                any = true;
                let event = RecordingCallbackEvent::parse(name).ok_or_else(|| {
                    invalid(
                        "RecordingStatusCallbackEvent",
                        format!(
                            "RecordingStatusCallbackEvent '{}' is not one of {}",
                            shorten(name),
                            RecordingCallbackEvent::choices()
                        ),
                    )
                })?;
                if !events.contains(&event) {
                    events.push(event);
                }
            }
            if !any {
                return Err(invalid(
                    "RecordingStatusCallbackEvent",
                    "RecordingStatusCallbackEvent is empty".into(),
                ));
            }
        }
        if !event_values.is_empty() && callback.is_none() {
            return Err(conflict(
                "RecordingStatusCallbackEvent",
                "RecordingStatusCallbackEvent can only be given together with RecordingStatusCallback"
                    .into(),
            ));
        }
        if events.is_empty() {
            events.push(RecordingCallbackEvent::Completed);
        }
        events.sort_by_key(|e| RecordingCallbackEvent::ALL.iter().position(|a| a == e));
        Ok(Self {
            channels: channels.unwrap_or(RecordingChannels::Mono),
            track: track.unwrap_or(RecordingTrack::Both),
            trim: trim.unwrap_or(Trim::DoNotTrim),
            status_callback: callback.map(|(url, method)| RecordingCallback {
                url,
                method,
                events,
            }),
        })
    }

    /// What the intent records, in canonical form.
    pub fn parameters(&self) -> BTreeMap<String, String> {
        let mut p = BTreeMap::from([
            (
                "RecordingChannels".to_owned(),
                self.channels.as_str().to_owned(),
            ),
            ("RecordingTrack".to_owned(), self.track.as_str().to_owned()),
            ("Trim".to_owned(), self.trim.as_str().to_owned()),
        ]);
        if let Some(callback) = &self.status_callback {
            p.insert(
                "RecordingStatusCallback".into(),
                callback.url.as_str().to_owned(),
            );
            p.insert(
                "RecordingStatusCallbackMethod".into(),
                callback.method.as_str().to_owned(),
            );
            let events: Vec<&str> = callback.events.iter().map(|e| e.as_str()).collect();
            p.insert("RecordingStatusCallbackEvent".into(), events.join(" "));
        }
        p
    }

    pub fn spec(&self, sid: RecordingSid, source: RecordingSource) -> RecordingSpec {
        RecordingSpec {
            recording_sid: sid,
            channels: self.channels,
            track: self.track,
            trim: self.trim,
            source,
            status_callback: self.status_callback.clone(),
        }
    }
}

/// The request is valid but the call's or the recording's state does not allow it (409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingStateError {
    #[error("The call is {} and can only be recorded while it is in progress", .0.as_str())]
    CallNotInProgress(CallStatus),
    #[error(
        "The call is already being recorded by {0}: stop that recording before starting another"
    )]
    AlreadyRecording(RecordingSid),
    #[error("The recording {0} is {1} and can no longer be paused, resumed or stopped")]
    NotActive(RecordingSid, &'static str),
    #[error("The recording {0} is {1}: it can be deleted once it has completed")]
    NotFinished(RecordingSid, &'static str),
}

/// A recording change as it is to be written, in one conditional write: the call with its next
/// intent number (only if it still has `call_version`), the recording (only if it still has
/// `recording_version`; `None`: only if there is none yet), and the intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRecording {
    pub call: Call,
    pub call_version: u64,
    pub recording: Recording,
    pub recording_version: Option<u64>,
    pub intent: Intent,
}

/// Starts recording `call` (as read, with `active`, the item of the recording its `recording`
/// names, if any): the call names the new recording as its active one.
pub fn plan_start(
    call: &Call,
    active: Option<&Recording>,
    options: &RecordingOptions,
    sid: RecordingSid,
    intent_sid: IntentSid,
    now: Timestamp,
    retention: Duration,
) -> Result<PlannedRecording, RecordingStateError> {
    if call.status != CallStatus::InProgress {
        return Err(RecordingStateError::CallNotInProgress(call.status));
    }
    if let Some(active) = active.filter(|r| r.status.is_active()) {
        return Err(RecordingStateError::AlreadyRecording(active.sid.clone()));
    }
    let spec = options.spec(sid.clone(), RecordingSource::StartCallRecordingApi);
    let mut parameters = options.parameters();
    parameters.insert("RecordingSid".into(), sid.to_string());
    let command = CommandParameters {
        recording: Some(Box::new(spec.clone())),
        ..CommandParameters::default()
    };
    let (mut next, intent) = next_call_intent(
        call,
        CallCommand {
            action: IntentAction::RecordingStart,
            parameters,
            kind: CommandType::RecordingStart,
            command,
        },
        intent_sid,
        now,
        retention,
    );
    next.recording = Some(sid);
    Ok(PlannedRecording {
        call: next,
        call_version: call.version,
        recording: Recording::new(&spec, call.account_sid.clone(), call.sid.clone(), now),
        recording_version: None,
        intent,
    })
}
