//! Callback jobs: the requests the control plane makes to the application (StatusCallback and
//! FallbackUrl), how they are signed, and how hard they are tried (Twilio's connection overrides).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use sha1::Sha1;

use crate::call_log::RequestKind;
use crate::sid::{AccountSid, CallSid, ConferenceSid};
use crate::webhook::{Method, WebhookUrl};
pub const JOB_VERSION: u32 = 1;

/// `CallbackSource` of status callbacks, as on Twilio.
pub const CALLBACK_SOURCE: &str = "call-progress-events";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// A StatusCallback request; delivered is all it needs to be.
    StatusCallback,
    /// A FallbackUrl request; its answer is RCML for the call.
    Fallback,
}

/// One try of a job, kept with the job so that a dead letter explains itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// When, ms since the epoch.
    pub at: i64,
    /// `200`, `500`, `connect timeout`, `refused: …`
    pub outcome: String,
}

/// A request to make to the application, on the callbacks queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackJob {
    pub version: u32,
    /// Stable across retries and duplicates: sent as the idempotency token.
    pub job_id: String,
    pub kind: JobKind,
    pub account_sid: AccountSid,
    /// The call the request is about (every job but a conference's own events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_sid: Option<CallSid>,
    /// The conference the request is about (conference status callbacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conference_sid: Option<ConferenceSid>,
    /// As the application gave it, connection overrides (`#rc=3…`) included.
    pub url: WebhookUrl,
    pub method: Method,
    pub parameters: BTreeMap<String, String>,
    /// Tries made so far.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<AttemptRecord>,
}

impl CallbackJob {
    /// What the job's request is, for the call's log: a fallback, or the callback of what its
    /// parameters are about (a recording, a stream, a conference, else the call).
    pub fn log_kind(&self) -> RequestKind {
        let has = |name: &str| self.parameters.contains_key(name);
        match self.kind {
            JobKind::Fallback => RequestKind::Fallback,
            _ if has("RecordingSid") => RequestKind::RecordingCallback,
            _ if has("StreamSid") => RequestKind::StreamCallback,
            _ if self.conference_sid.is_some() || has("ConferenceSid") => {
                RequestKind::ConferenceCallback
            }
            JobKind::StatusCallback => RequestKind::StatusCallback,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a job always serialises")
    }

    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        let job: CallbackJob = serde_json::from_str(json)?;
        if job.version != JOB_VERSION {
            return Err(serde::de::Error::custom(format!(
                "unsupported job version {}",
                job.version
            )));
        }
        Ok(job)
    }
}

/// Twilio's request signature: Base64 of HMAC-SHA1, keyed by the AuthToken, over the full URL
/// followed, for POST, by each parameter's name and value, sorted by name.
pub fn signature(
    auth_token: &str,
    url: &str,
    method: Method,
    parameters: &BTreeMap<String, String>,
) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    if method == Method::Post {
        for (name, value) in parameters {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The header of the platform's signature on every request it makes to the application
/// (Twilio's `X-Twilio-Signature`, under our name).
pub const SIGNATURE_HEADER: &str = "x-teleapi-signature";

/// Query-string and form encoding: everything but unreserved characters escaped.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `name=value&…`, form-encoded.
pub fn encode_pairs(parameters: &BTreeMap<String, String>) -> String {
    parameters
        .iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                utf8_percent_encode(name, FORM),
                utf8_percent_encode(value, FORM)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A request to the application as the platform sends it (a callback, a fallback, a worker's
/// RCML fetch): the parameters in the query of a GET or the form body of a POST, and, with the
/// account's AuthToken, its signature (`X-Teleapi-Signature`, Twilio's algorithm over the URL
/// as requested).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRequest {
    pub url: String,
    pub body: Option<String>,
    pub signature: Option<String>,
}

impl AppRequest {
    pub fn new(
        target: &str,
        method: Method,
        parameters: &BTreeMap<String, String>,
        auth_token: Option<&str>,
    ) -> Self {
        let (url, body) = match method {
            Method::Get => {
                let separator = if target.contains('?') { '&' } else { '?' };
                (
                    format!("{target}{separator}{}", encode_pairs(parameters)),
                    None,
                )
            }
            Method::Post => (target.to_owned(), Some(encode_pairs(parameters))),
        };
        let signature = auth_token.map(|token| signature(token, &url, method, parameters));
        Self {
            url,
            body,
            signature,
        }
    }
}

/// Which failures are worth another try (Twilio's `#rp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOn {
    pub connect: bool,
    pub read: bool,
    pub client_errors: bool,
    pub server_errors: bool,
}

/// How a callback URL is to be tried: Twilio's connection overrides, from the URL's fragment
/// (`https://app.example.com/cb#ct=2000&rc=3&rp=all`). The fragment is never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// `#ct`: connect timeout.
    pub connect_timeout: Duration,
    /// `#rt`: time allowed for the answer once connected.
    pub read_timeout: Duration,
    /// `#tt`: time allowed for one try, from connecting to the end of the answer.
    pub total_timeout: Duration,
    /// `#rc`: tries after the first.
    pub retries: u32,
    /// `#rp`
    pub retry_on: RetryOn,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(5_000),
            read_timeout: Duration::from_millis(15_000),
            total_timeout: Duration::from_millis(15_000),
            retries: 3,
            retry_on: RetryOn {
                connect: true,
                read: true,
                client_errors: false,
                server_errors: true,
            },
        }
    }
}

fn millis(value: &str, range: std::ops::RangeInclusive<u64>) -> Option<Duration> {
    let n: u64 = value.parse().ok()?;
    Some(Duration::from_millis(n.clamp(*range.start(), *range.end())))
}

impl Delivery {
    /// The URL to request (without its fragment) and how to try it. Unknown or malformed
    /// overrides are ignored; values are clamped to Twilio's ranges.
    pub fn of(url: &WebhookUrl) -> (String, Self) {
        let (target, fragment) = match url.as_str().split_once('#') {
            Some((target, fragment)) => (target.to_owned(), fragment),
            None => (url.as_str().to_owned(), ""),
        };
        let mut delivery = Self::default();
        for pair in fragment.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "ct" => {
                    if let Some(d) = millis(value, 100..=10_000) {
                        delivery.connect_timeout = d;
                    }
                }
                "rt" => {
                    if let Some(d) = millis(value, 100..=15_000) {
                        delivery.read_timeout = d;
                    }
                }
                "tt" => {
                    if let Some(d) = millis(value, 100..=15_000) {
                        delivery.total_timeout = d;
                    }
                }
                "rc" => {
                    if let Ok(n) = value.parse::<u32>() {
                        delivery.retries = n.min(5);
                    }
                }
                "rp" => {
                    let mut on = RetryOn {
                        connect: false,
                        read: false,
                        client_errors: false,
                        server_errors: false,
                    };
                    for policy in value.split(',') {
                        match policy.trim() {
                            "ct" => on.connect = true,
                            "rt" => on.read = true,
                            "4xx" => on.client_errors = true,
                            "5xx" => on.server_errors = true,
                            "all" => {
                                on = RetryOn {
                                    connect: true,
                                    read: true,
                                    client_errors: true,
                                    server_errors: true,
                                };
                            }
                            _ => {}
                        }
                    }
                    delivery.retry_on = on;
                }
                _ => {}
            }
        }
        (target, delivery)
    }
}

/// Wait before try number `attempt` (1 for the first retry): exponential from `base`, at most
/// `cap`, with jitter (half to all of it) so that retries of many jobs spread out.
pub fn retry_delay(attempt: u32, base: Duration, cap: Duration, random: f64) -> Duration {
    let exponential = base
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(cap);
    exponential.mul_f64(0.5 + 0.5 * random.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Twilio's webhook security documentation
    /// (twilio.com/docs/usage/security): AuthToken `12345`, this URL and these POST parameters
    /// are signed `GvWf1cFY/Q7PnoempGyD5oXAezc=`.
    #[test]
    fn signs_twilios_published_example() {
        let parameters: BTreeMap<String, String> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            signature("12345", url, Method::Post, &parameters),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
        // GET requests sign the URL alone: their parameters are in it.
        assert_ne!(
            signature("12345", url, Method::Get, &parameters),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
    }

    #[test]
    fn the_documented_job_round_trips() {
        let examples = crate::doc_examples("## Callback jobs");
        assert_eq!(examples.len(), 1);
        let job = CallbackJob::from_json(examples[0]).unwrap();
        let expected: serde_json::Value = serde_json::from_str(examples[0]).unwrap();
        assert_eq!(serde_json::to_value(&job).unwrap(), expected);
    }

    #[test]
    fn connection_overrides() {
        let url = WebhookUrl::trusted(
            "https://app.example.com/cb?x=1#ct=2000&rt=900&tt=12000&rc=5&rp=4xx,ct&e=ashburn"
                .into(),
        );
        let (target, delivery) = Delivery::of(&url);
        assert_eq!(target, "https://app.example.com/cb?x=1");
        assert_eq!(delivery.connect_timeout, Duration::from_millis(2000));
        assert_eq!(delivery.read_timeout, Duration::from_millis(900));
        assert_eq!(delivery.total_timeout, Duration::from_millis(12000));
        assert_eq!(delivery.retries, 5);
        assert_eq!(
            delivery.retry_on,
            RetryOn {
                connect: true,
                read: false,
                client_errors: true,
                server_errors: false
            }
        );
        let (_, clamped) = Delivery::of(&WebhookUrl::trusted(
            "https://a.example/#ct=1&rt=999999&rc=99&tt=x".into(),
        ));
        assert_eq!(clamped.connect_timeout, Duration::from_millis(100));
        assert_eq!(clamped.read_timeout, Duration::from_millis(15_000));
        assert_eq!(clamped.retries, 5);
        assert_eq!(clamped.total_timeout, Delivery::default().total_timeout);
        let (target, plain) = Delivery::of(&WebhookUrl::trusted("https://a.example/cb".into()));
        assert_eq!(
            (target.as_str(), plain),
            ("https://a.example/cb", Delivery::default())
        );
    }

    #[test]
    fn retry_delays_grow_and_stay_bounded() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(60);
        assert_eq!(retry_delay(1, base, cap, 1.0), Duration::from_secs(1));
        assert_eq!(retry_delay(3, base, cap, 1.0), Duration::from_secs(4));
        assert_eq!(retry_delay(3, base, cap, 0.0), Duration::from_secs(2));
        assert_eq!(retry_delay(30, base, cap, 1.0), cap);
    }
}
