//! The callback function: SQS batches from the callbacks queue ->
//! `teleapi::callbacks::consume`, reporting partial batch failures.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use teleapi::consumer::handle_sqs_event;

fn main() -> Result<(), Error> {
    teleapi::lambda::run(async {
        teleapi::telemetry::init_lambda();
        let services =
            teleapi::lambda::initialised(teleapi::config::callback_services_from_env()).await?;
        lambda_runtime::run(service_fn(
            |event: LambdaEvent<aws_lambda_events::event::sqs::SqsEvent>| {
                let services = &services;
                async move {
                    Ok::<_, Error>(
                        handle_sqs_event(event.payload, |m| async move {
                            teleapi::callbacks::consume(services, &m).await
                        })
                        .await,
                    )
                }
            },
        ))
        .await
    })
}
