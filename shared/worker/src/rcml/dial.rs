//! `<Dial>` and its nouns.

use teleapi_domain::conference::{ConferenceCallback, ConferenceCallbackEvent};
use teleapi_domain::recording::{
    RecordingCallback, RecordingCallbackEvent, RecordingChannels, RecordingTrack, Trim,
};
use teleapi_domain::{AddressPolicy, Method, WebhookUrl};

use super::{Attributes, Noun, Warning, attribute, count};

/// `<Dial>`, with Twilio's attributes and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct DialVerb {
    pub target: DialTarget,
    /// Seconds each leg rings before it is given up on (`no-answer`).
    pub timeout: u32,
    /// Requested when the dial ends, with `DialCallStatus` and the rest; its answer runs next,
    /// in place of the verbs after `<Dial>`.
    pub action: Option<String>,
    pub method: Method,
    /// The dialled legs' `From`; the caller's own number if absent.
    pub caller_id: Option<String>,
    /// Seconds the dialled party may stay connected (Twilio's default: four hours).
    pub time_limit: u32,
    /// The caller is not answered until a dialled leg is (an inbound call, `<Dial>` first).
    pub answer_on_bridge: bool,
    /// The caller pressing `*` hangs up the dialled party and goes on.
    pub hangup_on_star: bool,
    pub record: Option<DialRecord>,
}

impl DialVerb {
    /// A dial with Twilio's defaults.
    pub fn to(target: DialTarget) -> Self {
        Self {
            target,
            timeout: 30,
            action: None,
            method: Method::Post,
            caller_id: None,
            time_limit: DEFAULT_TIME_LIMIT,
            answer_on_bridge: false,
            hangup_on_star: false,
            record: None,
        }
    }
}

/// Four hours, Twilio's default `timeLimit`; at most a day.
pub const DEFAULT_TIME_LIMIT: u32 = 4 * 3600;
const MAX_TIME_LIMIT: u32 = 24 * 3600;

/// `<Dial record>`: when the recording starts, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialRecord {
    /// `record-from-ringing*`: from the moment the legs ring, not from the answer.
    pub from_ringing: bool,
    /// `*-dual`: the caller and the called party on a channel each.
    pub channels: RecordingChannels,
    pub trim: Trim,
    pub track: RecordingTrack,
    pub status_callback: Option<RecordingCallback>,
}

/// Who a `<Dial>` calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// New legs (`<Number>`, `<Client>`, `<Sip>`, or a number as the verb's text), rung at
    /// once: the first to answer is connected and the others are hung up.
    Legs(Vec<DialLeg>),
    Conference(ConferenceNoun),
    /// The first caller waiting in a queue (or the next to arrive).
    Queue(super::queue::QueueNoun),
}

/// One leg a `<Dial>` rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialLeg {
    /// An E.164 number, `client:NAME` or a SIP URI.
    pub to: String,
    /// `sendDigits` (`<Number>`): DTMF sent once the leg answers (`w`: half a second).
    pub send_digits: Option<String>,
    /// `url` and `method`: RCML the called party runs once it answers, before it is connected
    /// (a whisper, or screening with `<Gather>`); it is connected when that RCML ends, and is
    /// not if it hangs up.
    pub url: Option<(String, Method)>,
}

impl DialLeg {
    pub fn to(to: &str) -> Self {
        Self {
            to: to.to_owned(),
            send_digits: None,
            url: None,
        }
    }
}

/// `<Dial>`: its attributes, and its nouns (a number as its text). None if it has nothing to
/// dial.
pub(super) fn dial(attrs: &mut Attributes, text: &str, nouns: Vec<Noun>) -> Option<DialVerb> {
    let timeout = attrs
        .read("timeout", 13212, |t| count(t).filter(|t| *t > 0))
        .unwrap_or(30);
    let mut legs = Vec::new();
    let mut conference_noun = None;
    let mut queue_noun = None;
    for noun in nouns {
        match noun.name.as_str() {
            "Conference" => conference_noun = conference(&noun, attrs.warnings),
            "Queue" => queue_noun = super::queue::queue(&noun, attrs.warnings),
            "Number" | "Client" | "Sip" => {
                legs.extend(leg(&noun, attrs.warnings));
            }
            other => attrs.warn(13215, format!("Invalid nested element <{other}>; ignored")),
        }
    }
    if legs.is_empty() && conference_noun.is_none() && !text.is_empty() {
        legs.push(DialLeg::to(text));
    }
    let target = match (conference_noun, queue_noun) {
        (Some(room), _) => DialTarget::Conference(room),
        (None, Some(queue)) => DialTarget::Queue(queue),
        (None, None) if legs.is_empty() => return None,
        (None, None) => DialTarget::Legs(legs),
    };
    let record = attrs
        .read("record", 13217, |value| match value {
            "true" | "record-from-answer" => Some(Some((false, RecordingChannels::Mono))),
            "record-from-ringing" => Some(Some((true, RecordingChannels::Mono))),
            "record-from-answer-dual" => Some(Some((false, RecordingChannels::Dual))),
            "record-from-ringing-dual" => Some(Some((true, RecordingChannels::Dual))),
            "false" | "do-not-record" => Some(None),
            _ => None,
        })
        .flatten()
        .map(|(from_ringing, channels)| DialRecord {
            from_ringing,
            channels,
            trim: attrs
                .read("trim", 13217, Trim::parse)
                .unwrap_or(Trim::TrimSilence),
            track: attrs
                .read("recordingTrack", 13217, RecordingTrack::parse)
                .unwrap_or(RecordingTrack::Both),
            status_callback: recording_callback(attrs, 13217),
        });
    Some(DialVerb {
        target,
        timeout,
        action: attrs.get("action"),
        method: attrs.method("method", 13210),
        caller_id: attrs.read("callerId", 13214, |id| {
            let number = id.strip_prefix('+').unwrap_or(id);
            let valid = (!number.is_empty()
                && number.len() <= 20
                && number.bytes().all(|b| b.is_ascii_digit()))
                || id
                    .strip_prefix("client:")
                    .is_some_and(|name| !name.is_empty() && name.len() <= 64)
                || (id.len() <= 256 && id.starts_with("sip:"));
            valid.then(|| id.to_owned())
        }),
        time_limit: attrs
            .read("timeLimit", 13216, |t| {
                count(t).filter(|t| (1..=MAX_TIME_LIMIT).contains(t))
            })
            .unwrap_or(DEFAULT_TIME_LIMIT),
        answer_on_bridge: attrs.flag("answerOnBridge", 13211, false),
        hangup_on_star: attrs.flag("hangupOnStar", 13213, false),
        record,
    })
}

/// `recordingStatusCallback`, its method and its events (`completed` unless told), of
/// `<Dial>` and `<Record>`.
pub(super) fn recording_callback(attrs: &mut Attributes, code: u32) -> Option<RecordingCallback> {
    let url = attrs.read("recordingStatusCallback", code, |value| {
        WebhookUrl::parse(
            value,
            AddressPolicy {
                allow_loopback: true,
            },
        )
        .ok()
    })?;
    let events: Vec<RecordingCallbackEvent> = attrs
        .get("recordingStatusCallbackEvent")
        .map(|events| {
            events
                .split([' ', ','])
                .filter_map(RecordingCallbackEvent::parse)
                .collect()
        })
        .filter(|events: &Vec<_>| !events.is_empty())
        .unwrap_or_else(|| vec![RecordingCallbackEvent::Completed]);
    Some(RecordingCallback {
        url,
        method: attrs.method("recordingStatusCallbackMethod", code),
        events,
    })
}

/// `<Number>`, `<Client>` or `<Sip>`; none (warned of, 13223) without an address.
fn leg(noun: &Noun, warnings: &mut Vec<Warning>) -> Option<DialLeg> {
    let element = format!("Dial->{}", noun.name);
    let mut attrs = Attributes {
        element: &element,
        start: Some(&noun.start),
        warnings,
    };
    if noun.text.is_empty() {
        attrs.warn(13223, "Invalid address: it is empty".into());
        return None;
    }
    let to = match noun.name.as_str() {
        "Client" => format!("client:{}", noun.text),
        _ => noun.text.clone(),
    };
    let send_digits = attrs.read("sendDigits", 13222, |digits| {
        (!digits.is_empty() && digits.len() <= 32)
            .then_some(digits)
            .filter(|d| d.chars().all(|c| c.is_ascii_digit() || "*#wW".contains(c)))
            .map(|d| d.to_ascii_lowercase())
    });
    let url = attribute(&noun.start, "url")
        .filter(|u| !u.trim().is_empty())
        .map(|u| (u.trim().to_owned(), attrs.method("method", 13221)));
    Some(DialLeg {
        to,
        send_digits,
        url,
    })
}

/// `<Conference>` and the attributes a worker honours (Twilio's names and defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConferenceNoun {
    /// The room's name: one running conference per account and name.
    pub name: String,
    pub muted: bool,
    pub start_conference_on_enter: bool,
    pub end_conference_on_exit: bool,
    /// `participantLabel`.
    pub label: Option<String>,
    /// `coach`: the CallSid of the participant this one coaches.
    pub coach: Option<String>,
    /// `statusCallback`, `statusCallbackMethod`, `statusCallbackEvent`: the room's, if this
    /// participant creates it.
    pub status_callback: Option<ConferenceCallback>,
    /// `waitUrl` and `waitMethod`: what the participant hears while the room waits to start.
    pub wait: Option<(WebhookUrl, Method)>,
    /// `beep`: the room beeps when this participant joins (`true`, `onEnter`), leaves (`true`,
    /// `onExit`), or neither (`false`).
    pub beep_on_enter: bool,
    pub beep_on_exit: bool,
    /// The sid the room gets if this participant creates it: not RCML's, the API's (a
    /// participant added by the room's name before it runs).
    pub sid: Option<teleapi_domain::ConferenceSid>,
}

impl ConferenceNoun {
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            muted: false,
            start_conference_on_enter: true,
            end_conference_on_exit: false,
            label: None,
            coach: None,
            status_callback: None,
            wait: None,
            beep_on_enter: true,
            beep_on_exit: true,
            sid: None,
        }
    }
}

/// `<Conference>`; none (warned of, 13237) without a name.
pub(super) fn conference(noun: &Noun, warnings: &mut Vec<Warning>) -> Option<ConferenceNoun> {
    let mut attrs = Attributes {
        element: "Dial->Conference",
        start: Some(&noun.start),
        warnings,
    };
    if noun.text.is_empty() {
        attrs.warn(13237, "Invalid conference name: it is empty".into());
        return None;
    }
    let url = |value: &str| {
        WebhookUrl::parse(
            value,
            AddressPolicy {
                allow_loopback: true,
            },
        )
        .ok()
    };
    let wait = attrs
        .read("waitUrl", 13233, url)
        .map(|url| (url, attrs.method("waitMethod", 13234)));
    let status_callback = attrs
        .get("statusCallback")
        .and_then(|value| url(&value))
        .map(|url| ConferenceCallback {
            url,
            method: attrs
                .get("statusCallbackMethod")
                .and_then(|m| Method::parse(&m))
                .unwrap_or_default(),
            events: attrs.get("statusCallbackEvent").map_or_else(
                || vec![ConferenceCallbackEvent::Start, ConferenceCallbackEvent::End],
                |events| {
                    events
                        .split([' ', ','])
                        .filter_map(ConferenceCallbackEvent::parse)
                        .collect()
                },
            ),
        });
    let (beep_on_enter, beep_on_exit) = attrs
        .read("beep", 12200, |value| match value {
            "true" => Some((true, true)),
            "false" => Some((false, false)),
            "onEnter" => Some((true, false)),
            "onExit" => Some((false, true)),
            _ => None,
        })
        .unwrap_or((true, true));
    Some(ConferenceNoun {
        name: noun.text.clone(),
        beep_on_enter,
        beep_on_exit,
        muted: attrs.flag("muted", 13230, false),
        start_conference_on_enter: attrs.flag("startConferenceOnEnter", 13232, true),
        end_conference_on_exit: attrs.flag("endConferenceOnExit", 13231, false),
        label: attrs.get("participantLabel"),
        coach: attrs.get("coach"),
        wait,
        status_callback,
        sid: None,
    })
}
