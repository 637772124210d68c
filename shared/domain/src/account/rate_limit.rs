//! A fair share per account: how many API requests an account may make, and the token bucket
//! that counts them (the same arithmetic as API Gateway's usage plans, which enforce it when
//! deployed; `teleapi-local` enforces it in process). docs/decisions.md, "Rate limits".

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
/// How many API requests an account may make: `per_second` on average, `burst` at once (a token
/// bucket of `burst` tokens refilled at `per_second`), as API Gateway's usage plans count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl RateLimit {
    /// The deployment's default for an account without a limit of its own
    /// (infra/template.yaml's `AccountRateLimit` and `AccountBurstLimit`).
    pub const DEFAULT: RateLimit = RateLimit {
        per_second: 100,
        burst: 200,
    };

    /// The largest limit an account may be given: API Gateway's default account-level quota
    /// (10,000 requests a second, burst 5,000) bounds any one usage plan.
    pub const MAX_PER_SECOND: u32 = 10_000;
    pub const MAX_BURST: u32 = 5_000;

    /// The larger of two limits, field by field (a bucket full for it is full for both).
    pub fn max_of(self, other: Self) -> Self {
        Self {
            per_second: self.per_second.max(other.per_second),
            burst: self.burst.max(other.burst),
        }
    }

    pub fn new(per_second: u32, burst: u32) -> Result<Self, String> {
        if !(1..=Self::MAX_PER_SECOND).contains(&per_second) {
            return Err(format!(
                "a rate limit is 1 to {} requests a second, not {per_second}",
                Self::MAX_PER_SECOND
            ));
        }
        if !(1..=Self::MAX_BURST).contains(&burst) {
            return Err(format!(
                "a burst is 1 to {} requests, not {burst}",
                Self::MAX_BURST
            ));
        }
        Ok(Self { per_second, burst })
    }
}

/// Requests an account has left: `burst` at most, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    at: Timestamp,
}

impl TokenBucket {
    /// A full bucket.
    pub fn full(limit: RateLimit, now: Timestamp) -> Self {
        Self {
            tokens: f64::from(limit.burst),
            at: now,
        }
    }

    fn refill(&mut self, limit: RateLimit, now: Timestamp) {
        let elapsed = (now.millis() - self.at.millis()).max(0) as f64 / 1000.0;
        self.tokens =
            (self.tokens + elapsed * f64::from(limit.per_second)).min(f64::from(limit.burst));
        self.at = self.at.max(now);
    }

    /// Takes one request's token: `Ok`, or `Err(seconds)` until one is there.
    pub fn take(&mut self, limit: RateLimit, now: Timestamp) -> Result<(), u32> {
        self.refill(limit, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - self.tokens) / f64::from(limit.per_second);
        Err((wait.ceil() as u32).max(1))
    }

    /// Full again by `now`: nothing to remember about this account.
    pub fn is_full(&self, limit: RateLimit, now: Timestamp) -> bool {
        let mut bucket = *self;
        bucket.refill(limit, now);
        bucket.tokens >= f64::from(limit.burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_bounded() {
        assert!(RateLimit::new(100, 200).is_ok());
        assert!(RateLimit::new(0, 10).is_err());
        assert!(RateLimit::new(10, 0).is_err());
        assert!(RateLimit::new(RateLimit::MAX_PER_SECOND + 1, 10).is_err());
        assert!(RateLimit::new(10, RateLimit::MAX_BURST + 1).is_err());
    }

    #[test]
    fn a_bucket_takes_a_burst_then_its_rate() {
        let limit = RateLimit::new(10, 5).unwrap();
        let start = Timestamp::from_millis(1_000_000);
        let mut bucket = TokenBucket::full(limit, start);
        for _ in 0..5 {
            assert_eq!(bucket.take(limit, start), Ok(()));
        }
        assert_eq!(bucket.take(limit, start), Err(1), "the burst is spent");
        // 10 a second: one more every 100 ms.
        let later = Timestamp::from_millis(1_000_100);
        assert_eq!(bucket.take(limit, later), Ok(()));
        assert_eq!(bucket.take(limit, later), Err(1));
        // Idle long enough, it is full again (and no fuller).
        let idle = Timestamp::from_millis(1_010_000);
        assert!(bucket.is_full(limit, idle));
        for _ in 0..5 {
            assert_eq!(bucket.take(limit, idle), Ok(()));
        }
        assert!(bucket.take(limit, idle).is_err());
    }

    #[test]
    fn a_slow_limit_says_how_long_to_wait() {
        let limit = RateLimit::new(1, 1).unwrap();
        let start = Timestamp::from_millis(0);
        let mut bucket = TokenBucket::full(limit, start);
        assert_eq!(bucket.take(limit, start), Ok(()));
        assert_eq!(bucket.take(limit, Timestamp::from_millis(200)), Err(1));
        assert_eq!(bucket.take(limit, Timestamp::from_millis(1000)), Ok(()));
    }
}
