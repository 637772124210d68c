//! The RCML the simulator understands: the verbs a call-transfer demo needs, parsed into a
//! program. Unknown verbs are skipped, as a lenient media server would.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use teleapi::domain::conference::{ConferenceCallback, ConferenceCallbackEvent};
use teleapi::domain::{AddressPolicy, Method, Rcml, WebhookUrl};

/// Who a `<Dial>` calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// A new leg: E.164 number, `client:NAME` or a SIP URI.
    Leg(String),
    Conference(ConferenceNoun),
}

/// `<Conference>` and the attributes the simulator honours (Twilio's names and defaults).
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
        }
    }
}

/// A noun inside a verb: its name, its text, its attributes and its `<Parameter>`s.
struct Noun {
    name: String,
    text: String,
    start: BytesStart<'static>,
    parameters: Vec<(String, String)>,
}

/// `<Stream>` (in `<Start>` or `<Connect>`), with Twilio's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamNoun {
    pub url: String,
    pub name: Option<String>,
    /// `inbound_track` (default), `outbound_track`, `both_tracks`.
    pub track: String,
    pub status_callback: Option<(String, Method)>,
    /// `<Parameter name value/>`s, in order.
    pub parameters: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verb {
    /// Say, Play and Pause: the call is busy for this many (unscaled) seconds.
    Speak {
        seconds: f64,
    },
    Dial {
        target: DialTarget,
        timeout: u32,
    },
    Redirect {
        url: String,
        method: Method,
    },
    Hangup,
    Reject {
        busy: bool,
    },
    /// `<Start><Stream>`: fork the call's audio, and go on.
    StartStream(StreamNoun),
    /// `<Stop><Stream name>`: stop the stream of that name (or sid).
    StopStream {
        name: String,
    },
    /// `<Connect><Stream>`: a bidirectional stream; the document goes on when it closes.
    ConnectStream(StreamNoun),
    /// `<Play digits="…">`: DTMF to the caller (`w`: half a second's wait).
    PlayDigits(String),
    /// `<Gather>` (DTMF): collects pressed digits until `num_digits`, `finish_on_key` or
    /// `timeout` seconds without one, then requests `action` (the current document's URL if
    /// absent) with `Digits`; with nothing pressed, the document goes on.
    Gather(GatherVerb),
}

#[derive(Debug, Clone, PartialEq)]
pub struct GatherVerb {
    pub action: Option<String>,
    pub method: Method,
    pub num_digits: Option<usize>,
    /// `#` unless told otherwise; empty for none.
    pub finish_on_key: String,
    pub timeout: f64,
}

fn attribute(start: &BytesStart<'_>, name: &str) -> Option<String> {
    start
        .attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name.as_bytes())
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

/// Seconds `<Say>` takes: about two and a half words a second, at least one second.
fn speaking_time(text: &str) -> f64 {
    (text.split_whitespace().count() as f64 / 2.5).max(1.0)
}

/// The verbs of a document, in order.
/// The verbs of `document`, and the names of those it skips (unknown verbs, and verbs without
/// what they need), which a worker reports as warnings (12200).
pub fn parse(document: &str) -> Result<(Vec<Verb>, Vec<String>), String> {
    Rcml::parse(document.trim()).map_err(|e| e.to_string())?;
    let mut reader = Reader::from_str(document.trim());
    let mut verbs = Vec::new();
    let mut skipped = Vec::new();
    // The verb being read (depth 1), its attributes, and the text and nouns inside it.
    let mut current: Option<(String, Option<BytesStart<'static>>)> = None;
    let mut text = String::new();
    let mut noun: Option<Noun> = None;
    let mut noun_start: Option<BytesStart<'static>> = None;
    let mut parameters: Vec<(String, String)> = Vec::new();
    let mut depth = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        match event {
            Event::Start(start) => {
                depth += 1;
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                match depth {
                    2 => {
                        current = Some((name, Some(start.into_owned())));
                        text.clear();
                        noun = None;
                    }
                    3 => {
                        noun_start = Some(start.into_owned());
                        text.clear();
                        parameters.clear();
                    }
                    4 if start.name().as_ref() == b"Parameter" => {
                        parameters.push(parameter(&start));
                    }
                    _ => {}
                }
            }
            // A noun with no content (`<Stream url="…"/>`), and a noun's `<Parameter/>`s.
            Event::Empty(start) if depth == 2 => {
                noun = Some(Noun {
                    name: String::from_utf8_lossy(start.name().as_ref()).into_owned(),
                    text: String::new(),
                    start: start.into_owned(),
                    parameters: Vec::new(),
                });
            }
            Event::Empty(start) if depth == 3 && start.name().as_ref() == b"Parameter" => {
                parameters.push(parameter(&start));
            }
            Event::Empty(start) if depth == 1 => {
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                match verb(&name, Some(&start), "", None) {
                    Some(verb) => verbs.push(verb),
                    None => skipped.push(name),
                }
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
            Event::GeneralRef(r) => {
                let resolved = match r.as_ref() {
                    b"amp" => "&",
                    b"lt" => "<",
                    b"gt" => ">",
                    b"quot" => "\"",
                    b"apos" => "'",
                    _ => "",
                };
                text.push_str(resolved);
            }
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::End(_) => {
                match depth {
                    3 => {
                        if let Some(start) = noun_start.take() {
                            noun = Some(Noun {
                                name: String::from_utf8_lossy(start.name().as_ref()).into_owned(),
                                text: text.trim().to_owned(),
                                start,
                                parameters: std::mem::take(&mut parameters),
                            });
                        }
                    }
                    2 => {
                        if let Some((name, start)) = current.take() {
                            match verb(&name, start.as_ref(), text.trim(), noun.take()) {
                                Some(verb) => verbs.push(verb),
                                None => skipped.push(name),
                            }
                        }
                    }
                    _ => {}
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok((verbs, skipped))
}

fn verb(
    name: &str,
    start: Option<&BytesStart<'_>>,
    text: &str,
    noun: Option<Noun>,
) -> Option<Verb> {
    let attr = |n: &str| start.and_then(|s| attribute(s, n));
    match name {
        "Say" => {
            let loops: f64 = attr("loop").and_then(|l| l.parse().ok()).unwrap_or(1.0);
            Some(Verb::Speak {
                seconds: speaking_time(text) * loops.max(1.0),
            })
        }
        "Play" if attr("digits").is_some() => {
            let digits: String = attr("digits")
                .unwrap_or_default()
                .chars()
                .filter(|c| c.is_ascii_digit() || "*#wW".contains(*c))
                .map(|c| c.to_ascii_lowercase())
                .collect();
            Some(Verb::PlayDigits(digits))
        }
        "Gather" => Some(Verb::Gather(GatherVerb {
            action: attr("action"),
            method: attr("method")
                .and_then(|m| Method::parse(&m))
                .unwrap_or_default(),
            num_digits: attr("numDigits")
                .and_then(|n| n.parse().ok())
                .filter(|n| *n > 0),
            finish_on_key: attr("finishOnKey").unwrap_or_else(|| "#".into()),
            timeout: attr("timeout").and_then(|t| t.parse().ok()).unwrap_or(5.0),
        })),
        "Play" => {
            // loop="0" plays until something else happens.
            let loops: f64 = attr("loop").and_then(|l| l.parse().ok()).unwrap_or(1.0);
            let seconds = if loops == 0.0 { 3600.0 } else { 2.0 * loops };
            Some(Verb::Speak { seconds })
        }
        "Pause" => Some(Verb::Speak {
            seconds: attr("length").and_then(|l| l.parse().ok()).unwrap_or(1.0),
        }),
        "Dial" => {
            let timeout = attr("timeout").and_then(|t| t.parse().ok()).unwrap_or(30);
            let target = match noun {
                Some(noun) => match noun.name.as_str() {
                    "Conference" => DialTarget::Conference(conference(&noun)),
                    "Client" => DialTarget::Leg(format!("client:{}", noun.text)),
                    _ => DialTarget::Leg(noun.text),
                },
                None if !text.is_empty() => DialTarget::Leg(text.to_owned()),
                None => return None,
            };
            Some(Verb::Dial { target, timeout })
        }
        "Redirect" => Some(Verb::Redirect {
            url: text.to_owned(),
            method: attr("method")
                .and_then(|m| Method::parse(&m))
                .unwrap_or_default(),
        }),
        "Start" => noun
            .filter(|n| n.name == "Stream")
            .and_then(|n| stream(&n))
            .map(Verb::StartStream),
        "Connect" => noun
            .filter(|n| n.name == "Stream")
            .and_then(|n| stream(&n))
            .map(Verb::ConnectStream),
        "Stop" => noun.filter(|n| n.name == "Stream").and_then(|n| {
            let attr = |name: &str| attribute(&n.start, name);
            attr("name")
                .or_else(|| attr("url"))
                .map(|name| Verb::StopStream { name })
        }),
        "Hangup" => Some(Verb::Hangup),
        "Reject" => Some(Verb::Reject {
            busy: attr("reason").as_deref() == Some("busy"),
        }),
        _ => None,
    }
}

fn parameter(start: &BytesStart<'_>) -> (String, String) {
    (
        attribute(start, "name").unwrap_or_default(),
        attribute(start, "value").unwrap_or_default(),
    )
}

fn stream(noun: &Noun) -> Option<StreamNoun> {
    let attr = |name: &str| attribute(&noun.start, name);
    Some(StreamNoun {
        url: attr("url")?,
        name: attr("name"),
        track: attr("track").unwrap_or_else(|| "inbound_track".into()),
        status_callback: attr("statusCallback").map(|url| {
            let method = attr("statusCallbackMethod").and_then(|m| Method::parse(&m));
            (url, method.unwrap_or_default())
        }),
        parameters: noun.parameters.clone(),
    })
}

fn conference(noun: &Noun) -> ConferenceNoun {
    let attr = |name: &str| attribute(&noun.start, name);
    let flag =
        |name: &str, default: bool| attr(name).map_or(default, |v| v.eq_ignore_ascii_case("true"));
    ConferenceNoun {
        name: noun.text.clone(),
        muted: flag("muted", false),
        start_conference_on_enter: flag("startConferenceOnEnter", true),
        end_conference_on_exit: flag("endConferenceOnExit", false),
        label: attr("participantLabel"),
        coach: attr("coach"),
        wait: attr("waitUrl")
            .and_then(|url| {
                WebhookUrl::parse(
                    &url,
                    AddressPolicy {
                        allow_loopback: true,
                    },
                )
                .ok()
            })
            .map(|url| {
                let method = attr("waitMethod").and_then(|m| Method::parse(&m));
                (url, method.unwrap_or_default())
            }),
        status_callback: attr("statusCallback")
            .and_then(|url| {
                WebhookUrl::parse(
                    &url,
                    AddressPolicy {
                        allow_loopback: true,
                    },
                )
                .ok()
            })
            .map(|url| ConferenceCallback {
                url,
                method: attr("statusCallbackMethod")
                    .and_then(|m| Method::parse(&m))
                    .unwrap_or_default(),
                events: attr("statusCallbackEvent").map_or_else(
                    || vec![ConferenceCallbackEvent::Start, ConferenceCallbackEvent::End],
                    |events| {
                        events
                            .split([' ', ','])
                            .filter_map(ConferenceCallbackEvent::parse)
                            .collect()
                    },
                ),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_demo_verbs() {
        let document = r#"<?xml version="1.0"?>
            <Response>
              <Say>Please hold while we connect you</Say>
              <Pause length="2"/>
              <Play loop="2">https://app.example.com/hold.mp3</Play>
              <Dial timeout="20"><Client>bob</Client></Dial>
              <Dial><Sip>sip:carol@pbx.example.com</Sip></Dial>
              <Dial>+15557654321</Dial>
              <Dial><Conference>room-1</Conference></Dial>
              <Dial><Conference muted="true" startConferenceOnEnter="false" endConferenceOnExit="true" participantLabel="agent" coach="CA0123456789abcdef0123456789abcdef" statusCallback="https://app.example.com/conference" statusCallbackMethod="GET" statusCallbackEvent="join leave,mute">room-2</Conference></Dial>
              <Redirect method="GET">https://app.example.com/next?a=1&amp;b=2</Redirect>
              <Gather numDigits="4" action="/pin" timeout="10"><Say>Your PIN</Say></Gather>
              <Play digits="12w#"/>
              <Reject reason="busy"/>
              <Hangup/>
            </Response>"#;
        let (verbs, skipped) = parse(document).unwrap();
        assert_eq!(skipped, Vec::<String>::new(), "every verb is run");
        assert_eq!(
            verbs,
            [
                Verb::Speak { seconds: 2.4 },
                Verb::Speak { seconds: 2.0 },
                Verb::Speak { seconds: 4.0 },
                Verb::Dial {
                    target: DialTarget::Leg("client:bob".into()),
                    timeout: 20
                },
                Verb::Dial {
                    target: DialTarget::Leg("sip:carol@pbx.example.com".into()),
                    timeout: 30
                },
                Verb::Dial {
                    target: DialTarget::Leg("+15557654321".into()),
                    timeout: 30
                },
                Verb::Dial {
                    target: DialTarget::Conference(ConferenceNoun::named("room-1")),
                    timeout: 30
                },
                Verb::Dial {
                    target: DialTarget::Conference(ConferenceNoun {
                        name: "room-2".into(),
                        muted: true,
                        start_conference_on_enter: false,
                        end_conference_on_exit: true,
                        label: Some("agent".into()),
                        coach: Some("CA0123456789abcdef0123456789abcdef".into()),
                        status_callback: Some(ConferenceCallback {
                            url: WebhookUrl::parse(
                                "https://app.example.com/conference",
                                AddressPolicy::default(),
                            )
                            .unwrap(),
                            method: Method::Get,
                            events: vec![
                                ConferenceCallbackEvent::Join,
                                ConferenceCallbackEvent::Leave,
                                ConferenceCallbackEvent::Mute,
                            ],
                        }),
                        wait: None,
                    }),
                    timeout: 30
                },
                Verb::Redirect {
                    url: "https://app.example.com/next?a=1&b=2".into(),
                    method: Method::Get
                },
                Verb::Gather(GatherVerb {
                    action: Some("/pin".into()),
                    method: Method::Post,
                    num_digits: Some(4),
                    finish_on_key: "#".into(),
                    timeout: 10.0,
                }),
                Verb::PlayDigits("12w#".into()),
                Verb::Reject { busy: true },
                Verb::Hangup,
            ]
        );
        assert!(parse("<Response><Say>unclosed</Response>").is_err());
        assert!(parse("not xml").is_err());
        assert_eq!(parse("<Response/>").unwrap(), (vec![], vec![]));
        let (verbs, skipped) =
            parse("<Response><Sya>typo</Sya><Hangup/><Frobnicate/></Response>").unwrap();
        assert_eq!(verbs, [Verb::Hangup]);
        assert_eq!(
            skipped,
            ["Sya", "Frobnicate"],
            "what a worker warns of (12200)"
        );
    }
}
