//! Listing recordings: filters, paging, and their places in the listing indexes.

use super::*;
use crate::error::InvalidParameter;
use crate::form::Form;
use crate::paging::{Paging, parse_time};
use crate::params::{Params, conflict, invalid};
use crate::sid::{CallSid, RecordingSid};
use crate::time::Timestamp;

/// The filters `GET …/Recordings` accepts, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordingFilter {
    pub call_sid: Option<CallSid>,
    pub created_from: Option<Timestamp>,
    pub created_to: Option<Timestamp>,
}

impl RecordingFilter {
    pub fn matches(&self, recording: &Recording) -> bool {
        self.call_sid
            .as_ref()
            .is_none_or(|c| *c == recording.call_sid)
            && self
                .created_from
                .is_none_or(|from| recording.date_created >= from)
            && self
                .created_to
                .is_none_or(|to| recording.date_created <= to)
    }
}

/// The filters `GET …/Recordings` accepts (a call's list: all but `CallSid`).
pub const RECORDING_FILTERS: [&str; 4] = ["CallSid", "DateCreated", "DateCreated<", "DateCreated>"];

/// `GET …/Recordings` (the account's, which may filter by `CallSid`) and `GET
/// …/Calls/{Sid}/Recordings` (the call's): filters and paging.
#[derive(Debug, Clone)]
pub struct ListRecordingsRequest {
    pub filter: RecordingFilter,
    pub paging: Paging,
    /// The filters as given, for the envelope's URIs.
    pub query: Vec<(&'static str, String)>,
}

impl ListRecordingsRequest {
    /// `call`: the call of the path, for a call's list (which takes no `CallSid`).
    pub fn parse(query: &Form, call: Option<CallSid>) -> Result<Self, InvalidParameter> {
        const DATES: [&str; 3] = ["DateCreated", "DateCreated<", "DateCreated>"];
        let mut accepted: Vec<&str> = DATES.to_vec();
        if call.is_none() {
            accepted.push("CallSid");
        }
        accepted.extend(Paging::PARAMETERS);
        let raw = Params::collect(query, &accepted, &[])?;
        let mut filter = RecordingFilter {
            call_sid: call,
            ..RecordingFilter::default()
        };
        let mut echo: Vec<(&'static str, String)> = Vec::new();
        if let Some(value) = raw.get("CallSid") {
            let sid = value
                .parse()
                .map_err(|e: crate::sid::InvalidSid| invalid("CallSid", format!("CallSid: {e}")))?;
            filter.call_sid = Some(sid);
            echo.push(("CallSid", value.to_owned()));
        }
        for name in DATES {
            let Some(value) = raw.get(name) else { continue };
            let (start, end) = parse_time(name, value)?;
            match name {
                "DateCreated" => {
                    (filter.created_from, filter.created_to) = (Some(start), Some(end))
                }
                "DateCreated>" => filter.created_from = Some(start),
                _ => filter.created_to = Some(end),
            }
            echo.push((name, value.to_owned()));
        }
        if raw.has("DateCreated") && (raw.has("DateCreated>") || raw.has("DateCreated<")) {
            return Err(conflict(
                "DateCreated",
                "Give DateCreated, or DateCreated> and/or DateCreated<, not both".into(),
            ));
        }
        Ok(Self {
            filter,
            paging: Paging::parse(&raw)?,
            query: echo,
        })
    }
}

/// A recording's place in a listing, newest first: creation time, then sid.
pub fn recording_position(recording: &Recording) -> String {
    crate::paging::created_position(recording.date_created, &recording.sid)
}

/// The RecordingSid of a well-formed recording position.
pub fn recording_position_sid(position: &str) -> Option<RecordingSid> {
    crate::paging::created_position_sid(position)
}
