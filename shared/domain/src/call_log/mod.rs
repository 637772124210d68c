//! A call's log (docs/data-model.md, "call_log"): the HTTP requests the platform made for the
//! call with their answers (Twilio's Call Events), and the errors and warnings it met on the
//! call's behalf (Twilio's Notifications).
//!
//! Media workers report their RCML fetches (`http.request`) and warnings (`call.notification`)
//! as events; call-events adds a notification for RCML that failed; the callback function
//! records each delivery attempt and the callbacks it gave up on; the API records the requests
//! on a call that it refused. Every entry has a key derived from what it records, so a
//! redelivered event or a retried write lands on the same entry instead of a second one, and a
//! call's log holds at most [`MAX_ENTRIES`] entries.

mod listing;

pub use listing::*;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sid::{AccountSid, CallSid, NotificationSid};
use crate::time::Timestamp;
use crate::webhook::Method;
/// Entries a call's log takes at most; later ones are dropped (and counted in the logs). With
/// entries of a few kilobytes at most, a call's log stays under a couple of megabytes.
pub const MAX_ENTRIES: u64 = 500;

/// How much of an answer's body an entry keeps.
pub const MAX_BODY_BYTES: usize = 1024;

/// How much of a URL, a parameter's value, an error or a message an entry keeps.
const MAX_TEXT_BYTES: usize = 2048;

/// Parameters an entry keeps (the first, in name order).
const MAX_PARAMETERS: usize = 64;

words!(
    /// What a logged request was for.
    RequestKind {
        /// The call's RCML: its Url, a redirect, a `<Play>`ed document's source.
        Rcml = "rcml",
        /// A verb's `action` (`<Gather>`, `<Dial>`, `<Record>`).
        Action = "action",
        /// The FallbackUrl, after the RCML failed.
        Fallback = "fallback",
        StatusCallback = "status-callback",
        RecordingCallback = "recording-callback",
        StreamCallback = "stream-callback",
        ConferenceCallback = "conference-callback",
    }
);

words!(
    /// Twilio's two notification levels; the API shows them as `log` `0` and `1`.
    LogLevel {
        Error = "error",
        Warning = "warning",
    }
);

impl LogLevel {
    /// Twilio's `log` value.
    pub fn code(self) -> &'static str {
        match self {
            Self::Error => "0",
            Self::Warning => "1",
        }
    }

    /// `0`, `1`, `error` or `warning`.
    pub fn parse_log(value: &str) -> Option<Self> {
        match value {
            "0" => Some(Self::Error),
            "1" => Some(Self::Warning),
            other => Self::parse(other),
        }
    }
}

/// A request the platform made, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub kind: RequestKind,
    pub url: String,
    pub method: Method,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Whether it carried a signature header (never its value).
    #[serde(default)]
    pub signed: bool,
    /// 1 for the first try, 2 for the first retry, …
    #[serde(default = "first_attempt")]
    pub attempt: u32,
}

fn first_attempt() -> u32 {
    1
}

/// Its answer: a status, or why there was none.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LoggedResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// From sending the request to the end of the answer's body (or the failure).
    #[serde(default)]
    pub duration_ms: u64,
    /// The first [`MAX_BODY_BYTES`] of the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Why there is no answer: `connect timeout`, `request failed: …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One request and its answer, at `at` (when it was sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEntry {
    pub call_sid: CallSid,
    pub account_sid: AccountSid,
    pub at: Timestamp,
    pub request: LoggedRequest,
    pub response: LoggedResponse,
}

/// An error or a warning met on a call's behalf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub sid: NotificationSid,
    pub call_sid: CallSid,
    pub account_sid: AccountSid,
    pub at: Timestamp,
    pub level: LogLevel,
    /// Twilio's code: 11200, 12100, 15003, 21220, …
    pub error_code: u32,
    pub message: String,
    /// The request that failed: the platform's own (an RCML fetch, a callback) or the
    /// application's (an API request the API refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_method: Option<Method>,
    /// Its parameters, form-encoded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_variables: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

/// What a notification is about, before it has a sid and a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub level: LogLevel,
    pub error_code: u32,
    pub message: String,
    pub request_url: Option<String>,
    pub request_method: Option<Method>,
    pub request_variables: String,
    pub response_body: Option<String>,
}

impl Problem {
    pub fn new(level: LogLevel, error_code: u32, message: impl Into<String>) -> Self {
        Self {
            level,
            error_code,
            message: message.into(),
            request_url: None,
            request_method: None,
            request_variables: String::new(),
            response_body: None,
        }
    }

    pub fn at_request(mut self, url: impl Into<String>, method: Method) -> Self {
        self.request_url = Some(url.into());
        self.request_method = Some(method);
        self
    }

    /// The notification, its sid derived from `origin` (what it records: an event, an attempt, a
    /// request), so that recording the same thing twice gives the same notification.
    pub fn notification(
        self,
        call_sid: &CallSid,
        account_sid: &AccountSid,
        at: Timestamp,
        origin: &str,
    ) -> Notification {
        let sid = NotificationSid::derived(&format!("{call_sid}|{}|{origin}", at.millis()));
        Notification {
            sid,
            call_sid: call_sid.clone(),
            account_sid: account_sid.clone(),
            at,
            level: self.level,
            error_code: self.error_code,
            message: bounded(&self.message, MAX_TEXT_BYTES),
            request_url: self.request_url.map(|u| bounded(&u, MAX_TEXT_BYTES)),
            request_method: self.request_method,
            request_variables: bounded(&self.request_variables, MAX_TEXT_BYTES),
            response_body: self.response_body.map(|b| bounded(&b, MAX_BODY_BYTES)),
        }
    }
}

/// One entry of a call's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    Request(RequestEntry),
    Notification(Notification),
}

impl LogEntry {
    pub fn call_sid(&self) -> &CallSid {
        match self {
            Self::Request(r) => &r.call_sid,
            Self::Notification(n) => &n.call_sid,
        }
    }

    pub fn account_sid(&self) -> &AccountSid {
        match self {
            Self::Request(r) => &r.account_sid,
            Self::Notification(n) => &n.account_sid,
        }
    }

    pub fn at(&self) -> Timestamp {
        match self {
            Self::Request(r) => r.at,
            Self::Notification(n) => n.at,
        }
    }

    /// Its place in the call's log: `E` (a request) or `N` (a notification), the time in ms
    /// zero-padded to 15 digits (text order is time order), `#`, and what makes it unique: a
    /// digest of the request, or the notification's sid.
    pub fn position(&self) -> String {
        match self {
            Self::Request(r) => request_position(r),
            Self::Notification(n) => notification_position(n),
        }
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text[..cut].to_owned()
}

impl RequestEntry {
    /// Cut to what a log keeps: URLs, values and errors to 2 KB, the body to
    /// [`MAX_BODY_BYTES`], at most 64 parameters.
    pub fn bounded(mut self) -> Self {
        self.request.url = bounded(&self.request.url, MAX_TEXT_BYTES);
        if self.request.parameters.len() > MAX_PARAMETERS
            || self
                .request
                .parameters
                .iter()
                .any(|(k, v)| k.len() + v.len() > MAX_TEXT_BYTES)
        {
            self.request.parameters = self
                .request
                .parameters
                .into_iter()
                .take(MAX_PARAMETERS)
                .map(|(k, v)| (bounded(&k, 256), bounded(&v, MAX_TEXT_BYTES)))
                .collect();
        }
        let response = &mut self.response;
        response.body = response.body.take().map(|b| bounded(&b, MAX_BODY_BYTES));
        response.error = response.error.take().map(|e| bounded(&e, MAX_TEXT_BYTES));
        response.content_type = response.content_type.take().map(|c| bounded(&c, 256));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::form::Form;

    fn call() -> CallSid {
        "CA0123456789abcdef0123456789abcdef".parse().unwrap()
    }

    fn account() -> AccountSid {
        "AC0123456789abcdef0123456789abcdef".parse().unwrap()
    }

    #[test]
    fn the_same_problem_at_the_same_time_is_the_same_notification() {
        let at = Timestamp::from_millis(1_700_000_000_123);
        let problem = Problem::new(LogLevel::Error, 11200, "HTTP 500")
            .at_request("https://app.example/rcml", Method::Post);
        let one = problem
            .clone()
            .notification(&call(), &account(), at, "event 7");
        let again = problem
            .clone()
            .notification(&call(), &account(), at, "event 7");
        let other = problem.notification(&call(), &account(), at, "event 8");
        assert_eq!(one, again);
        assert_ne!(one.sid, other.sid);
        let position = LogEntry::Notification(one.clone()).position();
        assert!(position.starts_with("N001700000000123#NO"), "{position}");
        assert!(is_position(&position, 'N'));
        assert_eq!(notification_position_call(&position), Some(call()));
        assert!(!is_position(&position, 'E'));
    }

    #[test]
    fn requests_are_named_by_what_they_record() {
        let entry = |status| RequestEntry {
            call_sid: call(),
            account_sid: account(),
            at: Timestamp::from_millis(5),
            request: LoggedRequest {
                kind: RequestKind::Rcml,
                url: "https://app.example/rcml".into(),
                method: Method::Post,
                parameters: BTreeMap::new(),
                signed: false,
                attempt: 1,
            },
            response: LoggedResponse {
                status_code: Some(status),
                ..LoggedResponse::default()
            },
        };
        let position = request_position(&entry(200));
        assert_eq!(position, request_position(&entry(200)));
        assert_ne!(position, request_position(&entry(500)));
        assert!(is_position(&position, 'E'), "{position}");
        assert!(position.starts_with("E000000000000005#"));
        for bad in [
            "",
            "E5#abc",
            "E000000000000005#xyz",
            "X000000000000005#0123456789abcdef",
        ] {
            assert!(!is_position(bad, 'E'), "{bad}");
        }
    }

    #[test]
    fn entries_keep_a_bounded_part_of_what_they_record() {
        let mut parameters = BTreeMap::new();
        for i in 0..100 {
            parameters.insert(format!("P{i:03}"), "é".repeat(3000));
        }
        let entry = RequestEntry {
            call_sid: call(),
            account_sid: account(),
            at: Timestamp::from_millis(5),
            request: LoggedRequest {
                kind: RequestKind::StatusCallback,
                url: format!("https://app.example/{}", "x".repeat(10_000)),
                method: Method::Get,
                parameters,
                signed: true,
                attempt: 2,
            },
            response: LoggedResponse {
                body: Some("ü".repeat(5000)),
                error: None,
                ..LoggedResponse::default()
            },
        }
        .bounded();
        assert!(entry.request.url.len() <= MAX_TEXT_BYTES);
        assert_eq!(entry.request.parameters.len(), MAX_PARAMETERS);
        assert!(
            entry
                .request
                .parameters
                .values()
                .all(|v| v.len() <= MAX_TEXT_BYTES)
        );
        let body = entry.response.body.unwrap();
        assert!(body.len() <= MAX_BODY_BYTES && body.len() >= MAX_BODY_BYTES - 1);
    }

    #[test]
    fn notification_lists_take_twilios_filters() {
        let parse = |q: &str| ListNotificationsRequest::parse(&Form::parse(q.as_bytes()).unwrap());
        let list = parse("Log=1&MessageDate%3E=2026-12-01").unwrap();
        assert_eq!(list.filter.level, Some(LogLevel::Warning));
        assert_eq!(
            list.filter.from.unwrap().rfc2822(),
            "Tue, 01 Dec 2026 00:00:00 +0000"
        );
        assert_eq!(
            parse("Log=error").unwrap().filter.level,
            Some(LogLevel::Error)
        );
        let day = parse("MessageDate=2026-12-01").unwrap().filter;
        assert_eq!(
            day.to.unwrap().millis() - day.from.unwrap().millis(),
            86_399_999
        );
        for bad in [
            "Log=2",
            "Log=fatal",
            "MessageDate=yesterday",
            "MessageDate=2026-12-01&MessageDate%3C=2026-12-02",
            "Status=completed",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
