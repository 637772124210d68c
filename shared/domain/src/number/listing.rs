//! Listing an account's numbers: filters, paging, and their places in the listing index.

use super::*;
use crate::paging::Paging;

/// The filters `GET …/IncomingPhoneNumbers` accepts, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumberFilter {
    /// Digits (and `*`, any one digit) the number contains, as Twilio's `PhoneNumber` filter.
    pub phone_number: Option<String>,
    /// Exactly this name.
    pub friendly_name: Option<String>,
}

impl NumberFilter {
    pub fn matches(&self, number: &IncomingNumber) -> bool {
        self.friendly_name
            .as_ref()
            .is_none_or(|name| *name == number.friendly_name)
            && self
                .phone_number
                .as_ref()
                .is_none_or(|pattern| contains_pattern(&number.phone_number, pattern))
    }
}

/// Whether `number`'s digits hold `pattern`'s (`*` matching any digit) somewhere in a row.
fn contains_pattern(number: &str, pattern: &str) -> bool {
    let digits = number.trim_start_matches('+').as_bytes();
    let pattern = pattern.trim_start_matches('+').as_bytes();
    pattern.len() <= digits.len()
        && digits.windows(pattern.len()).any(|window| {
            window
                .iter()
                .zip(pattern)
                .all(|(d, p)| *p == b'*' || d == p)
        })
}

/// The filters `GET …/IncomingPhoneNumbers` accepts.
pub const NUMBER_FILTERS: [&str; 2] = ["PhoneNumber", "FriendlyName"];

/// `GET …/IncomingPhoneNumbers`: filters and paging.
#[derive(Debug, Clone)]
pub struct ListNumbersRequest {
    pub filter: NumberFilter,
    pub paging: Paging,
    /// The filters as given, for the envelope's URIs.
    pub query: Vec<(&'static str, String)>,
}

impl ListNumbersRequest {
    pub fn parse(query: &Form) -> Result<Self, InvalidParameter> {
        let mut accepted = NUMBER_FILTERS.to_vec();
        accepted.extend(Paging::PARAMETERS);
        let raw = Params::collect(query, &accepted, &[])?;
        let mut filter = NumberFilter::default();
        let mut echo = Vec::new();
        if let Some(pattern) = raw.get("PhoneNumber") {
            let digits = pattern.strip_prefix('+').unwrap_or(pattern);
            if digits.is_empty()
                || digits.len() > 15
                || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'*')
            {
                return Err(invalid(
                    "PhoneNumber",
                    format!(
                        "PhoneNumber must be 1 to 15 digits (and '*' for any digit), not '{}'",
                        shorten(pattern)
                    ),
                ));
            }
            filter.phone_number = Some(pattern.to_owned());
            echo.push(("PhoneNumber", pattern.to_owned()));
        }
        if let Some(name) = raw.get("FriendlyName") {
            filter.friendly_name = Some(name.to_owned());
            echo.push(("FriendlyName", name.to_owned()));
        }
        Ok(Self {
            filter,
            paging: Paging::parse(&raw)?,
            query: echo,
        })
    }
}

/// A number's place in its account's listing, newest first: creation time, then sid.
pub fn number_position(number: &IncomingNumber) -> String {
    crate::paging::created_position(number.date_created, &number.sid)
}

/// The PhoneNumberSid of a well-formed number position.
pub fn number_position_sid(position: &str) -> Option<PhoneNumberSid> {
    crate::paging::created_position_sid(position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phone_number_filter_matches_digits_anywhere_with_wildcards() {
        for (pattern, matches) in [
            ("+15551230000", true),
            ("555123", true),
            ("555***0000", true),
            ("0000", true),
            ("9", false),
            ("+155512300001", false),
        ] {
            assert_eq!(
                contains_pattern("+15551230000", pattern),
                matches,
                "{pattern}"
            );
        }
        for bad in ["", "+", "abc", "1234567890123456"] {
            let query = Form::from_pairs(vec![("PhoneNumber".into(), bad.into())]);
            assert!(ListNumbersRequest::parse(&query).is_err(), "{bad}");
        }
    }
}
