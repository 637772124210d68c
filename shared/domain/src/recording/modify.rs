//! Pausing, resuming and stopping a recording: the request, and the intent and command.

use super::*;
use crate::call::{Call, CallStatus};
use crate::form::Form;
use crate::intent::{CallCommand, IntentAction, next_call_intent};
use crate::params::{Params, conflict, invalid, missing};
use crate::recording::word;
use crate::sid::{IntentSid, shorten};
use crate::time::Timestamp;
use crate::wire::command::{CommandParameters, CommandType};
use std::collections::BTreeMap;
use std::time::Duration;

/// `POST …/Calls/{Sid}/Recordings/{Sid}`: pause, resume or stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingUpdate {
    pub status: RecordingStatus,
    pub pause_behavior: Option<PauseBehavior>,
}

/// The parameters of `POST …/Recordings/{Sid}`.
pub const RECORDING_UPDATE_PARAMETERS: [&str; 2] = ["Status", "PauseBehavior"];

impl RecordingUpdate {
    pub fn parse(form: &Form) -> Result<Self, crate::InvalidParameter> {
        let raw = Params::collect(form, &RECORDING_UPDATE_PARAMETERS, &[])?;
        let value = raw.get("Status").ok_or_else(|| missing("Status"))?;
        let status = RecordingStatus::parse(value)
            .filter(|s| {
                matches!(
                    s,
                    RecordingStatus::Paused
                        | RecordingStatus::InProgress
                        | RecordingStatus::Stopped
                )
            })
            .ok_or_else(|| {
                invalid(
                    "Status",
                    format!(
                        "Status must be paused, in-progress or stopped, not '{}'",
                        shorten(value)
                    ),
                )
            })?;
        let pause_behavior = word(
            &raw,
            "PauseBehavior",
            PauseBehavior::parse,
            PauseBehavior::choices(),
        )?;
        if pause_behavior.is_some() && status != RecordingStatus::Paused {
            return Err(conflict(
                "PauseBehavior",
                "PauseBehavior says how to pause; it can only be given with Status=paused".into(),
            ));
        }
        Ok(Self {
            status,
            pause_behavior,
        })
    }

    pub fn parameters(&self) -> BTreeMap<String, String> {
        let mut p = BTreeMap::from([("Status".to_owned(), self.status.as_str().to_owned())]);
        if let Some(behavior) = self.pause_behavior {
            p.insert("PauseBehavior".into(), behavior.as_str().to_owned());
        }
        p
    }
}

/// Pauses, resumes or stops `recording` of `call`.
pub fn plan_update(
    call: &Call,
    recording: &Recording,
    update: &RecordingUpdate,
    intent_sid: IntentSid,
    now: Timestamp,
    retention: Duration,
) -> Result<PlannedRecording, RecordingStateError> {
    if !recording.status.is_active() {
        return Err(RecordingStateError::NotActive(
            recording.sid.clone(),
            recording.status.as_str(),
        ));
    }
    if call.status != CallStatus::InProgress {
        return Err(RecordingStateError::CallNotInProgress(call.status));
    }
    let mut parameters = update.parameters();
    parameters.insert("RecordingSid".into(), recording.sid.to_string());
    let command = CommandParameters {
        recording_sid: Some(recording.sid.clone()),
        recording_status: Some(update.status),
        pause_behavior: update.pause_behavior,
        ..CommandParameters::default()
    };
    let (mut next, intent) = next_call_intent(
        call,
        CallCommand {
            action: IntentAction::RecordingUpdate,
            parameters,
            kind: CommandType::RecordingUpdate,
            command,
        },
        intent_sid,
        now,
        retention,
    );
    if update.status == RecordingStatus::Stopped && next.recording.as_ref() == Some(&recording.sid)
    {
        next.recording = None;
    }
    let mut changed = recording.clone();
    changed.status = update.status;
    if update.status == RecordingStatus::Paused {
        changed.pause_behavior = update.pause_behavior.unwrap_or(PauseBehavior::Silence);
    }
    changed.version += 1;
    changed.date_updated = now;
    Ok(PlannedRecording {
        call: next,
        call_version: call.version,
        recording: changed,
        recording_version: Some(recording.version),
        intent,
    })
}
