//! The reconcile-intents function: a scheduled event -> `teleapi::reconcile::reconcile_pending`.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

fn main() -> Result<(), Error> {
    teleapi::lambda::run(async {
        let services = teleapi::lambda::initialised(teleapi::config::services_from_env()).await?;
        lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| {
            let services = &services;
            async move {
                let now = services.clock.now();
                let report = teleapi::reconcile::reconcile_pending(
                    services.calls.as_ref(),
                    services.commands.as_ref(),
                    now,
                )
                .await?;
                Ok::<_, Error>(json!({
                    "resent": report.resent,
                    "failed": report.failed,
                    "deferred": report.deferred,
                }))
            }
        }))
        .await
    })
}
