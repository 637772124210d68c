//! `teleapi-local`: run the Calls API on this machine. See `teleapi-local --help`.

use std::process::ExitCode;

use teleapi_local::ArgsError;

#[tokio::main]
async fn main() -> ExitCode {
    let options = match teleapi_local::Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(ArgsError::Help) => {
            teleapi_local::announce(ArgsError::usage());
            return ExitCode::SUCCESS;
        }
        Err(ArgsError::Invalid(message)) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    teleapi_runtime::telemetry::init_local(
        options
            .log_format
            .unwrap_or_else(teleapi_runtime::telemetry::LogFormat::for_stderr),
    );
    match teleapi_local::run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("teleapi-local: {err}");
            ExitCode::FAILURE
        }
    }
}
