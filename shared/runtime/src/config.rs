//! Configuration from the environment, for the deployed functions. Every variable read here is
//! listed in docs/data-model.md and set by infra/template.yaml.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

use teleapi_adapters::dynamodb::{DynamoStore, TableNames};
use teleapi_adapters::http::HttpWebhooks;
use teleapi_adapters::media::S3Media;
use teleapi_adapters::sqs::SqsQueue;
use teleapi_api::{ApiConfig, Services};
use teleapi_domain::AddressPolicy;
use teleapi_pipeline::call_events::{EventConfig, EventServices};
use teleapi_pipeline::callbacks::{CallbackConfig, CallbackServices};
use teleapi_ports::SystemClock;

pub const COMMANDS_QUEUE_ENV: &str = "TELEAPI_COMMANDS_QUEUE_URL";
pub const CALLBACKS_QUEUE_ENV: &str = "TELEAPI_CALLBACKS_QUEUE_URL";
pub const CALLBACKS_DLQ_ENV: &str = "TELEAPI_CALLBACKS_DLQ_URL";
pub const EVENTS_DLQ_ENV: &str = "TELEAPI_EVENTS_DLQ_URL";
pub const EVENTS_QUEUE_ENV: &str = "TELEAPI_EVENTS_QUEUE_URL";
/// The authorizer's shared API keys (infra/template.yaml creates them).
pub const UNAUTHENTICATED_KEY_ENV: &str = "TELEAPI_UNAUTHENTICATED_USAGE_KEY";
pub const UNASSIGNED_KEY_ENV: &str = "TELEAPI_UNASSIGNED_USAGE_KEY";
/// Set to `true` only for local development: lets webhooks reach loopback addresses.
pub const RECORDINGS_BUCKET_ENV: &str = "TELEAPI_RECORDINGS_BUCKET";
/// Where the API is reached (`https://{api}.execute-api.{region}.amazonaws.com/Prod`).
pub const PUBLIC_URL_ENV: &str = "TELEAPI_PUBLIC_URL";
pub const ALLOW_LOOPBACK_ENV: &str = "TELEAPI_ALLOW_LOOPBACK_WEBHOOKS";

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// AWS SDK settings shared by every client: the standard retry mode (exponential backoff with
/// jitter for throttling and transient errors) within a per-attempt and total time bound that
/// fits a function's timeout. The endpoint and credentials come from the standard environment
/// (`AWS_ENDPOINT_URL` points everything at an emulator).
pub async fn aws_config() -> aws_config::SdkConfig {
    sdk_settings(aws_config::defaults(BehaviorVersion::latest()))
        .load()
        .await
}

/// How many times a throttled or transiently failing AWS request is tried in all.
pub const AWS_MAX_ATTEMPTS: u32 = 4;

/// The AWS SDK's HTTPS client: rustls, with ring's cryptography (what reqwest uses too), trusting
/// the platform's roots.
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The retry and timeout settings of [`aws_config`], on any loader (the tests use them with
/// moto's endpoint), and its HTTPS client.
pub fn sdk_settings(loader: aws_config::ConfigLoader) -> aws_config::ConfigLoader {
    loader
        .http_client(https_client())
        // Backoff with full jitter from 50 ms (the SDK's default of 1 s would spend a
        // request's whole budget on two retries), at most 1 s between tries.
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(AWS_MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(50))
                .with_max_backoff(Duration::from_secs(1)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(6))
                .build(),
        )
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

/// The API's tunables: defaults, overridden by `TELEAPI_WRITE_BUDGET_MS`,
/// `TELEAPI_INTENT_RETENTION_DAYS` and `TELEAPI_ACCOUNT_CACHE_SECONDS`.
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
        account_cache_ttl: duration_var(
            "TELEAPI_ACCOUNT_CACHE_SECONDS",
            Duration::from_secs(1),
            defaults.account_cache_ttl,
        )?,
        public_url: std::env::var(PUBLIC_URL_ENV)
            .ok()
            .filter(|url| !url.is_empty()),
        ..defaults
    })
}

/// The functions, by crate name.
pub const FUNCTIONS: [&str; 8] = [
    "authorize-account",
    "modify-call",
    "create-call",
    "get-call",
    "list-calls",
    "call-events",
    "callback",
    "reconcile-intents",
];

/// Variables a function reads if they are set, with a default otherwise.
pub const OPTIONAL_ENV: [&str; 5] = [
    ALLOW_LOOPBACK_ENV,
    "TELEAPI_WRITE_BUDGET_MS",
    "TELEAPI_INTENT_RETENTION_DAYS",
    "TELEAPI_ACCOUNT_CACHE_SECONDS",
    "AWS_ENDPOINT_URL",
];

/// The environment `function` cannot start without: infra/template.yaml sets all of it (a test
/// holds the template to this list).
pub fn required_env(function: &str) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = TableNames::ENV.to_vec();
    names.push(RECORDINGS_BUCKET_ENV);
    if function == "authorize-account" {
        names.extend([UNAUTHENTICATED_KEY_ENV, UNASSIGNED_KEY_ENV]);
        return names;
    }
    names.push(COMMANDS_QUEUE_ENV);
    match function {
        "call-events" => names.extend([CALLBACKS_QUEUE_ENV, EVENTS_DLQ_ENV, PUBLIC_URL_ENV]),
        "callback" => names.extend([CALLBACKS_QUEUE_ENV, CALLBACKS_DLQ_ENV]),
        "reconcile-intents" => names.extend([CALLBACKS_QUEUE_ENV, EVENTS_QUEUE_ENV]),
        _ => {}
    }
    names
}

fn var(name: &str) -> Result<String, ConfigError> {
    std::env::var(name).map_err(|_| ConfigError(format!("{name} is not set")))
}

/// The webhook address policy: public addresses only, unless local development says otherwise.
pub fn address_policy_from_env() -> Result<AddressPolicy, ConfigError> {
    match std::env::var(ALLOW_LOOPBACK_ENV).as_deref() {
        Err(_) | Ok("false") => Ok(AddressPolicy::default()),
        Ok("true") => Ok(AddressPolicy {
            allow_loopback: true,
        }),
        Ok(other) => Err(ConfigError(format!(
            "{ALLOW_LOOPBACK_ENV} must be true or false, not {other:?}"
        ))),
    }
}

/// The AWS clients and the stores, built once per process.
pub struct Aws {
    pub store: Arc<DynamoStore>,
    pub sqs: aws_sdk_sqs::Client,
    /// The recordings bucket (TELEAPI_RECORDINGS_BUCKET).
    pub media: Arc<S3Media>,
}

/// The recordings bucket `bucket`, reached with `config`'s region and credentials (and the
/// endpoint `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` names, for an emulator): the functions'
/// and the media workers'.
pub fn recordings_media(
    config: &aws_config::SdkConfig,
    bucket: String,
) -> Result<S3Media, ConfigError> {
    Ok(S3Media::new(
        bucket,
        config
            .region()
            .map_or_else(|| "us-east-1".to_owned(), ToString::to_string),
        std::env::var("AWS_ENDPOINT_URL_S3")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .ok(),
        config
            .credentials_provider()
            .ok_or_else(|| ConfigError("no AWS credentials provider".into()))?,
    ))
}

impl Aws {
    pub async fn from_env() -> Result<Self, ConfigError> {
        let tables = TableNames::from_env().map_err(ConfigError)?;
        let config = aws_config().await;
        let media = recordings_media(&config, var(RECORDINGS_BUCKET_ENV)?)?;
        Ok(Self {
            media: Arc::new(media),
            store: Arc::new(DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&config),
                tables,
            )),
            sqs: aws_sdk_sqs::Client::new(&config),
        })
    }

    /// The queue whose URL the environment variable `name` holds.
    pub fn queue(&self, name: &str) -> Result<Arc<SqsQueue>, ConfigError> {
        Ok(Arc::new(SqsQueue::new(self.sqs.clone(), var(name)?)))
    }
}

/// Services of the API functions on DynamoDB and SQS, named by the environment.
pub async fn services_from_env() -> Result<Services, ConfigError> {
    let aws = Aws::from_env().await?;
    Ok(Services {
        accounts: aws.store.clone(),
        calls: aws.store.clone(),
        conferences: aws.store.clone(),
        recordings: aws.store.clone(),
        numbers: aws.store.clone(),
        queues: aws.store.clone(),
        call_log: aws.store.clone(),
        media: aws.media.clone(),
        commands: aws.queue(COMMANDS_QUEUE_ENV)?,
        clock: Arc::new(SystemClock),
        config: ApiConfig {
            address_policy: address_policy_from_env()?,
            ..api_config_from_env()?
        },
        account_cache: Default::default(),
        // API Gateway's usage plans limit each account's requests before the function runs.
        rate_limiter: None,
    })
}

/// Services of the reconciler.
pub async fn reconciler_services_from_env()
-> Result<teleapi_pipeline::reconcile::ReconcilerServices, ConfigError> {
    let aws = Aws::from_env().await?;
    let api = api_config_from_env()?;
    Ok(teleapi_pipeline::reconcile::ReconcilerServices {
        accounts: aws.store.clone(),
        calls: aws.store.clone(),
        workers: aws.store.clone(),
        commands: aws.queue(COMMANDS_QUEUE_ENV)?,
        callbacks: aws.queue(CALLBACKS_QUEUE_ENV)?,
        call_log: aws.store.clone(),
        recordings: aws.store.clone(),
        conferences: aws.store.clone(),
        events: aws.queue(EVENTS_QUEUE_ENV)?,
        clock: Arc::new(SystemClock),
        write_budget: api.write_budget,
        intent_retention: api.intent_retention,
    })
}

/// Services of the API's authorizer.
pub async fn authorizer_services_from_env()
-> Result<teleapi_api::authorizer::AuthorizerServices, ConfigError> {
    let aws = Aws::from_env().await?;
    Ok(teleapi_api::authorizer::AuthorizerServices {
        accounts: aws.store.clone(),
        account_cache: Default::default(),
        clock: Arc::new(SystemClock),
        account_cache_ttl: api_config_from_env()?.account_cache_ttl,
        keys: teleapi_api::authorizer::UsageKeys {
            unauthenticated: var(UNAUTHENTICATED_KEY_ENV)?,
            unassigned: var(UNASSIGNED_KEY_ENV)?,
        },
        pool: aws.store.clone(),
        pool_size: Default::default(),
    })
}

/// Services of the call-events function.
pub async fn event_services_from_env() -> Result<EventServices, ConfigError> {
    let aws = Aws::from_env().await?;
    let api = api_config_from_env()?;
    Ok(EventServices {
        accounts: aws.store.clone(),
        account_cache: Default::default(),
        calls: aws.store.clone(),
        workers: aws.store.clone(),
        conferences: aws.store.clone(),
        recordings: aws.store.clone(),
        queues: aws.store.clone(),
        call_log: aws.store.clone(),
        commands: aws.queue(COMMANDS_QUEUE_ENV)?,
        callbacks: aws.queue(CALLBACKS_QUEUE_ENV)?,
        dead_letters: aws.queue(EVENTS_DLQ_ENV)?,
        clock: Arc::new(SystemClock),
        config: EventConfig {
            intent_retention: api.intent_retention,
            write_budget: api.write_budget,
            account_cache_ttl: api.account_cache_ttl,
            public_url: var(PUBLIC_URL_ENV)?,
            ..EventConfig::default()
        },
    })
}

/// Services of the callback function.
pub async fn callback_services_from_env() -> Result<CallbackServices, ConfigError> {
    let aws = Aws::from_env().await?;
    let api = api_config_from_env()?;
    Ok(CallbackServices {
        accounts: aws.store.clone(),
        call_log: aws.store.clone(),
        account_cache: Default::default(),
        calls: aws.store.clone(),
        commands: aws.queue(COMMANDS_QUEUE_ENV)?,
        callbacks: aws.queue(CALLBACKS_QUEUE_ENV)?,
        dead_letters: aws.queue(CALLBACKS_DLQ_ENV)?,
        webhooks: Arc::new(HttpWebhooks::new(address_policy_from_env()?)),
        clock: Arc::new(SystemClock),
        config: CallbackConfig {
            intent_retention: api.intent_retention,
            write_budget: api.write_budget,
            account_cache_ttl: api.account_cache_ttl,
            ..CallbackConfig::default()
        },
    })
}
