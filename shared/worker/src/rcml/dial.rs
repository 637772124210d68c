//! `<Dial>` and its nouns.

use teleapi_domain::conference::{ConferenceCallback, ConferenceCallbackEvent};
use teleapi_domain::{AddressPolicy, Method, WebhookUrl};

use super::{Attributes, Noun, Warning};

/// Who a `<Dial>` calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// A new leg: E.164 number, `client:NAME` or a SIP URI.
    Leg(String),
    Conference(ConferenceNoun),
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
    })
}
