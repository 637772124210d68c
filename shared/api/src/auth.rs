//! HTTP Basic authentication (`AccountSid:AuthToken`) and who may act for which account.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::http::{HeaderMap, header};

use super::Services;
use super::error::ApiError;
use teleapi_domain::{Account, AccountSid, AccountStatus, AuthToken, Timestamp};
use teleapi_ports::AccountStore;
use teleapi_ports::account_cache::AccountCache;

/// Compared against when the account does not exist, so that a wrong sid costs the same time as
/// a wrong token.
const DECOY_TOKEN: &str = "00000000000000000000000000000000";

fn credentials(headers: &HeaderMap) -> Option<(AccountSid, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (sid, token) = decoded.split_once(':')?;
    Some((sid.parse().ok()?, token.to_owned()))
}

/// Where authentication reads accounts: the store, through the cache of recent reads.
pub struct AccountReader<'a> {
    pub store: &'a dyn AccountStore,
    pub cache: &'a AccountCache,
    pub now: Timestamp,
    /// How long a cached account is used (zero: never).
    pub ttl: std::time::Duration,
}

impl AccountReader<'_> {
    /// The account `sid`, from the cache while it is fresh (and `usable`), else from the store.
    async fn account(
        &self,
        sid: &AccountSid,
        usable: impl Fn(&Account) -> bool,
    ) -> Result<Option<Account>, ApiError> {
        Ok(self
            .cache
            .account(self.store, sid, self.now, self.ttl, usable)
            .await?)
    }
}

impl Services {
    pub fn account_reader(&self) -> AccountReader<'_> {
        AccountReader {
            store: self.accounts.as_ref(),
            cache: &self.account_cache,
            now: self.clock.now(),
            ttl: self.config.account_cache_ttl,
        }
    }
}

/// The account whose credentials the request carries. Never says which half was wrong.
pub async fn authenticate(services: &Services, headers: &HeaderMap) -> Result<Account, ApiError> {
    authenticate_with(&services.account_reader(), headers).await
}

/// [`authenticate`], reading accounts through `reader` (the authorizer function has no other
/// services).
pub async fn authenticate_with(
    reader: &AccountReader<'_>,
    headers: &HeaderMap,
) -> Result<Account, ApiError> {
    let Some((sid, token)) = credentials(headers) else {
        return Err(ApiError::Unauthenticated);
    };
    let account = reader
        .account(&sid, |cached| cached.auth_token.matches(&token))
        .await?;
    let expected = account
        .as_ref()
        .map_or_else(|| AuthToken::new(DECOY_TOKEN), |a| a.auth_token.clone());
    match account {
        Some(account) if expected.matches(&token) => {
            if account.status == AccountStatus::Active {
                Ok(account)
            } else {
                Err(ApiError::AccountNotActive)
            }
        }
        _ => {
            // Evaluated even when there is no account, for the timing's sake.
            let _ = expected.matches(&token);
            Err(ApiError::Unauthenticated)
        }
    }
}

/// The account named in the path, if `caller` may act for it: itself or one of its active
/// subaccounts. The same answer whether the other account exists or not.
pub async fn authorize(
    services: &Services,
    caller: Account,
    path_account: &str,
) -> Result<Account, ApiError> {
    let denied = || ApiError::PermissionDenied(teleapi_domain::sid::shorten(path_account));
    let sid: AccountSid = path_account.parse().map_err(|_| denied())?;
    if sid == caller.sid {
        return Ok(caller);
    }
    let target = services
        .account_reader()
        .account(&sid, |_| true)
        .await?
        .ok_or_else(denied)?;
    if !caller.may_act_for(&target) {
        return Err(denied());
    }
    if target.status != AccountStatus::Active {
        return Err(ApiError::AccountNotActive);
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn parses_basic_credentials() {
        let sid = "AC0123456789abcdef0123456789abcdef";
        let encoded = STANDARD.encode(format!("{sid}:tok:en"));
        let (parsed, token) = credentials(&headers(&format!("Basic {encoded}"))).unwrap();
        assert_eq!(parsed.as_str(), sid);
        assert_eq!(token, "tok:en");
        assert!(credentials(&headers(&format!("basic {encoded}"))).is_some());
        for bad in [
            "Bearer abc".to_owned(),
            "Basic".to_owned(),
            "Basic !!!".to_owned(),
            format!("Basic {}", STANDARD.encode("no-colon")),
            format!("Basic {}", STANDARD.encode("ACnotasid:token")),
            format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', b'x'])),
        ] {
            assert!(credentials(&headers(&bad)).is_none(), "{bad}");
        }
        assert!(credentials(&HeaderMap::new()).is_none());
    }

    use crate::test_clock::SteppedClock;

    fn services(
        ttl: std::time::Duration,
    ) -> (
        Services,
        teleapi_adapters::memory::MemoryStore,
        Arc<SteppedClock>,
    ) {
        let store = teleapi_adapters::memory::MemoryStore::new();
        let clock = SteppedClock::starting_now();
        let services = Services {
            accounts: Arc::new(store.clone()),
            calls: Arc::new(store.clone()),
            conferences: Arc::new(store.clone()),
            recordings: Arc::new(store.clone()),
            call_log: Arc::new(store.clone()),
            numbers: Arc::new(store.clone()),
            queues: Arc::new(store.clone()),
            media: Arc::new(teleapi_adapters::media::FileMedia::new(std::env::temp_dir())),
            commands: Arc::new(teleapi_adapters::memory::MemoryQueue::new("commands")),
            clock: clock.clone(),
            config: super::super::ApiConfig {
                account_cache_ttl: ttl,
                ..Default::default()
            },
            account_cache: Default::default(),
            rate_limiter: None,
        };
        (services, store, clock)
    }

    fn basic(account: &Account) -> HeaderMap {
        let encoded = STANDARD.encode(format!("{}:{}", account.sid, account.auth_token.expose()));
        headers(&format!("Basic {encoded}"))
    }

    async fn outcome(services: &Services, account: &Account) -> Result<(), String> {
        authenticate(services, &basic(account))
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:?}"))
    }

    /// What `teleapi-admin` does to an account: a token, a status.
    async fn set(
        store: &teleapi_adapters::memory::MemoryStore,
        account: &Account,
        token: &AuthToken,
        status: AccountStatus,
    ) {
        use teleapi_ports::AccountStore;
        let changed = Account {
            auth_token: token.clone(),
            status,
            ..account.clone()
        };
        assert!(store.update_account(&changed).await.unwrap());
    }

    #[tokio::test]
    async fn a_cached_account_takes_changes_within_the_ttl() {
        use AccountStatus::{Active, Suspended};
        use teleapi_ports::AccountStore;
        let ttl = std::time::Duration::from_secs(10);
        let (services, store, clock) = services(ttl);
        let advance = |by: std::time::Duration| clock.advance(by);
        let account = Account::open("a", None, Timestamp::now());
        store.insert_account(&account).await.unwrap();
        assert_eq!(outcome(&services, &account).await, Ok(()));
        let refused = |result: Result<(), String>, why: &str| {
            assert!(result.unwrap_err().contains(why));
        };

        // Rotated: the old token works from the cached copy; the new one at once, and reading
        // it refreshes the copy, so the old one is refused from then on.
        let mut rotated = account.clone();
        rotated.auth_token = AuthToken::generate();
        set(&store, &account, &rotated.auth_token, Active).await;
        assert_eq!(outcome(&services, &account).await, Ok(()), "cached");
        assert_eq!(outcome(&services, &rotated).await, Ok(()));
        refused(outcome(&services, &account).await, "Unauthenticated");

        // Unused, an old token stops working when the cached copy expires.
        set(&store, &account, &account.auth_token, Active).await;
        assert_eq!(outcome(&services, &account).await, Ok(()));
        set(&store, &account, &rotated.auth_token, Active).await;
        assert_eq!(outcome(&services, &account).await, Ok(()), "cached");
        advance(ttl);
        refused(outcome(&services, &account).await, "Unauthenticated");
        assert_eq!(outcome(&services, &rotated).await, Ok(()));

        // Suspended: refused once the cached copy expires; reactivated: accepted at once.
        set(&store, &account, &rotated.auth_token, Suspended).await;
        assert_eq!(outcome(&services, &rotated).await, Ok(()), "cached");
        advance(ttl);
        refused(outcome(&services, &rotated).await, "NotActive");
        set(&store, &account, &rotated.auth_token, Active).await;
        assert_eq!(outcome(&services, &rotated).await, Ok(()));
    }

    #[tokio::test]
    async fn a_zero_ttl_reads_every_time() {
        use teleapi_ports::AccountStore;
        let (services, store, _) = services(std::time::Duration::ZERO);
        let account = Account::open("a", None, Timestamp::now());
        store.insert_account(&account).await.unwrap();
        assert_eq!(outcome(&services, &account).await, Ok(()));
        set(
            &store,
            &account,
            &AuthToken::generate(),
            AccountStatus::Active,
        )
        .await;
        let refused = outcome(&services, &account).await.unwrap_err();
        assert!(refused.contains("Unauthenticated"), "{refused}");
    }
}
