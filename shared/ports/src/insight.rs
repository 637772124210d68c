//! Writing calls' logs (docs/data-model.md, "call_log"): what call-events, the callback
//! function and the API note about a call, and the one rule they share: a log entry is kept
//! for the intents' retention, and a call whose log is full keeps what it has.

use std::time::Duration;

use crate::{CallLogStore, StoreError};
use teleapi_domain::call_log::{LogEntry, LoggedRequest, LoggedResponse, Problem, RequestEntry};
use teleapi_domain::{AccountSid, CallSid, Timestamp};

/// Appends `entry` to its call's log, kept for `retention` from when it happened.
pub async fn note(
    log: &dyn CallLogStore,
    entry: &LogEntry,
    retention: Duration,
) -> Result<(), StoreError> {
    if !log.append(entry, entry.at().plus(retention)).await? {
        tracing::info!(call_sid = %entry.call_sid(), "the call's log is full; entry dropped");
    }
    Ok(())
}

/// [`note`], for writers whose work matters more than its log (a callback delivered, an API
/// answer): a failure is reported in the function's own log and otherwise ignored.
pub async fn note_or_warn(log: &dyn CallLogStore, entry: &LogEntry, retention: Duration) {
    if let Err(err) = note(log, entry, retention).await {
        tracing::warn!(call_sid = %entry.call_sid(), error = %err, "call log entry not written");
    }
}

/// A request and its answer, as an entry of `call`'s log.
pub fn request_entry(
    call_sid: &CallSid,
    account_sid: &AccountSid,
    at: Timestamp,
    request: LoggedRequest,
    response: LoggedResponse,
) -> LogEntry {
    LogEntry::Request(
        RequestEntry {
            call_sid: call_sid.clone(),
            account_sid: account_sid.clone(),
            at,
            request,
            response,
        }
        .bounded(),
    )
}

/// A problem, as a notification of `call` named by `origin` (what it records).
pub fn notification_entry(
    problem: Problem,
    call_sid: &CallSid,
    account_sid: &AccountSid,
    at: Timestamp,
    origin: &str,
) -> LogEntry {
    LogEntry::Notification(problem.notification(call_sid, account_sid, at, origin))
}
