//! Dev-only routes: never deployed. They stand in for what the admin tooling and the media
//! workers do in a deployment, so that the API can be tried with curl alone.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use teleapi::api::representation::{call_resource, error_resource};
use teleapi::domain::{
    Account, AccountSid, AccountStatus, Call, CallStatus, Form, Instructions, Method, Timestamp,
    WebhookUrl,
};
use teleapi::ports::{AccountStore, CallStore};

use crate::Stack;

fn bad_request(message: String) -> Response {
    let body = error_resource(400, 21201, &message);
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn internal(message: String) -> Response {
    tracing::error!(error = %message, "dev route failed");
    let body = error_resource(500, 20500, "Internal error");
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

/// The single value of each parameter; unknown or repeated parameters are errors.
fn fields<'a>(form: &'a Form, known: &[&str]) -> Result<Vec<(&'a str, &'a str)>, Response> {
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

fn account_json(account: &Account) -> Value {
    json!({
        "sid": account.sid,
        "auth_token": account.auth_token.expose(),
        "friendly_name": account.friendly_name,
        "parent_account_sid": account.parent,
        "status": account.status.as_str(),
        "date_created": account.date_created.rfc2822(),
    })
}

/// `POST /dev/Accounts` (FriendlyName, optional ParentAccountSid): a new account with its token.
pub async fn create_account(State(stack): State<Stack>, body: Bytes) -> Response {
    let form = match Form::parse(&body) {
        Ok(form) => form,
        Err(err) => return bad_request(err.to_string()),
    };
    let fields = match fields(&form, &["FriendlyName", "ParentAccountSid"]) {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let parent = match field(&fields, "ParentAccountSid") {
        None => None,
        Some(raw) => {
            let Ok(sid) = raw.parse::<AccountSid>() else {
                return bad_request(format!("ParentAccountSid '{raw}' is not an AccountSid"));
            };
            match stack.store.account(&sid).await {
                Ok(Some(parent))
                    if parent.parent.is_none() && parent.status == AccountStatus::Active =>
                {
                    Some(parent.sid)
                }
                Ok(Some(_)) => {
                    return bad_request(format!(
                        "ParentAccountSid {sid} is itself a subaccount or not active"
                    ));
                }
                Ok(None) => return bad_request(format!("ParentAccountSid {sid} does not exist")),
                Err(err) => return internal(err.to_string()),
            }
        }
    };
    let name = field(&fields, "FriendlyName").unwrap_or("Dev subaccount");
    let account = Account::open(name, parent, Timestamp::now());
    match stack.store.insert_account(&account).await {
        Ok(()) => (StatusCode::CREATED, Json(account_json(&account))).into_response(),
        Err(err) => internal(err.to_string()),
    }
}

/// `POST /dev/IncomingCalls` (From, To, Url, optional Method, optional Status): a call to the
/// dev account, in progress unless Status says otherwise.
pub async fn create_incoming_call(State(stack): State<Stack>, body: Bytes) -> Response {
    let form = match Form::parse(&body) {
        Ok(form) => form,
        Err(err) => return bad_request(err.to_string()),
    };
    let fields = match fields(&form, &["From", "To", "Url", "Method", "Status"]) {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let required = |name: &str| {
        field(&fields, name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad_request(format!("{name} is required")))
    };
    let (from, to, url) = match (required("From"), required("To"), required("Url")) {
        (Ok(from), Ok(to), Ok(url)) => (from, to, url),
        (Err(response), _, _) | (_, Err(response), _) | (_, _, Err(response)) => return response,
    };
    let url = match WebhookUrl::parse(url, stack.services.config.address_policy) {
        Ok(url) => url,
        Err(problem) => return bad_request(format!("Url is not a valid URL: {problem}")),
    };
    let method = match field(&fields, "Method").map(Method::parse) {
        None => Method::Post,
        Some(Some(method)) => method,
        Some(None) => return bad_request("Method must be GET or POST".into()),
    };
    let status = match field(&fields, "Status") {
        None => CallStatus::InProgress,
        Some(raw) => match CallStatus::parse(&raw.to_ascii_lowercase()) {
            Some(status) => status,
            None => {
                let all: Vec<&str> = CallStatus::ALL.iter().map(|s| s.as_str()).collect();
                return bad_request(format!("Status must be one of {}", all.join(", ")));
            }
        },
    };
    let instructions = Instructions {
        url: Some(url),
        method,
        ..Instructions::default()
    };
    let call = Call::inbound(
        stack.dev_account.sid.clone(),
        from.to_owned(),
        to.to_owned(),
        instructions,
        status,
        Timestamp::now(),
    );
    match stack.store.insert_call(&call).await {
        Ok(()) => (StatusCode::CREATED, Json(call_resource(&call, None))).into_response(),
        Err(err) => internal(err.to_string()),
    }
}

/// `GET /dev/Commands`: the commands on the default commands queue, oldest first.
pub async fn list_commands(State(stack): State<Stack>) -> Response {
    let commands: Vec<Value> = stack
        .commands
        .bodies(None)
        .iter()
        .filter_map(|body| serde_json::from_str(body).ok())
        .collect();
    Json(json!({ "commands": commands })).into_response()
}
