//! What the application is told about a stream: its StatusCallback requests.

use super::*;
use crate::call::Call;
use crate::time::Timestamp;
use crate::wire::callback::{CallbackJob, JOB_VERSION, JobKind};
use crate::wire::event::StreamReport;
use std::collections::BTreeMap;

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
