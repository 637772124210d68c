//! Logging: one JSON object per line, as CloudWatch Logs Insights reads them. No timestamps in
//! Lambda (CloudWatch adds its own); the level comes from `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL`.

use tracing_subscriber::EnvFilter;

fn filter() -> EnvFilter {
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL"))
        .unwrap_or_else(|_| "info".into());
    EnvFilter::try_new(level.to_ascii_lowercase()).unwrap_or_else(|_| EnvFilter::new("info"))
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
