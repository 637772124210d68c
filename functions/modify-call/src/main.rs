//! The modify-call function: API Gateway -> `teleapi::api` (Operation::ModifyCall).

use std::convert::Infallible;

use lambda_http::{Error, Request, service_fn};
use teleapi::api::{self, Operation};

fn main() -> Result<(), Error> {
    teleapi::lambda::run(async {
        teleapi::telemetry::init_lambda();
        // Clients are built once per sandbox, outside the handler, and reused by warm invocations.
        let services = teleapi::lambda::initialised(teleapi::config::services_from_env()).await?;
        let serves = Operation::served_by("modify-call");
        lambda_http::run(service_fn(|request: Request| {
            let (services, serves) = (&services, &serves);
            async move { Ok::<_, Infallible>(api::handle(services, request, Some(serves)).await) }
        }))
        .await
    })
}
