//! What a worker's `stream.*` events do to a call's streams.

use super::*;
use crate::call::Call;
use crate::stream::prune;
use crate::time::Timestamp;
use crate::wire::event::StreamReport;

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
