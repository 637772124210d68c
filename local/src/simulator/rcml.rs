//! The RCML the simulator understands: the verbs a call-transfer demo needs, parsed into a
//! program. Unknown verbs are skipped, as a lenient media server would.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use teleapi::domain::{Method, Rcml};

/// Who a `<Dial>` calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// A new leg: E.164 number, `client:NAME` or a SIP URI.
    Leg(String),
    Conference(String),
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
pub fn parse(document: &str) -> Result<Vec<Verb>, String> {
    Rcml::parse(document.trim()).map_err(|e| e.to_string())?;
    let mut reader = Reader::from_str(document.trim());
    let mut verbs = Vec::new();
    // The verb being read (depth 1), its attributes, and the text and nouns inside it.
    let mut current: Option<(String, Option<BytesStart<'static>>)> = None;
    let mut text = String::new();
    let mut noun: Option<(String, String)> = None;
    let mut noun_name: Option<String> = None;
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
                        noun_name = Some(name);
                        text.clear();
                    }
                    _ => {}
                }
            }
            Event::Empty(start) if depth == 1 => {
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                if let Some(verb) = verb(&name, Some(&start), "", None) {
                    verbs.push(verb);
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
                        if let Some(name) = noun_name.take() {
                            noun = Some((name, text.trim().to_owned()));
                        }
                    }
                    2 => {
                        if let Some((name, start)) = current.take()
                            && let Some(verb) =
                                verb(&name, start.as_ref(), text.trim(), noun.take())
                        {
                            verbs.push(verb);
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
    Ok(verbs)
}

fn verb(
    name: &str,
    start: Option<&BytesStart<'_>>,
    text: &str,
    noun: Option<(String, String)>,
) -> Option<Verb> {
    let attr = |n: &str| start.and_then(|s| attribute(s, n));
    match name {
        "Say" => {
            let loops: f64 = attr("loop").and_then(|l| l.parse().ok()).unwrap_or(1.0);
            Some(Verb::Speak {
                seconds: speaking_time(text) * loops.max(1.0),
            })
        }
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
                Some((kind, value)) => match kind.as_str() {
                    "Conference" => DialTarget::Conference(value),
                    "Client" => DialTarget::Leg(format!("client:{value}")),
                    _ => DialTarget::Leg(value),
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
        "Hangup" => Some(Verb::Hangup),
        "Reject" => Some(Verb::Reject {
            busy: attr("reason").as_deref() == Some("busy"),
        }),
        _ => None,
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
              <Redirect method="GET">https://app.example.com/next?a=1&amp;b=2</Redirect>
              <Gather/>
              <Reject reason="busy"/>
              <Hangup/>
            </Response>"#;
        let verbs = parse(document).unwrap();
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
                    target: DialTarget::Conference("room-1".into()),
                    timeout: 30
                },
                Verb::Redirect {
                    url: "https://app.example.com/next?a=1&b=2".into(),
                    method: Method::Get
                },
                Verb::Reject { busy: true },
                Verb::Hangup,
            ]
        );
        assert!(parse("<Response><Say>unclosed</Response>").is_err());
        assert!(parse("not xml").is_err());
        assert_eq!(parse("<Response/>").unwrap(), []);
    }
}
