//! Modifying a live call: the request's parameters, their rules, and what a valid request does
//! to a call in a given state (DESIGN §3).
//!
//! [`ModifyRequest::parse`] turns a form into a typed request or names the first bad parameter;
//! [`plan`] decides, from the call as read, the call as it will be written and the intent that
//! records the change. Both are pure: the API layer does the reading and writing.

use std::collections::BTreeMap;

use std::time::Duration;

use crate::call::Call;

use crate::form::Form;

use crate::intent::{Intent, IntentAction, IntentStatus};

use crate::params::{Params, conflict, invalid, missing};

use crate::rcml::Rcml;

use crate::sid::{IntentSid, WorkerId, shorten};

use crate::time::Timestamp;

use crate::webhook::{AddressPolicy, CallbackEvent, Method, StatusCallbackEvents, WebhookUrl};

use crate::error::{InvalidParameter, ProblemKind};

use crate::call::CallStatus;
use crate::call::HangupStatus;
use crate::wire::command::{COMMAND_VERSION, Command, CommandParameters, CommandType};

/// Every parameter the endpoint accepts, in the order problems are reported.
pub const MODIFY_PARAMETERS: [&str; 12] = [
    "Url",
    "Method",
    "Twiml",
    "Status",
    "Mute",
    "MoveConnectedCallLeg",
    "FallbackUrl",
    "FallbackMethod",
    "StatusCallback",
    "StatusCallbackMethod",
    "StatusCallbackEvent",
    "TimeLimit",
];

/// New RCML for the call: fetched from a URL, or given inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewInstructions {
    Fetch { url: WebhookUrl, method: Method },
    Inline(Rcml),
}

/// A valid modification request. Every field is optional; `None` leaves that aspect as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModifyRequest {
    pub hangup: Option<HangupStatus>,
    pub instructions: Option<NewInstructions>,
    pub mute: Option<bool>,
    pub move_connected_call_leg: Option<bool>,
    pub fallback: Option<(WebhookUrl, Method)>,
    pub status_callback: Option<(WebhookUrl, Method)>,
    pub status_callback_events: Option<StatusCallbackEvents>,
    pub time_limit: Option<u32>,
}

impl ModifyRequest {
    pub fn parse(form: &Form, policy: AddressPolicy) -> Result<Self, InvalidParameter> {
        let raw = Params::collect(form, &MODIFY_PARAMETERS, &["StatusCallbackEvent"])?;

        let url = raw.url("Url", policy)?;
        let method = raw.method("Method", "Url")?;
        let twiml = raw.twiml()?;
        let hangup = raw
            .get("Status")
            .map(|value| {
                if value.eq_ignore_ascii_case("canceled") {
                    Ok(HangupStatus::Canceled)
                } else if value.eq_ignore_ascii_case("completed") {
                    Ok(HangupStatus::Completed)
                } else {
                    Err(invalid(
                        "Status",
                        format!(
                            "Status must be canceled or completed, not '{}'",
                            shorten(value)
                        ),
                    ))
                }
            })
            .transpose()?;
        let mute = raw.boolean("Mute")?;
        let move_connected_call_leg = raw.boolean("MoveConnectedCallLeg")?;
        let fallback = raw.webhook("FallbackUrl", "FallbackMethod", policy)?;
        let status_callback = raw.webhook("StatusCallback", "StatusCallbackMethod", policy)?;
        let status_callback_events = raw.events()?;
        let time_limit = raw.time_limit()?;

        // Combinations.
        if url.is_some() && twiml.is_some() {
            return Err(conflict("Twiml", "Give Url or Twiml, not both".into()));
        }
        if hangup.is_some()
            && let Some(other) = ["Url", "Twiml", "Mute"]
                .into_iter()
                .find(|p| raw.get(p).is_some())
        {
            return Err(conflict(
                "Status",
                format!("Status ends the call and cannot be combined with {other}"),
            ));
        }
        if move_connected_call_leg.is_some() && url.is_none() && twiml.is_none() {
            return Err(conflict(
                "MoveConnectedCallLeg",
                "MoveConnectedCallLeg applies to a redirect: give it together with Url or Twiml"
                    .into(),
            ));
        }

        let instructions = match (url, twiml) {
            (Some(url), _) => Some(NewInstructions::Fetch {
                url,
                method: method.unwrap_or_default(),
            }),
            (None, Some(rcml)) => Some(NewInstructions::Inline(rcml)),
            (None, None) => None,
        };
        let request = Self {
            hangup,
            instructions,
            mute,
            move_connected_call_leg,
            fallback,
            status_callback,
            status_callback_events,
            time_limit,
        };
        if request == Self::default() {
            return Err(InvalidParameter::new(
                "",
                ProblemKind::NothingToDo,
                format!(
                    "The request modifies nothing: give at least one of {}",
                    MODIFY_PARAMETERS.join(", ")
                ),
            ));
        }
        Ok(request)
    }

    /// The request in canonical form, defaults filled in: what the intent records, and what makes
    /// two requests with the same Idempotency-Key "the same".
    pub fn parameters(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut put = |name: &str, value: String| {
            out.insert(name.to_owned(), value);
        };
        if let Some(status) = self.hangup {
            put("Status", status.as_str().into());
        }
        match &self.instructions {
            Some(NewInstructions::Fetch { url, method }) => {
                put("Url", url.to_string());
                put("Method", method.as_str().into());
            }
            Some(NewInstructions::Inline(rcml)) => put("Twiml", rcml.as_str().into()),
            None => {}
        }
        if let Some(mute) = self.mute {
            put("Mute", mute.to_string());
        }
        if let Some(move_leg) = self.move_connected_call_leg {
            put("MoveConnectedCallLeg", move_leg.to_string());
        }
        if let Some((url, method)) = &self.fallback {
            put("FallbackUrl", url.to_string());
            put("FallbackMethod", method.as_str().into());
        }
        if let Some((url, method)) = &self.status_callback {
            put("StatusCallback", url.to_string());
            put("StatusCallbackMethod", method.as_str().into());
        }
        if let Some(events) = self.status_callback_events {
            let names: Vec<&str> = events.iter().map(CallbackEvent::as_str).collect();
            put("StatusCallbackEvent", names.join(" "));
        }
        if let Some(limit) = self.time_limit {
            put("TimeLimit", limit.to_string());
        }
        out
    }
}

/// A modification decided: the call item to write and the intent that records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub call: Call,
    pub intent: Intent,
}

/// Decides what `request` does to `call` as read. The returned call carries the next sequence
/// number and version; the write must succeed only if the stored call still has `call.version`.
pub fn plan(
    call: &Call,
    request: &ModifyRequest,
    intent_sid: IntentSid,
    now: Timestamp,
    retention: Duration,
) -> Result<Planned, CallStateError> {
    if call.status.is_final() {
        return Err(CallStateError::Ended(call.status));
    }
    if request.mute.is_some() && call.status != CallStatus::InProgress {
        return Err(CallStateError::NotInProgress(call.status));
    }

    let mut next = call.clone();
    next.seq += 1;
    next.version += 1;

    let mut intent = Intent {
        sid: intent_sid,
        subject: call.sid.clone().into(),
        account_sid: call.account_sid.clone(),
        seq: next.seq,
        action: IntentAction::Update,
        parameters: request.parameters(),
        status: IntentStatus::Pending,
        reason: None,
        command: None,
        queue: call.command_queue.clone(),
        date_created: now,
        date_updated: now,
        expires_at: now.plus(retention).whole_seconds(),
    };

    if request.hangup == Some(HangupStatus::Canceled) && call.status == CallStatus::InProgress {
        intent.action = IntentAction::Hangup;
        intent.status = IntentStatus::NoEffect;
        intent.reason = Some(
            "The call is already in progress: Status=canceled only ends queued or ringing calls. \
             Use Status=completed to hang up a call in progress."
                .into(),
        );
        return Ok(Planned {
            call: next.updated_over(call, now),
            intent,
        });
    }

    // Settings: in force from now on, whatever else the request does.
    let settings = &mut next.instructions;
    if let Some((url, method)) = &request.fallback {
        settings.fallback_url = Some(url.clone());
        settings.fallback_method = *method;
    }
    if let Some((url, method)) = &request.status_callback {
        settings.status_callback = Some(url.clone());
        settings.status_callback_method = *method;
    }
    if let Some(events) = request.status_callback_events {
        settings.status_callback_events = events;
    }
    if let Some(limit) = request.time_limit {
        settings.time_limit = Some(limit);
    }

    let mut parameters = CommandParameters {
        move_connected_call_leg: request.move_connected_call_leg,
        time_limit: request.time_limit,
        ..CommandParameters::default()
    };
    let kind = if let Some(status) = request.hangup {
        hang_up(call, &mut next, now);
        parameters.status = Some(status);
        Some(CommandType::Hangup)
    } else {
        if let Some(mute) = request.mute {
            next.muted = mute;
        }
        match &request.instructions {
            Some(NewInstructions::Fetch { url, method }) => {
                next.instructions.url = Some(url.clone());
                next.instructions.method = *method;
                parameters.url = Some(url.clone());
                parameters.method = Some(*method);
                parameters.mute = request.mute;
                Some(CommandType::Redirect)
            }
            Some(NewInstructions::Inline(rcml)) => {
                // Inline RCML replaces the document the call runs; there is no URL in force.
                next.instructions.url = None;
                parameters.rcml = Some(rcml.clone());
                parameters.mute = request.mute;
                Some(CommandType::Execute)
            }
            None => match request.mute {
                Some(true) => Some(CommandType::Mute),
                Some(false) => Some(CommandType::Unmute),
                None if request.time_limit.is_some() => Some(CommandType::Update),
                // Only callback settings changed: they live on the call item, no worker needed.
                None => None,
            },
        }
    };

    intent.action = match kind {
        Some(CommandType::Redirect) => IntentAction::Redirect,
        Some(CommandType::Execute) => IntentAction::Execute,
        Some(CommandType::Hangup) => IntentAction::Hangup,
        Some(CommandType::Mute) => IntentAction::Mute,
        Some(CommandType::Unmute) => IntentAction::Unmute,
        Some(CommandType::Dial) => IntentAction::Dial,
        Some(CommandType::RecordingStart) => IntentAction::RecordingStart,
        Some(CommandType::RecordingUpdate) => IntentAction::RecordingUpdate,
        Some(CommandType::StreamStart) => IntentAction::StreamStart,
        Some(CommandType::StreamStop) => IntentAction::StreamStop,
        Some(CommandType::QueueBridge) => IntentAction::QueueBridge,
        Some(CommandType::Update) | None => IntentAction::Update,
    };
    match kind {
        Some(kind) => {
            intent.command = Some(
                Command {
                    version: COMMAND_VERSION,
                    kind,
                    call_sid: call.sid.clone(),
                    account_sid: call.account_sid.clone(),
                    intent_sid: intent.sid.clone(),
                    seq: next.seq,
                    parameters,
                }
                .into(),
            );
        }
        None => intent.status = IntentStatus::Applied,
    }
    Ok(Planned {
        call: next.updated_over(call, now),
        intent,
    })
}

/// What the control plane itself asks of a call, outside any API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemAction {
    /// Run the RCML the application's FallbackUrl answered.
    RunFallback {
        rcml: Rcml,
        fallback_url: WebhookUrl,
    },
    /// End the call as failed: its RCML failed and nothing can replace it.
    Fail { reason: String },
    /// Hang the call up (`completed`, or `canceled` before it is answered): the leg it was
    /// bridged to is gone with `dead_worker`. Not if it is on that worker too: it ends with the
    /// worker's other calls.
    HangUp {
        reason: String,
        dead_worker: WorkerId,
    },
    /// Take the call, if it still waits in `bridge.queue_sid`, out of its queue for the agent
    /// `bridge` names, on another worker (`queue.bridge`).
    Bridge(Box<crate::queue::Bridge>),
}

/// `next` (a copy of `call`) hung up at `now`: `canceled` if it was never answered, else
/// `completed` with its duration.
fn hang_up(call: &Call, next: &mut Call, now: Timestamp) {
    next.status = if call.status.is_unanswered() {
        CallStatus::Canceled
    } else {
        CallStatus::Completed
    };
    next.end_time = Some(now);
    // An ended call waits in no queue.
    next.queue = None;
    next.duration = match (next.status, call.start_time) {
        (CallStatus::Completed, Some(start)) => Some(now.seconds_since(start)),
        _ => None,
    };
}

/// The intent (and call update) for a [`SystemAction`], numbered after the call's latest
/// intent; `None` if the call has already ended.
pub fn plan_system(
    call: &Call,
    action: &SystemAction,
    intent_sid: IntentSid,
    now: Timestamp,
    retention: Duration,
) -> Option<Planned> {
    if call.status.is_final() {
        return None;
    }
    if let SystemAction::Bridge(bridge) = action
        && !call.waits_in(&bridge.queue_sid)
    {
        // Taken, gone or ended since the index listed it.
        return None;
    }
    if let SystemAction::HangUp { dead_worker, .. } = action
        && call.worker.as_ref() == Some(dead_worker)
    {
        return None;
    }
    let mut next = call.clone();
    next.seq += 1;
    next.version += 1;
    let mut parameters = BTreeMap::new();
    let (action_name, kind, command_parameters, reason) = match action {
        SystemAction::RunFallback { rcml, fallback_url } => {
            next.instructions.url = None;
            parameters.insert("Twiml".to_owned(), rcml.as_str().to_owned());
            parameters.insert("Source".to_owned(), format!("FallbackUrl {fallback_url}"));
            let command = CommandParameters {
                rcml: Some(rcml.clone()),
                ..CommandParameters::default()
            };
            (IntentAction::Execute, CommandType::Execute, command, None)
        }
        SystemAction::HangUp { reason, .. } => {
            hang_up(call, &mut next, now);
            let status = if call.status.is_unanswered() {
                HangupStatus::Canceled
            } else {
                HangupStatus::Completed
            };
            parameters.insert("Status".to_owned(), status.as_str().to_owned());
            let command = CommandParameters {
                status: Some(status),
                ..CommandParameters::default()
            };
            (
                IntentAction::Hangup,
                CommandType::Hangup,
                command,
                Some(reason.clone()),
            )
        }
        SystemAction::Fail { reason } => {
            next.status = CallStatus::Failed;
            next.end_time = Some(now);
            next.queue = None;
            parameters.insert(
                "Status".to_owned(),
                HangupStatus::Failed.as_str().to_owned(),
            );
            let command = CommandParameters {
                status: Some(HangupStatus::Failed),
                ..CommandParameters::default()
            };
            (
                IntentAction::Hangup,
                CommandType::Hangup,
                command,
                Some(reason.clone()),
            )
        }
        SystemAction::Bridge(bridge) => {
            next.queue = None;
            parameters.insert("QueueSid".to_owned(), bridge.queue_sid.to_string());
            parameters.insert(
                "DequeingCallSid".to_owned(),
                bridge.agent_call_sid.to_string(),
            );
            let command = CommandParameters {
                bridge: Some(bridge.clone()),
                ..CommandParameters::default()
            };
            (
                IntentAction::QueueBridge,
                CommandType::QueueBridge,
                command,
                None,
            )
        }
    };
    let command = Command {
        version: COMMAND_VERSION,
        kind,
        call_sid: call.sid.clone(),
        account_sid: call.account_sid.clone(),
        intent_sid: intent_sid.clone(),
        seq: next.seq,
        parameters: command_parameters,
    };
    let intent = Intent {
        sid: intent_sid,
        subject: call.sid.clone().into(),
        account_sid: call.account_sid.clone(),
        seq: next.seq,
        action: action_name,
        parameters,
        status: IntentStatus::Pending,
        reason,
        command: Some(command.into()),
        queue: call.command_queue.clone(),
        date_created: now,
        date_updated: now,
        expires_at: now.plus(retention).whole_seconds(),
    };
    Some(Planned {
        call: next.updated_over(call, now),
        intent,
    })
}

/// `POST …/Queues/{QU}/Members/{CallSid|Front}`: `Url` (required) and `Method`, the RCML the
/// dequeued caller runs: a redirect of its call.
pub fn parse_dequeue(
    form: &Form,
    policy: AddressPolicy,
) -> Result<ModifyRequest, InvalidParameter> {
    let raw = Params::collect(form, &["Url", "Method"], &[])?;
    raw.get("Url")
        .filter(|url| !url.is_empty())
        .ok_or_else(|| missing("Url"))?;
    ModifyRequest::parse(form, policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{Direction, Instructions};
    use crate::sid::{AccountSid, CallSid};

    fn parse(body: &str) -> Result<ModifyRequest, InvalidParameter> {
        ModifyRequest::parse(
            &Form::parse(body.as_bytes()).unwrap(),
            AddressPolicy::default(),
        )
    }

    fn call(status: CallStatus) -> Call {
        Call {
            sid: CallSid::generate(),
            account_sid: AccountSid::generate(),
            parent_call_sid: None,
            from: "+15551230001".into(),
            to: "+15551230002".into(),
            direction: Direction::Inbound,
            status,
            muted: false,
            instructions: Instructions::default(),
            command_queue: None,
            worker: None,
            seq: 4,
            version: 9,
            event_seq: 0,
            callback_seq: 0,
            end_reported: false,
            date_created: Timestamp::from_millis(1_000),
            date_updated: Timestamp::from_millis(1_000),
            start_time: Some(Timestamp::from_millis(1_000)),
            end_time: None,
            duration: None,
            listing_shard: 0,
            recording: None,
            streams: Vec::new(),
            answered_by: None,
            queue: None,
        }
    }

    fn decide(status: CallStatus, body: &str) -> Result<Planned, CallStateError> {
        let now = Timestamp::from_millis(91_000);
        plan(
            &call(status),
            &parse(body).unwrap(),
            IntentSid::generate(),
            now,
            Duration::from_secs(60),
        )
    }

    #[test]
    fn a_leg_on_the_dead_worker_is_not_hung_up_as_a_leg() {
        let id = |name: &str| WorkerId::try_from(name.to_owned()).unwrap();
        let dead = id("worker-dead");
        let hang_up = SystemAction::HangUp {
            reason: "gone".into(),
            dead_worker: dead.clone(),
        };
        let planned = |worker: &str| {
            let leg = Call {
                worker: Some(id(worker)),
                ..call(CallStatus::InProgress)
            };
            let now = Timestamp::from_millis(91_000);
            plan_system(&leg, &hang_up, IntentSid::generate(), now, Duration::ZERO)
        };
        assert!(planned(dead.as_str()).is_none(), "ended with its worker");
        let elsewhere = planned("worker-alive").expect("hung up");
        assert_eq!(elsewhere.call.status, CallStatus::Completed);
        assert_eq!(elsewhere.intent.action, IntentAction::Hangup);
    }

    #[test]
    fn date_updated_moves_only_with_what_the_resource_shows() {
        let before = call(CallStatus::InProgress);
        let now = Timestamp::from_millis(91_000);
        // What the call will do changes; what its resource shows does not.
        for body in [
            "Url=https://a.example/x",
            "StatusCallback=https://a.example/s",
        ] {
            let planned = decide(CallStatus::InProgress, body).unwrap();
            assert_eq!(planned.call.date_updated, before.date_updated, "{body}");
            assert_eq!(planned.call.version, before.version + 1, "{body}");
        }
        for body in ["Mute=true", "Status=completed"] {
            let planned = decide(CallStatus::InProgress, body).unwrap();
            assert_eq!(planned.call.date_updated, now, "{body}");
        }
    }

    #[test]
    fn parse_rules() {
        // (body, Ok(canonical parameters) or Err(parameter at fault))
        type Expected = Result<&'static [(&'static str, &'static str)], &'static str>;
        let cases: &[(&str, Expected)] = &[
            (
                "Url=https://a.example/x",
                Ok(&[("Method", "POST"), ("Url", "https://a.example/x")]),
            ),
            (
                "Url=https://a.example/x&Method=get",
                Ok(&[("Method", "GET"), ("Url", "https://a.example/x")]),
            ),
            ("Status=CANCELED", Ok(&[("Status", "canceled")])),
            ("Mute=True", Ok(&[("Mute", "true")])),
            (
                "StatusCallbackEvent=completed+ringing&StatusCallbackEvent=RINGING",
                Ok(&[("StatusCallbackEvent", "ringing completed")]),
            ),
            (
                "FallbackUrl=https://a.example/f",
                Ok(&[
                    ("FallbackMethod", "POST"),
                    ("FallbackUrl", "https://a.example/f"),
                ]),
            ),
            ("TimeLimit=14400", Ok(&[("TimeLimit", "14400")])),
            ("", Err("")),
            ("Url=x", Err("Url")),
            ("Method=GET", Err("Method")),
            (
                "Url=https://a.example/x&Twiml=%3CResponse%2F%3E",
                Err("Twiml"),
            ),
            ("Status=completed&Mute=false", Err("Status")),
            ("MoveConnectedCallLeg=false", Err("MoveConnectedCallLeg")),
            ("Mute=true&Mute=false", Err("Mute")),
            ("Bogus=1", Err("Bogus")),
            ("StatusCallbackMethod=GET", Err("StatusCallbackMethod")),
            ("TimeLimit=007x", Err("TimeLimit")),
        ];
        for (body, expected) in cases {
            match (parse(body), expected) {
                (Ok(request), Ok(parameters)) => {
                    let got: Vec<(String, String)> = request.parameters().into_iter().collect();
                    let want: Vec<(String, String)> = parameters
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect();
                    assert_eq!(got, want, "{body}");
                }
                (Err(err), Err(parameter)) => {
                    assert_eq!(err.parameter, *parameter, "{body}: {err}")
                }
                (got, _) => panic!("{body}: unexpected {got:?}"),
            }
        }
    }

    #[test]
    fn plan_by_call_state() {
        use CallStatus::*;
        // (call status, body) -> Ok((new status, intent status, command type)) or Err
        type Expected = Result<(CallStatus, IntentStatus, Option<CommandType>), CallStateError>;
        let cases: &[(CallStatus, &str, Expected)] = &[
            (
                InProgress,
                "Url=https://a.example/x",
                Ok((
                    InProgress,
                    IntentStatus::Pending,
                    Some(CommandType::Redirect),
                )),
            ),
            (
                Ringing,
                "Url=https://a.example/x",
                Ok((Ringing, IntentStatus::Pending, Some(CommandType::Redirect))),
            ),
            (
                InProgress,
                "Status=canceled",
                Ok((InProgress, IntentStatus::NoEffect, None)),
            ),
            (
                Ringing,
                "Status=canceled",
                Ok((Canceled, IntentStatus::Pending, Some(CommandType::Hangup))),
            ),
            (
                Queued,
                "Status=completed",
                Ok((Canceled, IntentStatus::Pending, Some(CommandType::Hangup))),
            ),
            (
                InProgress,
                "Status=completed",
                Ok((Completed, IntentStatus::Pending, Some(CommandType::Hangup))),
            ),
            (
                InProgress,
                "Mute=false",
                Ok((InProgress, IntentStatus::Pending, Some(CommandType::Unmute))),
            ),
            (
                InProgress,
                "TimeLimit=60",
                Ok((InProgress, IntentStatus::Pending, Some(CommandType::Update))),
            ),
            (
                InProgress,
                "StatusCallback=https://a.example/cb",
                Ok((InProgress, IntentStatus::Applied, None)),
            ),
            (
                Ringing,
                "Mute=true",
                Err(CallStateError::NotInProgress(Ringing)),
            ),
            (
                Completed,
                "Status=completed",
                Err(CallStateError::Ended(Completed)),
            ),
            (
                NoAnswer,
                "Url=https://a.example/x",
                Err(CallStateError::Ended(NoAnswer)),
            ),
        ];
        for (status, body, expected) in cases {
            let got = decide(*status, body).map(|p| {
                (
                    p.call.status,
                    p.intent.status,
                    p.intent
                        .command
                        .and_then(crate::IntentCommand::into_call)
                        .map(|c| c.kind),
                )
            });
            assert_eq!(&got, expected, "{status:?} {body}");
        }
    }

    #[test]
    fn a_plan_bumps_sequence_and_version_and_times_the_end() {
        let planned = decide(CallStatus::InProgress, "Status=completed").unwrap();
        assert_eq!(
            (planned.call.seq, planned.call.version, planned.intent.seq),
            (5, 10, 5)
        );
        assert_eq!(planned.call.duration, Some(90));
        assert_eq!(planned.call.end_time, Some(Timestamp::from_millis(91_000)));
        assert_eq!(planned.intent.expires_at, Timestamp::from_millis(151_000));
        let command = planned.intent.command.unwrap().into_call().unwrap();
        assert_eq!((command.seq, &command.intent_sid), (5, &planned.intent.sid));

        let planned = decide(CallStatus::InProgress, "Twiml=%3CResponse%2F%3E&Mute=true").unwrap();
        assert_eq!(planned.call.instructions.url, None);
        assert!(planned.call.muted);
        assert_eq!(
            planned
                .intent
                .command
                .unwrap()
                .into_call()
                .unwrap()
                .parameters
                .mute,
            Some(true)
        );

        let planned = decide(
            CallStatus::InProgress,
            "Status=canceled&StatusCallback=https://a.example/cb",
        )
        .unwrap();
        assert_eq!(
            planned.call.instructions.status_callback, None,
            "no effect means no change"
        );
    }

    #[test]
    fn a_dequeue_names_the_rcml_to_run() {
        let policy = AddressPolicy::default();
        let redirect = parse_dequeue(
            &Form::parse(b"Url=https://example.com/agent&Method=GET").unwrap(),
            policy,
        )
        .unwrap();
        assert!(redirect.parameters().contains_key("Url"));
        for bad in [
            "",
            "Method=GET",
            "Url=",
            "Url=https://example.com&Status=completed",
        ] {
            assert!(
                parse_dequeue(&Form::parse(bad.as_bytes()).unwrap(), policy).is_err(),
                "{bad}"
            );
        }
    }
}

/// The request is valid but the call's state does not allow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallStateError {
    #[error("The call has ended (status {}) and can no longer be modified", .0.as_str())]
    Ended(CallStatus),
    #[error("The call is {} and Mute applies only to a call in progress", .0.as_str())]
    NotInProgress(CallStatus),
}
