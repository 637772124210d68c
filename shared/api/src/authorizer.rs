//! The API's Lambda authorizer: which API key counts a request against a usage plan, so that API
//! Gateway enforces each account's rate limit across every sandbox, before any function runs
//! (docs/decisions.md, "Rate limits").
//!
//! It authenticates as the API functions do (the same credentials check, the same cache) and
//! always allows the request: the functions still authenticate and answer 401 or 403 in the API's
//! own shape. Only the key differs: the account's own (an account with a limit of its own); one
//! the pool lends it for as long as the answer may be cached (every other account:
//! teleapi_ports::key_pool); a key shared by the accounts that find no key of the pool free; or a
//! key shared by every request whose credentials are wrong, whose plan is small, so that guessing
//! at credentials cannot spend anyone's share but its own. API Gateway caches the answer per
//! `Authorization` header (infra/template.yaml), so a busy account costs an invocation (one
//! account read, one loan renewed) every five minutes, not one per request.

use std::sync::Arc;
use std::time::Duration;

use lambda_http::http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::auth::{AccountReader, authenticate_with};
use super::error::ApiError;
use teleapi_domain::AccountSid;
use teleapi_ports::account_cache::AccountCache;
use teleapi_ports::key_pool::{self, LEASE, PoolSize};
use teleapi_ports::{AccountStore, Clock, KeyPool};

/// The shared keys (created by infra/template.yaml, their values in the environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageKeys {
    /// Requests whose credentials are missing or wrong.
    pub unauthenticated: String,
    /// Accounts that found no key of the pool free (and every account, before the pool has keys).
    pub unassigned: String,
}

#[derive(Clone)]
pub struct AuthorizerServices {
    pub accounts: Arc<dyn AccountStore>,
    pub account_cache: AccountCache,
    pub clock: Arc<dyn Clock>,
    pub account_cache_ttl: Duration,
    pub keys: UsageKeys,
    pub pool: Arc<dyn KeyPool>,
    pub pool_size: Arc<PoolSize>,
}

/// The request's headers, from a REQUEST authorizer event (`headers`, one value each).
fn headers(event: &Value) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in event["headers"].as_object().into_iter().flatten() {
        if let (Ok(name), Some(Ok(value))) = (
            HeaderName::from_bytes(name.as_bytes()),
            value.as_str().map(HeaderValue::from_str),
        ) {
            map.insert(name, value);
        }
    }
    map
}

/// Every method and resource of the stage the request came to: the answer is cached per
/// credentials and must hold for the next request, whatever its route.
fn whole_stage(method_arn: &str) -> String {
    let mut parts = method_arn.splitn(3, '/');
    match (parts.next(), parts.next()) {
        (Some(api), Some(stage)) => format!("{api}/{stage}/*/*"),
        _ => method_arn.to_owned(),
    }
}

/// A key of the pool lent to `account`, or the unassigned key when none is free (or the pool
/// cannot be read: the request is still served, counted with the others that share that key).
async fn borrowed(services: &AuthorizerServices, account: &AccountSid) -> String {
    let now = services.clock.now();
    match key_pool::lend(
        services.pool.as_ref(),
        &services.pool_size,
        account,
        now,
        LEASE,
    )
    .await
    {
        Ok(Some(key)) => key,
        Ok(None) => {
            // A metric filter counts these (infra/template.yaml, KeyPoolExhaustedMetric).
            tracing::warn!(account = %account, "key pool exhausted");
            services.keys.unassigned.clone()
        }
        Err(err) => {
            tracing::warn!(error = %err, "authorizer could not lend a key of the pool");
            services.keys.unassigned.clone()
        }
    }
}

/// The authorizer's answer to one REQUEST event.
pub async fn authorize(services: &AuthorizerServices, event: &Value) -> Value {
    let reader = AccountReader {
        store: services.accounts.as_ref(),
        cache: &services.account_cache,
        now: services.clock.now(),
        ttl: services.account_cache_ttl,
    };
    let (principal, key) = match authenticate_with(&reader, &headers(event)).await {
        Ok(account) => {
            let key = match account.usage_key {
                Some(own) => own,
                None => borrowed(services, &account.sid).await,
            };
            (account.sid.to_string(), key)
        }
        Err(err) => {
            if matches!(err, ApiError::Unavailable | ApiError::Internal) {
                // The function will answer 503 itself; the request is counted as unknown.
                tracing::warn!(error = %err, "authorizer could not read the account");
            }
            (
                "unauthenticated".to_owned(),
                services.keys.unauthenticated.clone(),
            )
        }
    };
    json!({
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{
                "Action": "execute-api:Invoke",
                "Effect": "Allow",
                "Resource": whole_stage(event["methodArn"].as_str().unwrap_or("*")),
            }],
        },
        "usageIdentifierKey": key,
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;
    use teleapi_adapters::memory::MemoryStore;
    use teleapi_domain::{Account, AccountStatus, Timestamp};

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/live/POST/call/2012-04-24/Accounts/AC1/Calls";

    fn event(authorization: Option<String>) -> Value {
        let mut headers = json!({"Host": "abc123.execute-api.us-east-1.amazonaws.com"});
        if let Some(value) = authorization {
            headers["Authorization"] = json!(value);
        }
        json!({"type": "REQUEST", "methodArn": ARN, "headers": headers})
    }

    fn basic(sid: &str, token: &str) -> Option<String> {
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{token}"));
        Some(format!("Basic {pair}"))
    }

    #[tokio::test]
    async fn each_request_is_counted_against_the_right_key() {
        let store = MemoryStore::new();
        let clock = crate::test_clock::SteppedClock::starting_now();
        let services = AuthorizerServices {
            accounts: Arc::new(store.clone()),
            account_cache: AccountCache::default(),
            clock: clock.clone(),
            account_cache_ttl: Duration::from_secs(10),
            keys: UsageKeys {
                unauthenticated: "stack-unauthenticated-requests".into(),
                unassigned: "stack-unassigned-accounts".into(),
            },
            pool: Arc::new(store.clone()),
            pool_size: Default::default(),
        };
        let mut own = Account::open("own", None, Timestamp::now());
        own.usage_key = Some(format!("stack-{}", own.sid));
        let plain = Account::open("plain", None, Timestamp::now());
        let other = Account::open("other", None, Timestamp::now());
        let mut suspended = Account::open("suspended", None, Timestamp::now());
        suspended.status = AccountStatus::Suspended;
        for account in [&own, &plain, &other, &suspended] {
            store.insert_account(account).await.unwrap();
        }
        let key = |answer: Value| answer["usageIdentifierKey"].as_str().unwrap().to_owned();
        let key_of = |account: &Account| {
            let request = event(basic(account.sid.as_str(), account.auth_token.expose()));
            let services = &services;
            async move { key(authorize(services, &request).await) }
        };

        let answer = authorize(
            &services,
            &event(basic(own.sid.as_str(), own.auth_token.expose())),
        )
        .await;
        assert_eq!(answer["principalId"], own.sid.as_str());
        assert_eq!(key(answer.clone()), format!("stack-{}", own.sid));
        let statement = &answer["policyDocument"]["Statement"][0];
        assert_eq!(statement["Effect"], "Allow");
        assert_eq!(
            statement["Resource"],
            "arn:aws:execute-api:us-east-1:123456789012:abc123/live/*/*"
        );

        // Before the pool has keys, accounts without their own share the unassigned key.
        assert_eq!(key_of(&plain).await, "stack-unassigned-accounts");

        // With one key in the pool, the first account borrows it and keeps it while its loan is
        // renewed; the second finds none free until the loan ends.
        store.add_key("stack-pool-1", None).await.unwrap();
        clock.advance(Duration::from_secs(61)); // the size is re-read
        assert_eq!(key_of(&plain).await, "stack-pool-1");
        assert_eq!(key_of(&other).await, "stack-unassigned-accounts");
        clock.advance(LEASE - Duration::from_secs(1));
        assert_eq!(key_of(&plain).await, "stack-pool-1", "renewed");
        clock.advance(LEASE - Duration::from_secs(1));
        assert_eq!(key_of(&other).await, "stack-unassigned-accounts");
        clock.advance(Duration::from_secs(2));
        assert_eq!(key_of(&other).await, "stack-pool-1", "the loan ended");
        assert_eq!(key_of(&plain).await, "stack-unassigned-accounts");

        for wrong in [
            basic(own.sid.as_str(), "not-the-token"),
            basic(suspended.sid.as_str(), suspended.auth_token.expose()),
            Some("Bearer x".into()),
            None,
        ] {
            let answer = authorize(&services, &event(wrong.clone())).await;
            assert_eq!(
                key(answer.clone()),
                "stack-unauthenticated-requests",
                "{wrong:?}"
            );
            assert_eq!(answer["policyDocument"]["Statement"][0]["Effect"], "Allow");
        }
    }
}
