//! The reconcile-intents function, every minute: pending and silent intents
//! (`teleapi::reconcile::reconcile_pending`), then expired worker leases
//! (`teleapi::leases`), which it looks for again every 20 s until the minute is nearly over.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};
use teleapi::reconcile::{LEASE_SWEEP_INTERVAL, run_once, sweep_leases};

fn main() -> Result<(), Error> {
    teleapi::lambda::run(async {
        let services =
            teleapi::lambda::initialised(teleapi::config::reconciler_services_from_env()).await?;
        lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| {
            let services = &services;
            async move {
                let (report, mut swept) = run_once(services).await?;
                for _ in 0..2 {
                    tokio::time::sleep(LEASE_SWEEP_INTERVAL).await;
                    let more = sweep_leases(services).await?;
                    swept.workers += more.workers;
                    swept.calls += more.calls;
                    swept.intents += more.intents;
                }
                Ok::<_, Error>(json!({
                    "resent": report.resent,
                    "failed": report.failed,
                    "unreported": report.unreported,
                    "deferred": report.deferred,
                    "expired_workers": swept.workers,
                    "ended_calls": swept.calls,
                    "failed_intents": swept.intents,
                }))
            }
        }))
        .await
    })
}
