//! The reconciler: settles intents left pending by a modification that died between its write
//! and its send (a crash, a timeout, a lost connection), and intents no worker ever reports.
//! Runs every minute (a scheduled function deployed; a background task in `teleapi-local`). See
//! docs/data-model.md, "Intent lifecycle".
//!
//! An intent still pending after [`GRACE`] is either unsent or sent and not yet reported by the
//! worker. Sending its command again is safe either way: the deduplication id is the IntentSid,
//! so within SQS's five-minute window the worker sees the command once. Beyond
//! [`DELIVERY_WINDOW`] a resend could duplicate, and a command that late would surprise the
//! caller, so the intent is failed instead. An intent whose command is on the queue (`enqueued`)
//! and that no worker has reported by [`REPORT_DEADLINE`] is failed too: nothing waits forever.
//! What a failed intent leaves waiting for a worker is settled with it: a call no worker took
//! ends, and a recording or stream it started that no worker ever reported fails.

use std::time::Duration;

use crate::leases::{
    Lost, SweepError, Swept, drop_lost_call, end_expired_workers, in_call_group, report_in_place,
};
pub use crate::services::ReconcilerServices;
use teleapi_domain::call::{recording_failed, stream_failed};
use teleapi_domain::call_log::{LogLevel, Problem};
use teleapi_domain::intent::{Intent, IntentAction};
use teleapi_domain::stream::StreamStatus;
use teleapi_domain::{CallStatus, IntentStatus, Timestamp};
use teleapi_ports::{CallStore, OutgoingMessage, Settlement, StoreError};

/// How often the deployed reconciler looks for expired leases within its one-minute run (at
/// 0, 20 and 40 s): with the 30 s lease, a dead worker's calls end within about 50 s of its
/// last heartbeat.
pub const LEASE_SWEEP_INTERVAL: Duration = Duration::from_secs(20);

/// One run: intents first, then expired leases.
pub async fn run_once(services: &ReconcilerServices) -> Result<(Reconciled, Swept), SweepError> {
    let now = services.clock.now();
    let reconciled = reconcile_pending(services, now).await?;
    let swept = sweep_leases(services).await?;
    Ok((reconciled, swept))
}

/// Ends the calls of workers whose lease ran out.
pub async fn sweep_leases(services: &ReconcilerServices) -> Result<Swept, SweepError> {
    end_expired_workers(services, services.clock.now()).await
}

/// Longer than any modification request may run (the function's timeout), so that the
/// reconciler never races a request still in flight.
pub const GRACE: Duration = Duration::from_secs(60);

/// Inside SQS's five-minute deduplication interval, with a margin for clock skew and the time a
/// reconciler run takes.
pub const DELIVERY_WINDOW: Duration = Duration::from_secs(240);

/// How long after its creation an intent may await its worker's report: a minute beyond the
/// last moment its command can have been (re)delivered.
pub const REPORT_DEADLINE: Duration = Duration::from_secs(300);

/// Why an intent that no worker reported was failed.
pub const UNREPORTED: &str = "No media worker reported the command within 5 minutes; \
whether it took effect is unknown";

/// Intents looked at per run; a backlog drains over successive runs.
const BATCH: usize = 200;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// Commands sent again and their intents marked enqueued.
    pub resent: usize,
    /// Intents too old to deliver, marked failed.
    pub failed: usize,
    /// Enqueued intents that no worker reported in time, marked failed.
    pub unreported: usize,
    /// Sends that failed again; retried on the next run.
    pub deferred: usize,
    /// Calls created through the API that no worker took, ended as failed.
    pub untaken: usize,
}

/// Settles what awaits a worker's report: resends pending commands, fails intents too old to
/// deliver or never reported, and ends as `failed` (with its StatusCallback and a notification,
/// 15002) a call created through the API whose `dial` failed so while no worker had taken it.
pub async fn reconcile_pending(
    services: &ReconcilerServices,
    now: Timestamp,
) -> Result<Reconciled, SweepError> {
    let (calls, commands) = (services.calls.as_ref(), services.commands.as_ref());
    let mut report = Reconciled::default();
    for intent in calls.pending_intents(now.minus(GRACE), BATCH).await? {
        if intent.status == IntentStatus::Enqueued {
            // Its command is on the queue; only the worker's silence is left to settle.
            if intent.date_created >= now.minus(REPORT_DEADLINE) {
                continue;
            }
            // What it leaves waiting first: a crash before the intent fails sends it again.
            fail_unstarted_media(services, &intent, UNREPORTED, now).await?;
            if fail(calls, &intent, IntentStatus::Enqueued, UNREPORTED, now).await? {
                tracing::warn!(intent_sid = %intent.sid, "enqueued intent never reported: failed");
                report.unreported += 1;
                report.untaken += end_untaken(services, &intent, UNREPORTED, now).await?;
            }
            continue;
        }
        let too_late = intent.date_created < now.minus(DELIVERY_WINDOW);
        let Some(command) = intent.command.as_ref().filter(|_| !too_late) else {
            let reason = "The command was not confirmed on the queue within 4 minutes";
            fail_unstarted_media(services, &intent, reason, now).await?;
            if fail(calls, &intent, IntentStatus::Pending, reason, now).await? {
                tracing::warn!(intent_sid = %intent.sid, "pending intent failed by the reconciler");
                report.failed += 1;
                report.untaken += end_untaken(services, &intent, reason, now).await?;
            }
            continue;
        };
        let message = OutgoingMessage::intent_command(command);
        match commands.send(intent.queue.as_deref(), &message).await {
            Ok(()) => {
                if calls
                    .settle_intent(Settlement {
                        subject: &intent.subject,
                        seq: intent.seq,
                        intent_sid: None,
                        from: &[IntentStatus::Pending],
                        to: IntentStatus::Enqueued,
                        reason: None,
                        now,
                    })
                    .await?
                {
                    tracing::info!(intent_sid = %intent.sid, "pending intent's command sent again");
                    report.resent += 1;
                }
            }
            Err(err) => {
                tracing::warn!(intent_sid = %intent.sid, error = %err, "resend failed; next run retries");
                report.deferred += 1;
            }
        }
    }
    Ok(report)
}

/// After `intent` failed for `reason`: if it was the `dial` of a call that no worker has taken
/// (no worker event applied to it), the call will never be placed; it ends `failed`, with its
/// StatusCallback and a notification (15002). 1 if it ended the call.
async fn end_untaken(
    services: &ReconcilerServices,
    intent: &teleapi_domain::Intent,
    reason: &str,
    now: Timestamp,
) -> Result<usize, SweepError> {
    let Some(call_sid) = intent.subject.call() else {
        return Ok(0);
    };
    if intent.action != teleapi_domain::IntentAction::Dial {
        return Ok(0);
    }
    let untaken = |call: &teleapi_domain::Call| {
        call.event_seq == 0 && call.worker.is_none() && call.status == CallStatus::Queued
    };
    let lost = Lost {
        last_seen: now,
        why: "untaken",
        problem: Problem::new(
            LogLevel::Error,
            15002,
            format!("No media worker took the call to place it ({reason}); it was ended as failed"),
        ),
    };
    let ended = drop_lost_call(services, call_sid, untaken, lost, now).await?;
    if ended {
        tracing::warn!(call_sid = %call_sid, "no worker took the call: failed");
    }
    Ok(usize::from(ended))
}

/// As `intent` fails for `reason`: if it started a recording or a stream of which no worker has
/// reported anything (its worker never got the command), none ever will; it is reported failed
/// in the worker's place, so that it does not stay `in-progress` (and, for a recording, hold the
/// call's one active recording) for ever. (A report of the worker's own that comes after all is
/// numbered as this one, and whichever is applied first stands.)
async fn fail_unstarted_media(
    services: &ReconcilerServices,
    intent: &Intent,
    reason: &str,
    now: Timestamp,
) -> Result<(), SweepError> {
    let Some(command) = intent.command.as_ref().and_then(|c| c.call()) else {
        return Ok(());
    };
    let parameters = &command.parameters;
    let unreported = match (intent.action, &parameters.recording, &parameters.stream) {
        (IntentAction::RecordingStart, Some(spec), _) => services
            .recordings
            .recording(&spec.recording_sid)
            .await?
            .filter(|r| r.event_seq == 0 && !r.status.is_final())
            .map(|r| recording_failed(&r, now)),
        (IntentAction::StreamStart, _, Some(spec)) => services
            .calls
            .call(&command.call_sid)
            .await?
            .and_then(|call| {
                call.streams
                    .iter()
                    .find(|s| s.spec.stream_sid == spec.stream_sid)
                    .filter(|s| s.event_seq == 0 && s.status == StreamStatus::InProgress)
                    .map(|s| stream_failed(&call.sid, s, reason, now))
            }),
        _ => None,
    };
    if let Some((_, event)) = &unreported {
        tracing::warn!(intent_sid = %intent.sid, event = %event.name(), "unstarted media reported failed");
    }
    report_in_place(services, unreported.map(in_call_group)).await
}

/// Fails `intent` if it is still `from`.
async fn fail(
    calls: &dyn CallStore,
    intent: &teleapi_domain::Intent,
    from: IntentStatus,
    reason: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    calls
        .settle_intent(Settlement {
            subject: &intent.subject,
            seq: intent.seq,
            intent_sid: None,
            from: &[from],
            to: IntentStatus::Failed,
            reason: Some(reason),
            now,
        })
        .await
}
