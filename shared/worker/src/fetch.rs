//! Fetching a leg's RCML from the application, as Twilio does: the call's parameters (and a
//! `<Gather>`'s `Digits`) in the query of a GET or the form of a POST, Twilio's codes for what
//! went wrong, signed with the account's AuthToken as every request of the platform to the
//! application is (when the worker can read accounts: [`Signing`]), and every request reported
//! with its answer (`http.request`) for the call's log.
//!
//! [`Signing`]: crate::Signing

use std::collections::BTreeMap;
use teleapi_domain::call_log::{
    LoggedRequest, LoggedResponse, MAX_BODY_BYTES, RequestKind, bounded,
};

use teleapi_domain::wire::callback::{AppRequest, SIGNATURE_HEADER};
use teleapi_domain::wire::event::EventKind;
use teleapi_domain::{CallStatus, Method, Timestamp};
use tokio::time::Instant;

use crate::media::LegInfo;
use crate::shared::Shared;

/// The largest RCML document a worker reads: a larger answer fails its fetch (11200), so that an
/// application cannot fill a worker's memory. (Twilio's own limit for a TwiML document is
/// 64 KB; a megabyte leaves room for long `<Say>` texts.)
pub(crate) const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The body of `response`, if it holds at most `max` bytes: read as it comes, and given up as
/// soon as it is larger.
pub(crate) async fn bounded_body(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, String> {
    let larger = || format!("the answer is larger than {max} bytes");
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(larger());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer failed: {e}"))?
    {
        if body.len() + chunk.len() > max {
            return Err(larger());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Requests a document with the call's parameters (Twilio's): its text, or Twilio's code
/// for what went wrong (11205: no connection, or none in time; 11206: an answer that is not
/// HTTP; 11200: no 2xx answer, or one larger than [`MAX_DOCUMENT_BYTES`]) and why. Reports the request and its answer as
/// `http.request`, for the call's log.
pub(crate) async fn fetch(
    shared: &Shared,
    info: &LegInfo,
    status: CallStatus,
    (url, method): (&str, Method),
    extra: &[(&'static str, String)],
) -> Result<String, (u32, String)> {
    let mut params = vec![
        ("CallSid", info.sid.to_string()),
        ("AccountSid", info.account_sid.to_string()),
        ("From", info.from.clone()),
        ("To", info.to.clone()),
        ("CallStatus", status.as_str().to_owned()),
        ("Direction", info.direction.as_str().to_owned()),
        ("ApiVersion", teleapi_domain::API_VERSION.to_owned()),
    ];
    if let Some(parent) = &info.parent {
        params.push(("ParentCallSid", parent.to_string()));
    }
    params.extend(extra.iter().cloned());
    let parameters: BTreeMap<String, String> = params
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect();
    let token = match &shared.signing {
        Some(signing) => signing.auth_token(&info.account_sid).await,
        None => None,
    };
    let app = AppRequest::new(url, method, &parameters, token.as_deref());
    let mut request = match method {
        Method::Get => shared.http.get(&app.url),
        Method::Post => shared
            .http
            .post(&app.url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(app.body.clone().unwrap_or_default()),
    };
    if let Some(signature) = &app.signature {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    let sent = Timestamp::now();
    let started = Instant::now();
    let answer = async {
        let response = request.send().await.map_err(|e| {
            let code = if e.is_connect() || e.is_timeout() {
                11205
            } else {
                11206
            };
            (code, format!("request failed: {e}"))
        })?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = bounded_body(response, MAX_DOCUMENT_BYTES)
            .await
            .map_err(|why| (11200, why))?;
        Ok((
            status,
            content_type,
            String::from_utf8_lossy(&body).into_owned(),
        ))
    }
    .await;
    let mut logged = LoggedResponse {
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        ..LoggedResponse::default()
    };
    match &answer {
        Ok((status, content_type, body)) => {
            logged.status_code = Some(status.as_u16());
            logged.content_type = content_type.clone();
            logged.body = Some(bounded(body, MAX_BODY_BYTES));
        }
        Err((_, detail)) => logged.error = Some(detail.clone()),
    }
    let kind = EventKind::HttpRequest {
        account_sid: info.account_sid.clone(),
        request: LoggedRequest {
            kind: if extra.is_empty() {
                RequestKind::Rcml
            } else {
                RequestKind::Action
            },
            url: url.to_owned(),
            method,
            parameters,
            signed: app.signature.is_some(),
            attempt: 1,
        },
        response: logged,
    };
    shared.emit_at(&info.sid, sent, kind).await;
    let (status, _, body) = answer?;
    if status.is_success() {
        Ok(body)
    } else {
        Err((11200, format!("HTTP {}", status.as_u16())))
    }
}
