//! The HTTP edge of an operation: reading a form body, and writing its answer or its error in
//! the format asked for.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde_json::Value;

use crate::error::ApiError;
use crate::representation::{Format, error_resource};
use teleapi_domain::Form;

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

pub(crate) fn respond(format: Format, success: Success) -> Response<Body> {
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
pub(crate) fn is_form_content_type(value: &HeaderValue) -> bool {
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
