//! Dev-only routes: never deployed. They stand in for what the admin tooling and the media
//! workers do in a deployment, so that the API can be tried with curl alone.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use teleapi_api::representation::{call_resource, error_resource};
use teleapi_domain::wire::event::Event;
use teleapi_domain::{
    Account, AccountSid, AccountStatus, Call, CallStatus, CallbackEvent, Form, Instructions,
    Method, StatusCallbackEvents, Timestamp, WebhookUrl,
};
use teleapi_ports::OutgoingMessage;

use crate::Stack;
use teleapi_worker::InboundCall;

/// Why a dev route refused: a bad request (400, described) or a store failure (500).
pub enum DevError {
    BadRequest(String),
    /// Nothing can take it now (503).
    Unavailable(String),
    NotFound(String),
    Internal(String),
}

impl IntoResponse for DevError {
    fn into_response(self) -> Response {
        match self {
            Self::BadRequest(message) => {
                let body = error_resource(400, 21200, &message);
                (StatusCode::BAD_REQUEST, Json(body)).into_response()
            }
            Self::Unavailable(message) => {
                let body = error_resource(503, 503, &message);
                (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
            }
            Self::NotFound(message) => {
                let body = error_resource(404, 20404, &message);
                (StatusCode::NOT_FOUND, Json(body)).into_response()
            }
            Self::Internal(message) => {
                tracing::error!(error = %message, "dev route failed");
                let body = error_resource(500, 500, "Internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
            }
        }
    }
}

fn bad_request(message: String) -> DevError {
    DevError::BadRequest(message)
}

fn internal(err: impl ToString) -> DevError {
    DevError::Internal(err.to_string())
}

/// The single value of each parameter; unknown or repeated parameters are errors.
fn fields<'a>(form: &'a Form, known: &[&str]) -> Result<Vec<(&'a str, &'a str)>, DevError> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (name, value) in form.pairs() {
        if !known.contains(&name) {
            return Err(bad_request(format!(
                "Unknown parameter '{name}'. Accepted: {}",
                known.join(", ")
            )));
        }
        if seen.iter().any(|(n, _)| *n == name) {
            return Err(bad_request(format!(
                "Parameter '{name}' was given more than once"
            )));
        }
        seen.push((name, value));
    }
    Ok(seen)
}

fn field<'a>(fields: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// `POST /dev/Accounts` (FriendlyName, optional ParentAccountSid): a new account with its token.
pub async fn create_account(
    State(stack): State<Arc<Stack>>,
    body: Bytes,
) -> Result<Response, DevError> {
    let form = Form::parse(&body).map_err(|e| bad_request(e.to_string()))?;
    let fields = fields(&form, &["FriendlyName", "ParentAccountSid"])?;
    let parent = match field(&fields, "ParentAccountSid") {
        None => None,
        Some(raw) => {
            let sid: AccountSid = raw.parse().map_err(|_| {
                bad_request(format!("ParentAccountSid '{raw}' is not an AccountSid"))
            })?;
            match stack.accounts.account(&sid).await.map_err(internal)? {
                Some(parent)
                    if parent.parent.is_none() && parent.status == AccountStatus::Active =>
                {
                    Some(parent.sid)
                }
                Some(_) => {
                    return Err(bad_request(format!(
                        "ParentAccountSid {sid} is itself a subaccount or not active"
                    )));
                }
                None => {
                    return Err(bad_request(format!(
                        "ParentAccountSid {sid} does not exist"
                    )));
                }
            }
        }
    };
    let name = field(&fields, "FriendlyName").unwrap_or("Dev subaccount");
    let account = Account::open(name, parent, Timestamp::now());
    stack
        .accounts
        .insert_account(&account)
        .await
        .map_err(internal)?;
    Ok((StatusCode::CREATED, Json(crate::admin::describe(&account))).into_response())
}

/// `POST /dev/IncomingCalls` (From, To, Url, optional Method, optional Status, optional
/// StatusCallback with StatusCallbackMethod and StatusCallbackEvent, the events space-separated):
/// a call to the dev account, with the StatusCallback a number would be configured with.
/// Without Status, a real simulated call: it rings, its RCML is fetched from Url with Method, and
/// it is answered. With Status, just a call record in that status.
pub async fn create_incoming_call(
    State(stack): State<Arc<Stack>>,
    body: Bytes,
) -> Result<Response, DevError> {
    let form = Form::parse(&body).map_err(|e| bad_request(e.to_string()))?;
    let fields = fields(
        &form,
        &[
            "From",
            "To",
            "Url",
            "Method",
            "Status",
            "StatusCallback",
            "StatusCallbackMethod",
            "StatusCallbackEvent",
        ],
    )?;
    let required = |name: &str| {
        field(&fields, name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad_request(format!("{name} is required")))
    };
    let (from, to, url) = (required("From")?, required("To")?, required("Url")?);
    let url = WebhookUrl::parse(url, stack.services.config.address_policy)
        .map_err(|problem| bad_request(format!("Url is not a valid URL: {problem}")))?;
    let method_of = |name: &str| match field(&fields, name) {
        None => Ok(Method::Post),
        Some(raw) => {
            Method::parse(raw).ok_or_else(|| bad_request(format!("{name} must be GET or POST")))
        }
    };
    let method = method_of("Method")?;
    let status_callback = field(&fields, "StatusCallback")
        .filter(|v| !v.is_empty())
        .map(|raw| {
            WebhookUrl::parse(raw, stack.services.config.address_policy).map_err(|problem| {
                bad_request(format!("StatusCallback is not a valid URL: {problem}"))
            })
        })
        .transpose()?;
    let status_callback_events = match field(&fields, "StatusCallbackEvent") {
        None => StatusCallbackEvents::default(),
        Some(raw) => raw
            .split([' ', ','])
            .filter(|e| !e.is_empty())
            .map(|e| {
                CallbackEvent::parse(e).ok_or_else(|| {
                    bad_request(format!(
                        "StatusCallbackEvent: '{e}' is not one of initiated, ringing, answered, completed"
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let status = match field(&fields, "Status") {
        None => CallStatus::InProgress,
        Some(raw) => CallStatus::parse(&raw.to_ascii_lowercase()).ok_or_else(|| {
            let all: Vec<&str> = CallStatus::ALL.iter().map(|s| s.as_str()).collect();
            bad_request(format!("Status must be one of {}", all.join(", ")))
        })?,
    };
    let instructions = Instructions {
        url: Some(url),
        method,
        status_callback,
        status_callback_method: method_of("StatusCallbackMethod")?,
        status_callback_events,
        ..Instructions::default()
    };
    // A simulated call goes to the next active worker; with none, it cannot be placed.
    let worker = match field(&fields, "Status") {
        None if stack.simulator.enabled() => Some(stack.simulator.pick().ok_or_else(|| {
            DevError::Unavailable(
                "no simulated worker takes new calls (all drained or killed)".into(),
            )
        })?),
        _ => None,
    };
    let simulate = worker.is_some();
    let mut call = Call::inbound(
        stack.dev_account.sid.clone(),
        from.to_owned(),
        to.to_owned(),
        instructions,
        if simulate { CallStatus::Queued } else { status },
        Timestamp::now(),
    )
    .listed_in(stack.dev_account.listing_shards);
    if let Some(worker) = &worker {
        call.command_queue = Some(worker.queue_url().to_owned());
    }
    stack.calls.insert_call(&call).await.map_err(internal)?;
    if let Some(worker) = &worker {
        worker.inbound(InboundCall {
            sid: call.sid.clone(),
            account_sid: call.account_sid.clone(),
            from: call.from.clone(),
            to: call.to.clone(),
            url: call.instructions.url.clone().expect("the Url was given"),
            method: call.instructions.method,
            fallback: call
                .instructions
                .fallback_url
                .clone()
                .map(|url| (url, call.instructions.fallback_method)),
            status_callback: call
                .instructions
                .status_callback
                .clone()
                .map(|url| (url, call.instructions.status_callback_method)),
        });
    }
    Ok((
        StatusCode::CREATED,
        Json(call_resource(&call.listed(), None)),
    )
        .into_response())
}

/// `POST /dev/Calls/{CallSid}/Digits` (`Digits`: `0-9 * #`, 1 to 64): the caller of a live
/// simulated call presses these keys (a `<Gather>` collects them; its streams send `dtmf`).
/// 204; 404 if the simulated worker holds no such live call.
pub async fn press_digits(
    State(stack): State<Arc<Stack>>,
    axum::extract::Path(call): axum::extract::Path<String>,
    body: Bytes,
) -> Result<Response, DevError> {
    let form = Form::parse(&body).map_err(|e| bad_request(e.to_string()))?;
    let fields = fields(&form, &["Digits"])?;
    let digits = field(&fields, "Digits").unwrap_or_default();
    let valid = !digits.is_empty()
        && digits.len() <= 64
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#');
    if !valid {
        return Err(bad_request("Digits must be 1 to 64 of 0-9, * and #".into()));
    }
    let pressed = call
        .parse()
        .is_ok_and(|sid| stack.simulator.press(&sid, digits));
    Ok(if pressed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        not_found(&call)
    })
}

/// `GET /dev/Calls/{CallSid}/Digits`: the DTMF of a simulated call: `sent` (what it played:
/// `SendDigits`, `<Play digits>`) and `pressed` (what its caller pressed).
pub async fn call_digits(
    State(stack): State<Arc<Stack>>,
    axum::extract::Path(call): axum::extract::Path<String>,
) -> Response {
    let dtmf = call.parse().ok().and_then(|sid| stack.simulator.dtmf(&sid));
    let dtmf = dtmf.unwrap_or_default();
    Json(serde_json::json!({"call_sid": call, "sent": dtmf.sent, "pressed": dtmf.pressed}))
        .into_response()
}

fn not_found(call: &str) -> Response {
    let message = format!("No live simulated call {call}");
    (
        StatusCode::NOT_FOUND,
        Json(error_resource(404, 20404, &message)),
    )
        .into_response()
}

/// `POST /dev/Events` (a worker event, JSON): puts it on the events queue, as a media worker
/// would, for the event loop to apply. Answers 202.
pub async fn post_event(
    State(stack): State<Arc<Stack>>,
    body: Bytes,
) -> Result<Response, DevError> {
    let text =
        std::str::from_utf8(&body).map_err(|_| bad_request("the event is not UTF-8".into()))?;
    let event = Event::from_json(text).map_err(|e| bad_request(e.to_string()))?;
    let message = OutgoingMessage::fifo(
        event.call_sid.as_str(),
        teleapi_domain::sid::random_hex32(),
        event.to_json(),
    );
    stack
        .event_queue
        .send(None, &message)
        .await
        .map_err(internal)?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Sample RCML for trying the API without an application of one's own.
const SAMPLES: [(&str, &str); 5] = [
    (
        "call-bob",
        "<Response><Say>Connecting you to Bob</Say><Dial><Client>bob</Client></Dial></Response>",
    ),
    (
        "call-alice",
        "<Response><Say>Transferring you to Alice</Say><Dial><Client>alice</Client></Dial></Response>",
    ),
    (
        "conference",
        "<Response><Dial><Conference>room-1</Conference></Dial></Response>",
    ),
    (
        "hold",
        "<Response><Say>Please hold</Say><Play loop=\"0\">hold.mp3</Play></Response>",
    ),
    ("queue", "<Response><Enqueue>support</Enqueue></Response>"),
];

/// `GET|POST /dev/rcml/{name}`: one of the sample documents (call-bob, call-alice, conference,
/// hold, queue), as an application would answer.
pub async fn sample_rcml(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match SAMPLES.iter().find(|(n, _)| *n == name) {
        Some((_, document)) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "application/xml")],
            *document,
        )
            .into_response(),
        None => {
            let names: Vec<&str> = SAMPLES.iter().map(|(n, _)| *n).collect();
            (
                StatusCode::NOT_FOUND,
                format!("no sample RCML {name:?}; try one of {}", names.join(", ")),
            )
                .into_response()
        }
    }
}

/// One simulated worker as `GET /dev/Workers` shows it: its own state, except that a killed
/// worker whose lease the control plane has swept is `expired`.
async fn worker_view(
    stack: &Stack,
    worker: &crate::simulator::SimulatedWorker,
) -> Result<serde_json::Value, DevError> {
    let handle = &worker.handle;
    let mut state = handle.life().as_str();
    if handle.life() == teleapi_worker::Life::Dead {
        let recorded = stack
            .events
            .workers
            .worker(handle.id())
            .await
            .map_err(internal)?;
        if recorded.is_some_and(|w| w.status == teleapi_domain::worker::WorkerStatus::Expired) {
            state = "expired";
        }
    }
    Ok(serde_json::json!({
        "id": handle.id(),
        "state": state,
        "queue_url": handle.queue_url(),
        "calls": handle.calls(),
        "killed_at": worker.killed_at.map(Timestamp::rfc2822),
    }))
}

/// `GET /dev/Workers`: the simulated media workers, in the order they started, each with its
/// state (`active`, `draining`, `left`, `dead` once killed, `expired` once its lease has been
/// swept) and its live calls (legs included).
pub async fn list_workers(State(stack): State<Arc<Stack>>) -> Result<Response, DevError> {
    let mut workers = Vec::new();
    for worker in stack.simulator.workers() {
        workers.push(worker_view(&stack, &worker).await?);
    }
    Ok(Json(serde_json::json!({ "workers": workers })).into_response())
}

/// `POST /dev/Workers/{id}` (`Action`: `kill` or `drain`): kills the worker (abrupt: no
/// heartbeat, command or event after it, no goodbye), or drains it (it takes no new call, lets
/// its calls finish, then says `worker.left`). 200 with the worker; 404 if there is no such
/// worker.
pub async fn change_worker(
    State(stack): State<Arc<Stack>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    body: Bytes,
) -> Result<Response, DevError> {
    let form = Form::parse(&body).map_err(|e| bad_request(e.to_string()))?;
    let fields = fields(&form, &["Action"])?;
    let Some(worker) = stack.simulator.worker(&id) else {
        return Err(DevError::NotFound(format!(
            "No simulated worker {}",
            teleapi_domain::sid::shorten(&id)
        )));
    };
    match field(&fields, "Action") {
        Some("kill") => {
            stack.simulator.kill(&id);
        }
        Some("drain") => worker.handle.drain(),
        Some(other) => {
            return Err(bad_request(format!(
                "Action {:?} is not kill or drain",
                teleapi_domain::sid::shorten(other)
            )));
        }
        None => return Err(bad_request("Action is required: kill or drain".into())),
    }
    stack.feed.worker_changed(&id);
    let worker = stack.simulator.worker(&id).expect("it was there");
    Ok(Json(worker_view(&stack, &worker).await?).into_response())
}
