//! Every way a request can fail, and the one table that turns each into an HTTP status, a
//! Twilio-style code and a message. docs/errors.md lists the same table for users.

use lambda_http::http::StatusCode;

use teleapi_domain::{CallStateError, IntentSid, InvalidParameter, ProblemKind};
use teleapi_ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    InvalidParameter(#[from] InvalidParameter),
    #[error("The request body is not a valid form: {0}")]
    MalformedBody(String),
    #[error("The Idempotency-Key header must be 1 to 255 visible ASCII characters")]
    InvalidIdempotencyKey,
    #[error("The request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("The request body must be application/x-www-form-urlencoded (UTF-8)")]
    UnsupportedMediaType,
    #[error("Authenticate: HTTP Basic credentials AccountSid:AuthToken are missing or wrong")]
    Unauthenticated,
    #[error("The account is not active")]
    AccountNotActive,
    #[error("These credentials may not act for account {0}")]
    PermissionDenied(String),
    #[error("The requested resource {0} was not found")]
    NotFound(String),
    #[error("Method not allowed; this resource accepts {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error(transparent)]
    CallState(#[from] CallStateError),
    #[error(transparent)]
    ConferenceState(#[from] teleapi_domain::ConferenceStateError),
    #[error(transparent)]
    RecordingState(#[from] teleapi_domain::recording::RecordingStateError),
    #[error(transparent)]
    StreamState(#[from] teleapi_domain::stream::StreamStateError),
    #[error(
        "This Idempotency-Key was already used with different parameters; use a new key for a new request"
    )]
    IdempotencyKeyReused,
    #[error("The call is being modified by many requests at once; retry shortly")]
    Busy,
    #[error("PhoneNumber {0} is not available: it is already a number of this deployment")]
    NumberTaken(String),
    /// A queue's state refuses the change: a name the account has, a queue not empty.
    #[error("{0}")]
    QueueConflict(String),
    #[error(
        "Too many requests: account {account} may make {} requests a second (bursts of {}); retry in {retry_after} s",
        limit.per_second,
        limit.burst
    )]
    TooManyRequests {
        account: teleapi_domain::AccountSid,
        limit: teleapi_domain::RateLimit,
        retry_after: u32,
    },
    #[error("{}", command_not_queued(intent_sid, *undone))]
    CommandNotQueued { intent_sid: IntentSid, undone: bool },
    #[error("The service is temporarily unavailable; retry shortly")]
    Unavailable,
    #[error("Internal error")]
    Internal,
}

fn command_not_queued(intent_sid: &IntentSid, undone: bool) -> String {
    if undone {
        format!(
            "The command could not be queued for the call's media worker: intent {intent_sid} \
             is marked failed and nothing it asked for was done; retry shortly"
        )
    } else {
        format!(
            "The request was recorded as intent {intent_sid} but its command could not be \
             queued yet; it will be delivered within minutes or marked failed. Retry with the \
             same Idempotency-Key to learn the outcome"
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "store unavailable");
                Self::Unavailable
            }
            StoreError::Failed(detail) => {
                tracing::error!(error = %detail, "store failed");
                Self::Internal
            }
        }
    }
}

/// Twilio's code for a bad value of a parameter, where Twilio has one; 21200 (a problem with a
/// Calls resource request) otherwise.
fn parameter_code(parameter: &str) -> u32 {
    match parameter {
        "Url"
        | "FallbackUrl"
        | "StatusCallback"
        | "HoldUrl"
        | "AnnounceUrl"
        | "RecordingStatusCallback" => 21205,
        "Method"
        | "FallbackMethod"
        | "StatusCallbackMethod"
        | "HoldMethod"
        | "AnnounceMethod"
        | "RecordingStatusCallbackMethod" => 21209,
        "StatusCallbackEvent" => 21626,
        "Twiml" => 12100,
        "To" => 21211,
        "PhoneNumber" => 21421,
        "VoiceUrl" | "VoiceFallbackUrl" => 21205,
        "VoiceMethod" | "VoiceFallbackMethod" => 21209,
        "From" => 21212,
        _ => 21200,
    }
}

impl ApiError {
    /// HTTP status and code: the table docs/errors.md documents. Codes are Twilio's where one
    /// means the same thing; otherwise the HTTP status itself, as Twilio does for bare HTTP errors.
    pub fn status_and_code(&self) -> (StatusCode, u32) {
        match self {
            Self::InvalidParameter(p) => match p.kind {
                ProblemKind::Unknown => (StatusCode::BAD_REQUEST, 20001),
                ProblemKind::Invalid => (StatusCode::BAD_REQUEST, parameter_code(&p.parameter)),
                ProblemKind::Conflict | ProblemKind::Missing | ProblemKind::NothingToDo => {
                    (StatusCode::BAD_REQUEST, 21200)
                }
            },
            Self::NumberTaken(_) => (StatusCode::BAD_REQUEST, 21422),
            Self::QueueConflict(_) => (StatusCode::CONFLICT, 409),
            Self::MalformedBody(_) | Self::InvalidIdempotencyKey => {
                (StatusCode::BAD_REQUEST, 21200)
            }
            Self::Unauthenticated => (StatusCode::UNAUTHORIZED, 20003),
            Self::AccountNotActive => (StatusCode::FORBIDDEN, 10001),
            Self::PermissionDenied(_) => (StatusCode::FORBIDDEN, 20003),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, 20404),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, 405),
            Self::CallState(_)
            | Self::ConferenceState(_)
            | Self::RecordingState(_)
            | Self::StreamState(_) => (StatusCode::CONFLICT, 21220),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, 413),
            Self::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, 415),
            Self::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, 422),
            Self::Busy => (StatusCode::SERVICE_UNAVAILABLE, 20429),
            Self::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, 20429),
            Self::CommandNotQueued { .. } | Self::Unavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, 503)
            }
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, 500),
        }
    }

    /// Seconds a client should wait before retrying, for the answers that invite a retry.
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            Self::TooManyRequests { retry_after, .. } => Some(*retry_after),
            Self::Busy | Self::CommandNotQueued { .. } | Self::Unavailable => Some(1),
            _ => None,
        }
    }
}
