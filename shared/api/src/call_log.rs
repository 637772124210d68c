//! What happened to a call, Twilio-shaped: `GET …/Calls/{Sid}/Events` (every HTTP request the
//! platform made for the call, with its answer), `GET …/Calls/{Sid}/Notifications` and
//! `GET …/Notifications` (the errors and warnings met on calls' behalf), and one notification.
//! Also where the API notes the requests on a call that it refused.

use lambda_http::{Body, Request};
use serde_json::{Value, json};

use super::error::ApiError;
use super::list::{bad_token, envelope, list_path, query_form};
use super::representation::{API_VERSION, BASE_PATH, more_info};
use super::{Operation, Route, Services, Success, auth, call_in_path, owned_call};
use teleapi_domain::call_log::{
    ListNotificationsRequest, LogLevel, Notification, Problem, RequestEntry, is_position,
    notification_position, request_position,
};
use teleapi_domain::paging::parse_paging_only;
use teleapi_domain::sid::random_hex32;
use teleapi_domain::{Method, NotificationSid, Timestamp};
use teleapi_ports::insight;

/// One request and its answer, with the names Twilio's Call Events use (`response_code`,
/// `request_duration`, `response_body`), and what the log adds: the kind of request, its
/// attempt, whether it was signed, the error when there was no answer, and the time in ms.
pub fn event_resource(entry: &RequestEntry) -> Value {
    let request = &entry.request;
    let response = &entry.response;
    let answered = entry
        .at
        .plus(std::time::Duration::from_millis(response.duration_ms));
    json!({
        "request": {
            "kind": request.kind.as_str(),
            "url": request.url,
            "method": request.method.as_str(),
            "parameters": request.parameters,
            "signed": request.signed,
            "attempt": request.attempt,
            "timestamp": entry.at.millis(),
            "date_created": entry.at.rfc2822(),
        },
        "response": {
            "response_code": response.status_code,
            "content_type": response.content_type,
            "request_duration": response.duration_ms,
            "response_body": response.body,
            "error": response.error,
            "date_created": answered.rfc2822(),
        },
    })
}

/// A notification with Twilio's fields (`log` 0 is an error, 1 a warning), and
/// `message_timestamp`, the time in ms.
pub fn notification_resource(notification: &Notification) -> Value {
    let n = notification;
    json!({
        "sid": n.sid,
        "account_sid": n.account_sid,
        "call_sid": n.call_sid,
        "api_version": API_VERSION,
        "log": n.level.code(),
        "error_code": n.error_code.to_string(),
        "more_info": more_info(n.error_code),
        "message_text": n.message,
        "message_date": n.at.rfc2822(),
        "message_timestamp": n.at.millis(),
        "request_url": n.request_url,
        "request_method": n.request_method.map(Method::as_str),
        "request_variables": n.request_variables,
        "response_body": n.response_body,
        "response_headers": null,
        "date_created": n.at.rfc2822(),
        "date_updated": n.at.rfc2822(),
        "uri": format!(
            "{BASE_PATH}/Accounts/{}/Calls/{}/Notifications/{}.json",
            n.account_sid, n.call_sid, n.sid
        ),
    })
}

/// `GET …/Calls/{CallSid}/Events`: the call's requests, newest first.
pub async fn list_call_events(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let call = owned_call(services, &owner, &route.call_sid()?).await?;
    let paging = parse_paging_only(&query_form(request)?)?;
    if let Some(token) = &paging.token
        && !is_position(&token.after, 'E')
    {
        return Err(bad_token());
    }
    let page = services
        .call_log
        .requests(&call.sid, &paging.request())
        .await?;
    let path = list_path(&owner.sid, Some(&call.sid), "Events", route);
    let items = page.items.iter().map(event_resource).collect();
    let resource = envelope(
        "events",
        items,
        &page,
        request_position,
        &paging,
        &path,
        &[],
    );
    Ok(Success::ok(None, resource))
}

/// `GET …/Notifications` (the account's) and `GET …/Calls/{CallSid}/Notifications` (the
/// call's), newest first; filters `Log` and `MessageDate`.
pub async fn list_notifications(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let call = call_in_path(services, &owner, route).await?;
    let list = ListNotificationsRequest::parse(&query_form(request)?)?;
    if let Some(token) = &list.paging.token
        && !is_position(&token.after, 'N')
    {
        return Err(bad_token());
    }
    let page = services
        .call_log
        .notifications(
            &owner.sid,
            call.as_ref().map(|c| &c.sid),
            &list.filter,
            &list.paging.request(),
        )
        .await?;
    let path = list_path(
        &owner.sid,
        call.as_ref().map(|c| &c.sid),
        "Notifications",
        route,
    );
    let items = page.items.iter().map(notification_resource).collect();
    let resource = envelope(
        "notifications",
        items,
        &page,
        notification_position,
        &list.paging,
        &path,
        &list.query,
    );
    Ok(Success::ok(None, resource))
}

/// `GET …/Calls/{CallSid}/Notifications/{NotificationSid}`.
pub async fn get_notification(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let call = owned_call(services, &owner, &route.call_sid()?).await?;
    let raw = route.notification.as_deref().unwrap_or_default();
    let not_found = || ApiError::NotFound(teleapi_domain::sid::shorten(raw));
    let sid: NotificationSid = raw.parse().map_err(|_| not_found())?;
    let notification = services
        .call_log
        .notification(&call.sid, &sid)
        .await?
        .filter(|n| n.account_sid == owner.sid)
        .ok_or_else(not_found)?;
    Ok(Success::ok(
        Some("Notification"),
        notification_resource(&notification),
    ))
}

/// Whether a refusal of `operation` is worth a notification of the call: a request to change a
/// call that the API refused for what it asked (a parameter, the call's state, a reused
/// Idempotency-Key). Not for who asked (401, 403, 404: nothing may be written to a call the
/// caller cannot see), nor for the platform's own trouble (429, 5xx).
fn worth_noting(operation: Operation, err: &ApiError) -> bool {
    let on_call = matches!(
        operation,
        Operation::ModifyCall
            | Operation::StartRecording
            | Operation::UpdateRecording
            | Operation::DeleteRecording
            | Operation::StartStream
            | Operation::StopStream
    );
    on_call
        && matches!(
            err,
            ApiError::InvalidParameter(_)
                | ApiError::MalformedBody(_)
                | ApiError::UnsupportedMediaType
                | ApiError::CallState(_)
                | ApiError::RecordingState(_)
                | ApiError::StreamState(_)
                | ApiError::IdempotencyKeyReused
        )
}

/// Notes `err`, the answer to a request on a call, as an error notification of that call, if
/// it is worth noting and the caller may see the call. The answer matters more than its note: a
/// failure to write it is only reported.
pub async fn note_refusal(services: &Services, route: &Route, request: &Request, err: &ApiError) {
    if route.call_sid.is_none() || !worth_noting(route.operation, err) {
        return;
    }
    let Ok(caller) = auth::authenticate(services, request.headers()).await else {
        return;
    };
    let Ok(owner) = auth::authorize(services, caller, &route.account_sid).await else {
        return;
    };
    let Ok(call_sid) = route.call_sid() else {
        return;
    };
    let Ok(call) = owned_call(services, &owner, &call_sid).await else {
        return;
    };
    let (_, code) = err.status_and_code();
    let body: &[u8] = match request.body() {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    let mut problem = Problem::new(LogLevel::Error, code, err.to_string());
    problem.request_url = Some(request.uri().to_string());
    problem.request_method = Method::parse(request.method().as_str());
    problem.request_variables = String::from_utf8_lossy(body).into_owned();
    let now: Timestamp = services.clock.now();
    // Each refusal is its own notification, however alike two requests are.
    let entry =
        insight::notification_entry(problem, &call.sid, &call.account_sid, now, &random_hex32());
    insight::note_or_warn(
        services.call_log.as_ref(),
        &entry,
        services.config.intent_retention,
    )
    .await;
}
