//! `Idempotency-Key`: a retry with the same key returns the first answer and does nothing again.

use crate::sid::AccountSid;
use crate::time::Timestamp;

/// Longest key accepted. Long enough for a UUID with a prefix, short enough to bound the item.
pub const MAX_KEY_LENGTH: usize = 255;

/// How long a key is remembered.
pub const KEY_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A key as the client sent it, scoped to the account that sent it: two accounts may use the
/// same key without meeting.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Visible ASCII only (no spaces or controls), 1 to 255 characters.
    pub fn parse(account: &AccountSid, key: &[u8]) -> Option<Self> {
        let valid = !key.is_empty()
            && key.len() <= MAX_KEY_LENGTH
            && key.iter().all(|b| b.is_ascii_graphic());
        valid.then(|| Self(format!("{account}:{}", String::from_utf8_lossy(key))))
    }

    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a key remembers: which request it was (the fingerprint) and the answer it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub key: IdempotencyKey,
    /// The request in canonical form: target and parameters.
    pub fingerprint: String,
    /// HTTP status of the first answer.
    pub status: u16,
    /// The first answer's resource, as JSON; rendered again in the format the retry asks for.
    pub response: String,
    pub expires_at: Timestamp,
}

impl IdempotencyRecord {
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at > now
    }
}
