//! Request parameters: the strict reading every operation shares. Names are exact; an unknown
//! name, or a repeated one that may not repeat, is an error; each value parser names the
//! parameter and says what it expects.

use crate::error::{InvalidParameter, ProblemKind};
use crate::form::Form;
use crate::rcml::Rcml;
use crate::sid::shorten;
use crate::webhook::{AddressPolicy, CallbackEvent, Method, StatusCallbackEvents, WebhookUrl};

/// Longest call Twilio allows, and the most `TimeLimit` may say: four hours.
pub const MAX_TIME_LIMIT_SECONDS: u32 = 14_400;

pub fn invalid(name: &str, message: String) -> InvalidParameter {
    InvalidParameter::new(name, ProblemKind::Invalid, message)
}

pub fn conflict(name: &str, message: String) -> InvalidParameter {
    InvalidParameter::new(name, ProblemKind::Conflict, message)
}

pub fn missing(name: &str) -> InvalidParameter {
    InvalidParameter::new(name, ProblemKind::Missing, format!("{name} is required"))
}

/// The parameters of one request, checked against the names an operation accepts.
pub struct Params<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Params<'a> {
    /// `accepted` lists every name; those in `repeatable` may appear more than once.
    pub fn collect(
        form: &'a Form,
        accepted: &[&str],
        repeatable: &[&str],
    ) -> Result<Self, InvalidParameter> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for (name, value) in form.pairs() {
            if !accepted.contains(&name) {
                return Err(InvalidParameter::new(
                    &shorten(name),
                    ProblemKind::Unknown,
                    format!(
                        "Unknown parameter '{}'. Accepted parameters: {}",
                        shorten(name),
                        accepted.join(", ")
                    ),
                ));
            }
            if !repeatable.contains(&name) && pairs.iter().any(|(n, _)| *n == name) {
                return Err(conflict(
                    name,
                    format!("Parameter '{name}' was given more than once"),
                ));
            }
            pairs.push((name, value));
        }
        Ok(Self { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    pub fn get_all(&self, name: &str) -> Vec<&'a str> {
        self.pairs
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn required(&self, name: &str) -> Result<&'a str, InvalidParameter> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing(name))
    }

    pub fn url(
        &self,
        name: &str,
        policy: AddressPolicy,
    ) -> Result<Option<WebhookUrl>, InvalidParameter> {
        self.get(name)
            .map(|value| {
                WebhookUrl::parse(value, policy).map_err(|problem| {
                    invalid(name, format!("{name} is not a valid URL: {problem}"))
                })
            })
            .transpose()
    }

    /// A `…Method` parameter: GET or POST, only together with the URL it applies to.
    pub fn method(&self, name: &str, url_name: &str) -> Result<Option<Method>, InvalidParameter> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let method = Method::parse(value).ok_or_else(|| {
            invalid(
                name,
                format!("{name} must be GET or POST, not '{}'", shorten(value)),
            )
        })?;
        if !self.has(url_name) {
            return Err(conflict(
                name,
                format!("{name} can only be given together with {url_name}"),
            ));
        }
        Ok(Some(method))
    }

    /// A URL and its method, the method defaulting to POST.
    pub fn webhook(
        &self,
        url_name: &str,
        method_name: &str,
        policy: AddressPolicy,
    ) -> Result<Option<(WebhookUrl, Method)>, InvalidParameter> {
        let url = self.url(url_name, policy)?;
        let method = self.method(method_name, url_name)?;
        Ok(url.map(|url| (url, method.unwrap_or_default())))
    }

    /// `true` or `false`, case-insensitive.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, InvalidParameter> {
        self.get(name)
            .map(|value| {
                if value.eq_ignore_ascii_case("true") {
                    Ok(true)
                } else if value.eq_ignore_ascii_case("false") {
                    Ok(false)
                } else {
                    Err(invalid(
                        name,
                        format!("{name} must be true or false, not '{}'", shorten(value)),
                    ))
                }
            })
            .transpose()
    }

    /// A whole number in `range`, digits only.
    pub fn integer(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<u32>,
        unit: &str,
    ) -> Result<Option<u32>, InvalidParameter> {
        self.get(name)
            .map(|value| {
                value
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| value.parse::<u32>().ok())
                    .flatten()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| {
                        invalid(
                            name,
                            format!(
                                "{name} must be a whole number {unit}from {} to {}, not '{}'",
                                range.start(),
                                range.end(),
                                shorten(value)
                            ),
                        )
                    })
            })
            .transpose()
    }

    pub fn time_limit(&self) -> Result<Option<u32>, InvalidParameter> {
        self.integer("TimeLimit", 1..=MAX_TIME_LIMIT_SECONDS, "of seconds ")
    }

    /// Inline RCML.
    pub fn twiml(&self) -> Result<Option<Rcml>, InvalidParameter> {
        self.get("Twiml")
            .map(|doc| {
                Rcml::parse(doc).map_err(|problem| {
                    invalid("Twiml", format!("Twiml is not valid RCML: {problem}"))
                })
            })
            .transpose()
    }

    /// `StatusCallbackEvent` may repeat, and each value may list several events separated by
    /// spaces.
    pub fn events(&self) -> Result<Option<StatusCallbackEvents>, InvalidParameter> {
        let values = self.get_all("StatusCallbackEvent");
        if values.is_empty() {
            return Ok(None);
        }
        let mut events = StatusCallbackEvents::empty();
        for value in values {
            let mut any = false;
            for name in value.split_ascii_whitespace() {
                any = true;
                let event = CallbackEvent::parse(name).ok_or_else(|| {
                    invalid(
                        "StatusCallbackEvent",
                        format!(
                            "StatusCallbackEvent '{}' is not one of initiated, ringing, answered, completed",
                            shorten(name)
                        ),
                    )
                })?;
                events.insert(event);
            }
            if !any {
                return Err(invalid(
                    "StatusCallbackEvent",
                    "StatusCallbackEvent is empty".into(),
                ));
            }
        }
        Ok(Some(events))
    }
}
