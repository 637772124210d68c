//! Listing conferences and their participants: filters, paging, and their places in the
//! listing indexes.

use super::*;
use crate::error::InvalidParameter;
use crate::form::Form;
use crate::paging::{Paging, parse_time};
use crate::params::{Params, conflict, invalid};
use crate::sid::ConferenceSid;
use crate::sid::shorten;
use crate::time::Timestamp;

/// The filters `GET …/Conferences` accepts, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConferenceFilter {
    pub friendly_name: Option<String>,
    pub status: Option<ConferenceStatus>,
    pub created_from: Option<Timestamp>,
    pub created_to: Option<Timestamp>,
    pub updated_from: Option<Timestamp>,
    pub updated_to: Option<Timestamp>,
}

impl ConferenceFilter {
    pub fn matches(&self, conference: &Conference) -> bool {
        let within = |at: Timestamp, from: Option<Timestamp>, to: Option<Timestamp>| {
            from.is_none_or(|from| at >= from) && to.is_none_or(|to| at <= to)
        };
        self.friendly_name
            .as_ref()
            .is_none_or(|name| *name == conference.friendly_name)
            && self.status.is_none_or(|s| s == conference.status)
            && within(conference.date_created, self.created_from, self.created_to)
            && within(conference.date_updated, self.updated_from, self.updated_to)
    }
}

/// The filters `GET …/Participants` accepts, parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParticipantFilter {
    pub muted: Option<bool>,
    pub hold: Option<bool>,
    pub coaching: Option<bool>,
}

impl ParticipantFilter {
    pub fn matches(&self, participant: &Participant) -> bool {
        let s = &participant.state;
        self.muted.is_none_or(|m| m == s.muted)
            && self.hold.is_none_or(|h| h == s.hold)
            && self.coaching.is_none_or(|c| c == s.coaching)
    }
}

/// The filters `GET …/Conferences` accepts (Twilio's), `<` and `>` forms included.
pub const CONFERENCE_FILTERS: [&str; 8] = [
    "FriendlyName",
    "Status",
    "DateCreated",
    "DateCreated<",
    "DateCreated>",
    "DateUpdated",
    "DateUpdated<",
    "DateUpdated>",
];

/// `GET …/Conferences`: filters and paging, parsed and checked.
#[derive(Debug, Clone)]
pub struct ListConferencesRequest {
    pub filter: ConferenceFilter,
    pub paging: Paging,
    /// The filters as given, for the envelope's URIs.
    pub query: Vec<(&'static str, String)>,
}

impl ListConferencesRequest {
    pub fn parse(query: &Form) -> Result<Self, InvalidParameter> {
        let accepted: Vec<&str> = CONFERENCE_FILTERS
            .iter()
            .chain(&Paging::PARAMETERS)
            .copied()
            .collect();
        let raw = Params::collect(query, &accepted, &[])?;
        let mut filter = ConferenceFilter::default();
        let mut echo: Vec<(&'static str, String)> = Vec::new();
        for name in CONFERENCE_FILTERS {
            let Some(value) = raw.get(name) else { continue };
            match name {
                "FriendlyName" => filter.friendly_name = Some(value.to_owned()),
                "Status" => {
                    let status =
                        ConferenceStatus::parse(&value.to_ascii_lowercase()).ok_or_else(|| {
                            invalid(
                                "Status",
                                format!(
                                    "Status must be one of init, in-progress, completed, not '{}'",
                                    shorten(value)
                                ),
                            )
                        })?;
                    filter.status = Some(status);
                    echo.push((name, status.as_str().to_owned()));
                    continue;
                }
                "DateCreated" | "DateUpdated" => {
                    let (start, end) = parse_time(name, value)?;
                    if name == "DateCreated" {
                        (filter.created_from, filter.created_to) = (Some(start), Some(end));
                    } else {
                        (filter.updated_from, filter.updated_to) = (Some(start), Some(end));
                    }
                }
                "DateCreated>" => filter.created_from = Some(parse_time(name, value)?.0),
                "DateCreated<" => filter.created_to = Some(parse_time(name, value)?.1),
                "DateUpdated>" => filter.updated_from = Some(parse_time(name, value)?.0),
                _ => filter.updated_to = Some(parse_time(name, value)?.1),
            }
            echo.push((name, value.to_owned()));
        }
        for field in ["DateCreated", "DateUpdated"] {
            if raw.has(field) && (raw.has(&format!("{field}>")) || raw.has(&format!("{field}<"))) {
                return Err(conflict(
                    field,
                    format!("Give {field}, or {field}> and/or {field}<, not both"),
                ));
            }
        }
        Ok(Self {
            filter,
            paging: Paging::parse(&raw)?,
            query: echo,
        })
    }
}

/// The filters `GET …/Participants` accepts.
pub const PARTICIPANT_FILTERS: [&str; 3] = ["Muted", "Hold", "Coaching"];

/// `GET …/Conferences/{ConferenceSid}/Participants`: filters and paging.
#[derive(Debug, Clone)]
pub struct ListParticipantsRequest {
    pub filter: ParticipantFilter,
    pub paging: Paging,
    pub query: Vec<(&'static str, String)>,
}

impl ListParticipantsRequest {
    pub fn parse(query: &Form) -> Result<Self, InvalidParameter> {
        let accepted: Vec<&str> = PARTICIPANT_FILTERS
            .iter()
            .chain(&Paging::PARAMETERS)
            .copied()
            .collect();
        let raw = Params::collect(query, &accepted, &[])?;
        let filter = ParticipantFilter {
            muted: raw.boolean("Muted")?,
            hold: raw.boolean("Hold")?,
            coaching: raw.boolean("Coaching")?,
        };
        let query = [
            ("Muted", filter.muted),
            ("Hold", filter.hold),
            ("Coaching", filter.coaching),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v.to_string())))
        .collect();
        Ok(Self {
            filter,
            paging: Paging::parse(&raw)?,
            query,
        })
    }
}

/// A participant's place in its room's listing: when it joined, then its CallSid.
pub fn participant_position(participant: &Participant) -> String {
    format!(
        "{:015}#{}",
        participant.date_created.millis().max(0),
        participant.state.call_sid
    )
}

/// A conference's place in its account's listing, newest first: creation time, then sid.
pub fn conference_position(conference: &Conference) -> String {
    crate::paging::created_position(conference.date_created, &conference.sid)
}

/// The ConferenceSid of a well-formed conference position.
pub fn conference_position_sid(position: &str) -> Option<ConferenceSid> {
    crate::paging::created_position_sid(position)
}
