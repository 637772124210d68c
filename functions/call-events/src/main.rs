//! The call-events function: SQS batches from the events FIFO queue ->
//! `teleapi_pipeline::call_events::consume`, reporting partial batch failures.

fn main() -> Result<(), lambda_runtime::Error> {
    teleapi_runtime::lambda::queue_function(
        teleapi_runtime::config::event_services_from_env(),
        |services, message| Box::pin(teleapi_pipeline::call_events::consume(services, message)),
    )
}
