//! What the application is told about a call: its StatusCallback requests and its
//! FallbackUrl request, with the call's parameters.

use crate::API_VERSION;
use crate::call::Call;
use crate::call::{AmdCallback, AnsweredBy};
use crate::time::Timestamp;
use crate::wire::callback::CALLBACK_SOURCE;
use crate::wire::callback::CallbackJob;
use crate::wire::callback::JOB_VERSION;
use crate::wire::callback::JobKind;
use std::collections::BTreeMap;

/// The parameters every request about a call carries (Twilio's set).
pub fn call_parameters(call: &Call) -> BTreeMap<String, String> {
    let mut p = BTreeMap::new();
    p.insert("CallSid".into(), call.sid.to_string());
    p.insert("AccountSid".into(), call.account_sid.to_string());
    p.insert("From".into(), call.from.clone());
    p.insert("To".into(), call.to.clone());
    p.insert("CallStatus".into(), call.status.as_str().into());
    p.insert("Direction".into(), call.direction.as_str().into());
    p.insert("ApiVersion".into(), API_VERSION.into());
    if let Some(parent) = &call.parent_call_sid {
        p.insert("ParentCallSid".into(), parent.to_string());
    }
    p
}

/// A StatusCallback about `call` (in the state the event left it), numbered `sequence`.
pub fn status_callback(
    call: &Call,
    event_seq: u64,
    sequence: u64,
    at: Timestamp,
) -> Option<CallbackJob> {
    let url = call.instructions.status_callback.clone()?;
    let mut parameters = call_parameters(call);
    if call.status.is_final() {
        parameters.insert(
            "CallDuration".into(),
            call.duration.unwrap_or(0).to_string(),
        );
    }
    parameters.insert("Timestamp".into(), at.rfc2822());
    parameters.insert("SequenceNumber".into(), sequence.to_string());
    parameters.insert("CallbackSource".into(), CALLBACK_SOURCE.into());
    Some(CallbackJob {
        version: JOB_VERSION,
        job_id: format!("{}-e{event_seq}", call.sid),
        kind: JobKind::StatusCallback,
        account_sid: call.account_sid.clone(),
        call_sid: Some(call.sid.clone()),
        conference_sid: None,
        url,
        method: call.instructions.status_callback_method,
        parameters,
        attempts: 0,
        history: Vec::new(),
    })
}

/// The `AsyncAmdStatusCallback` request of an asynchronous detection's outcome: Twilio's
/// `CallSid`, `AccountSid`, `AnsweredBy`, `MachineDetectionDuration` (ms).
pub fn amd_callback(
    call: &Call,
    event_seq: u64,
    answered_by: AnsweredBy,
    duration_ms: u64,
    callback: &AmdCallback,
) -> CallbackJob {
    let parameters = [
        ("CallSid", call.sid.to_string()),
        ("AccountSid", call.account_sid.to_string()),
        ("AnsweredBy", answered_by.as_str().to_owned()),
        ("MachineDetectionDuration", duration_ms.to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    CallbackJob {
        version: JOB_VERSION,
        job_id: format!("{}-amd{event_seq}", call.sid),
        kind: JobKind::StatusCallback,
        account_sid: call.account_sid.clone(),
        call_sid: Some(call.sid.clone()),
        conference_sid: None,
        url: callback.url.clone(),
        method: callback.method,
        parameters,
        attempts: 0,
        history: Vec::new(),
    }
}

/// A FallbackUrl request after the call's RCML failed at `error_url` with `error_code`.
pub fn fallback(
    call: &Call,
    event_seq: u64,
    error_code: u32,
    error_url: &str,
) -> Option<CallbackJob> {
    let url = call.instructions.fallback_url.clone()?;
    let mut parameters = call_parameters(call);
    parameters.insert("ErrorCode".into(), error_code.to_string());
    parameters.insert("ErrorUrl".into(), error_url.to_owned());
    Some(CallbackJob {
        version: JOB_VERSION,
        job_id: format!("{}-f{event_seq}", call.sid),
        kind: JobKind::Fallback,
        account_sid: call.account_sid.clone(),
        call_sid: Some(call.sid.clone()),
        conference_sid: None,
        url,
        method: call.instructions.fallback_method,
        parameters,
        attempts: 0,
        history: Vec::new(),
    })
}
