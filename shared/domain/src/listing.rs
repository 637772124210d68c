//! Listing calls and intents: filters, page sizes, and the opaque page tokens of the list
//! envelope (Twilio's `page`, `page_size`, `next_page_uri`, …).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, Time};

use super::call::{Call, CallStatus};
use super::error::InvalidParameter;
use super::form::Form;
use super::params::{Params, invalid};
use super::sid::{AccountSid, CallSid, shorten};
use super::time::Timestamp;

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

/// The listing partition of a call among its account's `shards` (1 if 0): a hash of the
/// CallSid (its random hex), so that an account's new calls spread evenly over its partitions.
pub fn shard_of(sid: &CallSid, shards: u8) -> u8 {
    let random = u16::from_str_radix(&sid.as_str()[2..6], 16).unwrap_or(0);
    u8::try_from(random % u16::from(shards.max(1))).expect("below a u8")
}

/// The name of an account's listing partition (the listing index's partition key).
pub fn partition_key(account: &AccountSid, shard: u8) -> String {
    format!("{account}#{shard}")
}

/// A call's place in its account's listing, newest first: creation time, then CallSid. Stored
/// on the call item as the sort key of the listing index.
pub fn call_position(call: &Call) -> String {
    created_position(call.date_created, &call.sid)
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

/// The CallSid of a well-formed call position.
pub fn call_position_sid(position: &str) -> Option<CallSid> {
    created_position_sid(position)
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

/// The filters of `GET …/Calls`. Times are inclusive bounds on the call's start time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallFilter {
    pub to: Option<String>,
    pub from: Option<String>,
    pub status: Option<CallStatus>,
    pub parent_call_sid: Option<CallSid>,
    pub started_at_or_after: Option<Timestamp>,
    pub started_at_or_before: Option<Timestamp>,
}

impl CallFilter {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub fn matches(&self, call: &Call) -> bool {
        self.to.as_ref().is_none_or(|to| *to == call.to)
            && self.from.as_ref().is_none_or(|from| *from == call.from)
            && self.status.is_none_or(|status| status == call.status)
            && self
                .parent_call_sid
                .as_ref()
                .is_none_or(|parent| call.parent_call_sid.as_ref() == Some(parent))
            && self
                .started_at_or_after
                .is_none_or(|t| call.start_time.is_some_and(|start| start >= t))
            && self
                .started_at_or_before
                .is_none_or(|t| call.start_time.is_some_and(|start| start <= t))
    }
}

/// `GET …/Calls`: filters and paging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCallsRequest {
    pub filter: CallFilter,
    pub paging: Paging,
    /// The filters as given, for the envelope's URIs (canonical order and values).
    pub query: Vec<(&'static str, String)>,
}

/// The filters `GET …/Calls` accepts.
pub const CALL_FILTERS: [&str; 7] = [
    "To",
    "From",
    "Status",
    "ParentCallSid",
    "StartTime",
    "StartTime>",
    "StartTime<",
];

const DAY_MILLIS: i64 = 24 * 3600 * 1000;

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

impl ListCallsRequest {
    pub fn parse(query: &Form) -> Result<Self, InvalidParameter> {
        let accepted: Vec<&str> = CALL_FILTERS
            .iter()
            .chain(&Paging::PARAMETERS)
            .copied()
            .collect();
        let raw = Params::collect(query, &accepted, &[])?;
        let mut filter = CallFilter::default();
        let mut echo: Vec<(&'static str, String)> = Vec::new();
        for name in CALL_FILTERS {
            let Some(value) = raw.get(name) else { continue };
            match name {
                "To" => filter.to = Some(value.to_owned()),
                "From" => filter.from = Some(value.to_owned()),
                "Status" => {
                    let status =
                        CallStatus::parse(&value.to_ascii_lowercase()).ok_or_else(|| {
                            let all: Vec<&str> =
                                CallStatus::ALL.iter().map(|s| s.as_str()).collect();
                            invalid(
                                "Status",
                                format!(
                                    "Status must be one of {}, not '{}'",
                                    all.join(", "),
                                    shorten(value)
                                ),
                            )
                        })?;
                    filter.status = Some(status);
                    echo.push((name, status.as_str().to_owned()));
                    continue;
                }
                "ParentCallSid" => {
                    filter.parent_call_sid =
                        Some(value.parse().map_err(|e: super::sid::InvalidSid| {
                            invalid("ParentCallSid", format!("ParentCallSid: {e}"))
                        })?);
                }
                "StartTime" => {
                    let (start, end) = parse_time(name, value)?;
                    filter.started_at_or_after = Some(start);
                    filter.started_at_or_before = Some(end);
                }
                "StartTime>" => filter.started_at_or_after = Some(parse_time(name, value)?.0),
                _ => filter.started_at_or_before = Some(parse_time(name, value)?.1),
            }
            echo.push((name, value.to_owned()));
        }
        if raw.has("StartTime") && (raw.has("StartTime>") || raw.has("StartTime<")) {
            return Err(super::params::conflict(
                "StartTime",
                "Give StartTime, or StartTime> and/or StartTime<, not both".into(),
            ));
        }
        Ok(Self {
            filter,
            paging: Paging::parse(&raw)?,
            query: echo,
        })
    }
}

/// `GET …/Calls/{CallSid}/Modifications`: paging only.
pub fn parse_paging_only(query: &Form) -> Result<Paging, InvalidParameter> {
    let raw = Params::collect(query, &Paging::PARAMETERS, &[])?;
    Paging::parse(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(query: &str) -> Result<ListCallsRequest, InvalidParameter> {
        ListCallsRequest::parse(&Form::parse(query.as_bytes()).unwrap())
    }

    #[test]
    fn filters_and_paging() {
        let request =
            list("To=client:bob&Status=In-Progress&StartTime%3E=2026-11-24&PageSize=10").unwrap();
        assert_eq!(request.filter.to.as_deref(), Some("client:bob"));
        assert_eq!(request.filter.status, Some(CallStatus::InProgress));
        assert_eq!(
            request.filter.started_at_or_after,
            Some(Timestamp::from_millis(1_795_478_400_000))
        );
        assert_eq!(request.paging.page_size, 10);
        assert_eq!(request.paging.page(), 0);

        let day = list("StartTime=2026-11-24").unwrap().filter;
        assert_eq!(
            day.started_at_or_after,
            Some(Timestamp::from_millis(1_795_478_400_000))
        );
        assert_eq!(
            day.started_at_or_before,
            Some(Timestamp::from_millis(1_795_478_400_000 + DAY_MILLIS - 1))
        );
        let before = list("StartTime%3C=2026-11-24T12:44:08Z").unwrap().filter;
        assert_eq!(
            before.started_at_or_before,
            Some(Timestamp::from_millis(1_795_524_248_000))
        );

        assert_eq!(list("").unwrap().paging.page_size, 50);
        for (query, parameter) in [
            ("PageSize=0", "PageSize"),
            ("PageSize=1001", "PageSize"),
            ("Status=ended", "Status"),
            ("StartTime=yesterday", "StartTime"),
            ("StartTime=2026-11-24&StartTime%3E=2026-11-01", "StartTime"),
            ("ParentCallSid=CA1", "ParentCallSid"),
            ("PageToken=garbage", "PageToken"),
            ("Page=3", "Page"),
            ("Bogus=1", "Bogus"),
            ("To=a&To=b", "To"),
        ] {
            assert_eq!(list(query).unwrap_err().parameter, parameter, "{query}");
        }
    }

    #[test]
    fn calls_spread_evenly_over_their_listing_shards() {
        assert_eq!(shard_of(&CallSid::generate(), 1), 0);
        assert_eq!(shard_of(&CallSid::generate(), 0), 0);
        let mut counts = [0u32; 16];
        for _ in 0..16_000 {
            counts[usize::from(shard_of(&CallSid::generate(), 16))] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    }

    #[test]
    fn page_tokens_round_trip() {
        let token = PageToken {
            page: 3,
            after: "000001795524248#CA0123".into(),
            backward: true,
        };
        let encoded = token.encode();
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(PageToken::decode(&encoded), Some(token));
        let query = format!("PageToken={encoded}&Page=3");
        assert_eq!(list(&query).unwrap().paging.page(), 3);
    }
}
