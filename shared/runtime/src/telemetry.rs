//! Logging: one JSON object per line where machines read the logs (Lambda, as CloudWatch Logs
//! Insights reads them; teleapi-local when its standard error is a pipe or a file), short
//! human-readable lines where a person does (teleapi-local on a terminal). No timestamps in
//! Lambda (CloudWatch adds its own); the level comes from `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL`.

use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

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

/// The level when none is asked for. The SIP stack logs each datagram it sends and receives,
/// whole, at INFO: a line per SIP message, and the messages' headers (digest credentials
/// among them); they are left out unless asked for (`RUST_LOG=info,rsipstack=info`).
const DEFAULT_LEVEL: &str = "info,rsipstack=warn";

fn filter() -> EnvFilter {
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL"))
        .unwrap_or_else(|_| DEFAULT_LEVEL.into());
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

/// How a local program writes its logs on standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One line per record for a person: the time (UTC), the level, the message and its fields.
    Text,
    /// One JSON object per line, with a timestamp: as the functions log, for tools.
    Json,
}

impl LogFormat {
    /// Text when standard error is a terminal, JSON when it goes to a pipe or a file.
    pub fn for_stderr() -> Self {
        if std::io::stderr().is_terminal() {
            Self::Text
        } else {
            Self::Json
        }
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("{other:?} is not a log format: text or json")),
        }
    }
}

/// The time of day in UTC to the millisecond, as the API's dates are in UTC: `14:37:45.120`.
struct TimeOfDay;

impl FormatTime for TimeOfDay {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let now = time::OffsetDateTime::now_utc();
        let (hour, minute, second, milli) = now.to_hms_milli();
        write!(w, "{hour:02}:{minute:02}:{second:02}.{milli:03}")
    }
}

/// For `teleapi-local` and other programs run on this machine, on standard error.
pub fn init_local(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .compact()
            .with_target(false)
            .with_timer(TimeOfDay)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats_are_named_text_and_json() {
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert!("JSON lines".parse::<LogFormat>().is_err());
    }

    #[test]
    fn the_default_level_leaves_out_the_sip_stacks_datagrams() {
        let text = filter_for(DEFAULT_LEVEL).to_string();
        assert!(text.contains("rsipstack=warn"), "{text}");
        assert_eq!(
            filter_for(DEFAULT_LEVEL).max_level_hint(),
            Some(LevelFilter::INFO)
        );
    }

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
