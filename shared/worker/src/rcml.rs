//! The RCML a worker runs, parsed into a program of verbs. Unknown verbs are skipped and
//! attributes with values a verb does not take fall back to their defaults, as a lenient media
//! server would; each is a warning with Twilio's code.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use teleapi_domain::conference::{ConferenceCallback, ConferenceCallbackEvent};
use teleapi_domain::{AddressPolicy, Method, Rcml, WebhookUrl};

use crate::media::Prompt;

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
    /// `<Say>`, `<Play>` (a URL or `digits`) and `<Pause>`: the call hears it to its end.
    Prompt(Prompt),
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
    /// `<Gather>` (DTMF): collects pressed digits until `num_digits`, `finish_on_key` or
    /// `timeout` seconds without one, then requests `action` (the current document's URL if
    /// absent) with `Digits`; with nothing pressed, the document goes on.
    Gather(GatherVerb),
}

#[derive(Debug, Clone, PartialEq)]
pub struct GatherVerb {
    /// What the caller hears first (a nested `<Say>`, `<Play>` or `<Pause>`); the first key
    /// pressed stops it, and the timeout runs from its end.
    pub prompt: Option<Prompt>,
    pub action: Option<String>,
    pub method: Method,
    pub num_digits: Option<usize>,
    /// `#` unless told otherwise; empty for none.
    pub finish_on_key: String,
    pub timeout: f64,
}

/// Something in a document the worker carried on after: a verb it skipped (12200), or an
/// attribute whose value the verb does not take (13xxx, Twilio's codes), used as absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub code: u32,
    pub message: String,
}

impl Warning {
    fn skipped(verb: &str) -> Self {
        Self {
            code: 12200,
            message: format!("<{verb}> is not a verb the worker runs; it was skipped"),
        }
    }
}

/// A verb's (or noun's) attributes, read with the warnings for values it does not take.
struct Attributes<'a, 'w> {
    element: &'a str,
    start: Option<&'a BytesStart<'a>>,
    warnings: &'w mut Vec<Warning>,
}

impl Attributes<'_, '_> {
    fn get(&self, name: &str) -> Option<String> {
        self.start.and_then(|s| attribute(s, name))
    }

    /// The attribute as `read` takes it; absent if it is not there, or if `read` refuses it,
    /// which is warned of with `code` (Twilio's "<element>: Invalid <name> value").
    fn read<T>(
        &mut self,
        name: &str,
        code: u32,
        read: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let value = self.get(name)?;
        let taken = read(value.trim());
        if taken.is_none() {
            self.warn(
                code,
                format!("Invalid {name} value {value:?}; the default is used"),
            );
        }
        taken
    }

    fn method(&mut self, name: &str, code: u32) -> Method {
        self.read(name, code, Method::parse).unwrap_or_default()
    }

    fn flag(&mut self, name: &str, code: u32, default: bool) -> bool {
        self.read(name, code, |v| {
            if v.eq_ignore_ascii_case("true") {
                Some(true)
            } else if v.eq_ignore_ascii_case("false") {
                Some(false)
            } else {
                None
            }
        })
        .unwrap_or(default)
    }

    fn warn(&mut self, code: u32, detail: String) {
        self.warnings.push(Warning {
            code,
            message: format!("{}: {detail}", self.element),
        });
    }
}

/// A count (`loop`, `numDigits`, `timeout` in whole seconds): digits only.
fn count(value: &str) -> Option<u32> {
    value.parse().ok()
}

fn attribute(start: &BytesStart<'_>, name: &str) -> Option<String> {
    start
        .attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name.as_bytes())
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

/// The verbs of `document`, in order, and what a worker warns of while reading it: the verbs it
/// skips (unknown ones, and those without what they need) and the attributes it ignores.
pub fn parse(document: &str) -> Result<(Vec<Verb>, Vec<Warning>), String> {
    Rcml::parse(document.trim()).map_err(|e| e.to_string())?;
    let mut reader = Reader::from_str(document.trim());
    let mut verbs = Vec::new();
    let mut warnings = Vec::new();
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
                verbs.extend(verb(&name, Some(&start), "", None, &mut warnings));
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
                            let read = verb(
                                &name,
                                start.as_ref(),
                                text.trim(),
                                noun.take(),
                                &mut warnings,
                            );
                            verbs.extend(read);
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
    Ok((verbs, warnings))
}

/// The verb `name` as the worker runs it; none if it skips it, with a warning (12200, or the
/// 13xxx of what it lacks).
fn verb(
    name: &str,
    start: Option<&BytesStart<'_>>,
    text: &str,
    noun: Option<Noun>,
    warnings: &mut Vec<Warning>,
) -> Option<Verb> {
    let before = warnings.len();
    let mut attrs = Attributes {
        element: name,
        start,
        warnings,
    };
    let verb = read_verb(name, &mut attrs, text, noun);
    if verb.is_none() && warnings.len() == before {
        warnings.push(Warning::skipped(name));
    }
    verb
}

fn read_verb(name: &str, attrs: &mut Attributes, text: &str, noun: Option<Noun>) -> Option<Verb> {
    match name {
        "Say" => {
            let loops = attrs.read("loop", 13510, count).unwrap_or(1);
            if text.is_empty() {
                attrs.warn(13520, "Invalid text: there is nothing to say".into());
                return None;
            }
            Some(Verb::Prompt(Prompt::Say {
                text: text.to_owned(),
                voice: attrs.get("voice"),
                language: attrs.get("language"),
                loops: loops.max(1),
            }))
        }
        "Play" if attrs.get("digits").is_some() => {
            let digits: String = attrs
                .get("digits")
                .unwrap_or_default()
                .chars()
                .filter(|c| c.is_ascii_digit() || "*#wW".contains(*c))
                .map(|c| c.to_ascii_lowercase())
                .collect();
            Some(Verb::Prompt(Prompt::Digits(digits)))
        }
        "Gather" => {
            let prompt = match noun {
                Some(nested) if matches!(nested.name.as_str(), "Say" | "Play" | "Pause") => {
                    nested_prompt(&nested)
                }
                Some(nested) => {
                    let nested = &nested.name;
                    attrs.warn(
                        13320,
                        format!("Invalid nested verb <{nested}>; it is ignored"),
                    );
                    None
                }
                None => None,
            };
            Some(Verb::Gather(GatherVerb {
                prompt,
                action: attrs.get("action"),
                method: attrs.method("method", 13312),
                num_digits: attrs
                    .read("numDigits", 13314, |n| count(n).filter(|n| *n > 0))
                    .map(|n| n as usize),
                finish_on_key: attrs
                    .read("finishOnKey", 13310, |key| {
                        (key.is_empty() || (key.len() == 1 && "0123456789*#".contains(key)))
                            .then(|| key.to_owned())
                    })
                    .unwrap_or_else(|| "#".into()),
                timeout: f64::from(attrs.read("timeout", 13313, count).unwrap_or(5)),
            }))
        }
        "Play" => {
            // loop="0" plays until something else happens.
            let loops = attrs.read("loop", 13410, count).unwrap_or(1);
            Some(Verb::Prompt(Prompt::Play {
                url: text.to_owned(),
                loops,
            }))
        }
        "Pause" => Some(Verb::Prompt(Prompt::Pause {
            seconds: attrs.read("length", 13910, count).unwrap_or(1),
        })),
        "Dial" => {
            let timeout = attrs
                .read("timeout", 13212, |t| count(t).filter(|t| *t > 0))
                .unwrap_or(30);
            let target = match noun {
                Some(noun) => match noun.name.as_str() {
                    "Conference" => DialTarget::Conference(conference(&noun, attrs.warnings)?),
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
            method: attrs.method("method", 13710),
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
            busy: attrs.get("reason").as_deref() == Some("busy"),
        }),
        _ => None,
    }
}

/// A `<Gather>`'s nested `<Say>`, `<Play>` or `<Pause>`, as its defaults have it where its
/// attributes say nothing usable.
fn nested_prompt(noun: &Noun) -> Option<Prompt> {
    let attr = |name: &str| attribute(&noun.start, name);
    let number = |name: &str| attr(name).and_then(|v| count(v.trim()));
    match noun.name.as_str() {
        "Say" if !noun.text.is_empty() => Some(Prompt::Say {
            text: noun.text.clone(),
            voice: attr("voice"),
            language: attr("language"),
            loops: number("loop").unwrap_or(1).max(1),
        }),
        "Play" if attr("digits").is_some() => None,
        "Play" if !noun.text.is_empty() => Some(Prompt::Play {
            url: noun.text.clone(),
            loops: number("loop").unwrap_or(1),
        }),
        "Pause" => Some(Prompt::Pause {
            seconds: number("length").unwrap_or(1),
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

/// `<Conference>`; none (warned of, 13237) without a name.
fn conference(noun: &Noun, warnings: &mut Vec<Warning>) -> Option<ConferenceNoun> {
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
              <Dial><Conference muted="true" startConferenceOnEnter="false" endConferenceOnExit="true" participantLabel="agent" coach="CA0123456789abcdef0123456789abcdef" statusCallback="https://app.example.com/conference" statusCallbackMethod="GET" statusCallbackEvent="join leave,mute" beep="onExit">room-2</Conference></Dial>
              <Redirect method="GET">https://app.example.com/next?a=1&amp;b=2</Redirect>
              <Gather numDigits="4" action="/pin" timeout="10"><Say>Your PIN</Say></Gather>
              <Play digits="12w#"/>
              <Reject reason="busy"/>
              <Hangup/>
            </Response>"#;
        let (verbs, warnings) = parse(document).unwrap();
        assert_eq!(warnings, [], "every verb is run as it is written");
        assert_eq!(
            verbs,
            [
                Verb::Prompt(Prompt::Say {
                    text: "Please hold while we connect you".into(),
                    voice: None,
                    language: None,
                    loops: 1
                }),
                Verb::Prompt(Prompt::Pause { seconds: 2 }),
                Verb::Prompt(Prompt::Play {
                    url: "https://app.example.com/hold.mp3".into(),
                    loops: 2
                }),
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
                        beep_on_enter: false,
                        beep_on_exit: true,
                    }),
                    timeout: 30
                },
                Verb::Redirect {
                    url: "https://app.example.com/next?a=1&b=2".into(),
                    method: Method::Get
                },
                Verb::Gather(GatherVerb {
                    prompt: Some(Prompt::Say {
                        text: "Your PIN".into(),
                        voice: None,
                        language: None,
                        loops: 1
                    }),
                    action: Some("/pin".into()),
                    method: Method::Post,
                    num_digits: Some(4),
                    finish_on_key: "#".into(),
                    timeout: 10.0,
                }),
                Verb::Prompt(Prompt::Digits("12w#".into())),
                Verb::Reject { busy: true },
                Verb::Hangup,
            ]
        );
        assert!(parse("<Response><Say>unclosed</Response>").is_err());
        assert!(parse("not xml").is_err());
        assert_eq!(parse("<Response/>").unwrap(), (vec![], vec![]));
        let (verbs, warnings) =
            parse("<Response><Sya>typo</Sya><Hangup/><Frobnicate/></Response>").unwrap();
        assert_eq!(verbs, [Verb::Hangup]);
        assert_eq!(
            warnings,
            [Warning::skipped("Sya"), Warning::skipped("Frobnicate")],
            "what a worker warns of (12200)"
        );
    }

    /// Values a verb does not take: each a warning with Twilio's code, and the default instead.
    #[test]
    fn warns_of_values_a_verb_does_not_take() {
        let document = r###"<Response>
              <Say loop="twice">Hello</Say>
              <Say/>
              <Play loop="-1">music.mp3</Play>
              <Pause length="soon"/>
              <Gather numDigits="0" finishOnKey="##" timeout="1.5" method="PUT"><Dial>+15550000000</Dial></Gather>
              <Dial timeout="0"><Conference muted="yes" startConferenceOnEnter="no" endConferenceOnExit="1" waitUrl="not a url" waitMethod="PUT" beep="sometimes">room</Conference></Dial>
              <Dial><Conference/></Dial>
              <Redirect method="PATCH">https://app.example.com/next</Redirect>
            </Response>"###;
        let (verbs, warnings) = parse(document).unwrap();
        let codes: Vec<u32> = warnings.iter().map(|w| w.code).collect();
        assert_eq!(
            codes,
            [
                13510, 13520, 13410, 13910, 13320, 13312, 13314, 13310, 13313, 13212, 13233, 12200,
                13230, 13232, 13231, 13237, 13710
            ]
        );
        assert_eq!(
            warnings[0].message,
            "Say: Invalid loop value \"twice\"; the default is used"
        );
        assert!(
            warnings[10]
                .message
                .starts_with("Dial->Conference: Invalid waitUrl")
        );
        assert_eq!(
            verbs,
            [
                Verb::Prompt(Prompt::Say {
                    text: "Hello".into(),
                    voice: None,
                    language: None,
                    loops: 1
                }),
                Verb::Prompt(Prompt::Play {
                    url: "music.mp3".into(),
                    loops: 1
                }),
                Verb::Prompt(Prompt::Pause { seconds: 1 }),
                Verb::Gather(GatherVerb {
                    prompt: None,
                    action: None,
                    method: Method::Post,
                    num_digits: None,
                    finish_on_key: "#".into(),
                    timeout: 5.0,
                }),
                Verb::Dial {
                    target: DialTarget::Conference(ConferenceNoun::named("room")),
                    timeout: 30
                },
                Verb::Redirect {
                    url: "https://app.example.com/next".into(),
                    method: Method::Post
                },
            ],
            "each with its defaults; the verbs without what they need are skipped"
        );
    }
}
