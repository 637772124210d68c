//! The product's concepts and rules. No AWS, Lambda or HTTP types live here.

/// The API version in every path and resource.
pub const API_VERSION: &str = "2012-04-24";

pub mod account;
pub mod call;
pub mod callback;
pub mod command;
pub mod create;
pub mod error;
pub mod event;
pub mod form;
pub mod idempotency;
pub mod intent;
pub mod listing;
pub mod modify;
pub mod params;
pub mod progress;
pub mod rcml;
pub mod sid;
pub mod time;
pub mod webhook;

pub use account::{Account, AccountStatus, AuthToken};
pub use call::{Call, CallStatus, Direction, Instructions};
pub use command::{Command, CommandParameters, CommandType};
pub use error::{CallStateError, InvalidParameter, ProblemKind};
pub use form::Form;
pub use idempotency::{IdempotencyKey, IdempotencyRecord};
pub use intent::{Intent, IntentAction, IntentStatus};
pub use modify::{HangupStatus, ModifyRequest, NewInstructions};
pub use rcml::Rcml;
pub use sid::{AccountSid, CallSid, IntentSid};
pub use time::Timestamp;
pub use webhook::{AddressPolicy, CallbackEvent, Method, StatusCallbackEvents, WebhookUrl};
