//! Listing an account's calls: their place in the listing index, the filters of
//! `GET …/Calls` and its paging.

use crate::call::{AnsweredBy, Call, CallStatus, Direction};
use crate::error::InvalidParameter;
use crate::form::Form;
use crate::paging::Paging;
use crate::paging::created_position;
use crate::paging::created_position_sid;
use crate::paging::parse_time;
use crate::params::{Params, invalid};
use crate::sid::{AccountSid, CallSid, shorten};
use crate::time::Timestamp;
use std::borrow::Cow;

/// A call's place in its account's listing, newest first: creation time, then CallSid. Stored
/// on the call item as the sort key of the listing index.
pub fn call_position(call: &Call) -> String {
    created_position(call.date_created, &call.sid)
}

/// The CallSid of a well-formed call position.
pub fn call_position_sid(position: &str) -> Option<CallSid> {
    created_position_sid(position)
}

/// A call as its account's listing holds it: what the Call resource shows. The listing index of
/// DynamoDB carries exactly this, so that a page is read from the index alone; none of it
/// changes on a write the resource does not show ([`Call::updated_over`], which compares two
/// of these), so a modification (but a mute) and most events do not write the index.
///
/// Borrowed from a [`Call`] by [`Call::listed`] (rendered, compared, filtered without a copy),
/// owned (`ListedCall<'static>`) as a page of the listing holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedCall<'a> {
    pub sid: Cow<'a, CallSid>,
    pub account_sid: Cow<'a, AccountSid>,
    pub parent_call_sid: Option<Cow<'a, CallSid>>,
    pub from: Cow<'a, str>,
    pub to: Cow<'a, str>,
    pub direction: Direction,
    pub status: CallStatus,
    pub muted: bool,
    pub answered_by: Option<AnsweredBy>,
    pub date_created: Timestamp,
    pub date_updated: Timestamp,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    pub duration: Option<u64>,
}

impl ListedCall<'_> {
    /// The call's place in its account's listing ([`call_position`]).
    pub fn position(&self) -> String {
        created_position(self.date_created, &self.sid)
    }

    /// The same, owning what it borrowed.
    pub fn into_owned(self) -> ListedCall<'static> {
        ListedCall {
            sid: Cow::Owned(self.sid.into_owned()),
            account_sid: Cow::Owned(self.account_sid.into_owned()),
            parent_call_sid: self.parent_call_sid.map(|p| Cow::Owned(p.into_owned())),
            from: Cow::Owned(self.from.into_owned()),
            to: Cow::Owned(self.to.into_owned()),
            ..self
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

    pub fn matches(&self, call: &ListedCall) -> bool {
        self.to.as_ref().is_none_or(|to| *to == call.to)
            && self.from.as_ref().is_none_or(|from| *from == call.from)
            && self.status.is_none_or(|status| status == call.status)
            && self
                .parent_call_sid
                .as_ref()
                .is_none_or(|parent| call.parent_call_sid.as_deref() == Some(parent))
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
                        Some(value.parse().map_err(|e: crate::sid::InvalidSid| {
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
            return Err(crate::params::conflict(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::shard_of;
    use crate::paging::DAY_MILLIS;
    use crate::paging::PageToken;

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
