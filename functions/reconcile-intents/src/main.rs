//! The reconcile-intents function, every minute: pending and silent intents
//! (`teleapi_pipeline::reconcile::reconcile_pending`), then expired worker leases
//! (`teleapi_pipeline::leases`), which it looks for again every 20 s while its invocation has time left
//! (at 20 and 40 s with the template's 60 s timeout).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};
use teleapi_pipeline::reconcile::{LEASE_SWEEP_INTERVAL, run_once, sweep_leases};

fn main() -> Result<(), Error> {
    teleapi_runtime::lambda::run(async {
        let services = teleapi_runtime::lambda::initialised(
            teleapi_runtime::config::reconciler_services_from_env(),
        )
        .await?;
        lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
            let services = &services;
            let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
            async move {
                let (report, mut swept) = run_once(services).await?;
                // Another sweep only if it can finish well before the invocation's deadline.
                let margin = Duration::from_secs(15);
                while deadline
                    .duration_since(SystemTime::now())
                    .is_ok_and(|left| left > LEASE_SWEEP_INTERVAL + margin)
                {
                    tokio::time::sleep(LEASE_SWEEP_INTERVAL).await;
                    swept += sweep_leases(services).await?;
                }
                Ok::<_, Error>(json!({
                    "resent": report.resent,
                    "failed": report.failed,
                    "unreported": report.unreported,
                    "deferred": report.deferred,
                    "untaken_calls": report.untaken,
                    "expired_workers": swept.workers,
                    "ended_calls": swept.calls,
                    "failed_intents": swept.intents,
                    "hung_up_legs": swept.legs,
                    "ended_rooms": swept.rooms,
                }))
            }
        }))
        .await
    })
}
