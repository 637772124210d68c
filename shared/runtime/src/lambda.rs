//! What every function's `main` shares: logging and the runtime it runs on, the API functions'
//! whole `main`, and reporting a failed initialisation to the Lambda Runtime API
//! (`/runtime/init/error`), so that Lambda shows the cause instead of a bare exit.

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use aws_lambda_events::event::sqs::SqsEvent;

use teleapi_api::{self as api, Operation};
use teleapi_pipeline::consumer::{BatchMessage, process_batch};

/// The system's root certificates as one file, where distributions keep it: Amazon Linux and
/// the Red Hat family, then Debian, Ubuntu and Alpine.
const CERTIFICATE_BUNDLES: [&str; 2] = [
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
];

/// Runs a function's `main` on a multi-threaded Tokio runtime (what `#[tokio::main]` builds),
/// with JSON logging, after pointing the AWS SDK at the system's one certificate bundle.
///
/// The SDK builds its HTTPS connector with the clients, at start-up, and loads the system's root
/// certificates for it (rustls-native-certs). Left to find them, it reads the bundle and also
/// every file of the certificates directory, which on Debian holds the same certificates one per
/// file, so it parses each twice: most of a cold start (docs/benchmarks.md). Naming the bundle in
/// `SSL_CERT_FILE`, as AWS's own runtimes do, reads the same certificates once. Nothing changes
/// where either variable is set already or no bundle is where we look.
pub fn run<F>(main: F) -> Result<(), lambda_runtime::Error>
where
    F: Future<Output = Result<(), lambda_runtime::Error>>,
{
    let set = |name: &str| std::env::var_os(name).is_some();
    if let Some(bundle) = certificate_bundle(set, |path| path.is_file()) {
        // SAFETY: no other thread exists yet: the runtime is built below.
        unsafe { std::env::set_var("SSL_CERT_FILE", bundle) };
    }
    crate::telemetry::init_lambda();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(main)
}

/// The whole `main` of the API function `name` (a crate of functions/): API Gateway requests to
/// `teleapi_api`, for the operations `Operation::served_by(name)`. The clients are built once
/// per sandbox, before the first request, and reused by warm invocations.
pub fn api_function(name: &str) -> Result<(), lambda_runtime::Error> {
    let serves = Operation::served_by(name);
    run(async {
        let services = initialised(crate::config::services_from_env()).await?;
        lambda_http::run(lambda_http::service_fn(|request: lambda_http::Request| {
            let (services, serves) = (&services, &serves);
            async move { Ok::<_, Infallible>(api::handle(services, request, Some(serves)).await) }
        }))
        .await
    })
}

/// The whole `main` of the API's authorizer (`functions/authorize-account`): REQUEST authorizer
/// events to [`api::authorizer::authorize`].
pub fn authorizer_function() -> Result<(), lambda_runtime::Error> {
    run(async {
        let services = initialised(crate::config::authorizer_services_from_env()).await?;
        lambda_runtime::run(lambda_runtime::service_fn(
            |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
                let services = &services;
                async move {
                    Ok::<_, lambda_runtime::Error>(
                        api::authorizer::authorize(services, &event.payload).await,
                    )
                }
            },
        ))
        .await
    })
}

/// What a queue function does with one message of its batch.
pub type Consume<S, E> =
    for<'a> fn(&'a S, &'a BatchMessage) -> Pin<Box<dyn Future<Output = Result<(), E>> + Send + 'a>>;

/// The whole `main` of a function fed by an SQS queue: the services `init` builds, then each
/// batch's messages to `consume`, reporting the ones that failed (partial batch failures).
pub fn queue_function<S, E, I>(
    init: impl Future<Output = Result<S, I>>,
    consume: Consume<S, E>,
) -> Result<(), lambda_runtime::Error>
where
    S: Sync,
    E: Display,
    I: Display,
{
    run(async {
        let services = initialised(init).await?;
        lambda_runtime::run(lambda_runtime::service_fn(
            |event: lambda_runtime::LambdaEvent<SqsEvent>| {
                let services = &services;
                async move {
                    Ok::<_, lambda_runtime::Error>(
                        handle_sqs_event(
                            event.payload,
                            |m| async move { consume(services, &m).await },
                        )
                        .await,
                    )
                }
            },
        ))
        .await
    })
}

/// The bundle to name in `SSL_CERT_FILE`: none if the environment names certificates already.
fn certificate_bundle(
    set: impl Fn(&str) -> bool,
    exists: impl Fn(&Path) -> bool,
) -> Option<&'static str> {
    if set("SSL_CERT_FILE") || set("SSL_CERT_DIR") {
        return None;
    }
    CERTIFICATE_BUNDLES
        .into_iter()
        .find(|bundle| exists(Path::new(bundle)))
}

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
    // Lambda names it `host:port`; emulators such as `cargo lambda watch` give a whole URL.
    let base = if api.contains("://") {
        api.trim_end_matches('/').to_owned()
    } else {
        format!("http://{api}")
    };
    let sent = reqwest::Client::new()
        .post(format!("{base}/2018-06-01/runtime/init/error"))
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

/// A message of a Lambda SQS event: its message id (what a partial batch failure names), body
/// and FIFO group.
pub fn from_sqs(record: aws_lambda_events::event::sqs::SqsMessage) -> BatchMessage {
    BatchMessage {
        group: record.attributes.get("MessageGroupId").cloned(),
        id: record.message_id.unwrap_or_default(),
        body: record.body.unwrap_or_default(),
    }
}

/// Runs `handle` over a Lambda SQS event and answers which messages failed (the event source
/// mapping has `ReportBatchItemFailures`: only those come back).
pub async fn handle_sqs_event<F, Fut, E>(
    event: aws_lambda_events::event::sqs::SqsEvent,
    handle: F,
) -> aws_lambda_events::event::sqs::SqsBatchResponse
where
    F: Fn(BatchMessage) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
    let batch: Vec<BatchMessage> = event.records.into_iter().map(from_sqs).collect();
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = process_batch(&batch, handle)
        .await
        .into_iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_is_named_only_where_nothing_is_and_one_exists() {
        let debian = |path: &Path| path == Path::new("/etc/ssl/certs/ca-certificates.crt");
        let amazon = |path: &Path| path.starts_with("/etc/pki");
        let nothing_set = |_: &str| false;
        assert_eq!(
            certificate_bundle(nothing_set, debian),
            Some("/etc/ssl/certs/ca-certificates.crt")
        );
        assert_eq!(
            certificate_bundle(nothing_set, amazon),
            Some("/etc/pki/tls/certs/ca-bundle.crt")
        );
        assert_eq!(certificate_bundle(nothing_set, |_| false), None);
        assert_eq!(
            certificate_bundle(|name| name == "SSL_CERT_DIR", debian),
            None
        );
        assert_eq!(
            certificate_bundle(|name| name == "SSL_CERT_FILE", amazon),
            None
        );
    }
}
