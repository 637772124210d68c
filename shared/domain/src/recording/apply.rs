//! What a worker's `recording.*` events do to a recording.

use super::*;
use crate::sid::CallSid;
use crate::time::Timestamp;
use crate::wire::event::RecordingReport;

/// What a worker's report does to the recording as stored (`current`): the recording to write
/// (under `current`'s version, or as new), or why nothing. A recording asked to stop stays
/// `stopped` until the worker reports it final; a final one changes no more.
pub fn apply(
    current: Option<&Recording>,
    call_sid: &CallSid,
    report: &RecordingReport,
    now: Timestamp,
) -> Result<Recording, String> {
    let seq = report.seq();
    let sid = report.recording_sid();
    let mut next = match (current, report) {
        (
            None,
            RecordingReport::Started {
                account_sid,
                spec,
                start_time,
                ..
            },
        ) => {
            let mut created = Recording::new(spec, (*account_sid).clone(), call_sid.clone(), now);
            created.start_time = Timestamp::from_millis(*start_time);
            created.event_seq = seq;
            return Ok(created);
        }
        (None, RecordingReport::Changed { .. }) => {
            return Err(format!(
                "recording.status #{seq} for unknown recording {sid}"
            ));
        }
        (Some(current), _) => current.clone(),
    };
    if seq <= next.event_seq {
        return Err(format!(
            "recording event #{seq} of {sid}: duplicate or stale (last applied #{})",
            next.event_seq
        ));
    }
    if next.status.is_final() {
        return Err(format!(
            "recording event #{seq} of {sid}: the recording is {} already",
            next.status.as_str()
        ));
    }
    match report {
        RecordingReport::Started { start_time, .. } => {
            next.start_time = Timestamp::from_millis(*start_time);
            if next.status != RecordingStatus::Stopped {
                next.status = RecordingStatus::InProgress;
            }
        }
        RecordingReport::Changed {
            status,
            duration,
            media_url,
            error_code,
            ..
        } => {
            if status.is_final() {
                next.status = *status;
                next.duration = *duration;
                next.media = media_url.map(str::to_owned);
                next.error_code = *error_code;
            } else if status.is_active() && next.status != RecordingStatus::Stopped {
                next.status = *status;
            } else if !status.is_active() {
                return Err(format!(
                    "recording.status #{seq} of {sid}: a worker reports in-progress, paused, \
                     completed, absent or failed, not {}",
                    status.as_str()
                ));
            }
        }
    }
    next.event_seq = seq;
    next.version += 1;
    next.date_updated = now;
    Ok(next)
}

/// Where a recording is, under the API's base path.
pub fn recording_path(recording: &Recording) -> String {
    format!(
        "/call/{}/Accounts/{}/Recordings/{}",
        crate::API_VERSION,
        recording.account_sid,
        recording.sid
    )
}

/// Where the API serves a recording, absolute (`public_url`: where the API is reached), as
/// Twilio's `RecordingUrl` is.
pub fn recording_url(public_url: &str, account_sid: &AccountSid, sid: &RecordingSid) -> String {
    format!(
        "{}/call/{}/Accounts/{account_sid}/Recordings/{sid}",
        public_url.trim_end_matches('/'),
        crate::API_VERSION,
    )
}
