//! Recordings of a live call: what an application asks for (`POST …/Calls/{Sid}/Recordings`,
//! `Record=true` on a new call), the recording as the control plane records it, the commands
//! that carry a start or a change to the call's worker, and what the worker's `recording.*`
//! events do to it. See docs/messages.md and docs/data-model.md, "recordings".
//!
//! A call has at most one active recording (`in-progress` or `paused`), named by the call's
//! `recording`: a start while one is active is refused, and `Twilio.CURRENT` names it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::call::{Call, CallStatus};
use super::callback::{CallbackJob, JOB_VERSION, JobKind};
use super::command::{CommandParameters, CommandType};
use super::error::InvalidParameter;
use super::form::Form;
use super::intent::{CallCommand, Intent, IntentAction, next_call_intent};
use super::listing::{Paging, parse_time};
use super::params::{Params, conflict, invalid, missing};
use super::sid::{AccountSid, CallSid, IntentSid, RecordingSid, shorten};
use super::time::Timestamp;
use super::webhook::{AddressPolicy, Method, WebhookUrl};

words!(
    /// Twilio's recording statuses. `in-progress` and `paused` are active; `completed`,
    /// `absent` and `failed` are final; `stopped` is the API's word between the two (asked to
    /// stop, its media not yet reported).
    RecordingStatus {
        InProgress = "in-progress",
        Paused = "paused",
        Stopped = "stopped",
        Processing = "processing",
        Completed = "completed",
        Absent = "absent",
        Failed = "failed",
    }
);

impl RecordingStatus {
    pub fn is_active(self) -> bool {
        matches!(self, Self::InProgress | Self::Paused)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Absent | Self::Failed)
    }
}

words!(
    /// One channel for every party, or one per leg.
    RecordingChannels {
        Mono = "mono",
        Dual = "dual",
    }
);

impl RecordingChannels {
    /// Channels of the media file: Twilio's `channels` field.
    pub fn count(self) -> u16 {
        match self {
            Self::Mono => 1,
            Self::Dual => 2,
        }
    }
}

words!(
    /// Which audio: what the platform receives from the caller, what it sends, or both.
    RecordingTrack {
        Inbound = "inbound",
        Outbound = "outbound",
        Both = "both",
    }
);

words!(
    /// Whether leading and trailing silence is cut.
    Trim {
        TrimSilence = "trim-silence",
        DoNotTrim = "do-not-trim",
    }
);

words!(
    /// What a pause leaves in the media: nothing (`skip`) or silence as long as the pause.
    PauseBehavior {
        Skip = "skip",
        Silence = "silence",
    }
);

words!(
    /// How the recording was started.
    RecordingSource {
        StartCallRecordingApi = "StartCallRecordingAPI",
        OutboundApi = "OutboundAPI",
    }
);

words!(
    /// The recording events an application may subscribe to with
    /// `RecordingStatusCallbackEvent`. `completed` covers `failed` too.
    RecordingCallbackEvent {
        InProgress = "in-progress",
        Completed = "completed",
        Absent = "absent",
    }
);

/// Where the recording's status changes are reported, and which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingCallback {
    pub url: WebhookUrl,
    pub method: Method,
    pub events: Vec<RecordingCallbackEvent>,
}

/// What to record, as the worker is told in a command and tells back in `recording.started`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingSpec {
    pub recording_sid: RecordingSid,
    pub channels: RecordingChannels,
    pub track: RecordingTrack,
    pub trim: Trim,
    pub source: RecordingSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_callback: Option<RecordingCallback>,
}

/// The recording as the control plane records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub sid: RecordingSid,
    pub account_sid: AccountSid,
    pub call_sid: CallSid,
    pub status: RecordingStatus,
    pub channels: RecordingChannels,
    pub track: RecordingTrack,
    pub trim: Trim,
    pub source: RecordingSource,
    pub status_callback: Option<RecordingCallback>,
    /// How the last pause was asked to behave.
    pub pause_behavior: PauseBehavior,
    pub start_time: Timestamp,
    /// Seconds of media, once the worker has reported it.
    pub duration: Option<u64>,
    /// Where the worker put the media (`s3://bucket/key`, or `file://…` for teleapi-local).
    pub media: Option<String>,
    /// Twilio's error code, when the recording failed.
    pub error_code: Option<u32>,
    /// `seq` of the last `recording.*` event applied (0 before the first).
    pub event_seq: u64,
    /// Bumped by every write: the optimistic-concurrency token.
    pub version: u64,
    pub date_created: Timestamp,
    pub date_updated: Timestamp,
}

impl Recording {
    fn new(
        spec: &RecordingSpec,
        account_sid: AccountSid,
        call_sid: CallSid,
        at: Timestamp,
    ) -> Self {
        Self {
            sid: spec.recording_sid.clone(),
            account_sid,
            call_sid,
            status: RecordingStatus::InProgress,
            channels: spec.channels,
            track: spec.track,
            trim: spec.trim,
            source: spec.source,
            status_callback: spec.status_callback.clone(),
            pause_behavior: PauseBehavior::Silence,
            start_time: at,
            duration: None,
            media: None,
            error_code: None,
            event_seq: 0,
            version: 1,
            date_created: at,
            date_updated: at,
        }
    }
}

/// The recording parameters, of `POST …/Recordings` and of a new call with `Record=true`.
pub const RECORDING_PARAMETERS: [&str; 6] = [
    "RecordingChannels",
    "RecordingTrack",
    "Trim",
    "RecordingStatusCallback",
    "RecordingStatusCallbackMethod",
    "RecordingStatusCallbackEvent",
];

/// How to record, as a request asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingOptions {
    pub channels: RecordingChannels,
    pub track: RecordingTrack,
    pub trim: Trim,
    pub status_callback: Option<RecordingCallback>,
}

fn word<T>(
    raw: &Params,
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
    choices: String,
) -> Result<Option<T>, super::InvalidParameter> {
    raw.get(name)
        .map(|value| {
            parse(value).ok_or_else(|| {
                invalid(
                    name,
                    format!("{name} must be {choices}, not '{}'", shorten(value)),
                )
            })
        })
        .transpose()
}

impl RecordingOptions {
    /// `POST …/Calls/{Sid}/Recordings`: the recording parameters and nothing else.
    pub fn parse_start(
        form: &Form,
        policy: AddressPolicy,
    ) -> Result<Self, super::InvalidParameter> {
        let raw = Params::collect(
            form,
            &RECORDING_PARAMETERS,
            &["RecordingStatusCallbackEvent"],
        )?;
        Self::read(&raw, policy)
    }

    /// The recording parameters among a request's (Twilio's defaults: mono, both tracks, not
    /// trimmed, `completed` reported).
    pub fn read(raw: &Params, policy: AddressPolicy) -> Result<Self, super::InvalidParameter> {
        let channels = word(
            raw,
            "RecordingChannels",
            RecordingChannels::parse,
            RecordingChannels::choices(),
        )?;
        let track = word(
            raw,
            "RecordingTrack",
            RecordingTrack::parse,
            RecordingTrack::choices(),
        )?;
        let trim = word(raw, "Trim", Trim::parse, Trim::choices())?;
        let callback = raw.webhook(
            "RecordingStatusCallback",
            "RecordingStatusCallbackMethod",
            policy,
        )?;
        let event_values = raw.get_all("RecordingStatusCallbackEvent");
        let mut events = Vec::new();
        for value in &event_values {
            let mut any = false;
            for name in value.split_ascii_whitespace() {
                any = true;
                let event = RecordingCallbackEvent::parse(name).ok_or_else(|| {
                    invalid(
                        "RecordingStatusCallbackEvent",
                        format!(
                            "RecordingStatusCallbackEvent '{}' is not one of {}",
                            shorten(name),
                            RecordingCallbackEvent::choices()
                        ),
                    )
                })?;
                if !events.contains(&event) {
                    events.push(event);
                }
            }
            if !any {
                return Err(invalid(
                    "RecordingStatusCallbackEvent",
                    "RecordingStatusCallbackEvent is empty".into(),
                ));
            }
        }
        if !event_values.is_empty() && callback.is_none() {
            return Err(conflict(
                "RecordingStatusCallbackEvent",
                "RecordingStatusCallbackEvent can only be given together with RecordingStatusCallback"
                    .into(),
            ));
        }
        if events.is_empty() {
            events.push(RecordingCallbackEvent::Completed);
        }
        events.sort_by_key(|e| RecordingCallbackEvent::ALL.iter().position(|a| a == e));
        Ok(Self {
            channels: channels.unwrap_or(RecordingChannels::Mono),
            track: track.unwrap_or(RecordingTrack::Both),
            trim: trim.unwrap_or(Trim::DoNotTrim),
            status_callback: callback.map(|(url, method)| RecordingCallback {
                url,
                method,
                events,
            }),
        })
    }

    /// What the intent records, in canonical form.
    pub fn parameters(&self) -> BTreeMap<String, String> {
        let mut p = BTreeMap::from([
            (
                "RecordingChannels".to_owned(),
                self.channels.as_str().to_owned(),
            ),
            ("RecordingTrack".to_owned(), self.track.as_str().to_owned()),
            ("Trim".to_owned(), self.trim.as_str().to_owned()),
        ]);
        if let Some(callback) = &self.status_callback {
            p.insert(
                "RecordingStatusCallback".into(),
                callback.url.as_str().to_owned(),
            );
            p.insert(
                "RecordingStatusCallbackMethod".into(),
                callback.method.as_str().to_owned(),
            );
            let events: Vec<&str> = callback.events.iter().map(|e| e.as_str()).collect();
            p.insert("RecordingStatusCallbackEvent".into(), events.join(" "));
        }
        p
    }

    pub fn spec(&self, sid: RecordingSid, source: RecordingSource) -> RecordingSpec {
        RecordingSpec {
            recording_sid: sid,
            channels: self.channels,
            track: self.track,
            trim: self.trim,
            source,
            status_callback: self.status_callback.clone(),
        }
    }
}

/// `POST …/Calls/{Sid}/Recordings/{Sid}`: pause, resume or stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingUpdate {
    pub status: RecordingStatus,
    pub pause_behavior: Option<PauseBehavior>,
}

/// The parameters of `POST …/Recordings/{Sid}`.
pub const RECORDING_UPDATE_PARAMETERS: [&str; 2] = ["Status", "PauseBehavior"];

impl RecordingUpdate {
    pub fn parse(form: &Form) -> Result<Self, super::InvalidParameter> {
        let raw = Params::collect(form, &RECORDING_UPDATE_PARAMETERS, &[])?;
        let value = raw.get("Status").ok_or_else(|| missing("Status"))?;
        let status = RecordingStatus::parse(value)
            .filter(|s| {
                matches!(
                    s,
                    RecordingStatus::Paused
                        | RecordingStatus::InProgress
                        | RecordingStatus::Stopped
                )
            })
            .ok_or_else(|| {
                invalid(
                    "Status",
                    format!(
                        "Status must be paused, in-progress or stopped, not '{}'",
                        shorten(value)
                    ),
                )
            })?;
        let pause_behavior = word(
            &raw,
            "PauseBehavior",
            PauseBehavior::parse,
            PauseBehavior::choices(),
        )?;
        if pause_behavior.is_some() && status != RecordingStatus::Paused {
            return Err(conflict(
                "PauseBehavior",
                "PauseBehavior says how to pause; it can only be given with Status=paused".into(),
            ));
        }
        Ok(Self {
            status,
            pause_behavior,
        })
    }

    pub fn parameters(&self) -> BTreeMap<String, String> {
        let mut p = BTreeMap::from([("Status".to_owned(), self.status.as_str().to_owned())]);
        if let Some(behavior) = self.pause_behavior {
            p.insert("PauseBehavior".into(), behavior.as_str().to_owned());
        }
        p
    }
}

/// The request is valid but the call's or the recording's state does not allow it (409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingStateError {
    #[error("The call is {} and can only be recorded while it is in progress", .0.as_str())]
    CallNotInProgress(CallStatus),
    #[error(
        "The call is already being recorded by {0}: stop that recording before starting another"
    )]
    AlreadyRecording(RecordingSid),
    #[error("The recording {0} is {1} and can no longer be paused, resumed or stopped")]
    NotActive(RecordingSid, &'static str),
    #[error("The recording {0} is {1}: it can be deleted once it has completed")]
    NotFinished(RecordingSid, &'static str),
}

/// A recording change as it is to be written, in one conditional write: the call with its next
/// intent number (only if it still has `call_version`), the recording (only if it still has
/// `recording_version`; `None`: only if there is none yet), and the intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRecording {
    pub call: Call,
    pub call_version: u64,
    pub recording: Recording,
    pub recording_version: Option<u64>,
    pub intent: Intent,
}

/// Starts recording `call` (as read, with `active`, the item of the recording its `recording`
/// names, if any): the call names the new recording as its active one.
pub fn plan_start(
    call: &Call,
    active: Option<&Recording>,
    options: &RecordingOptions,
    sid: RecordingSid,
    intent_sid: IntentSid,
    now: Timestamp,
    retention: Duration,
) -> Result<PlannedRecording, RecordingStateError> {
    if call.status != CallStatus::InProgress {
        return Err(RecordingStateError::CallNotInProgress(call.status));
    }
    if let Some(active) = active.filter(|r| r.status.is_active()) {
        return Err(RecordingStateError::AlreadyRecording(active.sid.clone()));
    }
    let spec = options.spec(sid.clone(), RecordingSource::StartCallRecordingApi);
    let mut parameters = options.parameters();
    parameters.insert("RecordingSid".into(), sid.to_string());
    let command = CommandParameters {
        recording: Some(Box::new(spec.clone())),
        ..CommandParameters::default()
    };
    let (mut next, intent) = next_call_intent(
        call,
        CallCommand {
            action: IntentAction::RecordingStart,
            parameters,
            kind: CommandType::RecordingStart,
            command,
        },
        intent_sid,
        now,
        retention,
    );
    next.recording = Some(sid);
    Ok(PlannedRecording {
        call: next,
        call_version: call.version,
        recording: Recording::new(&spec, call.account_sid.clone(), call.sid.clone(), now),
        recording_version: None,
        intent,
    })
}

/// Pauses, resumes or stops `recording` of `call`.
pub fn plan_update(
    call: &Call,
    recording: &Recording,
    update: &RecordingUpdate,
    intent_sid: IntentSid,
    now: Timestamp,
    retention: Duration,
) -> Result<PlannedRecording, RecordingStateError> {
    if !recording.status.is_active() {
        return Err(RecordingStateError::NotActive(
            recording.sid.clone(),
            recording.status.as_str(),
        ));
    }
    if call.status != CallStatus::InProgress {
        return Err(RecordingStateError::CallNotInProgress(call.status));
    }
    let mut parameters = update.parameters();
    parameters.insert("RecordingSid".into(), recording.sid.to_string());
    let command = CommandParameters {
        recording_sid: Some(recording.sid.clone()),
        recording_status: Some(update.status),
        pause_behavior: update.pause_behavior,
        ..CommandParameters::default()
    };
    let (mut next, intent) = next_call_intent(
        call,
        CallCommand {
            action: IntentAction::RecordingUpdate,
            parameters,
            kind: CommandType::RecordingUpdate,
            command,
        },
        intent_sid,
        now,
        retention,
    );
    if update.status == RecordingStatus::Stopped && next.recording.as_ref() == Some(&recording.sid)
    {
        next.recording = None;
    }
    let mut changed = recording.clone();
    changed.status = update.status;
    if update.status == RecordingStatus::Paused {
        changed.pause_behavior = update.pause_behavior.unwrap_or(PauseBehavior::Silence);
    }
    changed.version += 1;
    changed.date_updated = now;
    Ok(PlannedRecording {
        call: next,
        call_version: call.version,
        recording: changed,
        recording_version: Some(recording.version),
        intent,
    })
}

/// A `recording.*` event, as the worker reports it (see [`super::event::EventKind`]).
#[derive(Debug, Clone, Copy)]
pub enum RecordingReport<'a> {
    Started {
        seq: u64,
        account_sid: &'a AccountSid,
        spec: &'a RecordingSpec,
        start_time: i64,
    },
    Changed {
        seq: u64,
        recording_sid: &'a RecordingSid,
        status: RecordingStatus,
        duration: Option<u64>,
        media_url: Option<&'a str>,
        error_code: Option<u32>,
    },
}

impl RecordingReport<'_> {
    pub fn seq(&self) -> u64 {
        match self {
            Self::Started { seq, .. } | Self::Changed { seq, .. } => *seq,
        }
    }

    pub fn recording_sid(&self) -> &RecordingSid {
        match self {
            Self::Started { spec, .. } => &spec.recording_sid,
            Self::Changed { recording_sid, .. } => recording_sid,
        }
    }
}

/// What a worker's report does to the recording as stored (`current`): the recording to write
/// (under `current`'s version, or as new), or why nothing. A recording asked to stop stays
/// `stopped` until the worker reports it final; a final one changes no more.
pub fn apply(
    current: Option<&Recording>,
    call_sid: &CallSid,
    report: &RecordingReport,
    now: Timestamp,
) -> Result<Recording, String> {
    let seq = report.seq();
    let sid = report.recording_sid();
    let mut next = match (current, report) {
        (
            None,
            RecordingReport::Started {
                account_sid,
                spec,
                start_time,
                ..
            },
        ) => {
            let mut created = Recording::new(spec, (*account_sid).clone(), call_sid.clone(), now);
            created.start_time = Timestamp::from_millis(*start_time);
            created.event_seq = seq;
            return Ok(created);
        }
        (None, RecordingReport::Changed { .. }) => {
            return Err(format!(
                "recording.status #{seq} for unknown recording {sid}"
            ));
        }
        (Some(current), _) => current.clone(),
    };
    if seq <= next.event_seq {
        return Err(format!(
            "recording event #{seq} of {sid}: duplicate or stale (last applied #{})",
            next.event_seq
        ));
    }
    if next.status.is_final() {
        return Err(format!(
            "recording event #{seq} of {sid}: the recording is {} already",
            next.status.as_str()
        ));
    }
    match report {
        RecordingReport::Started { start_time, .. } => {
            next.start_time = Timestamp::from_millis(*start_time);
            if next.status != RecordingStatus::Stopped {
                next.status = RecordingStatus::InProgress;
            }
        }
        RecordingReport::Changed {
            status,
            duration,
            media_url,
            error_code,
            ..
        } => {
            if status.is_final() {
                next.status = *status;
                next.duration = *duration;
                next.media = media_url.map(str::to_owned);
                next.error_code = *error_code;
            } else if status.is_active() && next.status != RecordingStatus::Stopped {
                next.status = *status;
            } else if !status.is_active() {
                return Err(format!(
                    "recording.status #{seq} of {sid}: a worker reports in-progress, paused, \
                     completed, absent or failed, not {}",
                    status.as_str()
                ));
            }
        }
    }
    next.event_seq = seq;
    next.version += 1;
    next.date_updated = now;
    Ok(next)
}

/// Where a recording is, under the API's base path.
pub fn recording_path(recording: &Recording) -> String {
    format!(
        "/call/{}/Accounts/{}/Recordings/{}",
        super::API_VERSION,
        recording.account_sid,
        recording.sid
    )
}

/// The RecordingStatusCallback request a worker's report makes of `recording` as it is after
/// the report, if the application subscribed to it. `public_url` is where the API is reached
/// (`RecordingUrl` is absolute, as on Twilio).
pub fn callback(
    recording: &Recording,
    report: &RecordingReport,
    public_url: &str,
) -> Option<CallbackJob> {
    let callback = recording.status_callback.as_ref()?;
    let subscription = match report {
        RecordingReport::Started { .. } => RecordingCallbackEvent::InProgress,
        RecordingReport::Changed { status, .. } => match status {
            RecordingStatus::Completed | RecordingStatus::Failed => {
                RecordingCallbackEvent::Completed
            }
            RecordingStatus::Absent => RecordingCallbackEvent::Absent,
            _ => return None,
        },
    };
    if !callback.events.contains(&subscription) {
        return None;
    }
    let status = match report {
        RecordingReport::Started { .. } => RecordingStatus::InProgress,
        RecordingReport::Changed { status, .. } => *status,
    };
    let mut p = BTreeMap::new();
    p.insert("AccountSid".to_owned(), recording.account_sid.to_string());
    p.insert("CallSid".to_owned(), recording.call_sid.to_string());
    p.insert("RecordingSid".to_owned(), recording.sid.to_string());
    p.insert(
        "RecordingUrl".to_owned(),
        format!(
            "{}{}",
            public_url.trim_end_matches('/'),
            recording_path(recording)
        ),
    );
    p.insert("RecordingStatus".to_owned(), status.as_str().to_owned());
    p.insert(
        "RecordingChannels".to_owned(),
        recording.channels.count().to_string(),
    );
    p.insert(
        "RecordingSource".to_owned(),
        recording.source.as_str().to_owned(),
    );
    p.insert(
        "RecordingTrack".to_owned(),
        recording.track.as_str().to_owned(),
    );
    p.insert(
        "RecordingStartTime".to_owned(),
        recording.start_time.rfc2822(),
    );
    p.insert(
        "ErrorCode".to_owned(),
        recording.error_code.unwrap_or(0).to_string(),
    );
    if status.is_final() {
        p.insert(
            "RecordingDuration".to_owned(),
            recording.duration.unwrap_or(0).to_string(),
        );
    }
    Some(CallbackJob {
        version: JOB_VERSION,
        job_id: format!("{}-e{}-{}", recording.sid, report.seq(), status.as_str()),
        kind: JobKind::StatusCallback,
        account_sid: recording.account_sid.clone(),
        call_sid: Some(recording.call_sid.clone()),
        conference_sid: None,
        url: callback.url.clone(),
        method: callback.method,
        parameters: p,
        attempts: 0,
        history: Vec::new(),
    })
}

/// The filters `GET …/Recordings` accepts, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordingFilter {
    pub call_sid: Option<CallSid>,
    pub created_from: Option<Timestamp>,
    pub created_to: Option<Timestamp>,
}

impl RecordingFilter {
    pub fn matches(&self, recording: &Recording) -> bool {
        self.call_sid
            .as_ref()
            .is_none_or(|c| *c == recording.call_sid)
            && self
                .created_from
                .is_none_or(|from| recording.date_created >= from)
            && self
                .created_to
                .is_none_or(|to| recording.date_created <= to)
    }
}

/// The filters `GET …/Recordings` accepts (a call's list: all but `CallSid`).
pub const RECORDING_FILTERS: [&str; 4] = ["CallSid", "DateCreated", "DateCreated<", "DateCreated>"];

/// `GET …/Recordings` (the account's, which may filter by `CallSid`) and `GET
/// …/Calls/{Sid}/Recordings` (the call's): filters and paging.
#[derive(Debug, Clone)]
pub struct ListRecordingsRequest {
    pub filter: RecordingFilter,
    pub paging: Paging,
    /// The filters as given, for the envelope's URIs.
    pub query: Vec<(&'static str, String)>,
}

impl ListRecordingsRequest {
    /// `call`: the call of the path, for a call's list (which takes no `CallSid`).
    pub fn parse(query: &Form, call: Option<CallSid>) -> Result<Self, InvalidParameter> {
        const DATES: [&str; 3] = ["DateCreated", "DateCreated<", "DateCreated>"];
        let mut accepted: Vec<&str> = DATES.to_vec();
        if call.is_none() {
            accepted.push("CallSid");
        }
        accepted.extend(Paging::PARAMETERS);
        let raw = Params::collect(query, &accepted, &[])?;
        let mut filter = RecordingFilter {
            call_sid: call,
            ..RecordingFilter::default()
        };
        let mut echo: Vec<(&'static str, String)> = Vec::new();
        if let Some(value) = raw.get("CallSid") {
            let sid = value
                .parse()
                .map_err(|e: super::sid::InvalidSid| invalid("CallSid", format!("CallSid: {e}")))?;
            filter.call_sid = Some(sid);
            echo.push(("CallSid", value.to_owned()));
        }
        for name in DATES {
            let Some(value) = raw.get(name) else { continue };
            let (start, end) = parse_time(name, value)?;
            match name {
                "DateCreated" => {
                    (filter.created_from, filter.created_to) = (Some(start), Some(end))
                }
                "DateCreated>" => filter.created_from = Some(start),
                _ => filter.created_to = Some(end),
            }
            echo.push((name, value.to_owned()));
        }
        if raw.has("DateCreated") && (raw.has("DateCreated>") || raw.has("DateCreated<")) {
            return Err(conflict(
                "DateCreated",
                "Give DateCreated, or DateCreated> and/or DateCreated<, not both".into(),
            ));
        }
        Ok(Self {
            filter,
            paging: Paging::parse(&raw)?,
            query: echo,
        })
    }
}

/// A recording's place in a listing, newest first: creation time, then sid.
pub fn recording_position(recording: &Recording) -> String {
    super::listing::created_position(recording.date_created, &recording.sid)
}

/// The RecordingSid of a well-formed recording position.
pub fn recording_position_sid(position: &str) -> Option<RecordingSid> {
    super::listing::created_position_sid(position)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use crate::event::Event;

    /// Every example of docs/messages.md's "Recording commands" decodes and encodes back to
    /// itself, as a call's command.
    #[test]
    fn documented_commands_round_trip() {
        let examples = crate::doc_examples("## Recording commands");
        assert_eq!(examples.len(), 2, "one example per command type");
        for example in examples {
            let command = Command::from_json(example).unwrap_or_else(|e| panic!("{e}: {example}"));
            assert!(matches!(
                command.kind,
                CommandType::RecordingStart | CommandType::RecordingUpdate
            ));
            let expected: serde_json::Value = serde_json::from_str(example).unwrap();
            assert_eq!(serde_json::to_value(&command).unwrap(), expected);
        }
    }

    /// Every example of "Recording events" decodes and encodes back to itself, as a recording
    /// report.
    #[test]
    fn documented_events_round_trip() {
        let examples = crate::doc_examples("## Recording events");
        assert_eq!(examples.len(), 2, "one example per event type");
        for example in examples {
            let event = Event::from_json(example).unwrap_or_else(|e| panic!("{e}: {example}"));
            assert!(event.kind.recording().is_some(), "{example}");
            let expected: serde_json::Value = serde_json::from_str(example).unwrap();
            assert_eq!(serde_json::to_value(&event).unwrap(), expected);
        }
    }

    fn form(body: &str) -> Form {
        Form::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn start_parameters_have_twilios_defaults_and_rules() {
        let policy = AddressPolicy::default();
        let options = RecordingOptions::parse_start(&form(""), policy).unwrap();
        assert_eq!(
            (options.channels, options.track, options.trim),
            (
                RecordingChannels::Mono,
                RecordingTrack::Both,
                Trim::DoNotTrim
            )
        );
        assert!(options.status_callback.is_none());
        let options = RecordingOptions::parse_start(
            &form("RecordingChannels=dual&RecordingStatusCallback=https%3A%2F%2Fapp.example.com%2Fr&RecordingStatusCallbackEvent=completed+in-progress&RecordingStatusCallbackEvent=absent&RecordingStatusCallbackMethod=GET"),
            policy,
        )
        .unwrap();
        let callback = options.status_callback.unwrap();
        assert_eq!(callback.method, Method::Get);
        assert_eq!(
            callback.events,
            [
                RecordingCallbackEvent::InProgress,
                RecordingCallbackEvent::Completed,
                RecordingCallbackEvent::Absent
            ]
        );
        for bad in [
            "RecordingChannels=stereo",
            "RecordingTrack=sideways",
            "Trim=maybe",
            "RecordingStatusCallbackEvent=completed",
            "RecordingStatusCallback=https%3A%2F%2Fapp.example.com&RecordingStatusCallbackEvent=done",
            "RecordingStatusCallback=https%3A%2F%2Fapp.example.com&RecordingStatusCallbackEvent=",
            "RecordingStatusCallback=http%3A%2F%2F10.0.0.1%2Fx",
            "RecordingStatusCallbackMethod=GET",
            "Channels=mono",
            "RecordingChannels=mono&RecordingChannels=dual",
        ] {
            assert!(
                RecordingOptions::parse_start(&form(bad), policy).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn update_parameters() {
        let update = RecordingUpdate::parse(&form("Status=paused&PauseBehavior=skip")).unwrap();
        assert_eq!(update.status, RecordingStatus::Paused);
        assert_eq!(update.pause_behavior, Some(PauseBehavior::Skip));
        assert_eq!(
            RecordingUpdate::parse(&form("Status=In-Progress"))
                .unwrap()
                .status,
            RecordingStatus::InProgress
        );
        for bad in [
            "",
            "Status=completed",
            "Status=absent",
            "Status=stopped&PauseBehavior=skip",
            "Status=paused&PauseBehavior=mute",
            "Status=paused&Mute=true",
        ] {
            assert!(RecordingUpdate::parse(&form(bad)).is_err(), "{bad}");
        }
    }

    fn call(status: CallStatus) -> Call {
        let now = Timestamp::from_millis(1_000_000);
        let mut call = Call::inbound(
            "AC0123456789abcdef0123456789abcdef".parse().unwrap(),
            "+15551230001".into(),
            "+15551230002".into(),
            Default::default(),
            status,
            now,
        );
        call.command_queue = Some("https://sqs.example/worker.fifo".into());
        call
    }

    const RETENTION: Duration = Duration::from_secs(3600);

    fn options() -> RecordingOptions {
        RecordingOptions::parse_start(&form(""), AddressPolicy::default()).unwrap()
    }

    #[test]
    fn a_call_in_progress_records_one_recording_at_a_time() {
        let now = Timestamp::from_millis(2_000_000);
        let live = call(CallStatus::InProgress);
        let sid = RecordingSid::generate();
        let planned = plan_start(
            &live,
            None,
            &options(),
            sid.clone(),
            IntentSid::generate(),
            now,
            RETENTION,
        )
        .unwrap();
        assert_eq!(planned.call.recording.as_ref(), Some(&sid));
        assert_eq!((planned.call.seq, planned.call_version), (1, live.version));
        assert_eq!(planned.recording_version, None);
        assert_eq!(planned.recording.status, RecordingStatus::InProgress);
        let command = planned
            .intent
            .command
            .as_ref()
            .and_then(|c| c.call())
            .unwrap();
        assert_eq!(command.kind, CommandType::RecordingStart);
        assert_eq!(
            command.parameters.recording.as_ref().unwrap().recording_sid,
            sid
        );
        assert_eq!(planned.intent.queue, live.command_queue);

        // Another start while it is active is refused; once it is over, allowed.
        let active = planned.recording.clone();
        let recording_call = planned.call.clone();
        assert!(matches!(
            plan_start(&recording_call, Some(&active), &options(), RecordingSid::generate(), IntentSid::generate(), now, RETENTION),
            Err(RecordingStateError::AlreadyRecording(s)) if s == sid
        ));
        let done = Recording {
            status: RecordingStatus::Completed,
            ..active.clone()
        };
        assert!(
            plan_start(
                &recording_call,
                Some(&done),
                &options(),
                RecordingSid::generate(),
                IntentSid::generate(),
                now,
                RETENTION
            )
            .is_ok()
        );

        for status in [
            CallStatus::Queued,
            CallStatus::Ringing,
            CallStatus::Completed,
        ] {
            assert!(matches!(
                plan_start(&call(status), None, &options(), RecordingSid::generate(), IntentSid::generate(), now, RETENTION),
                Err(RecordingStateError::CallNotInProgress(s)) if s == status
            ));
        }
    }

    #[test]
    fn pausing_resuming_and_stopping() {
        let now = Timestamp::from_millis(2_000_000);
        let live = call(CallStatus::InProgress);
        let started = plan_start(
            &live,
            None,
            &options(),
            RecordingSid::generate(),
            IntentSid::generate(),
            now,
            RETENTION,
        )
        .unwrap();
        let update = |status, behavior| RecordingUpdate {
            status,
            pause_behavior: behavior,
        };
        let paused = plan_update(
            &started.call,
            &started.recording,
            &update(RecordingStatus::Paused, Some(PauseBehavior::Skip)),
            IntentSid::generate(),
            now,
            RETENTION,
        )
        .unwrap();
        assert_eq!(paused.recording.status, RecordingStatus::Paused);
        assert_eq!(paused.recording.pause_behavior, PauseBehavior::Skip);
        assert_eq!(paused.recording_version, Some(started.recording.version));
        assert_eq!(paused.call.seq, started.call.seq + 1);
        let stopped = plan_update(
            &paused.call,
            &paused.recording,
            &update(RecordingStatus::Stopped, None),
            IntentSid::generate(),
            now,
            RETENTION,
        )
        .unwrap();
        assert_eq!(stopped.recording.status, RecordingStatus::Stopped);
        assert_eq!(stopped.call.recording, None, "the call may record again");
        // A stopped recording can no longer be paused or resumed.
        assert!(matches!(
            plan_update(
                &stopped.call,
                &stopped.recording,
                &update(RecordingStatus::Paused, None),
                IntentSid::generate(),
                now,
                RETENTION
            ),
            Err(RecordingStateError::NotActive(..))
        ));
    }

    #[test]
    fn worker_reports_apply_in_order_and_stopped_waits_for_the_media() {
        let now = Timestamp::from_millis(2_000_000);
        let live = call(CallStatus::InProgress);
        let planned = plan_start(
            &live,
            None,
            &options(),
            RecordingSid::generate(),
            IntentSid::generate(),
            now,
            RETENTION,
        )
        .unwrap();
        let sid = planned.recording.sid.clone();
        let spec = planned
            .intent
            .command
            .as_ref()
            .and_then(|c| c.call())
            .unwrap()
            .parameters
            .recording
            .clone()
            .unwrap();
        let account = live.account_sid.clone();
        let started = RecordingReport::Started {
            seq: 1,
            account_sid: &account,
            spec: &spec,
            start_time: 2_000_500,
        };
        let after_start = apply(Some(&planned.recording), &live.sid, &started, now).unwrap();
        assert_eq!(after_start.start_time, Timestamp::from_millis(2_000_500));
        assert_eq!(after_start.version, planned.recording.version + 1);
        assert!(
            apply(Some(&after_start), &live.sid, &started, now).is_err(),
            "a duplicate"
        );

        let stopped = Recording {
            status: RecordingStatus::Stopped,
            ..after_start.clone()
        };
        let resumed = RecordingReport::Changed {
            seq: 2,
            recording_sid: &sid,
            status: RecordingStatus::InProgress,
            duration: None,
            media_url: None,
            error_code: None,
        };
        assert_eq!(
            apply(Some(&stopped), &live.sid, &resumed, now)
                .unwrap()
                .status,
            RecordingStatus::Stopped
        );
        let completed = RecordingReport::Changed {
            seq: 3,
            recording_sid: &sid,
            status: RecordingStatus::Completed,
            duration: Some(12),
            media_url: Some("s3://b/k.wav"),
            error_code: None,
        };
        let done = apply(Some(&stopped), &live.sid, &completed, now).unwrap();
        assert_eq!(
            (done.status, done.duration, done.media.as_deref()),
            (RecordingStatus::Completed, Some(12), Some("s3://b/k.wav"))
        );
        let late = RecordingReport::Changed {
            seq: 4,
            recording_sid: &sid,
            status: RecordingStatus::Paused,
            duration: None,
            media_url: None,
            error_code: None,
        };
        assert!(
            apply(Some(&done), &live.sid, &late, now).is_err(),
            "final stays final"
        );

        // Record=true: the worker's start creates the recording.
        let created = apply(None, &live.sid, &started, now).unwrap();
        assert_eq!(
            (created.sid.clone(), created.event_seq, created.version),
            (sid.clone(), 1, 1)
        );
        assert!(apply(None, &live.sid, &completed, now).is_err());
    }

    #[test]
    fn callbacks_follow_the_subscription() {
        let now = Timestamp::from_millis(2_000_000);
        let live = call(CallStatus::InProgress);
        let with_callback = RecordingOptions::parse_start(
            &form(
                "RecordingStatusCallback=https%3A%2F%2Fapp.example.com%2Fr&RecordingChannels=dual",
            ),
            AddressPolicy::default(),
        )
        .unwrap();
        let planned = plan_start(
            &live,
            None,
            &with_callback,
            RecordingSid::generate(),
            IntentSid::generate(),
            now,
            RETENTION,
        )
        .unwrap();
        let mut recording = planned.recording;
        let sid = recording.sid.clone();
        let spec = with_callback.spec(sid.clone(), RecordingSource::StartCallRecordingApi);
        let started = RecordingReport::Started {
            seq: 1,
            account_sid: &live.account_sid,
            spec: &spec,
            start_time: 1,
        };
        assert!(
            callback(&recording, &started, "https://api.example.com/Prod").is_none(),
            "completed only, by default"
        );
        recording.status = RecordingStatus::Completed;
        recording.duration = Some(7);
        let completed = RecordingReport::Changed {
            seq: 2,
            recording_sid: &sid,
            status: RecordingStatus::Completed,
            duration: Some(7),
            media_url: None,
            error_code: None,
        };
        let job = callback(&recording, &completed, "https://api.example.com/Prod/").unwrap();
        let p = &job.parameters;
        assert_eq!(p["RecordingStatus"], "completed");
        assert_eq!(p["RecordingDuration"], "7");
        assert_eq!(p["RecordingChannels"], "2");
        assert_eq!(p["RecordingSource"], "StartCallRecordingAPI");
        assert_eq!(
            p["RecordingUrl"],
            format!(
                "https://api.example.com/Prod/call/2012-04-24/Accounts/{}/Recordings/{sid}",
                live.account_sid
            )
        );
        assert_eq!(job.job_id, format!("{sid}-e2-completed"));
        assert_eq!(job.call_sid.as_ref(), Some(&live.sid));
        let paused = RecordingReport::Changed {
            seq: 3,
            recording_sid: &sid,
            status: RecordingStatus::Paused,
            duration: None,
            media_url: None,
            error_code: None,
        };
        assert!(callback(&recording, &paused, "").is_none());
    }

    #[test]
    fn list_requests() {
        let call: CallSid = "CA0123456789abcdef0123456789abcdef".parse().unwrap();
        let list = ListRecordingsRequest::parse(
            &form("CallSid=CA0123456789ABCDEF0123456789ABCDEF&DateCreated%3E=2026-11-01"),
            None,
        )
        .unwrap();
        assert_eq!(list.filter.call_sid.as_ref(), Some(&call));
        assert!(list.filter.created_from.is_some() && list.filter.created_to.is_none());
        assert!(ListRecordingsRequest::parse(&form("CallSid=CA1"), None).is_err());
        assert!(
            ListRecordingsRequest::parse(
                &form("CallSid=CA0123456789abcdef0123456789abcdef"),
                Some(call.clone())
            )
            .is_err(),
            "a call's list takes no CallSid"
        );
        assert!(
            ListRecordingsRequest::parse(
                &form("DateCreated=2026-11-01&DateCreated%3C=2026-11-02"),
                None
            )
            .is_err()
        );
        assert_eq!(
            ListRecordingsRequest::parse(&form(""), Some(call.clone()))
                .unwrap()
                .filter
                .call_sid,
            Some(call)
        );
    }
}
