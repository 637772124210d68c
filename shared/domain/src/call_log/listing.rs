//! Where a call's log entries and an account's notifications sit in their indexes, and the
//! filters and paging of `GET …/Notifications`.

use super::*;
use crate::error::InvalidParameter;
use crate::form::Form;
use crate::paging::{Paging, parse_time};
use crate::params::{Params, conflict, invalid};
use crate::sid::{CallSid, NotificationSid, shorten};
use crate::time::Timestamp;
use sha1::{Digest, Sha1};

pub fn request_position(entry: &RequestEntry) -> String {
    // What tells two requests of a call at the same millisecond apart, fed to the digest as
    // they are (a callback's attempt is on the hot path: no serialising for a name).
    let (request, response) = (&entry.request, &entry.response);
    let mut digest = Sha1::new();
    for part in [
        request.kind.as_str(),
        request.method.as_str(),
        &request.url,
        response.content_type.as_deref().unwrap_or_default(),
        response.body.as_deref().unwrap_or_default(),
        response.error.as_deref().unwrap_or_default(),
    ] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    digest.update(request.attempt.to_le_bytes());
    digest.update(response.status_code.unwrap_or(0).to_le_bytes());
    digest.update(response.duration_ms.to_le_bytes());
    for (name, value) in &request.parameters {
        digest.update(name.as_bytes());
        digest.update([0]);
        digest.update(value.as_bytes());
        digest.update([0]);
    }
    let digest = digest.finalize();
    let unique: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("E{:015}#{unique}", entry.at.millis().max(0))
}

/// A notification's place: also its place in its account's notifications (the `notifications`
/// index), which is why it names the call too (an index's page starts after a whole key).
pub fn notification_position(notification: &Notification) -> String {
    format!(
        "N{:015}#{}#{}",
        notification.at.millis().max(0),
        notification.sid,
        notification.call_sid
    )
}

/// The call of a well-formed notification position.
pub fn notification_position_call(position: &str) -> Option<CallSid> {
    if !is_position(position, 'N') {
        return None;
    }
    position.rsplit_once('#')?.1.parse().ok()
}

/// Whether `position` is a well-formed position of a request (`E`) or a notification (`N`).
pub fn is_position(position: &str, kind: char) -> bool {
    let Some(rest) = position.strip_prefix(kind) else {
        return false;
    };
    let Some((millis, unique)) = rest.split_once('#') else {
        return false;
    };
    millis.len() == 15
        && millis.bytes().all(|b| b.is_ascii_digit())
        && match kind {
            'N' => unique.split_once('#').is_some_and(|(sid, call)| {
                sid.parse::<NotificationSid>().is_ok() && call.parse::<CallSid>().is_ok()
            }),
            _ => unique.len() == 16 && unique.bytes().all(|b| b.is_ascii_hexdigit()),
        }
}

/// Filters of the notification lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationFilter {
    pub level: Option<LogLevel>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl NotificationFilter {
    pub fn matches(&self, notification: &Notification) -> bool {
        self.level.is_none_or(|l| l == notification.level)
            && self.from.is_none_or(|from| notification.at >= from)
            && self.to.is_none_or(|to| notification.at <= to)
    }
}

/// The filters the notification lists take, Twilio's.
pub const NOTIFICATION_FILTERS: [&str; 4] = ["Log", "MessageDate", "MessageDate<", "MessageDate>"];

/// `GET …/Notifications` and `GET …/Calls/{Sid}/Notifications`: filters and paging.
#[derive(Debug, Clone)]
pub struct ListNotificationsRequest {
    pub filter: NotificationFilter,
    pub paging: Paging,
    /// The filters as given, for the envelope's URIs.
    pub query: Vec<(&'static str, String)>,
}

impl ListNotificationsRequest {
    pub fn parse(query: &Form) -> Result<Self, InvalidParameter> {
        let accepted: Vec<&str> = NOTIFICATION_FILTERS
            .iter()
            .chain(&Paging::PARAMETERS)
            .copied()
            .collect();
        let raw = Params::collect(query, &accepted, &[])?;
        let mut filter = NotificationFilter::default();
        let mut echo: Vec<(&'static str, String)> = Vec::new();
        if let Some(value) = raw.get("Log") {
            filter.level = Some(LogLevel::parse_log(value).ok_or_else(|| {
                invalid(
                    "Log",
                    format!(
                        "Log must be 0 (error), 1 (warning), error or warning, not '{}'",
                        shorten(value)
                    ),
                )
            })?);
            echo.push(("Log", value.to_owned()));
        }
        for name in &NOTIFICATION_FILTERS[1..] {
            let Some(value) = raw.get(name) else { continue };
            let (start, end) = parse_time(name, value)?;
            match *name {
                "MessageDate" => (filter.from, filter.to) = (Some(start), Some(end)),
                "MessageDate>" => filter.from = Some(start),
                _ => filter.to = Some(end),
            }
            echo.push((name, value.to_owned()));
        }
        if raw.has("MessageDate") && (raw.has("MessageDate>") || raw.has("MessageDate<")) {
            return Err(conflict(
                "MessageDate",
                "Give MessageDate, or MessageDate> and/or MessageDate<, not both".into(),
            ));
        }
        Ok(Self {
            filter,
            paging: Paging::parse(&raw)?,
            query: echo,
        })
    }
}
