//! Call queues (`…/Queues`): an account's named lines of callers. A caller joins one with
//! `<Enqueue>` (which makes the queue if the account has none of that name, as Twilio's does)
//! and waits there until an agent's `<Dial><Queue>` takes it, it `<Leave>`s, hangs up, or the
//! application dequeues it (`POST …/Queues/{QU}/Members/{CallSid|Front}` with a `Url`: a
//! redirect of that call). The queue item holds what the application set (its `MaxSize`); who
//! waits is each call's own (`Call::queue`, reported by its worker), listed through the calls'
//! sparse `queue` index (docs/data-model.md, "queues").

use crate::error::InvalidParameter;
use crate::form::Form;
use crate::params::{Params, conflict, invalid, missing};
use crate::sid::{AccountSid, CallSid, QueueSid, shorten};
use crate::time::Timestamp;

/// Twilio's default `MaxSize`, and what a queue made by `<Enqueue>` holds.
pub const DEFAULT_MAX_SIZE: u32 = 100;
/// The most `MaxSize` may say (Twilio's).
pub const MAX_MAX_SIZE: u32 = 5000;
/// The longest `FriendlyName` (Twilio's).
pub const MAX_FRIENDLY_NAME: usize = 64;

/// A queue, as the application set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallQueue {
    /// `QueueSid::named(account, friendly_name)`: every worker names it without asking.
    pub sid: QueueSid,
    pub account_sid: AccountSid,
    /// The name `<Enqueue>` and `<Dial><Queue>` give; it never changes (the sid is made of it).
    pub friendly_name: String,
    /// The most callers it holds; the next `<Enqueue>` hears `queue-full`.
    pub max_size: u32,
    pub date_created: Timestamp,
    pub date_updated: Timestamp,
    /// Bumped by every write: the optimistic-concurrency token.
    pub version: u64,
}

/// Where a call waits: the queue, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub sid: QueueSid,
    pub since: Timestamp,
}

/// A caller taken from its queue for an agent on another worker (`queue.bridge`): the caller's
/// worker reaches the agent over a media leg to the agent's worker (docs/decisions.md, "The
/// verbs after the first ones").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bridge {
    pub queue_sid: QueueSid,
    /// The agent's call, which waits in `<Dial><Queue>` on its worker.
    pub agent_call_sid: CallSid,
    /// Where the agent's worker takes bridges (its SIP address; a simulated worker's id).
    pub address: String,
    /// The token of the agent's wait: its worker takes a bridge only with it.
    pub token: String,
    /// The `<Queue url>` the caller runs before it is connected (resolved by the agent's
    /// worker), and its method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<crate::webhook::Method>,
}

/// A caller in a queue, as the queue's index lists it (oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub call_sid: CallSid,
    pub queue_sid: QueueSid,
    pub date_enqueued: Timestamp,
}

/// A queue's members, oldest first, as they stand at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub members: Vec<Member>,
    pub now: Timestamp,
}

impl Line {
    /// Oldest first, ties by CallSid (the index's order).
    pub fn new(mut members: Vec<Member>, now: Timestamp) -> Self {
        members.sort_by(|a, b| {
            (a.date_enqueued, a.call_sid.as_str()).cmp(&(b.date_enqueued, b.call_sid.as_str()))
        });
        Self { members, now }
    }

    pub fn current_size(&self) -> usize {
        self.members.len()
    }

    /// Seconds `member` has waited.
    pub fn wait_time(&self, member: &Member) -> u64 {
        self.now.seconds_since(member.date_enqueued)
    }

    /// The members' mean wait in whole seconds, as Twilio's `average_wait_time` (of those
    /// waiting now); 0 for an empty queue.
    pub fn average_wait_time(&self) -> u64 {
        let waited: u64 = self.members.iter().map(|m| self.wait_time(m)).sum();
        waited
            .checked_div(self.members.len() as u64)
            .unwrap_or_default()
    }

    /// `call`'s place (1 is the front) and the member, if it waits here.
    pub fn find(&self, call: &CallSid) -> Option<(usize, &Member)> {
        self.members
            .iter()
            .enumerate()
            .find(|(_, m)| m.call_sid == *call)
            .map(|(at, m)| (at + 1, m))
    }
}

/// The parameters `POST …/Queues` and `POST …/Queues/{QU}` take.
pub const QUEUE_PARAMETERS: [&str; 2] = ["FriendlyName", "MaxSize"];

fn max_size(raw: &Params) -> Result<Option<u32>, InvalidParameter> {
    raw.get("MaxSize")
        .map(|value| {
            value
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_MAX_SIZE).contains(n))
                .ok_or_else(|| {
                    invalid(
                        "MaxSize",
                        format!(
                            "MaxSize must be a whole number from 1 to {MAX_MAX_SIZE}, not '{}'",
                            shorten(value)
                        ),
                    )
                })
        })
        .transpose()
}

fn friendly_name(raw: &Params) -> Result<Option<String>, InvalidParameter> {
    raw.get("FriendlyName")
        .map(|name| {
            let length = name.chars().count();
            if name.trim().is_empty()
                || length > MAX_FRIENDLY_NAME
                || name.chars().any(char::is_control)
            {
                Err(invalid(
                    "FriendlyName",
                    format!(
                        "FriendlyName must be 1 to {MAX_FRIENDLY_NAME} characters, not blank and \
                         without control characters"
                    ),
                ))
            } else {
                Ok(name.to_owned())
            }
        })
        .transpose()
}

impl CallQueue {
    /// `POST …/Queues`: `FriendlyName` (required) and `MaxSize` (default 100).
    pub fn parse_create(
        account_sid: AccountSid,
        form: &Form,
        now: Timestamp,
    ) -> Result<Self, InvalidParameter> {
        let raw = Params::collect(form, &QUEUE_PARAMETERS, &[])?;
        let name = friendly_name(&raw)?.ok_or_else(|| missing("FriendlyName"))?;
        let mut queue = Self::implicit(account_sid, &name, now);
        queue.max_size = max_size(&raw)?.unwrap_or(DEFAULT_MAX_SIZE);
        Ok(queue)
    }

    /// The queue a caller's `<Enqueue>` makes when its account has none of that name.
    pub fn implicit(account_sid: AccountSid, name: &str, now: Timestamp) -> Self {
        Self {
            sid: QueueSid::named(&account_sid, name),
            account_sid,
            friendly_name: name.to_owned(),
            max_size: DEFAULT_MAX_SIZE,
            date_created: now,
            date_updated: now,
            version: 0,
        }
    }
}

/// `POST …/Queues/{QU}`: a new `MaxSize`. `FriendlyName` may be given only as it is: a
/// queue's name is its identity (its sid is made of it, so that every worker finds it with no
/// lookup); a renamed queue would be another queue to every `<Enqueue>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueChanges {
    pub friendly_name: Option<String>,
    pub max_size: Option<u32>,
}

impl QueueChanges {
    pub fn parse_update(form: &Form) -> Result<Self, InvalidParameter> {
        let raw = Params::collect(form, &QUEUE_PARAMETERS, &[])?;
        Ok(Self {
            friendly_name: friendly_name(&raw)?,
            max_size: max_size(&raw)?,
        })
    }

    /// The queue with these changes, written at `now`; `None` if nothing changes.
    pub fn applied_to(
        &self,
        queue: &CallQueue,
        now: Timestamp,
    ) -> Result<Option<CallQueue>, InvalidParameter> {
        if let Some(name) = &self.friendly_name
            && *name != queue.friendly_name
        {
            return Err(conflict(
                "FriendlyName",
                format!(
                    "A queue's FriendlyName cannot change (it is what <Enqueue> names it by): \
                     create a queue named '{}' instead",
                    shorten(name)
                ),
            ));
        }
        match self.max_size {
            Some(size) if size != queue.max_size => Ok(Some(CallQueue {
                max_size: size,
                date_updated: now,
                version: queue.version + 1,
                ..queue.clone()
            })),
            _ => Ok(None),
        }
    }
}

/// The path segment that names a queue's first caller.
pub const FRONT: &str = "Front";

/// A queue's place in its account's listing, newest first: creation time, then sid.
pub fn queue_position(queue: &CallQueue) -> String {
    crate::paging::created_position(queue.date_created, &queue.sid)
}

/// The QueueSid of a well-formed queue position.
pub fn queue_position_sid(position: &str) -> Option<QueueSid> {
    crate::paging::created_position_sid(position)
}

/// A member's place in its queue's listing, oldest first (its position there is its
/// `position`): when it joined, then its CallSid.
pub fn member_position(member: &Member) -> String {
    crate::paging::created_position(member.date_enqueued, &member.call_sid)
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
    fn a_queue_is_created_with_a_name_and_its_size() {
        let now = Timestamp::from_millis(1_000);
        let queue = CallQueue::parse_create(account(), &form("FriendlyName=support"), now).unwrap();
        assert_eq!(queue.sid, QueueSid::named(&account(), "support"));
        assert_eq!(queue.max_size, DEFAULT_MAX_SIZE);
        let sized =
            CallQueue::parse_create(account(), &form("FriendlyName=sales&MaxSize=5000"), now)
                .unwrap();
        assert_eq!(sized.max_size, 5000);
        for bad in [
            "",
            "MaxSize=10",
            "FriendlyName=",
            "FriendlyName=%20",
            "FriendlyName=a%0Ab",
            "FriendlyName=s&MaxSize=0",
            "FriendlyName=s&MaxSize=5001",
            "FriendlyName=s&MaxSize=ten",
            "FriendlyName=s&Url=http://example.com",
        ] {
            assert!(
                CallQueue::parse_create(account(), &form(bad), now).is_err(),
                "{bad}"
            );
        }
        let long = format!("FriendlyName={}", "q".repeat(MAX_FRIENDLY_NAME + 1));
        assert!(CallQueue::parse_create(account(), &form(&long), now).is_err());
    }

    #[test]
    fn a_queue_changes_its_size_but_not_its_name() {
        let now = Timestamp::from_millis(1_000);
        let queue = CallQueue::implicit(account(), "support", now);
        let later = Timestamp::from_millis(2_000);
        let bigger = QueueChanges::parse_update(&form("MaxSize=250"))
            .unwrap()
            .applied_to(&queue, later)
            .unwrap()
            .unwrap();
        assert_eq!(
            (bigger.max_size, bigger.version, bigger.date_updated),
            (250, 1, later)
        );
        let same = QueueChanges::parse_update(&form("FriendlyName=support&MaxSize=100")).unwrap();
        assert_eq!(same.applied_to(&queue, later).unwrap(), None);
        let renamed = QueueChanges::parse_update(&form("FriendlyName=sales")).unwrap();
        let err = renamed.applied_to(&queue, later).unwrap_err();
        assert_eq!(err.parameter, "FriendlyName");
    }

    #[test]
    fn a_line_counts_its_callers_and_their_waits() {
        let queue = QueueSid::named(&account(), "support");
        let member = |n: u8, at: i64| Member {
            call_sid: format!("CA{:032x}", n).parse().unwrap(),
            queue_sid: queue.clone(),
            date_enqueued: Timestamp::from_millis(at),
        };
        let line = Line::new(
            vec![member(2, 40_000), member(1, 10_000)],
            Timestamp::from_millis(70_000),
        );
        assert_eq!(line.current_size(), 2);
        assert_eq!(line.members[0], member(1, 10_000));
        assert_eq!(line.wait_time(&line.members[0]), 60);
        assert_eq!(line.average_wait_time(), 45);
        assert_eq!(line.find(&member(2, 0).call_sid).map(|(at, _)| at), Some(2));
        assert_eq!(Line::new(Vec::new(), line.now).average_wait_time(), 0);
    }
}
