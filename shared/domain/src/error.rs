//! What can be wrong with a request, in the product's terms. The API layer maps each to an HTTP
//! status and a Twilio-style code in one place (`api::error`).

/// What kind of problem a parameter has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// A parameter the endpoint does not know.
    Unknown,
    /// A known parameter with a value that breaks its rules.
    Invalid,
    /// A parameter that cannot be given with (or without) another.
    Conflict,
    /// A required parameter is missing.
    Missing,
    /// The request asks for nothing at all.
    NothingToDo,
}

/// A request parameter that breaks the rules; the message names it and says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidParameter {
    /// The parameter at fault, as the API spells it; empty when no single one is.
    pub parameter: String,
    pub kind: ProblemKind,
    pub message: String,
}

impl InvalidParameter {
    pub fn new(parameter: &str, kind: ProblemKind, message: String) -> Self {
        Self {
            parameter: parameter.to_owned(),
            kind,
            message,
        }
    }
}

/// The request is valid but the conference's or the participant's state does not allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConferenceStateError {
    #[error("The conference {0} has ended and can no longer be modified")]
    Ended(String),
    #[error("The participant {0} has left the conference and can no longer be modified")]
    ParticipantLeft(String),
}
