//! The route table: every path and method of the API, the operation that serves it and the
//! function it is deployed in, and the router that reads a request's path (the template and the
//! OpenAPI document are tested against [`ROUTES`]).

use lambda_http::http::Method as HttpMethod;

use crate::error::ApiError;
use teleapi_domain::CallSid;

use crate::representation;

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
    /// The account's phone numbers (`IncomingPhoneNumbers`).
    CreateNumber,
    ListNumbers,
    GetNumber,
    UpdateNumber,
    DeleteNumber,
    /// The account's call queues, and who waits in each.
    CreateQueue,
    ListQueues,
    GetQueue,
    UpdateQueue,
    DeleteQueue,
    ListMembers,
    GetMember,
    /// A member redirected out of its queue (`POST …/Members/{CallSid|Front}` with `Url`).
    DequeueMember,
}

impl Operation {
    pub const ALL: [Operation; 37] = [
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
        Self::CreateNumber,
        Self::ListNumbers,
        Self::GetNumber,
        Self::UpdateNumber,
        Self::DeleteNumber,
        Self::CreateQueue,
        Self::ListQueues,
        Self::GetQueue,
        Self::UpdateQueue,
        Self::DeleteQueue,
        Self::ListMembers,
        Self::GetMember,
        Self::DequeueMember,
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
            Self::CreateNumber => "create-number",
            Self::ListNumbers => "list-numbers",
            Self::GetNumber => "get-number",
            Self::UpdateNumber => "update-number",
            Self::DeleteNumber => "delete-number",
            Self::CreateQueue => "create-queue",
            Self::ListQueues => "list-queues",
            Self::GetQueue => "get-queue",
            Self::UpdateQueue => "update-queue",
            Self::DeleteQueue => "delete-queue",
            Self::ListMembers => "list-members",
            Self::GetMember => "get-member",
            Self::DequeueMember => "dequeue-member",
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
            | Self::ListNotifications
            | Self::ListNumbers
            | Self::ListQueues => "list-calls",
            Self::GetCall
            | Self::ListModifications
            | Self::GetConference
            | Self::ListParticipants
            | Self::GetParticipant
            | Self::ListConferenceModifications
            | Self::GetRecording
            | Self::ListCallEvents
            | Self::GetNotification
            | Self::GetNumber
            | Self::GetQueue
            | Self::ListMembers
            | Self::GetMember => "get-call",
            // Everything that records an intent of something live.
            Self::ModifyCall
            | Self::ModifyConference
            | Self::ModifyParticipant
            | Self::RemoveParticipant
            | Self::StartRecording
            | Self::UpdateRecording
            | Self::DeleteRecording
            | Self::StartStream
            | Self::StopStream
            | Self::DequeueMember => "modify-call",
            // Changes of an account's numbers: no intent, but the same function writes what
            // the account configures.
            Self::CreateNumber
            | Self::UpdateNumber
            | Self::DeleteNumber
            | Self::CreateQueue
            | Self::UpdateQueue
            | Self::DeleteQueue => "modify-call",
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
pub const ROUTES: [(&str, &str, Operation); 64] = {
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
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/IncomingPhoneNumbers",
            ListNumbers,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/IncomingPhoneNumbers.json",
            ListNumbers,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/IncomingPhoneNumbers",
            CreateNumber,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/IncomingPhoneNumbers.json",
            CreateNumber,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/IncomingPhoneNumbers/{PhoneNumberSid}",
            GetNumber,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/IncomingPhoneNumbers/{PhoneNumberSid}",
            UpdateNumber,
        ),
        (
            "DELETE",
            "/call/2012-04-24/Accounts/{AccountSid}/IncomingPhoneNumbers/{PhoneNumberSid}",
            DeleteNumber,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Queues",
            ListQueues,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Queues.json",
            ListQueues,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Queues",
            CreateQueue,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Queues.json",
            CreateQueue,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Queues/{QueueSid}",
            GetQueue,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Queues/{QueueSid}",
            UpdateQueue,
        ),
        (
            "DELETE",
            "/call/2012-04-24/Accounts/{AccountSid}/Queues/{QueueSid}",
            DeleteQueue,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Queues/{QueueSid}/Members",
            ListMembers,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Queues/{QueueSid}/Members.json",
            ListMembers,
        ),
        (
            "GET",
            "/call/2012-04-24/Accounts/{AccountSid}/Queues/{QueueSid}/Members/{CallSid}",
            GetMember,
        ),
        (
            "POST",
            "/call/2012-04-24/Accounts/{AccountSid}/Queues/{QueueSid}/Members/{CallSid}",
            DequeueMember,
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
    /// The PhoneNumberSid of the path, without `.json`.
    pub number: Option<String>,
    /// The QueueSid of the path, without `.json`.
    pub queue: Option<String>,
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
    let mut number = None;
    let mut queue = None;
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
            [list @ ("IncomingPhoneNumbers" | "IncomingPhoneNumbers.json")] => (
                None,
                is_json(list),
                &[
                    (HttpMethod::GET, Operation::ListNumbers),
                    (HttpMethod::POST, Operation::CreateNumber),
                ],
            ),
            ["IncomingPhoneNumbers", sid] if !bare(sid).is_empty() => {
                number = Some(bare(sid));
                (
                    None,
                    is_json(sid),
                    &[
                        (HttpMethod::GET, Operation::GetNumber),
                        (HttpMethod::POST, Operation::UpdateNumber),
                        (HttpMethod::DELETE, Operation::DeleteNumber),
                    ],
                )
            }
            [list @ ("Queues" | "Queues.json")] => (
                None,
                is_json(list),
                &[
                    (HttpMethod::GET, Operation::ListQueues),
                    (HttpMethod::POST, Operation::CreateQueue),
                ],
            ),
            ["Queues", sid] if !bare(sid).is_empty() => {
                queue = Some(bare(sid));
                (
                    None,
                    is_json(sid),
                    &[
                        (HttpMethod::GET, Operation::GetQueue),
                        (HttpMethod::POST, Operation::UpdateQueue),
                        (HttpMethod::DELETE, Operation::DeleteQueue),
                    ],
                )
            }
            ["Queues", sid, list @ ("Members" | "Members.json")]
                if !sid.is_empty() && !is_json(sid) =>
            {
                queue = Some(*sid);
                (
                    None,
                    is_json(list),
                    &[(HttpMethod::GET, Operation::ListMembers)],
                )
            }
            ["Queues", sid, "Members", call]
                if !sid.is_empty() && !is_json(sid) && !bare(call).is_empty() =>
            {
                queue = Some(*sid);
                (
                    Some(bare(call)),
                    is_json(call),
                    &[
                        (HttpMethod::GET, Operation::GetMember),
                        (HttpMethod::POST, Operation::DequeueMember),
                    ],
                )
            }
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
        number: number.map(str::to_owned),
        queue: queue.map(str::to_owned),
        media,
        path_says_json,
    })
}
