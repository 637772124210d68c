//! The call-events function: SQS batches from the events FIFO queue ->
//! `teleapi::call_events::consume`, reporting partial batch failures.

fn main() -> Result<(), lambda_runtime::Error> {
    teleapi::lambda::queue_function(
        teleapi::config::event_services_from_env(),
        |services, message| Box::pin(teleapi::call_events::consume(services, message)),
    )
}
