//! Creating an outgoing call (`POST …/Calls`): who is called, from whom, with which RCML, and the
//! call and `dial` intent that record it.

use crate::recording::{RECORDING_PARAMETERS, RecordingOptions, RecordingSource};
use crate::sid::RecordingSid;
use std::fmt;
use std::time::Duration;

use crate::call::MachineDetection;
use crate::call::shard_of;
use crate::call::{Call, CallStatus, Direction, Instructions};
use crate::call::{NewInstructions, Planned};
use crate::error::InvalidParameter;
use crate::form::Form;
use crate::intent::{Intent, IntentAction, IntentStatus};
use crate::params::{Params, conflict, invalid};
use crate::sid::{AccountSid, CallSid, IntentSid, shorten};
use crate::time::Timestamp;
use crate::webhook::{AddressPolicy, Method, StatusCallbackEvents, WebhookUrl};
use crate::wire::command::{COMMAND_VERSION, Command, CommandParameters, CommandType};
pub const CREATE_PARAMETERS: [&str; 28] = [
    "From",
    "To",
    "Url",
    "Method",
    "Twiml",
    "FallbackUrl",
    "FallbackMethod",
    "StatusCallback",
    "StatusCallbackMethod",
    "StatusCallbackEvent",
    "Timeout",
    "TimeLimit",
    "Record",
    "RecordingChannels",
    "RecordingTrack",
    "Trim",
    "RecordingStatusCallback",
    "RecordingStatusCallbackMethod",
    "RecordingStatusCallbackEvent",
    "SendDigits",
    "MachineDetection",
    "MachineDetectionTimeout",
    "MachineDetectionSpeechThreshold",
    "MachineDetectionSpeechEndThreshold",
    "MachineDetectionSilenceTimeout",
    "AsyncAmd",
    "AsyncAmdStatusCallback",
    "AsyncAmdStatusCallbackMethod",
];

/// Longest `SendDigits`.
pub const MAX_SEND_DIGITS: usize = 32;

/// How long to let the callee's phone ring, in seconds: Twilio's default and maximum.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 60;

pub const MAX_TIMEOUT_SECONDS: u32 = 600;

const MAX_CLIENT_NAME: usize = 121;

const MAX_SIP_URI: usize = 255;

/// Who a call is to or from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// E.164: `+` and 2 to 15 digits, the first not 0.
    Number(String),
    /// `client:NAME`, a registered client application.
    Client(String),
    /// `sip:user@host[:port][;params]` (or `sips:`).
    Sip(String),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(number) => f.write_str(number),
            Self::Client(name) => write!(f, "client:{name}"),
            Self::Sip(uri) => f.write_str(uri),
        }
    }
}

impl Endpoint {
    pub fn parse(value: &str) -> Option<Self> {
        if let Some(name) = value.strip_prefix("client:") {
            let valid = !name.is_empty()
                && name.len() <= MAX_CLIENT_NAME
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'@'));
            return valid.then(|| Self::Client(name.to_owned()));
        }
        let lower = value
            .get(..5)
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if lower.starts_with("sip:") || lower == "sips:" {
            return is_sip_uri(value).then(|| Self::Sip(value.to_owned()));
        }
        is_e164(value).then(|| Self::Number(value.to_owned()))
    }
}

fn is_e164(value: &str) -> bool {
    let Some(digits) = value.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// `sip:user@host[:port][;params][?headers]`: a user part, a host name or IP literal, an
/// optional port, and only URI characters.
fn is_sip_uri(value: &str) -> bool {
    if value.len() > MAX_SIP_URI || value.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return false;
    }
    let Some((_, rest)) = value.split_once(':') else {
        return false;
    };
    let address = rest.split([';', '?']).next().unwrap_or_default();
    let Some((user, host_port)) = address.rsplit_once('@') else {
        return false;
    };
    let user_ok = !user.is_empty()
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/%:".contains(&b));
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, rest)) if ip.parse::<std::net::Ipv6Addr>().is_ok() => {
                ("v6", rest.strip_prefix(':'))
            }
            _ => return false,
        },
        None => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    let host_ok = host == "v6"
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            }));
    let port_ok = port.is_none_or(|p| {
        p.parse::<u16>().is_ok_and(|p| p > 0) && p.bytes().all(|b| b.is_ascii_digit())
    });
    user_ok && host_ok && port_ok
}

/// A valid request to create a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub from: Endpoint,
    pub to: Endpoint,
    pub instructions: NewInstructions,
    pub fallback: Option<(WebhookUrl, Method)>,
    pub status_callback: Option<(WebhookUrl, Method)>,
    pub status_callback_events: StatusCallbackEvents,
    pub timeout: u32,
    pub time_limit: Option<u32>,
    /// `Record=true`: record the call from answer, so.
    pub record: Option<RecordingOptions>,
    /// DTMF to play once the call is answered: `0-9 * #`, `w` for half a second's wait.
    pub send_digits: Option<String>,
    /// `MachineDetection` and its tuning: who answered, a person or a machine.
    pub machine_detection: Option<MachineDetection>,
}

impl CreateRequest {
    pub fn parse(form: &Form, policy: AddressPolicy) -> Result<Self, InvalidParameter> {
        let raw = Params::collect(
            form,
            &CREATE_PARAMETERS,
            &["StatusCallbackEvent", "RecordingStatusCallbackEvent"],
        )?;
        let record = match raw.boolean("Record")? {
            Some(true) => Some(RecordingOptions::read(&raw, policy)?),
            _ => match RECORDING_PARAMETERS.into_iter().find(|name| raw.has(name)) {
                Some(name) => {
                    return Err(conflict(
                        name,
                        format!("{name} says how to record the call; give it with Record=true"),
                    ));
                }
                None => None,
            },
        };
        let endpoint =
            |name: &str, allowed: &str, sip: bool| -> Result<Endpoint, InvalidParameter> {
                let value = raw.required(name)?;
                match Endpoint::parse(value) {
                    Some(Endpoint::Sip(_)) if !sip => None,
                    other => other,
                }
                .ok_or_else(|| {
                    invalid(
                        name,
                        format!("{name} '{}' is not {allowed}", shorten(value)),
                    )
                })
            };
        let to = endpoint(
            "To",
            "an E.164 number (+15551230002), client:NAME or a sip: URI (sip:alice@example.com)",
            true,
        )?;
        let from = endpoint(
            "From",
            "an E.164 number (+15551230001) or client:NAME",
            false,
        )?;
        let url = raw.url("Url", policy)?;
        let method = raw.method("Method", "Url")?;
        let twiml = raw.twiml()?;
        let instructions = match (url, twiml) {
            (Some(_), Some(_)) => {
                return Err(conflict("Twiml", "Give Url or Twiml, not both".into()));
            }
            (Some(url), None) => NewInstructions::Fetch {
                url,
                method: method.unwrap_or_default(),
            },
            (None, Some(rcml)) => NewInstructions::Inline(rcml),
            (None, None) => {
                return Err(InvalidParameter::new(
                    "Url",
                    crate::error::ProblemKind::Missing,
                    "Url or Twiml is required: the RCML the call runs when answered".into(),
                ));
            }
        };
        Ok(Self {
            from,
            to,
            instructions,
            fallback: raw.webhook("FallbackUrl", "FallbackMethod", policy)?,
            status_callback: raw.webhook("StatusCallback", "StatusCallbackMethod", policy)?,
            status_callback_events: raw.events()?.unwrap_or_default(),
            timeout: raw
                .integer("Timeout", 1..=MAX_TIMEOUT_SECONDS, "of seconds ")?
                .unwrap_or(DEFAULT_TIMEOUT_SECONDS),
            time_limit: raw.time_limit()?,
            record,
            machine_detection: MachineDetection::read(&raw, policy)?,
            send_digits: raw
                .get("SendDigits")
                .map(|digits| {
                    let valid = !digits.is_empty()
                        && digits.len() <= MAX_SEND_DIGITS
                        && digits.bytes().all(|b| b.is_ascii_digit() || b"*#wW".contains(&b));
                    if valid {
                        Ok(digits.to_ascii_lowercase())
                    } else {
                        Err(invalid(
                            "SendDigits",
                            format!(
                                "SendDigits must be 1 to {MAX_SEND_DIGITS} of 0-9, *, # and w (a half-second wait), not '{}'",
                                shorten(digits)
                            ),
                        ))
                    }
                })
                .transpose()?,
        })
    }

    /// Canonical parameters, defaults filled in: what the intent records and idempotency compares.
    pub fn parameters(&self) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        let mut put = |name: &str, value: String| {
            out.insert(name.to_owned(), value);
        };
        put("From", self.from.to_string());
        put("To", self.to.to_string());
        match &self.instructions {
            NewInstructions::Fetch { url, method } => {
                put("Url", url.to_string());
                put("Method", method.as_str().into());
            }
            NewInstructions::Inline(rcml) => put("Twiml", rcml.as_str().into()),
        }
        if let Some((url, method)) = &self.fallback {
            put("FallbackUrl", url.to_string());
            put("FallbackMethod", method.as_str().into());
        }
        if let Some((url, method)) = &self.status_callback {
            put("StatusCallback", url.to_string());
            put("StatusCallbackMethod", method.as_str().into());
        }
        let events: Vec<&str> = self
            .status_callback_events
            .iter()
            .map(|e| e.as_str())
            .collect();
        put("StatusCallbackEvent", events.join(" "));
        put("Timeout", self.timeout.to_string());
        if let Some(limit) = self.time_limit {
            put("TimeLimit", limit.to_string());
        }
        if let Some(record) = &self.record {
            put("Record", "true".into());
            out.extend(record.parameters());
        }
        if let Some(digits) = &self.send_digits {
            out.insert("SendDigits".into(), digits.clone());
        }
        if let Some(detection) = &self.machine_detection {
            out.extend(detection.parameters());
        }
        out
    }
}

/// The new call (queued, outbound-api) and its first intent, `dial`, with the command for the
/// default commands queue.
pub fn plan_create(
    request: &CreateRequest,
    account_sid: AccountSid,
    listing_shards: u8,
    call_sid: CallSid,
    intent_sid: IntentSid,
    now: Timestamp,
    retention: Duration,
) -> Planned {
    let (url, method, rcml) = match &request.instructions {
        NewInstructions::Fetch { url, method } => (Some(url.clone()), *method, None),
        NewInstructions::Inline(rcml) => (None, Method::default(), Some(rcml.clone())),
    };
    let mut instructions = Instructions {
        url: url.clone(),
        method,
        status_callback_events: request.status_callback_events,
        time_limit: request.time_limit,
        ..Instructions::default()
    };
    if let Some((url, method)) = &request.fallback {
        instructions.fallback_url = Some(url.clone());
        instructions.fallback_method = *method;
    }
    if let Some((url, method)) = &request.status_callback {
        instructions.status_callback = Some(url.clone());
        instructions.status_callback_method = *method;
    }
    let call = Call {
        sid: call_sid.clone(),
        account_sid: account_sid.clone(),
        parent_call_sid: None,
        from: request.from.to_string(),
        to: request.to.to_string(),
        direction: Direction::OutboundApi,
        status: CallStatus::Queued,
        muted: false,
        instructions,
        command_queue: None,
        worker: None,
        seq: 1,
        version: 1,
        event_seq: 0,
        callback_seq: 0,
        end_reported: false,
        date_created: now,
        date_updated: now,
        start_time: None,
        end_time: None,
        duration: None,
        listing_shard: shard_of(&call_sid, listing_shards),
        recording: request.record.as_ref().map(|_| RecordingSid::generate()),
        streams: Vec::new(),
        answered_by: None,
        queue: None,
    };
    let recording = request
        .record
        .as_ref()
        .zip(call.recording.clone())
        .map(|(options, sid)| Box::new(options.spec(sid, RecordingSource::OutboundApi)));
    let command = Command {
        version: COMMAND_VERSION,
        kind: CommandType::Dial,
        call_sid: call_sid.clone(),
        account_sid: account_sid.clone(),
        intent_sid: intent_sid.clone(),
        seq: 1,
        parameters: CommandParameters {
            from: Some(call.from.clone()),
            to: Some(call.to.clone()),
            url,
            method: request_method(&request.instructions),
            rcml,
            timeout: Some(request.timeout),
            time_limit: request.time_limit,
            recording,
            send_digits: request.send_digits.clone(),
            machine_detection: request.machine_detection.clone().map(Box::new),
            ..CommandParameters::default()
        },
    };
    let intent = Intent {
        sid: intent_sid,
        subject: call_sid.into(),
        account_sid,
        seq: 1,
        action: IntentAction::Dial,
        parameters: request.parameters(),
        status: IntentStatus::Pending,
        reason: None,
        command: Some(command.into()),
        queue: None,
        date_created: now,
        date_updated: now,
        expires_at: now.plus(retention).whole_seconds(),
    };
    Planned { call, intent }
}

fn request_method(instructions: &NewInstructions) -> Option<Method> {
    match instructions {
        NewInstructions::Fetch { method, .. } => Some(*method),
        NewInstructions::Inline(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        for (value, expected) in [
            (
                "+15551230002",
                Some(Endpoint::Number("+15551230002".into())),
            ),
            ("+44", Some(Endpoint::Number("+44".into()))),
            ("client:bob", Some(Endpoint::Client("bob".into()))),
            (
                "client:agent_7.desk-2@acme",
                Some(Endpoint::Client("agent_7.desk-2@acme".into())),
            ),
            (
                "sip:alice@example.com",
                Some(Endpoint::Sip("sip:alice@example.com".into())),
            ),
            (
                "sip:alice@127.0.0.1:5080;transport=tcp",
                Some(Endpoint::Sip(
                    "sip:alice@127.0.0.1:5080;transport=tcp".into(),
                )),
            ),
            (
                "SIPS:alice@[2001:db8::1]:5061",
                Some(Endpoint::Sip("SIPS:alice@[2001:db8::1]:5061".into())),
            ),
            (
                "sip:%2B1555@gw.example.com",
                Some(Endpoint::Sip("sip:%2B1555@gw.example.com".into())),
            ),
            ("15551230002", None),
            ("+0123", None),
            ("+1", None),
            ("+1234567890123456", None),
            ("+1 555 123", None),
            ("client:", None),
            ("client:bob smith", None),
            ("client:bob/../x", None),
            ("sip:example.com", None),
            ("sip:@example.com", None),
            ("sip:alice@", None),
            ("sip:alice@exa mple.com", None),
            ("sip:alice@-bad-.com", None),
            ("sip:alice@example.com:0", None),
            ("sip:alice@example.com:99999", None),
            ("sip:alice@[not-v6]", None),
            ("tel:+15551230002", None),
            ("", None),
        ] {
            assert_eq!(Endpoint::parse(value), expected, "{value:?}");
        }
    }

    fn parse(body: &str) -> Result<CreateRequest, InvalidParameter> {
        CreateRequest::parse(
            &Form::parse(body.as_bytes()).unwrap(),
            AddressPolicy::default(),
        )
    }

    #[test]
    fn create_rules() {
        let ok = parse("From=%2B15551230001&To=client:bob&Url=https://a.example/conf").unwrap();
        assert_eq!(ok.timeout, 60);
        assert_eq!(ok.status_callback_events, StatusCallbackEvents::default());
        assert_eq!(ok.to, Endpoint::Client("bob".into()));
        for (body, parameter) in [
            ("To=client:bob&Url=https://a.example/x", "From"),
            ("From=%2B15551230001&Url=https://a.example/x", "To"),
            ("From=%2B15551230001&To=client:bob", "Url"),
            ("From=%2B15551230001&To=bob&Url=https://a.example/x", "To"),
            (
                "From=sip:a@b.example&To=client:bob&Url=https://a.example/x",
                "From",
            ),
            (
                "From=%2B15551230001&To=client:bob&Url=https://a.example/x&Twiml=%3CResponse%2F%3E",
                "Twiml",
            ),
            (
                "From=%2B15551230001&To=client:bob&Url=https://a.example/x&Timeout=0",
                "Timeout",
            ),
            (
                "From=%2B15551230001&To=client:bob&Url=https://a.example/x&Timeout=601",
                "Timeout",
            ),
            (
                "From=%2B15551230001&To=client:bob&Url=https://a.example/x&Mute=true",
                "Mute",
            ),
        ] {
            assert_eq!(parse(body).unwrap_err().parameter, parameter, "{body}");
        }
    }

    #[test]
    fn a_created_call_is_queued_with_a_dial_intent() {
        let request = parse("From=%2B15551230001&To=sip:carol@pbx.example.com&Url=https://a.example/c&Method=GET&Timeout=30&TimeLimit=600").unwrap();
        let now = Timestamp::from_millis(5_000);
        let planned = plan_create(
            &request,
            AccountSid::generate(),
            1,
            CallSid::generate(),
            IntentSid::generate(),
            now,
            Duration::from_secs(10),
        );
        assert_eq!(planned.call.status, CallStatus::Queued);
        assert_eq!(planned.call.direction, Direction::OutboundApi);
        assert_eq!((planned.call.seq, planned.intent.seq), (1, 1));
        assert_eq!(planned.intent.action, IntentAction::Dial);
        let command = planned.intent.command.unwrap().into_call().unwrap();
        assert_eq!(command.kind, CommandType::Dial);
        assert_eq!(
            command.parameters.to.as_deref(),
            Some("sip:carol@pbx.example.com")
        );
        assert_eq!(command.parameters.method, Some(Method::Get));
        assert_eq!(
            (command.parameters.timeout, command.parameters.time_limit),
            (Some(30), Some(600))
        );
    }
}
