//! The HTTP API: routing, authentication, representations, and one module per operation.
//!
//! Every function, and `teleapi-local`, hands its requests to [`handle`]; an operation reads as
//! parse -> act -> represent, and failures become responses in exactly one place
//! ([`error::ApiError`] and [`respond_error`]).

pub mod auth;
pub mod error;
pub mod modify_call;
pub mod representation;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lambda_http::http::{HeaderValue, Method as HttpMethod, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde_json::Value;

use crate::domain::{AddressPolicy, Form};
use crate::ports::{AccountStore, CallStore, Clock, Queue};
use error::ApiError;
use representation::{Format, error_resource};

/// Tunables of the API, with the values deployments use by default.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub address_policy: AddressPolicy,
    /// How long intents are kept (DynamoDB TTL).
    pub intent_retention: Duration,
    /// How long a modification may keep retrying its conditional write against concurrent
    /// modifications of the same call before answering 503.
    pub write_budget: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            address_policy: AddressPolicy::default(),
            intent_retention: Duration::from_secs(30 * 24 * 3600),
            write_budget: Duration::from_secs(5),
            max_body_bytes: 64 * 1024,
        }
    }
}

/// The ports an operation works with, built once per process and shared by every request.
#[derive(Clone)]
pub struct Services {
    pub accounts: Arc<dyn AccountStore>,
    pub calls: Arc<dyn CallStore>,
    pub commands: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    pub config: ApiConfig,
}

/// The operations of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    ModifyCall,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Self::ModifyCall => "modify-call",
        }
    }
}

/// A request matched to an operation, with the raw path parameters (parsed by the operation, so
/// that a malformed Sid gets that operation's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub operation: Operation,
    pub account_sid: String,
    pub call_sid: Option<String>,
    pub path_says_json: bool,
}

/// Matches `method path` against the API's routes. The path may carry an API Gateway stage as
/// its first segment.
pub fn route(method: &HttpMethod, path: &str) -> Result<Route, ApiError> {
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
    let (call, path_says_json) = match rest {
        [calls @ ("Calls" | "Calls.json"), call] if !call.is_empty() => {
            let (call, suffix) = match call.strip_suffix(".json") {
                Some(call) => (call, true),
                None => (*call, false),
            };
            (call, *calls == "Calls.json" || suffix)
        }
        _ => return Err(not_found()),
    };
    if method != HttpMethod::POST {
        return Err(ApiError::MethodNotAllowed { allow: "POST" });
    }
    Ok(Route {
        operation: Operation::ModifyCall,
        account_sid: account.to_owned(),
        call_sid: Some(call.to_owned()),
        path_says_json,
    })
}

/// What an operation answers with when it succeeds.
pub struct Success {
    pub status: StatusCode,
    /// XML root element name for the resource.
    pub root: &'static str,
    pub resource: Value,
    pub headers: Vec<(&'static str, String)>,
}

/// Serves one request. `only` restricts the operations this process serves (a Lambda function
/// serves its own); anything else is answered 404, as if the route did not exist.
pub async fn handle(
    services: &Services,
    request: Request,
    only: Option<Operation>,
) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let routed = route(&method, &path).and_then(|r| match only {
        Some(op) if op != r.operation => Err(ApiError::NotFound(path.clone())),
        _ => Ok(r),
    });
    let path_says_json = routed
        .as_ref()
        .map(|r| r.path_says_json)
        .unwrap_or(path.contains(".json"));
    let format = Format::choose(path_says_json, request.headers());
    let operation = routed.as_ref().ok().map(|r| r.operation.name());
    let result = match routed {
        Ok(route) => match route.operation {
            Operation::ModifyCall => modify_call::modify_call(services, &route, &request).await,
        },
        Err(err) => Err(err),
    };
    let response = match result {
        Ok(success) => respond(format, success),
        Err(err) => respond_error(format, &err),
    };
    tracing::info!(
        target: "teleapi::request",
        method = %method,
        path = %path,
        operation = operation.unwrap_or("-"),
        status = response.status().as_u16(),
        intent_sid = response.headers().get(modify_call::INTENT_SID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-"),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

fn respond(format: Format, success: Success) -> Response<Body> {
    let mut response = Response::new(Body::Text(format.render(success.root, &success.resource)));
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
    let mut response = Response::new(Body::Text(format.render("RestException", &resource)));
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

    #[test]
    fn other_paths_and_methods_are_refused() {
        for path in [
            "/".to_owned(),
            format!("/call/2010-04-01/Accounts/{AC}/Calls/{CA}"),
            format!("/call/2012-04-24/Accounts/{AC}/Calls/{CA}/"),
            format!("/call/2012-04-24/Accounts/{AC}/Calls//"),
            format!("/a/b/call/2012-04-24/Accounts/{AC}/Calls/{CA}"),
            format!("/call/2012-04-24/Accounts//Calls/{CA}"),
            format!("/call/2012-04-24/Accounts/{AC}/Conferences/{CA}"),
        ] {
            assert!(
                matches!(route(&HttpMethod::POST, &path), Err(ApiError::NotFound(_))),
                "{path}"
            );
        }
        let path = format!("/call/2012-04-24/Accounts/{AC}/Calls/{CA}");
        assert!(matches!(
            route(&HttpMethod::DELETE, &path),
            Err(ApiError::MethodNotAllowed { allow: "POST" })
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
