//! Going round again after a conditional write lost to a concurrent writer: the one rule every
//! read–decide–write loop follows (the API's changes, the worker's events, the reconciler), a
//! jittered backoff between rounds within a time budget, so that writers racing for one item
//! spread out instead of colliding again, and a loop that keeps losing gives up in bounded time.

use std::time::{Duration, Instant};

/// Full-jitter exponential backoff: a random wait up to 10 ms x 2^attempt, at most 250 ms.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = Duration::from_millis(10)
        .saturating_mul(1 << attempt.min(5))
        .min(Duration::from_millis(250));
    let mut bytes = [0u8; 4];
    let fraction = match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    };
    ceiling.mul_f64(fraction)
}

/// The rounds of one read–decide–write loop, within its budget.
pub struct Retry {
    deadline: Instant,
    attempt: u32,
}

impl Retry {
    /// Rounds for `budget` from now.
    pub fn within(budget: Duration) -> Self {
        Self {
            deadline: Instant::now() + budget,
            attempt: 0,
        }
    }

    /// After a round that lost to a concurrent write: waits its backoff and says to go round
    /// again, or, once the budget is spent, says to give up.
    pub async fn again(&mut self) -> bool {
        if Instant::now() >= self.deadline {
            return false;
        }
        tokio::time::sleep(backoff(self.attempt)).await;
        self.attempt += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_ceiling() {
        for attempt in 0..12 {
            let ceiling = Duration::from_millis((10u64 << attempt.min(5)).min(250));
            assert!(backoff(attempt) <= ceiling, "attempt {attempt}");
        }
    }

    #[tokio::test]
    async fn a_spent_budget_gives_up() {
        let mut retry = Retry::within(Duration::from_millis(30));
        let mut rounds = 0;
        while retry.again().await {
            rounds += 1;
            assert!(rounds < 1_000, "gives up");
        }
        assert!(rounds >= 1, "goes round while the budget lasts");
        assert!(!Retry::within(Duration::ZERO).again().await);
    }
}
