//! Phone numbers (`…/IncomingPhoneNumbers`): the numbers of an account that inbound calls
//! reach, each with the RCML its calls run (`VoiceUrl`), a fallback and a StatusCallback. A
//! number belongs to one account of the deployment; a SIP INVITE to it becomes an inbound call
//! of that account (docs/data-model.md, "numbers").
//!
//! The deployment owns no inventory of numbers to buy from: a number is created with the
//! `PhoneNumber` its operator routes to the media workers (a trunk's DID, a SIP user), as
//! Twilio's hosted numbers are.

mod listing;

pub use listing::*;

use crate::error::InvalidParameter;
use crate::form::Form;
use crate::params::{Params, conflict, invalid, missing};
use crate::sid::{AccountSid, PhoneNumberSid, shorten};
use crate::time::Timestamp;
use crate::webhook::{AddressPolicy, Method, WebhookUrl};

/// The longest `FriendlyName`, as Twilio's.
pub const MAX_FRIENDLY_NAME: usize = 64;

/// A number and what its calls do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingNumber {
    pub sid: PhoneNumberSid,
    pub account_sid: AccountSid,
    /// E.164: `+` and 2 to 15 digits. Unique in the deployment, and never changes.
    pub phone_number: String,
    pub friendly_name: String,
    pub voice: Voice,
    pub date_created: Timestamp,
    pub date_updated: Timestamp,
    /// Bumped by every write: the optimistic-concurrency token.
    pub version: u64,
}

/// What a call to the number runs, and whom it tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Voice {
    /// Where its RCML is fetched; none: the number answers nothing (its calls are rejected).
    pub url: Option<WebhookUrl>,
    pub method: Method,
    pub fallback_url: Option<WebhookUrl>,
    pub fallback_method: Method,
    pub status_callback: Option<WebhookUrl>,
    pub status_callback_method: Method,
}

/// `+` and 2 to 15 digits, the first not 0 (ITU-T E.164).
pub fn is_e164(value: &str) -> bool {
    value.strip_prefix('+').is_some_and(|digits| {
        (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// The number a SIP request-URI's user part names: E.164 as written, or its digits without
/// the `+` (many trunks send them so), with visual separators (`-`, `.`, spaces, parentheses)
/// left out. `None`: not a number.
pub fn number_of_sip_user(user: &str) -> Option<String> {
    let digits: String = user
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | ' ' | '(' | ')'))
        .collect();
    let number = if digits.starts_with('+') {
        digits
    } else {
        format!("+{digits}")
    };
    is_e164(&number).then_some(number)
}

/// The parameters a number takes (`POST …/IncomingPhoneNumbers` also takes `PhoneNumber`).
pub const NUMBER_SETTINGS: [&str; 7] = [
    "FriendlyName",
    "VoiceUrl",
    "VoiceMethod",
    "VoiceFallbackUrl",
    "VoiceFallbackMethod",
    "StatusCallback",
    "StatusCallbackMethod",
];

/// A change of a number's settings: each `Some` is set (a URL to `None`: removed, as an empty
/// value asks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberChanges {
    pub friendly_name: Option<String>,
    pub url: Option<Option<WebhookUrl>>,
    pub method: Option<Method>,
    pub fallback_url: Option<Option<WebhookUrl>>,
    pub fallback_method: Option<Method>,
    pub status_callback: Option<Option<WebhookUrl>>,
    pub status_callback_method: Option<Method>,
}

impl NumberChanges {
    fn parse(raw: &Params, policy: AddressPolicy) -> Result<Self, InvalidParameter> {
        let url = |name: &str| -> Result<Option<Option<WebhookUrl>>, InvalidParameter> {
            match raw.get(name) {
                None => Ok(None),
                // Twilio's way to remove a URL: set it to nothing.
                Some("") => Ok(Some(None)),
                Some(value) => WebhookUrl::parse(value, policy)
                    .map(|url| Some(Some(url)))
                    .map_err(|problem| {
                        invalid(name, format!("{name} is not a valid URL: {problem}"))
                    }),
            }
        };
        // A method may change alone: it applies to the URL the number has.
        let method = |name: &str| -> Result<Option<Method>, InvalidParameter> {
            raw.get(name)
                .map(|value| {
                    Method::parse(value).ok_or_else(|| {
                        invalid(
                            name,
                            format!("{name} must be GET or POST, not '{}'", shorten(value)),
                        )
                    })
                })
                .transpose()
        };
        let friendly_name = raw
            .get("FriendlyName")
            .map(|name| {
                if name.chars().count() > MAX_FRIENDLY_NAME || name.chars().any(char::is_control) {
                    Err(invalid(
                        "FriendlyName",
                        format!(
                            "FriendlyName must be at most {MAX_FRIENDLY_NAME} characters, \
                             without control characters"
                        ),
                    ))
                } else {
                    Ok(name.to_owned())
                }
            })
            .transpose()?;
        Ok(Self {
            friendly_name,
            url: url("VoiceUrl")?,
            method: method("VoiceMethod")?,
            fallback_url: url("VoiceFallbackUrl")?,
            fallback_method: method("VoiceFallbackMethod")?,
            status_callback: url("StatusCallback")?,
            status_callback_method: method("StatusCallbackMethod")?,
        })
    }

    /// `POST …/IncomingPhoneNumbers/{PN}`: the settings to change (none: nothing changes).
    pub fn parse_update(form: &Form, policy: AddressPolicy) -> Result<Self, InvalidParameter> {
        let mut accepted = NUMBER_SETTINGS.to_vec();
        accepted.push("PhoneNumber");
        let raw = Params::collect(form, &accepted, &[])?;
        if raw.has("PhoneNumber") {
            return Err(conflict(
                "PhoneNumber",
                "A number's PhoneNumber cannot change: delete it and create the new one".into(),
            ));
        }
        Self::parse(&raw, policy)
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The number with these changes, written at `now`.
    pub fn applied_to(&self, number: &IncomingNumber, now: Timestamp) -> IncomingNumber {
        let mut next = number.clone();
        let voice = &mut next.voice;
        if let Some(name) = &self.friendly_name {
            next.friendly_name = name.clone();
        }
        let set = |field: &mut Option<WebhookUrl>, change: &Option<Option<WebhookUrl>>| {
            if let Some(value) = change {
                field.clone_from(value);
            }
        };
        set(&mut voice.url, &self.url);
        set(&mut voice.fallback_url, &self.fallback_url);
        set(&mut voice.status_callback, &self.status_callback);
        voice.method = self.method.unwrap_or(voice.method);
        voice.fallback_method = self.fallback_method.unwrap_or(voice.fallback_method);
        voice.status_callback_method = self
            .status_callback_method
            .unwrap_or(voice.status_callback_method);
        next.date_updated = now;
        next.version += 1;
        next
    }
}

impl IncomingNumber {
    /// `POST …/IncomingPhoneNumbers`: `PhoneNumber` (E.164) and the number's settings.
    pub fn parse_create(
        account_sid: AccountSid,
        form: &Form,
        policy: AddressPolicy,
        now: Timestamp,
    ) -> Result<Self, InvalidParameter> {
        let mut accepted = NUMBER_SETTINGS.to_vec();
        accepted.push("PhoneNumber");
        let raw = Params::collect(form, &accepted, &[])?;
        let phone_number = raw
            .get("PhoneNumber")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing("PhoneNumber"))?;
        if !is_e164(phone_number) {
            return Err(invalid(
                "PhoneNumber",
                format!(
                    "PhoneNumber must be E.164 ('+' and 2 to 15 digits, e.g. +15551230000), not '{}'",
                    shorten(phone_number)
                ),
            ));
        }
        let changes = NumberChanges::parse(&raw, policy)?;
        let blank = Self {
            sid: PhoneNumberSid::generate(),
            account_sid,
            phone_number: phone_number.to_owned(),
            friendly_name: phone_number.to_owned(),
            voice: Voice::default(),
            date_created: now,
            date_updated: now,
            version: 0,
        };
        Ok(changes.applied_to(&blank, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Form {
        Form::parse(body.as_bytes()).unwrap()
    }

    fn account() -> AccountSid {
        "AC0123456789abcdef0123456789abcdef".parse().unwrap()
    }

    #[test]
    fn e164_numbers() {
        for good in ["+15551230000", "+44", "+123456789012345"] {
            assert!(is_e164(good), "{good}");
        }
        for bad in [
            "15551230000",
            "+0551230000",
            "+1",
            "+1234567890123456",
            "+1555 123",
            "+",
            "",
            "+1555123000a",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
        assert_eq!(
            number_of_sip_user("15551230000").as_deref(),
            Some("+15551230000")
        );
        assert_eq!(
            number_of_sip_user("+1-555-123-0000").as_deref(),
            Some("+15551230000")
        );
        assert_eq!(number_of_sip_user("alice"), None);
        assert_eq!(number_of_sip_user("+0123"), None);
    }

    #[test]
    fn a_number_is_created_with_its_settings_and_defaults() {
        let now = Timestamp::from_millis(1_000);
        let number = IncomingNumber::parse_create(
            account(),
            &form("PhoneNumber=%2B15551230000&VoiceUrl=https://a.example/voice&VoiceMethod=GET"),
            AddressPolicy::default(),
            now,
        )
        .unwrap();
        assert!(number.sid.as_str().starts_with("PN"));
        assert_eq!(number.phone_number, "+15551230000");
        assert_eq!(number.friendly_name, "+15551230000");
        assert_eq!(
            number.voice.url.as_ref().map(|u| u.to_string()).as_deref(),
            Some("https://a.example/voice")
        );
        assert_eq!(number.voice.method, Method::Get);
        assert_eq!(number.voice.fallback_method, Method::Post);
        assert_eq!(number.version, 1);
        assert_eq!((number.date_created, number.date_updated), (now, now));
    }

    #[test]
    fn bad_creations_name_the_parameter() {
        for (body, parameter) in [
            ("VoiceUrl=https://a.example/", "PhoneNumber"),
            ("PhoneNumber=5551230000", "PhoneNumber"),
            ("PhoneNumber=%2B15551230000&VoiceUrl=ftp://x", "VoiceUrl"),
            (
                "PhoneNumber=%2B15551230000&VoiceUrl=http://10.0.0.1/",
                "VoiceUrl",
            ),
            ("PhoneNumber=%2B15551230000&VoiceMethod=PUT", "VoiceMethod"),
            ("PhoneNumber=%2B15551230000&AreaCode=555", "AreaCode"),
            (
                "PhoneNumber=%2B15551230000&PhoneNumber=%2B15551230001",
                "PhoneNumber",
            ),
        ] {
            let err = IncomingNumber::parse_create(
                account(),
                &form(body),
                AddressPolicy::default(),
                Timestamp::from_millis(0),
            )
            .unwrap_err();
            assert_eq!(err.parameter, parameter, "{body}: {err}");
        }
        let long = format!("PhoneNumber=%2B15551230000&FriendlyName={}", "a".repeat(65));
        let err = IncomingNumber::parse_create(
            account(),
            &form(&long),
            AddressPolicy::default(),
            Timestamp::from_millis(0),
        )
        .unwrap_err();
        assert_eq!(err.parameter, "FriendlyName");
    }

    #[test]
    fn an_update_sets_clears_and_keeps() {
        let number = IncomingNumber::parse_create(
            account(),
            &form("PhoneNumber=%2B15551230000&VoiceUrl=https://a.example/v&StatusCallback=https://a.example/s"),
            AddressPolicy::default(),
            Timestamp::from_millis(0),
        )
        .unwrap();
        let changes = NumberChanges::parse_update(
            &form("StatusCallback=&VoiceMethod=GET&FriendlyName=Front+desk"),
            AddressPolicy::default(),
        )
        .unwrap();
        let next = changes.applied_to(&number, Timestamp::from_millis(5));
        assert_eq!(next.voice.url, number.voice.url);
        assert_eq!(next.voice.method, Method::Get);
        assert_eq!(next.voice.status_callback, None);
        assert_eq!(next.friendly_name, "Front desk");
        assert_eq!(next.version, number.version + 1);
        assert_eq!(next.date_updated, Timestamp::from_millis(5));
        assert!(
            NumberChanges::parse_update(&form(""), AddressPolicy::default())
                .unwrap()
                .is_empty()
        );
        let err = NumberChanges::parse_update(
            &form("PhoneNumber=%2B15551230001"),
            AddressPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(err.parameter, "PhoneNumber");
    }
}
