//! Accounts read recently, so that a warm function does not read a busy account on every request
//! or message (docs/decisions.md, "Caching accounts"). Used by the API functions to authenticate,
//! by the callback function to sign, and by call-events for a new call's listing partitions.
//!
//! Only active accounts are kept, an entry is used for the cache's TTL after its read, and a
//! caller that finds the entry unusable (a token that does not match) reads the store again,
//! which refreshes the entry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::{AccountStore, StoreError};
use teleapi_domain::{Account, AccountSid, AccountStatus, Timestamp};

#[derive(Clone, Default)]
pub struct AccountCache {
    entries: Arc<Mutex<HashMap<AccountSid, (Timestamp, Account)>>>,
}

impl AccountCache {
    /// Entries kept at most; beyond it, expired entries go, then all of them.
    const CAPACITY: usize = 4096;

    fn fresh(&self, sid: &AccountSid, now: Timestamp, ttl: Duration) -> Option<Account> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (read_at, account) = entries.get(sid)?;
        (now < read_at.plus(ttl)).then(|| account.clone())
    }

    fn remember(&self, sid: &AccountSid, account: Option<&Account>, now: Timestamp, ttl: Duration) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match account {
            Some(account) if account.status == AccountStatus::Active && !ttl.is_zero() => {
                if entries.len() >= Self::CAPACITY {
                    entries.retain(|_, (read_at, _)| now < read_at.plus(ttl));
                    if entries.len() >= Self::CAPACITY {
                        entries.clear();
                    }
                }
                entries.insert(sid.clone(), (now, account.clone()));
            }
            _ => {
                entries.remove(sid);
            }
        }
    }

    /// The account `sid`: the cached copy if it is younger than `ttl` and `usable`, else read from
    /// `store` (and remembered, if active). A zero `ttl` reads every time.
    pub async fn account(
        &self,
        store: &dyn AccountStore,
        sid: &AccountSid,
        now: Timestamp,
        ttl: Duration,
        usable: impl Fn(&Account) -> bool,
    ) -> Result<Option<Account>, StoreError> {
        if let Some(account) = self.fresh(sid, now, ttl)
            && usable(&account)
        {
            return Ok(Some(account));
        }
        let account = store.account(sid).await?;
        self.remember(sid, account.as_ref(), now, ttl);
        Ok(account)
    }
}
