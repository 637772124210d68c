//! Accounts, their credentials, and who may act for whom.

mod rate_limit;

pub use rate_limit::*;

use std::fmt;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

pub use crate::account::RateLimit;
use crate::sid::{AccountSid, random_hex32};
use crate::time::Timestamp;
/// The secret half of an account's credentials. Never printed: `Debug` and `Display` redact it,
/// so a stray `{:?}` cannot put it in a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthToken(String);

impl AuthToken {
    pub fn generate() -> Self {
        Self(random_hex32())
    }

    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for signing and for the one place that hands it to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison: how long it takes says nothing about where the strings differ.
    /// (The length is not secret: every generated token has 32 characters.)
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    Active,
    Suspended,
    Closed,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Closed => "closed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub sid: AccountSid,
    pub auth_token: AuthToken,
    pub friendly_name: String,
    /// The account this one is a subaccount of. Only one level deep, as on Twilio.
    pub parent: Option<AccountSid>,
    pub status: AccountStatus,
    pub date_created: Timestamp,
    /// Over how many partitions of the listing index the account's calls are spread (1 to
    /// [`MAX_LISTING_SHARDS`]); raised for accounts that create many calls a second, never
    /// lowered (docs/capacity.md).
    pub listing_shards: u8,
    /// The account's own request rate limit; `None`: the deployment's default.
    pub rate_limit: Option<RateLimit>,
    /// Deployed: the API Gateway API key that counts the account's requests against its usage
    /// plan (its rate limit), which the authorizer names for it. `None` until `teleapi-admin`
    /// gives it one: its requests then count against a key shared by every such account.
    pub usage_key: Option<String>,
}

/// Most partitions an account's listing may use: 32 partitions take 32,000 index writes a
/// second, some 8,000 new calls a second at four index writes a call.
pub const MAX_LISTING_SHARDS: u8 = 32;

impl Account {
    /// A new active account with fresh credentials.
    pub fn open(
        friendly_name: impl Into<String>,
        parent: Option<AccountSid>,
        now: Timestamp,
    ) -> Self {
        Self {
            sid: AccountSid::generate(),
            auth_token: AuthToken::generate(),
            friendly_name: friendly_name.into(),
            parent,
            status: AccountStatus::Active,
            date_created: now,
            listing_shards: 1,
            rate_limit: None,
            usage_key: None,
        }
    }

    /// Whether this account may act on resources of `target`: its own, or those of a direct
    /// subaccount.
    pub fn may_act_for(&self, target: &Account) -> bool {
        target.sid == self.sid || target.parent.as_ref() == Some(&self.sid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_show_in_debug_output() {
        let token = AuthToken::new("0123456789abcdef0123456789abcdef");
        let account = Account {
            auth_token: token.clone(),
            ..Account::open("x", None, Timestamp::from_millis(0))
        };
        assert!(!format!("{account:?}").contains(token.expose()));
    }

    #[test]
    fn token_comparison() {
        let token = AuthToken::new("secret-token");
        assert!(token.matches("secret-token"));
        assert!(!token.matches("secret-tokem"));
        assert!(!token.matches("secret-token-and-more"));
        assert!(!token.matches(""));
    }

    #[test]
    fn parents_act_for_direct_subaccounts_only() {
        let now = Timestamp::from_millis(0);
        let parent = Account::open("parent", None, now);
        let child = Account::open("child", Some(parent.sid.clone()), now);
        let grandchild = Account::open("grandchild", Some(child.sid.clone()), now);
        let stranger = Account::open("stranger", None, now);
        assert!(parent.may_act_for(&parent));
        assert!(parent.may_act_for(&child));
        assert!(!child.may_act_for(&parent));
        assert!(!parent.may_act_for(&grandchild));
        assert!(!stranger.may_act_for(&child));
    }
}
