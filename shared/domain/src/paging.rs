//! Listing calls and intents: filters, page sizes, and the opaque page tokens of the list
//! envelope (Twilio's `page`, `page_size`, `next_page_uri`, …).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, Time};

use crate::error::InvalidParameter;
use crate::form::Form;
use crate::params::{Params, invalid};
use crate::sid::{AccountSid, shorten};
use crate::time::Timestamp;
pub const DEFAULT_PAGE_SIZE: u32 = 50;

pub const MAX_PAGE_SIZE: u32 = 1000;

/// Where a listing stands, in the list's display order: a page is the items after `after`
/// (`backward = false`) or the ones just before it (`backward = true`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageRequest {
    pub size: usize,
    pub after: Option<String>,
    pub backward: bool,
}

/// One page of a listing, in display order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where to continue in the same direction, when more items may lie there.
    pub more: Option<String>,
    /// How many stored items the store read to build this page (what a page costs).
    pub scanned: usize,
}

/// The name of an account's listing partition (the listing index's partition key).
pub fn partition_key(account: &AccountSid, shard: u8) -> String {
    format!("{account}#{shard}")
}

/// A place in a newest-first listing (calls, conferences, recordings): the creation time in ms,
/// zero-padded to 15 digits so that text order is time order, `#`, the sid.
pub fn created_position(created: Timestamp, sid: &dyn std::fmt::Display) -> String {
    format!("{:015}#{sid}", created.millis().max(0))
}

/// The sid of a well-formed [`created_position`].
pub fn created_position_sid<T: std::str::FromStr>(position: &str) -> Option<T> {
    let (millis, sid) = position.split_once('#')?;
    (millis.len() == 15 && millis.bytes().all(|b| b.is_ascii_digit()))
        .then(|| sid.parse().ok())
        .flatten()
}

/// An intent's place in its call's listing: the sequence number, zero-padded so that text order
/// is numeric order.
pub fn intent_position(seq: u64) -> String {
    format!("{seq:020}")
}

/// The sequence number of a well-formed intent position.
pub fn intent_position_seq(position: &str) -> Option<u64> {
    (position.len() == 20 && position.bytes().all(|b| b.is_ascii_digit()))
        .then(|| position.parse().ok())
        .flatten()
}

/// The opaque `PageToken`: which page this is and where it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageToken {
    #[serde(rename = "p")]
    pub page: u32,
    #[serde(rename = "a")]
    pub after: String,
    #[serde(rename = "b", default, skip_serializing_if = "std::ops::Not::not")]
    pub backward: bool,
}

impl PageToken {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("a token serialises"))
    }

    pub fn decode(token: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let token: Self = serde_json::from_slice(&bytes).ok()?;
        (token.after.len() <= 64).then_some(token)
    }
}

/// Paging parameters common to every list: `PageSize`, `Page`, `PageToken`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    pub page_size: u32,
    pub token: Option<PageToken>,
}

impl Paging {
    pub const PARAMETERS: [&'static str; 3] = ["PageSize", "Page", "PageToken"];

    pub fn parse(raw: &Params<'_>) -> Result<Self, InvalidParameter> {
        let page_size = raw
            .integer("PageSize", 1..=MAX_PAGE_SIZE, "")?
            .unwrap_or(DEFAULT_PAGE_SIZE);
        let token = raw
            .get("PageToken")
            .map(|value| {
                PageToken::decode(value).ok_or_else(|| {
                    invalid(
                        "PageToken",
                        "PageToken is not one this API issued: follow next_page_uri or previous_page_uri".into(),
                    )
                })
            })
            .transpose()?;
        let page = raw.integer("Page", 0..=u32::MAX, "")?;
        let expected = token.as_ref().map_or(0, |t| t.page);
        if page.is_some_and(|page| page != expected) {
            return Err(invalid(
                "Page",
                format!("Page must match the PageToken's page ({expected}); follow next_page_uri"),
            ));
        }
        Ok(Self { page_size, token })
    }

    pub fn page(&self) -> u32 {
        self.token.as_ref().map_or(0, |t| t.page)
    }

    pub fn request(&self) -> PageRequest {
        PageRequest {
            size: self.page_size as usize,
            after: self.token.as_ref().map(|t| t.after.clone()),
            backward: self.token.as_ref().is_some_and(|t| t.backward),
        }
    }
}

pub(crate) const DAY_MILLIS: i64 = 24 * 3600 * 1000;

/// `YYYY-MM-DD` (a whole UTC day) or an RFC 3339 instant: the bounds of what it names.
pub(crate) fn parse_time(
    name: &str,
    value: &str,
) -> Result<(Timestamp, Timestamp), InvalidParameter> {
    let day = format_description!("[year]-[month]-[day]");
    if let Ok(date) = Date::parse(value, &day) {
        let start = OffsetDateTime::new_utc(date, Time::MIDNIGHT).unix_timestamp() * 1000;
        return Ok((
            Timestamp::from_millis(start),
            Timestamp::from_millis(start + DAY_MILLIS - 1),
        ));
    }
    if let Ok(instant) = OffsetDateTime::parse(value, &Rfc3339) {
        let millis = i64::try_from(instant.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        return Ok((
            Timestamp::from_millis(millis),
            Timestamp::from_millis(millis),
        ));
    }
    Err(invalid(
        name,
        format!(
            "{name} must be a date (2026-11-24) or an RFC 3339 time (2026-11-24T12:00:00Z), not '{}'",
            shorten(value)
        ),
    ))
}

/// `GET …/Calls/{CallSid}/Modifications`: paging only.
pub fn parse_paging_only(query: &Form) -> Result<Paging, InvalidParameter> {
    let raw = Params::collect(query, &Paging::PARAMETERS, &[])?;
    Paging::parse(&raw)
}
