//! The HTTP API: routing, authentication, representations, and one module per operation.
//!
//! Every function, and `teleapi-local`, hands its requests to [`handle`]; an operation reads as
//! parse -> act -> represent, and failures become responses in exactly one place
//! ([`error::ApiError`] and [`respond_error`]).

pub mod auth;
pub mod authorizer;
pub mod call_log;
pub mod conference_changes;
pub mod conferences;
pub mod create_call;
pub mod error;
pub mod get_call;
pub mod intents;
pub mod list;
pub mod modify_call;
pub mod rate_limit;
pub mod recordings;
pub mod representation;
pub mod streams;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_http::http::{HeaderValue, Method as HttpMethod, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde_json::Value;

use error::ApiError;
use representation::{Format, error_resource};
use teleapi_domain::{Account, AddressPolicy, Call, CallSid, Form};
use teleapi_ports::{
    AccountStore, CallLogStore, CallStore, Clock, ConferenceStore, MediaStore, Queue,
    RecordingStore,
};

/// Tunables of the API, with the values deployments use by default.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub address_policy: AddressPolicy,
    /// How long intents are kept (DynamoDB TTL).
    pub intent_retention: Duration,
    /// How long an `Idempotency-Key` is remembered (DynamoDB TTL).
    pub idempotency_lifetime: Duration,
    /// How long a modification may keep retrying its conditional write against concurrent
    /// modifications of the same call before answering 503.
    pub write_budget: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// How long an authenticated account is reused without reading it again (zero: never).
    pub account_cache_ttl: Duration,
    /// Where the API is reached (`https://…/Prod`), for the absolute URLs of resources
    /// (`media_url`); `None`: from the request's `Host`, over https.
    pub public_url: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            address_policy: AddressPolicy::default(),
            intent_retention: Duration::from_secs(30 * 24 * 3600),
            idempotency_lifetime: teleapi_domain::idempotency::KEY_LIFETIME,
            write_budget: Duration::from_secs(5),
            max_body_bytes: 64 * 1024,
            account_cache_ttl: Duration::from_secs(10),
            public_url: None,
        }
    }
}

/// The ports an operation works with, built once per process and shared by every request.
#[derive(Clone)]
pub struct Services {
    pub accounts: Arc<dyn AccountStore>,
    pub calls: Arc<dyn CallStore>,
    pub conferences: Arc<dyn ConferenceStore>,
    pub recordings: Arc<dyn RecordingStore>,
    /// Where the API notes the requests on a call it refused, and reads calls' logs.
    pub call_log: Arc<dyn CallLogStore>,
    /// Where recordings' media is.
    pub media: Arc<dyn MediaStore>,
    pub commands: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    pub config: ApiConfig,
    pub account_cache: teleapi_ports::account_cache::AccountCache,
    /// The per-account rate limit, where this process enforces it (`teleapi-local`); deployed,
    /// API Gateway's usage plans do, and this is `None`.
    pub rate_limiter: Option<Arc<rate_limit::RateLimiter>>,
}

/// The operations of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateCall,
    ListCalls,
    GetCall,
    ModifyCall,
    ListModifications,
    ListConferences,
    GetConference,
    ListParticipants,
    GetParticipant,
    ModifyConference,
    ModifyParticipant,
    RemoveParticipant,
    ListConferenceModifications,
    AddParticipant,
    StartRecording,
    UpdateRecording,
    DeleteRecording,
    ListRecordings,
    /// A recording's resource, or its media (`.wav`).
    GetRecording,
    StartStream,
    StopStream,
    /// A call's request log (Twilio's Call Events).
    ListCallEvents,
    /// The account's notifications, or a call's.
    ListNotifications,
    /// One notification of a call.
    GetNotification,
}

impl Operation {
    pub const ALL: [Operation; 24] = [
        Self::CreateCall,
        Self::ListCalls,
        Self::GetCall,
        Self::ModifyCall,
        Self::ListModifications,
        Self::ListConferences,
        Self::GetConference,
        Self::ListParticipants,
        Self::GetParticipant,
        Self::ModifyConference,
        Self::ModifyParticipant,
        Self::RemoveParticipant,
        Self::ListConferenceModifications,
        Self::AddParticipant,
        Self::StartRecording,
        Self::UpdateRecording,
        Self::DeleteRecording,
        Self::ListRecordings,
        Self::GetRecording,
        Self::StartStream,
        Self::StopStream,
        Self::ListCallEvents,
        Self::ListNotifications,
        Self::GetNotification,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::CreateCall => "create-call",
            Self::ListCalls => "list-calls",
            Self::GetCall => "get-call",
            Self::ModifyCall => "modify-call",
            Self::ListModifications => "list-modifications",
            Self::ListConferences => "list-conferences",
            Self::GetConference => "get-conference",
            Self::ListParticipants => "list-participants",
            Self::GetParticipant => "get-participant",
            Self::ModifyConference => "modify-conference",
            Self::ModifyParticipant => "modify-participant",
            Self::RemoveParticipant => "remove-participant",
            Self::ListConferenceModifications => "list-conference-modifications",
            Self::AddParticipant => "add-participant",
            Self::StartRecording => "start-recording",
            Self::UpdateRecording => "update-recording",
            Self::DeleteRecording => "delete-recording",
            Self::ListRecordings => "list-recordings",
            Self::GetRecording => "get-recording",
            Self::StartStream => "start-stream",
            Self::StopStream => "stop-stream",
            Self::ListCallEvents => "list-call-events",
            Self::ListNotifications => "list-notifications",
            Self::GetNotification => "get-notification",
        }
    }

    /// The Lambda function that serves the operation (its crate under `functions/`).
    pub fn function(self) -> &'static str {
        match self {
            // Everything that creates a call.
            Self::CreateCall | Self::AddParticipant => "create-call",
            // Lists of an account's resources; reads of one resource and what hangs off it.
            Self::ListCalls
            | Self::ListConferences
            | Self::ListRecordings
            | Self::ListNotifications => "list-calls",
            Self::GetCall
            | Self::ListModifications
            | Self::GetConference
            | Self::ListParticipants
            | Self::GetParticipant
            | Self::ListConferenceModifications
            | Self::GetRecording
            | Self::ListCallEvents
            | Self::GetNotification => "get-call",
            // Everything that records an intent of something live.
            Self::ModifyCall
            | Self::ModifyConference
            | Self::ModifyParticipant
            | Self::RemoveParticipant
            | Self::StartRecording
            | Self::UpdateRecording
            | Self::DeleteRecording
            | Self::StartStream
            | Self::StopStream => "modify-call",
        }
    }

    /// The operations `function` serves.
    pub fn served_by(function: &str) -> Vec<Operation> {
        Self::ALL
            .into_iter()
            .filter(|op| op.function() == function)
            .collect()
    }
}

/// The routes as API Gateway sees them: infra/template.yaml declares exactly these, and
/// infra/openapi.yaml documents them (with the `{CallSid}.json` forms, which API Gateway matches
/// with `{CallSid}`). [`route`] agrees with this table (a test holds it to it).
pub const ROUTES: [(&str, &str, Operation); 46] = {
    use Operation::*;
    [
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls",
            ListCalls,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls.json",
            ListCalls,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls",
            CreateCall,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls.json",
            CreateCall,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}",
            GetCall,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls.json/{CallSid}",
            GetCall,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}",
            ModifyCall,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls.json/{CallSid}",
            ModifyCall,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Modifications",
            ListModifications,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Modifications.json",
            ListModifications,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls.json/{CallSid}/Modifications",
            ListModifications,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls.json/{CallSid}/Modifications.json",
            ListModifications,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Conferences",
            ListConferences,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Conferences.json",
            ListConferences,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Conferences/{ConferenceSid}",
            GetConference,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Participants",
            ListParticipants,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Participants.json",
            ListParticipants,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Participants/{CallSid}",
            GetParticipant,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Conferences/{ConferenceSid}",
            ModifyConference,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Participants",
            AddParticipant,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Participants.json",
            AddParticipant,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Participants/{CallSid}",
            ModifyParticipant,
        ),
        (
            "DELETE",
            "/call/2012-04-24/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Participants/{CallSid}",
            RemoveParticipant,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Modifications",
            ListConferenceModifications,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Conferences/{ConferenceSid}/Modifications.json",
            ListConferenceModifications,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Recordings",
            ListRecordings,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Recordings.json",
            ListRecordings,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Recordings",
            StartRecording,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Recordings.json",
            StartRecording,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Recordings/{RecordingSid}",
            GetRecording,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Recordings/{RecordingSid}",
            UpdateRecording,
        ),
        (
            "DELETE",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Recordings/{RecordingSid}",
            DeleteRecording,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Recordings",
            ListRecordings,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Recordings.json",
            ListRecordings,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Recordings/{RecordingSid}",
            GetRecording,
        ),
        (
            "DELETE",
            "/call/2012-04-24/Accounts/{AccountSid}/Recordings/{RecordingSid}",
            DeleteRecording,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Streams",
            StartStream,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Streams.json",
            StartStream,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Streams/{StreamSid}",
            StopStream,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Events",
            ListCallEvents,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Events.json",
            ListCallEvents,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Notifications",
            ListNotifications,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Notifications.json",
            ListNotifications,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Notifications/{NotificationSid}",
            GetNotification,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Notifications",
            ListNotifications,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Notifications.json",
            ListNotifications,
        ),
    ]
};

/// A request matched to an operation, with the raw path parameters (parsed by the operation, so
/// that a malformed Sid gets that operation's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub operation: Operation,
    pub account_sid: String,
    pub call_sid: Option<String>,
    pub conference_sid: Option<String>,
    /// The RecordingSid of the path (or `Twilio.CURRENT`), without its extension.
    pub recording_sid: Option<String>,
    /// The StreamSid (or the stream's `Name`) of the path, without `.json`.
    pub stream: Option<String>,
    /// The NotificationSid of the path, without `.json`.
    pub notification: Option<String>,
    /// The path asks for a recording's media (`RE….wav`, `RE….mp3`): the extension.
    pub media: Option<&'static str>,
    pub path_says_json: bool,
}

impl Route {
    /// The CallSid of the path; a malformed one names no call (404).
    pub fn call_sid(&self) -> Result<CallSid, ApiError> {
        let raw = self.call_sid.as_deref().unwrap_or_default();
        raw.parse()
            .map_err(|_| ApiError::NotFound(teleapi_domain::sid::shorten(raw)))
    }
}

/// Matches `method path` against the API's routes. The path may carry an API Gateway stage as
/// its first segment.
///
/// ```text
/// GET, POST  /call/2012-04-24/Accounts/{AccountSid}/Calls[.json]
/// GET, POST  /call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}[.json]   (and Calls.json/{CallSid})
/// GET        /call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}/Modifications[.json]
/// GET        /call/2012-04-24/Accounts/{AccountSid}/Conferences[.json]
/// GET        /call/2012-04-24/Accounts/{AccountSid}/Conferences/{ConferenceSid}[.json]
/// GET        …/Conferences/{ConferenceSid}/Participants[.json]
/// GET        …/Conferences/{ConferenceSid}/Participants/{CallSid}[.json]
/// ```
pub fn route<'a>(method: &HttpMethod, path: &'a str) -> Result<Route, ApiError> {
    let not_found = || ApiError::NotFound(representation::BASE_PATH.to_owned() + "/…");
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let start = segments
        .iter()
        .take(2)
        .position(|s| *s == "call")
        .ok_or_else(not_found)?;
    let (account, rest) = match &segments[start..] {
        ["call", "2012-04-24", "Accounts", account, rest @ ..] if !account.is_empty() => {
            (*account, rest)
        }
        _ => return Err(not_found()),
    };
    let is_json = |segment: &str| segment.ends_with(".json");
    let bare = |segment: &'a str| segment.strip_suffix(".json").unwrap_or(segment);
    let get = |operation| -> &'static [(HttpMethod, Operation)] {
        match operation {
            Operation::ListConferences => &[(HttpMethod::GET, Operation::ListConferences)],
            Operation::GetConference => &[
                (HttpMethod::GET, Operation::GetConference),
                (HttpMethod::POST, Operation::ModifyConference),
            ],
            Operation::ListParticipants => &[
                (HttpMethod::GET, Operation::ListParticipants),
                (HttpMethod::POST, Operation::AddParticipant),
            ],
            Operation::ListConferenceModifications => {
                &[(HttpMethod::GET, Operation::ListConferenceModifications)]
            }
            _ => &[
                (HttpMethod::GET, Operation::GetParticipant),
                (HttpMethod::POST, Operation::ModifyParticipant),
                (HttpMethod::DELETE, Operation::RemoveParticipant),
            ],
        }
    };
    let mut conference = None;
    let mut recording = None;
    let mut media = None;
    let mut stream = None;
    let mut notification = None;
    let recording_routes: &[(HttpMethod, Operation)] = &[
        (HttpMethod::GET, Operation::GetRecording),
        (HttpMethod::POST, Operation::UpdateRecording),
        (HttpMethod::DELETE, Operation::DeleteRecording),
    ];
    let (call, path_says_json, by_method): (Option<&str>, bool, &[(HttpMethod, Operation)]) =
        match rest {
            [calls @ ("Calls" | "Calls.json")] => (
                None,
                is_json(calls),
                &[
                    (HttpMethod::GET, Operation::ListCalls),
                    (HttpMethod::POST, Operation::CreateCall),
                ],
            ),
            [calls @ ("Calls" | "Calls.json"), call] if !call.is_empty() => (
                Some(call.strip_suffix(".json").unwrap_or(call)),
                is_json(calls) || is_json(call),
                &[
                    (HttpMethod::GET, Operation::GetCall),
                    (HttpMethod::POST, Operation::ModifyCall),
                ],
            ),
            [
                calls @ ("Calls" | "Calls.json"),
                call,
                list @ ("Modifications" | "Modifications.json"),
            ] if !call.is_empty() && !is_json(call) => (
                Some(*call),
                is_json(calls) || is_json(list),
                &[(HttpMethod::GET, Operation::ListModifications)],
            ),
            ["Calls", call, list @ ("Recordings" | "Recordings.json")]
                if !call.is_empty() && !is_json(call) =>
            {
                (
                    Some(*call),
                    is_json(list),
                    &[
                        (HttpMethod::GET, Operation::ListRecordings),
                        (HttpMethod::POST, Operation::StartRecording),
                    ],
                )
            }
            ["Calls", call, "Recordings", sid]
                if !call.is_empty() && !is_json(call) && !bare(sid).is_empty() =>
            {
                recording = Some(bare(sid));
                (Some(*call), is_json(sid), recording_routes)
            }
            ["Calls", call, list @ ("Streams" | "Streams.json")]
                if !call.is_empty() && !is_json(call) =>
            {
                (
                    Some(*call),
                    is_json(list),
                    &[(HttpMethod::POST, Operation::StartStream)],
                )
            }
            ["Calls", call, "Streams", sid]
                if !call.is_empty() && !is_json(call) && !bare(sid).is_empty() =>
            {
                stream = Some(bare(sid));
                (
                    Some(*call),
                    is_json(sid),
                    &[(HttpMethod::POST, Operation::StopStream)],
                )
            }
            ["Calls", call, list @ ("Events" | "Events.json")]
                if !call.is_empty() && !is_json(call) =>
            {
                (
                    Some(*call),
                    is_json(list),
                    &[(HttpMethod::GET, Operation::ListCallEvents)],
                )
            }
            [
                "Calls",
                call,
                list @ ("Notifications" | "Notifications.json"),
            ] if !call.is_empty() && !is_json(call) => (
                Some(*call),
                is_json(list),
                &[(HttpMethod::GET, Operation::ListNotifications)],
            ),
            ["Calls", call, "Notifications", sid]
                if !call.is_empty() && !is_json(call) && !bare(sid).is_empty() =>
            {
                notification = Some(bare(sid));
                (
                    Some(*call),
                    is_json(sid),
                    &[(HttpMethod::GET, Operation::GetNotification)],
                )
            }
            [list @ ("Notifications" | "Notifications.json")] => (
                None,
                is_json(list),
                &[(HttpMethod::GET, Operation::ListNotifications)],
            ),
            [list @ ("Recordings" | "Recordings.json")] => (
                None,
                is_json(list),
                &[(HttpMethod::GET, Operation::ListRecordings)],
            ),
            ["Recordings", sid] => {
                let (sid, extension) = match sid.rsplit_once('.') {
                    Some((sid, "wav")) => (sid, Some("wav")),
                    Some((sid, "mp3")) => (sid, Some("mp3")),
                    _ => (bare(sid), None),
                };
                if sid.is_empty() {
                    return Err(not_found());
                }
                recording = Some(sid);
                media = extension;
                let routes: &[(HttpMethod, Operation)] = if extension.is_some() {
                    &recording_routes[..1]
                } else {
                    &[
                        (HttpMethod::GET, Operation::GetRecording),
                        (HttpMethod::DELETE, Operation::DeleteRecording),
                    ]
                };
                (None, is_json(rest[1]), routes)
            }
            [list @ ("Conferences" | "Conferences.json")] => {
                (None, is_json(list), get(Operation::ListConferences))
            }
            ["Conferences", sid] if !bare(sid).is_empty() => {
                conference = Some(bare(sid));
                (None, is_json(sid), get(Operation::GetConference))
            }
            [
                "Conferences",
                sid,
                list @ ("Participants" | "Participants.json"),
            ] if !sid.is_empty() && !is_json(sid) => {
                conference = Some(*sid);
                (None, is_json(list), get(Operation::ListParticipants))
            }
            [
                "Conferences",
                sid,
                list @ ("Modifications" | "Modifications.json"),
            ] if !sid.is_empty() && !is_json(sid) => {
                conference = Some(*sid);
                (
                    None,
                    is_json(list),
                    get(Operation::ListConferenceModifications),
                )
            }
            ["Conferences", sid, "Participants", call]
                if !sid.is_empty() && !is_json(sid) && !bare(call).is_empty() =>
            {
                conference = Some(*sid);
                (
                    Some(bare(call)),
                    is_json(call),
                    get(Operation::GetParticipant),
                )
            }
            _ => return Err(not_found()),
        };
    let operation = by_method
        .iter()
        .find(|(m, _)| m == method)
        .map(|(_, operation)| *operation)
        .ok_or(ApiError::MethodNotAllowed {
            allow: match by_method {
                [_, _, _] => "GET, POST, DELETE",
                [_, (HttpMethod::DELETE, _)] => "GET, DELETE",
                [_, _] => "GET, POST",
                [(HttpMethod::POST, _)] => "POST",
                _ => "GET",
            },
        })?;
    Ok(Route {
        operation,
        account_sid: account.to_owned(),
        call_sid: call.map(str::to_owned),
        conference_sid: conference.map(str::to_owned),
        recording_sid: recording.map(str::to_owned),
        stream: stream.map(str::to_owned),
        notification: notification.map(str::to_owned),
        media,
        path_says_json,
    })
}

/// The caller (from the credentials) and the account the path names, which the caller must be
/// allowed to act for.
pub async fn accounts(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<(Account, Account), ApiError> {
    let caller = auth::authenticate(services, request.headers()).await?;
    // The caller's share, counted before anything is read or written for the request.
    if let Some(limiter) = &services.rate_limiter {
        limiter.admit(&caller, services.clock.now())?;
    }
    let owner = auth::authorize(services, caller.clone(), &route.account_sid).await?;
    Ok((caller, owner))
}

/// The call, if it exists and belongs to `owner`; 404 otherwise, whichever it is.
pub async fn owned_call(
    services: &Services,
    owner: &Account,
    sid: &CallSid,
) -> Result<Call, ApiError> {
    services
        .calls
        .call(sid)
        .await?
        .filter(|call| call.account_sid == owner.sid)
        .ok_or_else(|| ApiError::NotFound(sid.to_string()))
}

/// The conference, if it exists and belongs to `owner`; 404 otherwise, whichever it is.
pub async fn owned_conference(
    services: &Services,
    owner: &Account,
    route: &Route,
) -> Result<teleapi_domain::conference::Conference, ApiError> {
    let raw = route.conference_sid.as_deref().unwrap_or_default();
    let not_found = || ApiError::NotFound(teleapi_domain::sid::shorten(raw));
    let sid: teleapi_domain::ConferenceSid = raw.parse().map_err(|_| not_found())?;
    services
        .conferences
        .conference(&sid)
        .await?
        .filter(|c| c.account_sid == owner.sid)
        .ok_or_else(not_found)
}

/// The call of the path, when it names one (it must be `owner`'s; 404 otherwise).
pub async fn call_in_path(
    services: &Services,
    owner: &Account,
    route: &Route,
) -> Result<Option<Call>, ApiError> {
    match route.call_sid {
        Some(_) => Ok(Some(owned_call(services, owner, &route.call_sid()?).await?)),
        None => Ok(None),
    }
}

/// What an operation answers with when it succeeds.
pub struct Success {
    pub status: StatusCode,
    /// XML element name for the resource; `None` for a list envelope.
    pub root: Option<&'static str>,
    pub resource: Value,
    pub headers: Vec<(&'static str, String)>,
}

impl Success {
    /// 200 with `resource` (a list envelope when `root` is `None`), and no header of its own.
    pub fn ok(root: Option<&'static str>, resource: Value) -> Self {
        Self {
            status: StatusCode::OK,
            root,
            resource,
            headers: Vec::new(),
        }
    }
}

/// Serves one request. `only` restricts the operations this process serves (a Lambda function
/// serves its own); anything else is answered 404, as if the route did not exist.
pub async fn handle(
    services: &Services,
    request: Request,
    only: Option<&[Operation]>,
) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let routed = route(&method, &path).and_then(|r| match only {
        Some(served) if !served.contains(&r.operation) => Err(ApiError::NotFound(path.clone())),
        _ => Ok(r),
    });
    let path_says_json = routed
        .as_ref()
        .map(|r| r.path_says_json)
        .unwrap_or(path.contains(".json"));
    let format = Format::choose(path_says_json, request.headers());
    let operation = routed.as_ref().ok().map(|r| r.operation.name());
    let result = match routed {
        // A recording's media is not a resource of JSON or XML.
        Ok(route) if route.operation == Operation::GetRecording && route.media.is_some() => {
            recordings::recording_media(services, &route, &request).await
        }
        Ok(route) => {
            let result = operate(services, &route, &request).await;
            if let Err(err) = &result {
                call_log::note_refusal(services, &route, &request, err).await;
            }
            result.map(|success| respond(format, success))
        }
        Err(err) => Err(err),
    };
    let response = result.unwrap_or_else(|err| respond_error(format, &err));
    tracing::info!(
        target: "teleapi::request",
        method = %method,
        path = %path,
        operation = %operation.unwrap_or("-"),
        status = response.status().as_u16(),
        intent_sid = %response.headers().get(intents::INTENT_SID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-"),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

/// Runs the operation `route` names.
async fn operate(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    match route.operation {
        Operation::CreateCall => create_call::create_call(services, route, request).await,
        Operation::ListCalls => list::list_calls(services, route, request).await,
        Operation::GetCall => get_call::get_call(services, route, request).await,
        Operation::ModifyCall => modify_call::modify_call(services, route, request).await,
        Operation::ListModifications => list::list_modifications(services, route, request).await,
        Operation::ListConferences => conferences::list_conferences(services, route, request).await,
        Operation::GetConference => conferences::get_conference(services, route, request).await,
        Operation::ListParticipants => {
            conferences::list_participants(services, route, request).await
        }
        Operation::GetParticipant => conferences::get_participant(services, route, request).await,
        Operation::ModifyConference => {
            conference_changes::modify_conference(services, route, request).await
        }
        Operation::ModifyParticipant => {
            conference_changes::modify_participant(services, route, request).await
        }
        Operation::RemoveParticipant => {
            conference_changes::remove_participant(services, route, request).await
        }
        Operation::ListConferenceModifications => {
            list::list_conference_modifications(services, route, request).await
        }
        Operation::AddParticipant => {
            conference_changes::add_participant(services, route, request).await
        }
        Operation::StartRecording => recordings::start_recording(services, route, request).await,
        Operation::UpdateRecording => recordings::update_recording(services, route, request).await,
        Operation::DeleteRecording => recordings::delete_recording(services, route, request).await,
        Operation::ListRecordings => recordings::list_recordings(services, route, request).await,
        Operation::GetRecording => recordings::get_recording(services, route, request).await,
        Operation::StartStream => streams::start_stream(services, route, request).await,
        Operation::StopStream => streams::stop_stream(services, route, request).await,
        Operation::ListCallEvents => call_log::list_call_events(services, route, request).await,
        Operation::ListNotifications => {
            call_log::list_notifications(services, route, request).await
        }
        Operation::GetNotification => call_log::get_notification(services, route, request).await,
    }
}

fn respond(format: Format, success: Success) -> Response<Body> {
    let body = if success.status == StatusCode::NO_CONTENT {
        Body::Empty
    } else {
        Body::Text(format.render(success.root, &success.resource))
    };
    let mut response = Response::new(body);
    *response.status_mut() = success.status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    for (name, value) in success.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

/// The one place an error becomes a response.
pub fn respond_error(format: Format, err: &ApiError) -> Response<Body> {
    let (status, code) = err.status_and_code();
    let resource = error_resource(status.as_u16(), code, &err.to_string());
    let mut response = Response::new(Body::Text(format.render(Some("RestException"), &resource)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    match err {
        ApiError::Unauthenticated => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="teleapi""#),
            );
        }
        ApiError::MethodNotAllowed { allow } => {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        _ => {}
    }
    if let Some(seconds) = err.retry_after() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The request's form body, checked for size and media type before it is parsed.
pub fn form_body(request: &Request, limit: usize) -> Result<Form, ApiError> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if bytes.len() > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    match request.headers().get(header::CONTENT_TYPE) {
        Some(value) if !is_form_content_type(value) => return Err(ApiError::UnsupportedMediaType),
        None if !bytes.is_empty() => return Err(ApiError::UnsupportedMediaType),
        _ => {}
    }
    Form::parse(bytes).map_err(|e| ApiError::MalformedBody(e.to_string()))
}

/// `application/x-www-form-urlencoded`, with no charset or a UTF-8 one.
fn is_form_content_type(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let mut parts = value.split(';').map(str::trim);
    let media_type = parts.next().unwrap_or_default();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return false;
    }
    parts.all(|param| match param.split_once('=') {
        Some((name, charset)) if name.trim().eq_ignore_ascii_case("charset") => {
            let charset = charset.trim().trim_matches('"');
            charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AC: &str = "AC0123456789abcdef0123456789abcdef";
    const CA: &str = "CA0123456789abcdef0123456789abcdef";

    #[test]
    fn routes_the_three_path_forms_to_modify_call() {
        for (path, json) in [
            (format!("/call/2012-04-24/Accounts/{AC}/Calls/{CA}"), false),
            (
                format!("/call/2012-04-24/Accounts/{AC}/Calls.json/{CA}"),
                true,
            ),
            (
                format!("/call/2012-04-24/Accounts/{AC}/Calls/{CA}.json"),
                true,
            ),
            (
                format!("/Prod/call/2012-04-24/Accounts/{AC}/Calls/{CA}"),
                false,
            ),
        ] {
            let route = route(&HttpMethod::POST, &path).unwrap();
            assert_eq!(route.operation, Operation::ModifyCall, "{path}");
            assert_eq!(route.account_sid, AC);
            assert_eq!(route.call_sid.as_deref(), Some(CA));
            assert_eq!(route.path_says_json, json, "{path}");
        }
    }

    /// Every route of the table reaches its operation through [`route`], in each path form, and
    /// every operation has a route.
    #[test]
    fn the_route_table_matches_the_router() {
        for (method, template, operation) in ROUTES {
            let method: HttpMethod = method.parse().unwrap();
            let path = template
                .replace("{AccountSid}", AC)
                .replace("{ConferenceSid}", "CF0123456789abcdef0123456789abcdef")
                .replace("{RecordingSid}", "RE0123456789abcdef0123456789abcdef")
                .replace("{StreamSid}", "MZ0123456789abcdef0123456789abcdef")
                .replace("{NotificationSid}", "NO0123456789abcdef0123456789abcdef")
                .replace("{CallSid}", CA);
            assert_eq!(
                route(&method, &path).unwrap().operation,
                operation,
                "{path}"
            );
            if [
                "{CallSid}",
                "{RecordingSid}",
                "{StreamSid}",
                "{NotificationSid}",
            ]
            .iter()
            .any(|sid| template.ends_with(sid))
            {
                let path = format!("{path}.json");
                assert_eq!(
                    route(&method, &path).unwrap().operation,
                    operation,
                    "{path}"
                );
            }
        }
        for operation in Operation::ALL {
            assert!(
                ROUTES.iter().any(|(_, _, op)| *op == operation),
                "{operation:?}"
            );
            assert!(Operation::served_by(operation.function()).contains(&operation));
        }
    }

    #[test]
    fn routes_by_method_and_shape() {
        let base = format!("/call/2012-04-24/Accounts/{AC}");
        for (method, path, operation, call, json) in [
            (
                HttpMethod::GET,
                format!("{base}/Calls"),
                Operation::ListCalls,
                None,
                false,
            ),
            (
                HttpMethod::GET,
                format!("{base}/Calls.json"),
                Operation::ListCalls,
                None,
                true,
            ),
            (
                HttpMethod::POST,
                format!("{base}/Calls.json"),
                Operation::CreateCall,
                None,
                true,
            ),
            (
                HttpMethod::GET,
                format!("{base}/Calls/{CA}"),
                Operation::GetCall,
                Some(CA),
                false,
            ),
            (
                HttpMethod::GET,
                format!("{base}/Calls.json/{CA}"),
                Operation::GetCall,
                Some(CA),
                true,
            ),
            (
                HttpMethod::GET,
                format!("{base}/Calls/{CA}/Modifications"),
                Operation::ListModifications,
                Some(CA),
                false,
            ),
            (
                HttpMethod::GET,
                format!("{base}/Calls/{CA}/Modifications.json"),
                Operation::ListModifications,
                Some(CA),
                true,
            ),
            (
                HttpMethod::GET,
                format!("{base}/Calls.json/{CA}/Modifications"),
                Operation::ListModifications,
                Some(CA),
                true,
            ),
        ] {
            let route = route(&method, &path).unwrap();
            assert_eq!(route.operation, operation, "{path}");
            assert_eq!(route.call_sid.as_deref(), call, "{path}");
            assert_eq!(route.path_says_json, json, "{path}");
        }
        assert!(
            route(
                &HttpMethod::GET,
                &format!("{base}/Calls/{CA}.json/Modifications")
            )
            .is_err()
        );
    }

    #[test]
    fn other_paths_and_methods_are_refused() {
        for path in [
            "/".to_owned(),
            format!("/call/2010-04-01/Accounts/{AC}/Calls/{CA}"),
            format!("/call/2012-04-24/Accounts/{AC}/Calls/{CA}/"),
            format!("/call/2012-04-24/Accounts/{AC}/Calls//"),
            format!("/a/b/call/2012-04-24/Accounts/{AC}/Calls/{CA}"),
            format!("/call/2012-04-24/Accounts//Calls/{CA}"),
            format!("/call/2012-04-24/Accounts/{AC}/Conferences/{CA}/Recordings"),
            format!("/call/2012-04-24/Accounts/{AC}/Conferences.json/{CA}"),
            format!("/call/2012-04-24/Accounts/{AC}/Conferences/{CA}.json/Participants"),
        ] {
            assert!(
                matches!(route(&HttpMethod::POST, &path), Err(ApiError::NotFound(_))),
                "{path}"
            );
        }
        let path = format!("/call/2012-04-24/Accounts/{AC}/Calls/{CA}");
        assert!(matches!(
            route(&HttpMethod::DELETE, &path),
            Err(ApiError::MethodNotAllowed { allow: "GET, POST" })
        ));
        assert!(matches!(
            route(&HttpMethod::POST, &format!("{path}/Modifications")),
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        ));
    }

    #[test]
    fn form_content_types() {
        for (value, ok) in [
            ("application/x-www-form-urlencoded", true),
            ("Application/X-WWW-Form-Urlencoded; charset=UTF-8", true),
            ("application/x-www-form-urlencoded; charset=\"utf-8\"", true),
            ("application/x-www-form-urlencoded; charset=latin1", false),
            ("application/json", false),
            ("multipart/form-data; boundary=x", false),
            ("", false),
        ] {
            assert_eq!(
                is_form_content_type(&HeaderValue::from_static(value)),
                ok,
                "{value}"
            );
        }
    }
}
