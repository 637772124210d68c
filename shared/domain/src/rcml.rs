//! Inline RCML (`Twiml`): a well-formed XML document whose root element is `<Response>`.
//!
//! Checked here for well-formedness only; what the verbs mean is the media worker's business.
//! Document type declarations are refused outright: they are how entity-expansion attacks start,
//! and RCML never needs one.

use quick_xml::Reader;
use quick_xml::events::Event;
use serde::{Deserialize, Serialize};

/// Longest inline RCML accepted, as on Twilio.
pub const MAX_RCML_LENGTH: usize = 4000;
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RcmlProblem {
    #[error("it is longer than {MAX_RCML_LENGTH} characters")]
    TooLong,
    #[error("it is not well-formed XML ({0})")]
    Malformed(String),
    #[error("its root element must be <Response>")]
    WrongRoot,
    #[error("it must not contain a document type declaration")]
    DocType,
    #[error("it nests elements deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// A validated RCML document, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Rcml(String);

impl Rcml {
    pub fn parse(document: &str) -> Result<Self, RcmlProblem> {
        if document.chars().count() > MAX_RCML_LENGTH {
            return Err(RcmlProblem::TooLong);
        }
        check_well_formed(document)?;
        Ok(Self(document.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_well_formed(document: &str) -> Result<(), RcmlProblem> {
    let malformed = |e: &dyn std::fmt::Display| RcmlProblem::Malformed(e.to_string());
    let mut reader = Reader::from_str(document);
    let mut depth = 0usize;
    let mut roots = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| malformed(&e))?;
        match event {
            Event::Start(start) | Event::Empty(start)
                if depth == 0 && start.name().as_ref() != b"Response" =>
            {
                return Err(RcmlProblem::WrongRoot);
            }
            Event::Start(start) => {
                check_attributes(&start)?;
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(RcmlProblem::TooDeep);
                }
            }
            Event::Empty(start) => {
                check_attributes(&start)?;
                if depth == 0 {
                    roots += 1;
                }
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(text) if depth == 0 && !text.iter().all(u8::is_ascii_whitespace) => {
                return Err(RcmlProblem::Malformed(
                    "text outside the root element".into(),
                ));
            }
            Event::Text(text) => {
                text.decode().map_err(|e| malformed(&e))?;
            }
            Event::GeneralRef(reference) => {
                if depth == 0 {
                    return Err(RcmlProblem::Malformed(
                        "text outside the root element".into(),
                    ));
                }
                let known = matches!(
                    reference.as_ref(),
                    b"amp" | b"lt" | b"gt" | b"quot" | b"apos"
                ) || reference
                    .resolve_char_ref()
                    .map_err(|e| malformed(&e))?
                    .is_some();
                if !known {
                    return Err(RcmlProblem::Malformed("undefined entity reference".into()));
                }
            }
            Event::CData(_) if depth == 0 => {
                return Err(RcmlProblem::Malformed(
                    "text outside the root element".into(),
                ));
            }
            Event::DocType(_) => return Err(RcmlProblem::DocType),
            Event::Eof => break,
            _ => {}
        }
        if roots > 1 {
            return Err(RcmlProblem::Malformed("more than one root element".into()));
        }
    }
    if depth != 0 {
        return Err(RcmlProblem::Malformed("unclosed element".into()));
    }
    if roots == 0 {
        return Err(RcmlProblem::WrongRoot);
    }
    Ok(())
}

fn check_attributes(start: &quick_xml::events::BytesStart<'_>) -> Result<(), RcmlProblem> {
    for attribute in start.attributes() {
        attribute.map_err(|e| RcmlProblem::Malformed(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_response_documents() {
        for doc in [
            "<Response/>",
            "<Response></Response>",
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say voice="alice">Hi &amp; bye &#233;</Say></Response>"#,
            "\n<Response>\n  <Dial><Client>alice</Client></Dial>\n</Response>\n",
            "<!-- transfer --><Response><Redirect method=\"GET\">https://x/y</Redirect></Response>",
            "<Response><Say><![CDATA[a < b]]></Say></Response>",
        ] {
            assert!(Rcml::parse(doc).is_ok(), "{doc}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        type Check = fn(&RcmlProblem) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |p| *p == RcmlProblem::WrongRoot),
            ("hello", |p| matches!(p, RcmlProblem::Malformed(_))),
            ("<Say>hi</Say>", |p| *p == RcmlProblem::WrongRoot),
            ("<response/>", |p| *p == RcmlProblem::WrongRoot),
            ("<Response>", |p| matches!(p, RcmlProblem::Malformed(_))),
            ("<Response><Say></Response>", |p| {
                matches!(p, RcmlProblem::Malformed(_))
            }),
            ("<Response/><Response/>", |p| {
                matches!(p, RcmlProblem::Malformed(_))
            }),
            ("<Response/>trailing", |p| {
                matches!(p, RcmlProblem::Malformed(_))
            }),
            ("<Response>&bogus;</Response>", |p| {
                matches!(p, RcmlProblem::Malformed(_))
            }),
            (
                r#"<!DOCTYPE r [<!ENTITY a "aaaa">]><Response>&a;</Response>"#,
                |p| *p == RcmlProblem::DocType,
            ),
            ("<Response a=\"1\" a=\"2\"/>", |p| {
                matches!(p, RcmlProblem::Malformed(_))
            }),
        ];
        for (doc, expected) in cases {
            match Rcml::parse(doc) {
                Err(problem) => assert!(expected(&problem), "{doc}: {problem:?}"),
                Ok(_) => panic!("{doc} should be rejected"),
            }
        }
    }

    #[test]
    fn bounds_size_and_depth() {
        let long = format!(
            "<Response><Say>{}</Say></Response>",
            "a".repeat(MAX_RCML_LENGTH)
        );
        assert_eq!(Rcml::parse(&long), Err(RcmlProblem::TooLong));
        let deep = format!(
            "<Response>{}{}</Response>",
            "<a>".repeat(40),
            "</a>".repeat(40)
        );
        assert_eq!(Rcml::parse(&deep), Err(RcmlProblem::TooDeep));
    }
}
