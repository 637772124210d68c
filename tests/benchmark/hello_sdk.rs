//! The cold-start floor of a function that talks to DynamoDB and SQS: `hello-lambda` started as
//! ours are (`teleapi_runtime::lambda::run`: the certificate bundle named, JSON logs), with the
//! AWS SDK's configuration and its DynamoDB and SQS clients built before the first request, as
//! every function of ours must have them. It answers without using them.

use std::convert::Infallible;

use lambda_http::{Request, service_fn};

fn main() -> Result<(), lambda_http::Error> {
    teleapi_runtime::lambda::run(async {
        let config = teleapi_runtime::config::aws_config().await;
        let clients = (
            aws_sdk_dynamodb::Client::new(&config),
            aws_sdk_sqs::Client::new(&config),
        );
        let clients = &clients;
        lambda_http::run(service_fn(|_: Request| async move {
            let _ = clients;
            Ok::<_, Infallible>("hello")
        }))
        .await
    })
}
