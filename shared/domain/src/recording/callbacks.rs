//! What the application is told about a recording: its RecordingStatusCallback requests.

use super::*;
use crate::wire::callback::{CallbackJob, JOB_VERSION, JobKind};
use crate::wire::event::RecordingReport;
use std::collections::BTreeMap;

/// The RecordingStatusCallback request a worker's report makes of `recording` as it is after
/// the report, if the application subscribed to it. `public_url` is where the API is reached
/// (`RecordingUrl` is absolute, as on Twilio).
pub fn callback(
    recording: &Recording,
    report: &RecordingReport,
    public_url: &str,
) -> Option<CallbackJob> {
    let callback = recording.status_callback.as_ref()?;
    let subscription = match report {
        RecordingReport::Started { .. } => RecordingCallbackEvent::InProgress,
        RecordingReport::Changed { status, .. } => match status {
            RecordingStatus::Completed | RecordingStatus::Failed => {
                RecordingCallbackEvent::Completed
            }
            RecordingStatus::Absent => RecordingCallbackEvent::Absent,
            _ => return None,
        },
    };
    if !callback.events.contains(&subscription) {
        return None;
    }
    let status = match report {
        RecordingReport::Started { .. } => RecordingStatus::InProgress,
        RecordingReport::Changed { status, .. } => *status,
    };
    let mut p = BTreeMap::new();
    p.insert("AccountSid".to_owned(), recording.account_sid.to_string());
    p.insert("CallSid".to_owned(), recording.call_sid.to_string());
    p.insert("RecordingSid".to_owned(), recording.sid.to_string());
    p.insert(
        "RecordingUrl".to_owned(),
        recording_url(public_url, &recording.account_sid, &recording.sid),
    );
    p.insert("RecordingStatus".to_owned(), status.as_str().to_owned());
    p.insert(
        "RecordingChannels".to_owned(),
        recording.channels.count().to_string(),
    );
    p.insert(
        "RecordingSource".to_owned(),
        recording.source.as_str().to_owned(),
    );
    p.insert(
        "RecordingTrack".to_owned(),
        recording.track.as_str().to_owned(),
    );
    p.insert(
        "RecordingStartTime".to_owned(),
        recording.start_time.rfc2822(),
    );
    p.insert(
        "ErrorCode".to_owned(),
        recording.error_code.unwrap_or(0).to_string(),
    );
    if status.is_final() {
        p.insert(
            "RecordingDuration".to_owned(),
            recording.duration.unwrap_or(0).to_string(),
        );
    }
    Some(CallbackJob {
        version: JOB_VERSION,
        job_id: format!("{}-e{}-{}", recording.sid, report.seq(), status.as_str()),
        kind: JobKind::StatusCallback,
        account_sid: recording.account_sid.clone(),
        call_sid: Some(recording.call_sid.clone()),
        conference_sid: None,
        url: callback.url.clone(),
        method: callback.method,
        parameters: p,
        attempts: 0,
        history: Vec::new(),
    })
}
