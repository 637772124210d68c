//! Configuration from the environment, for the deployed functions. Every variable read here is
//! listed in docs/data-model.md and set by infra/template.yaml.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

use crate::adapters::dynamodb::{DynamoStore, TableNames};
use crate::adapters::sqs::SqsQueue;
use crate::api::{ApiConfig, Services};
use crate::ports::SystemClock;

pub const COMMANDS_QUEUE_ENV: &str = "TELEAPI_COMMANDS_QUEUE_URL";

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// AWS SDK settings shared by every client: the standard retry mode (exponential backoff with
/// jitter for throttling and transient errors) within a per-attempt and total time bound that
/// fits a function's timeout. The endpoint and credentials come from the standard environment
/// (`AWS_ENDPOINT_URL` points everything at an emulator).
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(4))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(6))
                .build(),
        )
        .load()
        .await
}

fn duration_var(name: &str, unit: Duration, default: Duration) -> Result<Duration, ConfigError> {
    match std::env::var(name) {
        Ok(value) => value
            .parse::<u32>()
            .map(|n| unit * n)
            .map_err(|_| ConfigError(format!("{name} must be a whole number, not {value:?}"))),
        Err(_) => Ok(default),
    }
}

/// The API's tunables: defaults, overridden by `TELEAPI_WRITE_BUDGET_MS` and
/// `TELEAPI_INTENT_RETENTION_DAYS`.
pub fn api_config_from_env() -> Result<ApiConfig, ConfigError> {
    let defaults = ApiConfig::default();
    Ok(ApiConfig {
        write_budget: duration_var(
            "TELEAPI_WRITE_BUDGET_MS",
            Duration::from_millis(1),
            defaults.write_budget,
        )?,
        intent_retention: duration_var(
            "TELEAPI_INTENT_RETENTION_DAYS",
            Duration::from_secs(24 * 3600),
            defaults.intent_retention,
        )?,
        ..defaults
    })
}

/// Services on DynamoDB and SQS, named by the environment.
pub async fn services_from_env() -> Result<Services, ConfigError> {
    let tables = TableNames::from_env().map_err(ConfigError)?;
    let commands_url = std::env::var(COMMANDS_QUEUE_ENV)
        .map_err(|_| ConfigError(format!("{COMMANDS_QUEUE_ENV} is not set")))?;
    let config = aws_config().await;
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        tables,
    ));
    Ok(Services {
        accounts: store.clone(),
        calls: store,
        commands: Arc::new(SqsQueue::new(
            aws_sdk_sqs::Client::new(&config),
            commands_url,
        )),
        clock: Arc::new(SystemClock),
        config: api_config_from_env()?,
    })
}
