//! What every operation works with: the API's configuration and the ports it reaches.

use std::sync::Arc;
use std::time::Duration;

use teleapi_domain::AddressPolicy;
use teleapi_ports::{
    AccountStore, CallLogStore, CallQueueStore, CallStore, Clock, ConferenceStore, MediaStore,
    NumberStore, Queue, RecordingStore,
};

use crate::rate_limit;

/// Tunables of the API, with the values deployments use by default.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub address_policy: AddressPolicy,
    /// How long intents are kept (DynamoDB TTL).
    pub intent_retention: Duration,
    /// How long an `Idempotency-Key` is remembered (DynamoDB TTL).
    pub idempotency_lifetime: Duration,
    /// How long a modification may keep retrying its conditional write against concurrent
    /// modifications of the same call before answering 503.
    pub write_budget: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// How long an authenticated account is reused without reading it again (zero: never).
    pub account_cache_ttl: Duration,
    /// Where the API is reached (`https://…/Prod`), for the absolute URLs of resources
    /// (`media_url`); `None`: from the request's `Host`, over https.
    pub public_url: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            address_policy: AddressPolicy::default(),
            intent_retention: Duration::from_secs(30 * 24 * 3600),
            idempotency_lifetime: teleapi_domain::idempotency::KEY_LIFETIME,
            write_budget: Duration::from_secs(5),
            max_body_bytes: 64 * 1024,
            account_cache_ttl: Duration::from_secs(10),
            public_url: None,
        }
    }
}

/// The ports an operation works with, built once per process and shared by every request.
#[derive(Clone)]
pub struct Services {
    pub accounts: Arc<dyn AccountStore>,
    pub calls: Arc<dyn CallStore>,
    pub conferences: Arc<dyn ConferenceStore>,
    pub recordings: Arc<dyn RecordingStore>,
    pub numbers: Arc<dyn NumberStore>,
    /// The account's call queues, and who waits in each.
    pub queues: Arc<dyn CallQueueStore>,
    /// Where the API notes the requests on a call it refused, and reads calls' logs.
    pub call_log: Arc<dyn CallLogStore>,
    /// Where recordings' media is.
    pub media: Arc<dyn MediaStore>,
    pub commands: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    pub config: ApiConfig,
    pub account_cache: teleapi_ports::account_cache::AccountCache,
    /// The per-account rate limit, where this process enforces it (`teleapi-local`); deployed,
    /// API Gateway's usage plans do, and this is `None`.
    pub rate_limiter: Option<Arc<rate_limit::RateLimiter>>,
}
