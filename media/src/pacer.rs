//! The 20 ms clock that every leg's audio is sent on: deadlines from one monotonic start, so
//! a late tick neither drifts the clock nor sends a burst of the frames it missed; those are
//! skipped (the RTP timestamp still advances by them, as a sender that was silent would).

use std::time::Duration;

use tokio::time::Instant;

/// One frame of audio: 20 ms, 160 samples at 8 kHz.
pub const FRAME: Duration = Duration::from_millis(20);
pub const FRAME_SAMPLES: usize = 160;

/// The clock's ticks.
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    /// Ticks elapsed since `start`, up to the last one returned.
    ticks: u64,
}

impl Pacer {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            ticks: 0,
        }
    }

    /// Waits for the next tick; the number of frame periods since the previous one (1, or more
    /// when this one came late: the frames in between are skipped, not sent in a burst).
    pub async fn tick(&mut self) -> u64 {
        let next = self.start + FRAME * u32::try_from(self.ticks + 1).unwrap_or(u32::MAX);
        tokio::time::sleep_until(next).await;
        let elapsed = Instant::now().saturating_duration_since(self.start);
        let due = (elapsed.as_micros() / FRAME.as_micros()) as u64;
        let passed = due.saturating_sub(self.ticks).max(1);
        self.ticks += passed;
        passed
    }
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ticks_every_frame_and_skips_what_it_missed() {
        let mut pacer = Pacer::new();
        let start = Instant::now();
        assert_eq!(pacer.tick().await, 1);
        assert_eq!(pacer.tick().await, 1);
        assert_eq!(Instant::now() - start, FRAME * 2);
        // Held up for 75 ms: the next tick says three frame periods passed, and the one after
        // is back on the 20 ms grid.
        tokio::time::advance(Duration::from_millis(75)).await;
        assert_eq!(pacer.tick().await, 3);
        assert_eq!(pacer.tick().await, 1);
        assert_eq!(Instant::now() - start, FRAME * 6);
    }
}
