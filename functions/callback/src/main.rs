//! The callback function: SQS batches from the callbacks queue ->
//! `teleapi::callbacks::consume`, reporting partial batch failures.

fn main() -> Result<(), lambda_runtime::Error> {
    teleapi::lambda::queue_function(
        teleapi::config::callback_services_from_env(),
        |services, message| Box::pin(teleapi::callbacks::consume(services, message)),
    )
}
