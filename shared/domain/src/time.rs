//! Instants as milliseconds since the Unix epoch: what the stores keep and sort by. The API shows
//! them in RFC 2822, as Twilio does (`Tue, 24 Nov 2026 12:44:08 +0000`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub fn now() -> Self {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Self(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch: the unit of DynamoDB's TTL attribute.
    pub const fn epoch_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub fn plus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }

    pub fn minus(self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_sub(millis))
    }

    /// Rounded down to a whole second: the precision of a TTL attribute, so that an expiry reads
    /// back exactly as it was written.
    pub const fn whole_seconds(self) -> Self {
        Self(self.epoch_seconds() * 1000)
    }

    /// Whole seconds from `earlier` to `self`, never negative.
    pub fn seconds_since(self, earlier: Timestamp) -> u64 {
        u64::try_from(self.0.saturating_sub(earlier.0).max(0) / 1000).unwrap_or(0)
    }

    /// RFC 2822 in UTC, e.g. `Tue, 24 Nov 2026 12:44:08 +0000`.
    pub fn rfc2822(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| t.format(&Rfc2822).ok())
            .unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc2822())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc2822_in_utc() {
        // 2026-11-24T12:44:08Z
        let t = Timestamp::from_millis(1_795_524_248_123);
        assert_eq!(t.rfc2822(), "Tue, 24 Nov 2026 12:44:08 +0000");
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_millis(5_000);
        assert_eq!(t.plus(Duration::from_secs(1)).millis(), 6_000);
        assert_eq!(t.minus(Duration::from_secs(1)).millis(), 4_000);
        assert_eq!(t.seconds_since(Timestamp::from_millis(9_000)), 0);
        assert_eq!(Timestamp::from_millis(9_999).seconds_since(t), 4);
        assert_eq!(t.epoch_seconds(), 5);
    }
}
