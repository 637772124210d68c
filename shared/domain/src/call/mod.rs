//! The call as the control plane records it: who, where it stands, and the instructions in force.

mod amd;
mod apply;
mod callbacks;
mod create;
mod listing;
mod modify;

pub use amd::*;
pub use apply::*;

pub use callbacks::*;

pub use create::*;

pub use listing::*;

pub use modify::*;

use crate::sid::WorkerId;

use crate::sid::RecordingSid;

use crate::stream::Stream;

use crate::sid::AccountSid;
use crate::sid::CallSid;
use crate::time::Timestamp;
use crate::webhook::Method;
use crate::webhook::StatusCallbackEvents;
use crate::webhook::WebhookUrl;
use serde::Deserialize;
use serde::Serialize;
use std::borrow::Cow;

/// The listing partition of a call among its account's `shards` (1 if 0): a hash of the
/// CallSid (its random hex), so that an account's new calls spread evenly over its partitions.
pub fn shard_of(sid: &CallSid, shards: u8) -> u8 {
    let random = u16::from_str_radix(&sid.as_str()[2..6], 16).unwrap_or(0);
    u8::try_from(random % u16::from(shards.max(1))).expect("below a u8")
}

/// Twilio's call statuses. `queued`, `ringing` and `in-progress` are live; the rest are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    Queued,
    Ringing,
    InProgress,
    Completed,
    Busy,
    Failed,
    NoAnswer,
    Canceled,
}

impl CallStatus {
    pub const ALL: [CallStatus; 8] = [
        Self::Queued,
        Self::Ringing,
        Self::InProgress,
        Self::Completed,
        Self::Busy,
        Self::Failed,
        Self::NoAnswer,
        Self::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Ringing => "ringing",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Busy => "busy",
            Self::Failed => "failed",
            Self::NoAnswer => "no-answer",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// A final status: the call is over and can no longer be modified.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Ringing | Self::InProgress)
    }

    /// Not yet answered: a hang-up now cancels the call rather than completing it.
    pub fn is_unanswered(self) -> bool {
        matches!(self, Self::Queued | Self::Ringing)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Inbound,
    OutboundApi,
    OutboundDial,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::OutboundApi => "outbound-api",
            Self::OutboundDial => "outbound-dial",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Inbound, Self::OutboundApi, Self::OutboundDial]
            .into_iter()
            .find(|d| d.as_str() == value)
    }
}

/// Where the call gets its RCML and where its events are reported: what a modification changes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Instructions {
    pub url: Option<WebhookUrl>,
    pub method: Method,
    pub fallback_url: Option<WebhookUrl>,
    pub fallback_method: Method,
    pub status_callback: Option<WebhookUrl>,
    pub status_callback_method: Method,
    pub status_callback_events: StatusCallbackEvents,
    /// Longest the call may last, in seconds.
    pub time_limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub sid: CallSid,
    pub account_sid: AccountSid,
    pub parent_call_sid: Option<CallSid>,
    pub from: String,
    pub to: String,
    pub direction: Direction,
    pub status: CallStatus,
    pub muted: bool,
    pub instructions: Instructions,
    /// The commands queue of the media worker that owns the call, when one has said so.
    pub command_queue: Option<String>,
    /// The media worker that owns the call, when it has said so (`worker_id` of
    /// `call.initiated`).
    pub worker: Option<WorkerId>,
    /// Sequence number of the call's latest intent; 0 before the first.
    pub seq: u64,
    /// Bumped by every write of the call item: the optimistic-concurrency token.
    pub version: u64,
    /// `seq` of the last worker event applied to the call (0 before the first).
    pub event_seq: u64,
    /// `SequenceNumber` of the next StatusCallback (Twilio numbers them per call from 0).
    pub callback_seq: u64,
    /// The worker has reported the call's end; until then a final status is the API's own
    /// (set by a hang-up request) and the worker's report refines it.
    pub end_reported: bool,
    pub date_created: Timestamp,
    pub date_updated: Timestamp,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    /// Seconds from answer to end, once the call is over.
    pub duration: Option<u64>,
    /// The call's active recording (in progress or paused), or the last one started: a start
    /// is refused while it is active.
    pub recording: Option<RecordingSid>,
    /// The call's media streams: the running ones and the last few stopped.
    pub streams: Vec<Stream>,
    /// Which of its account's listing partitions the call is in, chosen when it is created
    /// ([`crate::call::shard_of`]) and kept for its life.
    pub listing_shard: u8,
    /// Who answered, when answering-machine detection was asked for and has decided.
    pub answered_by: Option<AnsweredBy>,
    /// The queue the caller waits in (`<Enqueue>`), as its worker last reported: what the
    /// calls' sparse `queue` index lists as the queue's members.
    pub queue: Option<crate::queue::Waiting>,
}

impl Call {
    /// The queue the call waits in: none once it has ended, whether or not its worker has
    /// reported it left.
    pub fn waiting(&self) -> Option<&crate::queue::Waiting> {
        self.queue.as_ref().filter(|_| !self.status.is_final())
    }

    /// Whether the call waits in the queue `sid` now.
    pub fn waits_in(&self, sid: &crate::sid::QueueSid) -> bool {
        self.waiting().is_some_and(|w| w.sid == *sid)
    }

    /// A call that reached one of the account's numbers, as a media worker first reports it (or
    /// as the local stack's dev route creates it).
    pub fn inbound(
        account_sid: AccountSid,
        from: String,
        to: String,
        instructions: Instructions,
        status: CallStatus,
        now: Timestamp,
    ) -> Self {
        let answered = !status.is_unanswered();
        Self {
            sid: CallSid::generate(),
            account_sid,
            parent_call_sid: None,
            from,
            to,
            direction: Direction::Inbound,
            status,
            muted: false,
            instructions,
            command_queue: None,
            worker: None,
            seq: 0,
            version: 1,
            event_seq: 0,
            callback_seq: 0,
            end_reported: false,
            date_created: now,
            date_updated: now,
            start_time: answered.then_some(now),
            end_time: status.is_final().then_some(now),
            duration: status.is_final().then_some(0),
            listing_shard: 0,
            recording: None,
            streams: Vec::new(),
            answered_by: None,
            queue: None,
        }
    }

    /// `self`, written over `before` at `now`: `date_updated` moves to `now` when what the Call
    /// resource shows changed ([`ListedCall`]), and only then, so that a write the resource
    /// does not show (a redirect, a new StatusCallback, a worker's report of a stream) leaves
    /// the account's listing of the call as it was (docs/decisions.md, "A call's
    /// date_updated").
    pub fn updated_over(mut self, before: &Call, now: Timestamp) -> Self {
        let before = ListedCall {
            date_updated: self.date_updated,
            ..before.listed()
        };
        if self.listed() != before {
            self.date_updated = now;
        }
        self
    }

    /// The call as its account's listing holds it, borrowed from the call.
    pub fn listed(&self) -> ListedCall<'_> {
        ListedCall {
            sid: Cow::Borrowed(&self.sid),
            account_sid: Cow::Borrowed(&self.account_sid),
            parent_call_sid: self.parent_call_sid.as_ref().map(Cow::Borrowed),
            from: Cow::Borrowed(&self.from),
            to: Cow::Borrowed(&self.to),
            direction: self.direction,
            status: self.status,
            muted: self.muted,
            answered_by: self.answered_by,
            date_created: self.date_created,
            date_updated: self.date_updated,
            start_time: self.start_time,
            end_time: self.end_time,
            duration: self.duration,
        }
    }

    /// The call placed in one of its account's `listing_shards` listing partitions.
    pub fn listed_in(mut self, listing_shards: u8) -> Self {
        self.listing_shard = crate::call::shard_of(&self.sid, listing_shards);
        self
    }
}

/// How `Status` ends a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HangupStatus {
    /// End a call that is queued or ringing; no effect on one in progress.
    Canceled,
    /// End the call whatever its live state.
    Completed,
    /// Not an API value: the control plane ends a call whose RCML failed with no fallback.
    Failed,
}

impl HangupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Canceled => "canceled",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}
