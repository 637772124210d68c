//! The per-account request rate limit, enforced in process. Deployed, API Gateway's usage plans
//! enforce the same limits before a function runs, across every sandbox (infra/template.yaml,
//! docs/decisions.md "Rate limits"); a Lambda function therefore has no limiter of its own, and
//! `teleapi-local`, which has no API Gateway, has this one.

use std::collections::HashMap;
use std::sync::Mutex;

use super::error::ApiError;
use teleapi_domain::account::{RateLimit, TokenBucket};
use teleapi_domain::{Account, AccountSid, Timestamp};

pub struct RateLimiter {
    /// The limit of accounts that have none of their own.
    default: RateLimit,
    buckets: Mutex<HashMap<AccountSid, TokenBucket>>,
}

impl RateLimiter {
    /// Buckets kept before the full ones (accounts idle long enough) are forgotten.
    const TIDY_AT: usize = 10_000;

    pub fn new(default: RateLimit) -> Self {
        Self {
            default,
            buckets: Mutex::default(),
        }
    }

    pub fn default_limit(&self) -> RateLimit {
        self.default
    }

    /// Counts one request of `account`; 429 once its limit is spent.
    pub fn admit(&self, account: &Account, now: Timestamp) -> Result<(), ApiError> {
        let limit = account.rate_limit.unwrap_or(self.default);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= Self::TIDY_AT {
            let default = self.default;
            buckets.retain(|_, bucket| !bucket.is_full(default.max_of(limit), now));
        }
        // The account's bucket (the sid is cloned only for a new one).
        let bucket = match buckets.get_mut(&account.sid) {
            Some(bucket) => bucket,
            None => buckets
                .entry(account.sid.clone())
                .or_insert_with(|| TokenBucket::full(limit, now)),
        };
        bucket
            .take(limit, now)
            .map_err(|retry_after| ApiError::TooManyRequests {
                account: account.sid.clone(),
                limit,
                retry_after,
            })
    }
}
