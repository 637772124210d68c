//! What every function's `main` shares: reporting a failed initialisation to the Lambda Runtime
//! API (`/runtime/init/error`), so that Lambda shows the cause instead of a bare exit.

use std::fmt::Display;
use std::future::Future;

/// Runs the function's initialisation; if it fails, reports the error to the Runtime API's
/// init-error endpoint, then returns it so that `main` exits.
pub async fn initialised<T, E: Display>(
    init: impl Future<Output = Result<T, E>>,
) -> Result<T, lambda_runtime::Error> {
    match init.await {
        Ok(value) => Ok(value),
        Err(err) => {
            let message = err.to_string();
            tracing::error!(error = %message, "initialisation failed");
            report_init_error(&message).await;
            Err(message.into())
        }
    }
}

async fn report_init_error(message: &str) {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let body = serde_json::json!({
        "errorMessage": message,
        "errorType": "Runtime.ConfigurationError",
    });
    let sent = reqwest::Client::new()
        .post(format!("http://{api}/2018-06-01/runtime/init/error"))
        .header(
            "Lambda-Runtime-Function-Error-Type",
            "Runtime.ConfigurationError",
        )
        .json(&body)
        .send()
        .await;
    if let Err(err) = sent {
        tracing::error!(error = %err, "could not report the initialisation error");
    }
}
