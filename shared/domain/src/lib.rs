//! The product's concepts and rules. No AWS, Lambda or HTTP types live here.

/// The API version in every path and resource.
pub const API_VERSION: &str = "2012-04-24";

/// A closed set of words of the API: each variant's spelling, parsed case-insensitively.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// Case-insensitive, like every enum value of the API.
            pub fn parse(value: &str) -> Option<Self> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(value))
            }

            /// The spellings, for messages: `a, b or c`.
            pub fn choices() -> String {
                let words: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                match words.split_last() {
                    Some((last, [])) => (*last).to_owned(),
                    Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                    None => String::new(),
                }
            }
        }
    };
}

// The vocabulary: imports nothing above it.
pub mod error;
pub mod form;
pub mod paging;
pub mod params;
pub mod rcml;
pub mod sid;
pub mod time;
pub mod webhook;

// The entities and their rules, one folder per aggregate (mod.rs: the entity; create, modify:
// what the API may ask of it; apply: what workers' reports do to it; callbacks: what the
// application is told; listing: its lists), and the messages on the queues (`wire`).
pub mod account;
pub mod call;
pub mod call_log;
pub mod conference;
pub mod idempotency;
pub mod intent;
pub mod number;
pub mod queue;
pub mod recording;
pub mod stream;
pub mod wire;
pub mod worker;

pub use account::{Account, AccountStatus, AuthToken, RateLimit};
pub use call::{
    Call, CallStateError, CallStatus, Direction, HangupStatus, Instructions, ModifyRequest,
    NewInstructions,
};
pub use error::{ConferenceStateError, InvalidParameter, ProblemKind};
pub use form::Form;
pub use idempotency::{IdempotencyKey, IdempotencyRecord};
pub use intent::{Intent, IntentAction, IntentCommand, IntentStatus};
pub use rcml::Rcml;
pub use sid::{
    AccountSid, CallSid, ConferenceSid, IntentSid, NotificationSid, PhoneNumberSid, QueueSid,
    RecordingSid, StreamSid, Subject,
};
pub use time::Timestamp;
pub use webhook::{AddressPolicy, CallbackEvent, Method, StatusCallbackEvents, WebhookUrl};
pub use wire::command::{Command, CommandParameters, CommandType};

/// The JSON examples of one section of docs/messages.md (from `heading` to the next `## `), for
/// the tests that keep the documentation true.
#[cfg(test)]
pub(crate) fn doc_examples(heading: &str) -> Vec<&'static str> {
    let doc = include_str!("../../../docs/messages.md");
    let start = doc.find(heading).expect("the section exists");
    let section = &doc[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .split("```json")
        .skip(1)
        .map(|block| block.split("```").next().unwrap_or_default())
        .collect()
}
