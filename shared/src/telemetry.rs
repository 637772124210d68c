//! Logging: one JSON object per line, as CloudWatch Logs Insights reads them. No timestamps in
//! Lambda (CloudWatch adds its own); the level comes from `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

/// Crates that log secrets at TRACE, capped at DEBUG whatever level is asked for: lambda_runtime
/// logs every raw event (API requests with their Authorization header), the AWS SDK logs
/// response bodies (accounts with their AuthToken) and the requests it signs (the function's
/// session token). tests/security.rs greps a TRACE log for credentials.
const SECRET_AT_TRACE: [&str; 9] = [
    "lambda_runtime",
    "aws_config",
    "aws_runtime",
    "aws_sigv4",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_types",
];

fn filter() -> EnvFilter {
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL"))
        .unwrap_or_else(|_| "info".into());
    filter_for(&level)
}

/// The filter for a `RUST_LOG` value; an invalid one means `info`.
fn filter_for(level: &str) -> EnvFilter {
    let filter =
        EnvFilter::try_new(level.to_ascii_lowercase()).unwrap_or_else(|_| EnvFilter::new("info"));
    if filter
        .max_level_hint()
        .is_some_and(|most| most <= LevelFilter::DEBUG)
    {
        return filter; // Nothing at TRACE: nothing to cap (and nothing to raise).
    }
    SECRET_AT_TRACE.iter().fold(filter, |filter, target| {
        filter.add_directive(
            format!("{target}=debug")
                .parse()
                .expect("a valid directive"),
        )
    })
}

/// For functions running in Lambda.
pub fn init_lambda() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter())
        .with_current_span(false)
        .with_span_list(false)
        .without_time()
        .with_ansi(false)
        .try_init();
}

/// For `teleapi-local`: JSON lines with timestamps, on standard error.
pub fn init_local() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter())
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_is_capped_for_the_crates_that_log_secrets_and_nothing_is_raised() {
        for (asked, capped) in [
            ("info", false),
            ("warn", false),
            ("debug", false),
            ("trace", true),
            ("info,aws_smithy_runtime=trace", true),
        ] {
            let text = filter_for(asked).to_string();
            assert_eq!(
                text.contains("lambda_runtime=debug"),
                capped,
                "{asked}: {text}"
            );
            assert!(
                !text.contains("aws_smithy_runtime=trace"),
                "{asked}: {text}"
            );
        }
    }
}
