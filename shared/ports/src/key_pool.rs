//! Which key of the pool an account borrows (docs/decisions.md, "Rate limits"). API Gateway
//! allows 10,000 API keys a region, so accounts without a limit of their own do not each keep a
//! key: the authorizer lends one of the pool's keys to an account for as long as its answer may
//! be cached, and renews the loan each time it runs for the account again. An account's limit is
//! then its own for as long as fewer accounts are active at once than the pool has keys.
//!
//! The slots an account tries are fixed by its AccountSid, whose 32 hex digits are random: the
//! first 16 choose the first slot, the last 16 the step to the next (double hashing), so an
//! account finds its own slot again at once while the pool is not nearly full, and accounts that
//! collide do not follow each other.

use std::sync::Mutex;
use std::time::Duration;

use crate::{KeyPool, StoreError};
use teleapi_domain::{AccountSid, Timestamp};

/// How long a key is lent for: API Gateway caches the authorizer's answer, which names the key,
/// for 300 s after it ran (`ReauthorizeEvery`, infra/template.yaml); a minute more covers the
/// clocks and the answer's way back. Each run of the authorizer for the account renews it.
pub const LEASE: Duration = Duration::from_secs(360);

/// The slots an account tries before it shares the unassigned key: with the pool three-quarters
/// lent, one account in ten thousand finds none of eight free.
pub const TRIES: usize = 8;

/// The slots `account` tries in a pool of `size`, in order, without repeats: [`TRIES`] of them, or
/// every slot of a smaller pool (where the steps repeat a slot, the next slots in order fill in).
pub fn slots(account: &AccountSid, size: u32) -> Vec<u32> {
    if size == 0 {
        return Vec::new();
    }
    let digits = account.as_str().get(2..).unwrap_or_default();
    let half = |range: std::ops::Range<usize>| {
        digits
            .get(range)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .unwrap_or(0)
    };
    let (first, step) = (half(0..16), half(16..32) | 1);
    let size = u64::from(size);
    let mut tried = Vec::with_capacity(TRIES);
    for i in 0..TRIES as u64 {
        let slot = (first % size + (i * (step % size))) % size;
        let slot = u32::try_from(slot).expect("below a u32 size");
        if !tried.contains(&slot) {
            tried.push(slot);
        }
    }
    let wanted = TRIES.min(usize::try_from(size).unwrap_or(TRIES));
    let mut next = first % size;
    while tried.len() < wanted {
        let slot = u32::try_from(next).expect("below a u32 size");
        if !tried.contains(&slot) {
            tried.push(slot);
        }
        next = (next + 1) % size;
    }
    tried
}

/// The pool's size, read at most once a minute per process: a grown pool is used within a
/// minute, and a shrunk one only costs a try at a slot that is gone.
#[derive(Default)]
pub struct PoolSize(Mutex<Option<(Timestamp, u32)>>);

impl PoolSize {
    const TTL: Duration = Duration::from_secs(60);

    pub async fn get(&self, pool: &dyn KeyPool, now: Timestamp) -> Result<u32, StoreError> {
        if let Some((read_at, size)) = *self.0.lock().unwrap_or_else(|p| p.into_inner())
            && now < read_at.plus(Self::TTL)
        {
            return Ok(size);
        }
        let size = pool.pool_size().await?;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, size));
        Ok(size)
    }
}

/// Lends `account` a key of the pool until `now + lease`: the first of its [`slots`] that is free
/// or already its own. `None` when all of them are lent to others.
pub async fn lend(
    pool: &dyn KeyPool,
    size: &PoolSize,
    account: &AccountSid,
    now: Timestamp,
    lease: Duration,
) -> Result<Option<String>, StoreError> {
    let until = now.plus(lease);
    for slot in slots(account, size.get(pool, now).await?) {
        if let Some(key) = pool.lend_slot(slot, account, now, until).await? {
            return Ok(Some(key));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_tries_distinct_slots_of_the_pool_its_sid_chooses() {
        let account: AccountSid = "AC0000000000000005000000000000000a".parse().unwrap();
        // First slot 5 mod 7, step 0xb mod 7 = 4 (the last digit made odd).
        assert_eq!(slots(&account, 7), [5, 2, 6, 3, 0, 4, 1]);
        assert_eq!(slots(&account, 1), [0]);
        // A step that is a multiple of the size: the slots in order fill in.
        assert_eq!(slots(&account, 11), [5, 6, 7, 8, 9, 10, 0, 1]);
        assert!(slots(&account, 0).is_empty());
        let big = slots(&account, 10_000);
        assert_eq!(big.len(), TRIES);
        assert!(big.iter().all(|s| *s < 10_000));
        // Two accounts with the same first slot go on differently.
        let other: AccountSid = "AC00000000000000050000000000000003".parse().unwrap();
        assert_eq!(slots(&other, 10_000)[0], big[0]);
        assert_ne!(slots(&other, 10_000)[1], big[1]);
    }
}
