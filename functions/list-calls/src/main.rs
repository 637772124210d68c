//! The list-calls function: API Gateway -> `teleapi::api` (Operation::ListCalls).

use std::convert::Infallible;

use lambda_http::{Error, Request, service_fn};
use teleapi::api::{self, Operation};

const SERVES: &[Operation] = &[Operation::ListCalls];

#[tokio::main]
async fn main() -> Result<(), Error> {
    teleapi::telemetry::init_lambda();
    // Clients are built once per sandbox, outside the handler, and reused by warm invocations.
    let services = teleapi::lambda::initialised(teleapi::config::services_from_env()).await?;
    lambda_http::run(service_fn(|request: Request| {
        let services = &services;
        async move { Ok::<_, Infallible>(api::handle(services, request, Some(SERVES)).await) }
    }))
    .await
}
