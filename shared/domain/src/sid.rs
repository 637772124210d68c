//! Sids: two-letter prefix + 32 hex digits, as Twilio spells them.
//!
//! Each kind of Sid is its own type, parsed once at the edge. Parsing accepts either hex case
//! (Twilio's published pattern does) and stores the canonical lowercase form, so the same Sid
//! always names the same item.

use std::fmt;

use std::str::FromStr;

use serde::{Deserializer, Serializer};

use sha1::{Digest, Sha1};

use serde::Deserialize;
use serde::Serialize;

/// Why a string is not a Sid of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid {kind}: expected {prefix} followed by 32 hexadecimal digits")]
pub struct InvalidSid {
    pub kind: &'static str,
    pub prefix: &'static str,
    /// The rejected value, shortened so that hostile input cannot bloat error messages.
    pub value: String,
}

const HEX_DIGITS: usize = 32;

/// 32 random lowercase hex digits from the operating system's CSPRNG.
pub fn random_hex32() -> String {
    prefixed_random_hex32("")
}

/// `prefix` followed by [`random_hex32`], in one allocation.
fn prefixed_random_hex32(prefix: &str) -> String {
    let mut bytes = [0u8; HEX_DIGITS / 2];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    let mut out = String::with_capacity(prefix.len() + HEX_DIGITS);
    out.push_str(prefix);
    for byte in bytes {
        out.push(char::from_digit(u32::from(byte >> 4), 16).expect("nibble"));
        out.push(char::from_digit(u32::from(byte & 0xf), 16).expect("nibble"));
    }
    out
}

fn parse_sid(value: &str, kind: &'static str, prefix: &'static str) -> Result<String, InvalidSid> {
    let valid = value.len() == prefix.len() + HEX_DIGITS
        && value.starts_with(prefix)
        && value[prefix.len()..].bytes().all(|b| b.is_ascii_hexdigit());
    if valid {
        let mut canonical = String::with_capacity(value.len());
        canonical.push_str(prefix);
        canonical.push_str(&value[prefix.len()..].to_ascii_lowercase());
        Ok(canonical)
    } else {
        Err(InvalidSid {
            kind,
            prefix,
            value: shorten(value),
        })
    }
}

/// At most 64 characters of untrusted input, for messages.
pub fn shorten(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}

macro_rules! sid_type {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new Sid with 128 random bits.
            pub fn generate() -> Self {
                Self(prefixed_random_hex32($prefix))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidSid;
            fn from_str(value: &str) -> Result<Self, InvalidSid> {
                parse_sid(value, $kind, $prefix).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = std::borrow::Cow::<str>::deserialize(deserializer)?;
                raw.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

sid_type!(
    /// An account (or subaccount).
    AccountSid,
    "AC",
    "AccountSid"
);
sid_type!(
    /// A call leg.
    CallSid,
    "CA",
    "CallSid"
);
sid_type!(
    /// One accepted modification of a call (an intent).
    IntentSid,
    "MI",
    "IntentSid"
);
sid_type!(
    /// A conference room, from its first participant to its end.
    ConferenceSid,
    "CF",
    "ConferenceSid"
);

sid_type!(
    /// A call queue (`<Enqueue>`, `<Dial><Queue>`).
    QueueSid,
    "QU",
    "QueueSid"
);

sid_type!(
    /// A recording of a call.
    RecordingSid,
    "RE",
    "RecordingSid"
);

sid_type!(
    /// A media stream of a call (`<Stream>`, `POST …/Streams`).
    StreamSid,
    "MZ",
    "StreamSid"
);

sid_type!(
    /// A phone number of an account, which inbound calls reach (`IncomingPhoneNumbers`).
    PhoneNumberSid,
    "PN",
    "PhoneNumberSid"
);

sid_type!(
    /// An error or warning met on a call's behalf (docs/data-model.md, "call_log").
    NotificationSid,
    "NO",
    "NotificationSid"
);

impl NotificationSid {
    /// The sid named by `seed`: the same seed always gives the same sid, so that recording the
    /// same problem twice (a redelivered event, a retried write) gives one notification.
    pub fn derived(seed: &str) -> Self {
        Self(format!("NO{}", &crate::sid::digest_hex(seed)[..32]))
    }
}

impl QueueSid {
    /// The queue `name` of `account`: the same sid on every worker and in the API, with no
    /// lookup (a queue is made by its first `<Enqueue>` as well as by `POST …/Queues`).
    pub fn named(account: &AccountSid, name: &str) -> Self {
        Self(format!(
            "QU{}",
            &crate::sid::digest_hex(&format!("{account}\n{name}"))[..32]
        ))
    }
}

/// What an intent is about, and where its commands are ordered: a call, or a conference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Call(CallSid),
    Conference(ConferenceSid),
}

impl Subject {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Call(sid) => sid.as_str(),
            Self::Conference(sid) => sid.as_str(),
        }
    }

    /// The call, if the subject is one.
    pub fn call(&self) -> Option<&CallSid> {
        match self {
            Self::Call(sid) => Some(sid),
            Self::Conference(_) => None,
        }
    }
}

impl From<CallSid> for Subject {
    fn from(sid: CallSid) -> Self {
        Self::Call(sid)
    }
}

impl From<ConferenceSid> for Subject {
    fn from(sid: ConferenceSid) -> Self {
        Self::Conference(sid)
    }
}

impl FromStr for Subject {
    type Err = InvalidSid;
    fn from_str(value: &str) -> Result<Self, InvalidSid> {
        if value.starts_with(ConferenceSid::PREFIX) {
            value.parse().map(Self::Conference)
        } else {
            value.parse().map(Self::Call)
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Subject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Longest a worker id may be.
pub(crate) const MAX_ID_LEN: usize = 64;

/// A worker's id: 1 to 64 of `A-Z a-z 0-9 . _ -`. It names one run of a worker process: a
/// worker that restarts announces itself under a new id, since the calls of the old one have
/// ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkerId(String);

impl WorkerId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for WorkerId {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let valid = !value.is_empty()
            && value.len() <= MAX_ID_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(Self(value))
        } else {
            Err(format!(
                "a worker id is 1 to {MAX_ID_LEN} of A-Z a-z 0-9 . _ -, not {value:?}"
            ))
        }
    }
}

impl From<WorkerId> for String {
    fn from(id: WorkerId) -> Self {
        id.0
    }
}

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lowercase hex SHA-1 of `text`: a stable name for what an entry records.
pub fn digest_hex(text: &str) -> String {
    Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_canonical_and_uppercase_hex() {
        let lower = "CA0123456789abcdef0123456789abcdef";
        let upper = "CA0123456789ABCDEF0123456789ABCDEF";
        assert_eq!(lower.parse::<CallSid>().unwrap().as_str(), lower);
        assert_eq!(upper.parse::<CallSid>().unwrap().as_str(), lower);
    }

    #[test]
    fn rejects_malformed_sids() {
        for bad in [
            "",
            "CA",
            "ca0123456789abcdef0123456789abcdef",
            "AC0123456789abcdef0123456789abcdef",
            "CA0123456789abcdef0123456789abcde",
            "CA0123456789abcdef0123456789abcdef0",
            "CA0123456789abcdef0123456789abcdeg",
            "CA0123456789abcdef0123456789abcdé",
            "CA😀😀😀😀😀😀😀😀",
        ] {
            assert!(
                bad.parse::<CallSid>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn generated_sids_parse_and_differ() {
        let a = CallSid::generate();
        let b = CallSid::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().parse::<CallSid>().unwrap(), a);
        assert!(IntentSid::generate().as_str().starts_with("MI"));
    }

    #[test]
    fn error_messages_stay_short() {
        let hostile = "x".repeat(10_000);
        let err = hostile.parse::<AccountSid>().unwrap_err();
        assert!(err.to_string().len() < 200);
    }
}
