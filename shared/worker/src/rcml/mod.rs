//! The RCML a worker runs, parsed into a program of verbs. Unknown verbs are skipped and
//! attributes with values a verb does not take fall back to their defaults, as a lenient media
//! server would; each is a warning with Twilio's code.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use teleapi_domain::{Method, Rcml};

use crate::media::Prompt;

mod dial;
mod queue;
mod record;
#[cfg(test)]
mod tests;

pub use dial::*;
pub use queue::*;
pub use record::*;

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
    Dial(DialVerb),
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
    /// `<Record>`: records the caller until silence, a key or its maximum length, then
    /// requests `action` with the recording.
    Record(RecordVerb),
    /// `<Enqueue>`: the caller waits in a queue for an agent.
    Enqueue(EnqueueVerb),
    /// `<Leave>`: a queued caller leaves its queue (in its `waitUrl`'s RCML).
    Leave,
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
    let mut nouns: Vec<Noun> = Vec::new();
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
                        nouns.clear();
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
                nouns.push(Noun {
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
                verbs.extend(verb(&name, Some(&start), "", Vec::new(), &mut warnings));
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
                            nouns.push(Noun {
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
                                std::mem::take(&mut nouns),
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
    nouns: Vec<Noun>,
    warnings: &mut Vec<Warning>,
) -> Option<Verb> {
    let before = warnings.len();
    let mut attrs = Attributes {
        element: name,
        start,
        warnings,
    };
    let verb = read_verb(name, &mut attrs, text, nouns);
    if verb.is_none() && warnings.len() == before {
        warnings.push(Warning::skipped(name));
    }
    verb
}

fn read_verb(name: &str, attrs: &mut Attributes, text: &str, nouns: Vec<Noun>) -> Option<Verb> {
    if name == "Dial" {
        return dial(attrs, text, nouns).map(Verb::Dial);
    }
    // Every other verb has one noun at most.
    let noun = nouns.into_iter().next();
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
        "Record" => Some(Verb::Record(record(attrs))),
        "Enqueue" => queue::enqueue(attrs, text).map(Verb::Enqueue),
        "Leave" => Some(Verb::Leave),
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
