//! Recording an intent of the control plane's own (run the fallback RCML, fail a call) and
//! sending its command: the same conditional write as an API modification, retried against
//! concurrent writers within a budget.

use std::time::Duration;

use teleapi_domain::call::{SystemAction, plan_system};
use teleapi_domain::{CallSid, IntentSid, Timestamp};
use teleapi_ports::retry::Retry;
use teleapi_ports::{CallStore, CallWrite, OutgoingMessage, Queue, RecordError, StoreError};

/// What became of a system action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemOutcome {
    /// Recorded as this intent; its command was sent (or will be, by the reconciler).
    Recorded(IntentSid),
    /// The call is unknown or has ended: nothing to do.
    Moot,
}

pub async fn record_system_intent(
    calls: &dyn CallStore,
    commands: &dyn Queue,
    call_sid: &CallSid,
    action: &SystemAction,
    now: impl Fn() -> Timestamp,
    retention: Duration,
    budget: Duration,
) -> Result<SystemOutcome, StoreError> {
    let intent_sid = IntentSid::generate();
    let mut retry = Retry::within(budget);
    loop {
        let Some(call) = calls.call(call_sid).await? else {
            return Ok(SystemOutcome::Moot);
        };
        let Some(planned) = plan_system(&call, action, intent_sid.clone(), now(), retention) else {
            return Ok(SystemOutcome::Moot);
        };
        let write = CallWrite {
            call: &planned.call,
            expected_version: Some(call.version),
            intent: Some(&planned.intent),
            idempotency: None,
            now: now(),
        };
        match calls.write_call(write).await {
            Ok(()) => {
                send_after_write(commands, &planned.intent).await;
                return Ok(SystemOutcome::Recorded(intent_sid));
            }
            Err(RecordError::Store(err)) => return Err(err),
            Err(RecordError::CallChanged | RecordError::KeyTaken) => {
                if !retry.again().await {
                    return Err(StoreError::Unavailable(format!(
                        "{call_sid} kept changing for {budget:?}"
                    )));
                }
            }
        }
    }
}

/// Sends a recorded intent's command. A failure here is left to the reconciler, which finds the
/// intent pending and sends the command again: failing the caller instead would make its retry
/// record a second intent.
pub async fn send_after_write(commands: &dyn Queue, intent: &teleapi_domain::Intent) {
    if let Some(command) = &intent.command
        && let Err(err) = commands
            .send(
                intent.queue.as_deref(),
                &OutgoingMessage::intent_command(command),
            )
            .await
    {
        tracing::warn!(intent_sid = %intent.sid, error = %err, "command not sent; the reconciler will send it");
    }
}
