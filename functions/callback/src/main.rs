//! The callback function: SQS batches from the callbacks queue ->
//! `teleapi_pipeline::callbacks::consume`, reporting partial batch failures.

fn main() -> Result<(), lambda_runtime::Error> {
    teleapi_runtime::lambda::queue_function(
        teleapi_runtime::config::callback_services_from_env(),
        |services, message| Box::pin(teleapi_pipeline::callbacks::consume(services, message)),
    )
}
