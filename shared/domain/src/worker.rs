//! Media workers as the control plane knows them: each announces itself and renews a lease with
//! heartbeats on the events queue (group = its WorkerId). A worker whose lease runs out is dead
//! to the control plane: the calls it owned are ended for it. See docs/messages.md, "Worker
//! events".

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::event::EVENT_VERSION;
use super::time::Timestamp;

/// How often a worker sends `worker.heartbeat`.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// How long a heartbeat keeps a worker alive: three intervals, so two lost or late heartbeats
/// in a row are tolerated.
pub const LEASE: Duration = Duration::from_secs(30);

/// Longest a worker id may be.
const MAX_ID_LEN: usize = 64;

/// A worker's id: 1 to 64 of `A-Z a-z 0-9 . _ -`. It names one run of a worker process: a
/// worker that restarts announces itself under a new id, since the calls of the old one have
/// ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkerId(String);

impl WorkerId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for WorkerId {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let valid = !value.is_empty()
            && value.len() <= MAX_ID_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(Self(value))
        } else {
            Err(format!(
                "a worker id is 1 to {MAX_ID_LEN} of A-Z a-z 0-9 . _ -, not {value:?}"
            ))
        }
    }
}

impl From<WorkerId> for String {
    fn from(id: WorkerId) -> Self {
        id.0
    }
}

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a worker says it is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerState {
    /// Takes new calls.
    Active,
    /// Takes no new calls; the ones it has finish.
    Draining,
}

/// One event about a worker itself (not about a call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerEvent {
    pub version: u32,
    pub worker_id: WorkerId,
    /// When the worker sent it, milliseconds since the Unix epoch.
    pub timestamp: i64,
    #[serde(flatten)]
    pub kind: WorkerEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum WorkerEventKind {
    /// The worker is alive: announces it the first time, renews its lease every
    /// [`HEARTBEAT_INTERVAL`] after that.
    #[serde(rename = "worker.heartbeat")]
    Heartbeat {
        /// Its own commands queue.
        command_queue_url: String,
        /// How many calls it can hold at once.
        capacity: u32,
        /// How many it holds now.
        calls: u32,
        state: WorkerState,
    },
    /// The worker stops, its calls all ended: nothing of it is left to wait for.
    #[serde(rename = "worker.left")]
    Left,
}

/// Whether a message of the events queue is about a worker rather than a call: its `type`
/// starts with `worker.`.
pub fn is_worker_event(json: &str) -> bool {
    super::event::message_type(json).is_some_and(|kind| kind.starts_with("worker."))
}

impl WorkerEvent {
    pub fn from_json(json: &str) -> Result<Self, super::event::EventDecodeError> {
        let event: WorkerEvent = serde_json::from_str(json)?;
        if event.version != EVENT_VERSION {
            return Err(super::event::EventDecodeError::Version(event.version));
        }
        Ok(event)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an event always serialises")
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            WorkerEventKind::Heartbeat { .. } => "worker.heartbeat",
            WorkerEventKind::Left => "worker.left",
        }
    }
}

/// Where a worker stands, as the control plane records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerStatus {
    Active,
    Draining,
    /// It said `worker.left`.
    Left,
    /// Its lease ran out: the control plane ended its calls.
    Expired,
}

impl WorkerStatus {
    pub const ALL: [WorkerStatus; 4] = [Self::Active, Self::Draining, Self::Left, Self::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Draining => "draining",
            Self::Left => "left",
            Self::Expired => "expired",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Holds a lease: its heartbeats count.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Active | Self::Draining)
    }
}

/// A worker as the control plane records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    pub id: WorkerId,
    pub command_queue: String,
    pub capacity: u32,
    /// Calls it held at its last heartbeat.
    pub calls: u32,
    pub status: WorkerStatus,
    /// The `timestamp` of the last event applied (the worker's clock): an event at or before it
    /// is a duplicate or stale and changes nothing.
    pub last_event: Timestamp,
    /// When the lease runs out without another heartbeat (the control plane's clock).
    pub lease_expires_at: Timestamp,
    pub date_created: Timestamp,
    pub date_updated: Timestamp,
}

/// What `event` makes of the worker recorded as `current` (`None`: unknown) at `now`, a
/// heartbeat holding the worker for `lease` ([`LEASE`] when deployed), or why it changes nothing.
pub fn apply(
    current: Option<&Worker>,
    event: &WorkerEvent,
    now: Timestamp,
    lease: Duration,
) -> Result<Worker, String> {
    let at = Timestamp::from_millis(event.timestamp);
    if let Some(worker) = current {
        if !worker.status.is_live() {
            return Err(format!(
                "{} for worker {} which is {}: a worker id names one run of a worker",
                event.name(),
                worker.id,
                worker.status.as_str()
            ));
        }
        if at <= worker.last_event {
            return Err(format!(
                "{} for worker {} at {} is not after its last event: duplicate or stale",
                event.name(),
                worker.id,
                at.millis()
            ));
        }
    }
    match (&event.kind, current) {
        (
            WorkerEventKind::Heartbeat {
                command_queue_url,
                capacity,
                calls,
                state,
            },
            _,
        ) => Ok(Worker {
            id: event.worker_id.clone(),
            command_queue: command_queue_url.clone(),
            capacity: *capacity,
            calls: *calls,
            status: match state {
                WorkerState::Active => WorkerStatus::Active,
                WorkerState::Draining => WorkerStatus::Draining,
            },
            last_event: at,
            lease_expires_at: now.plus(lease),
            date_created: current.map_or(now, |w| w.date_created),
            date_updated: now,
        }),
        (WorkerEventKind::Left, Some(worker)) => Ok(Worker {
            status: WorkerStatus::Left,
            calls: 0,
            last_event: at,
            lease_expires_at: now,
            date_updated: now,
            ..worker.clone()
        }),
        (WorkerEventKind::Left, None) => Err(format!(
            "worker.left for unknown worker {}",
            event.worker_id
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every worker event example in docs/messages.md decodes and encodes back to itself.
    #[test]
    fn documented_examples_round_trip() {
        let examples = crate::doc_examples("## Worker events");
        assert_eq!(
            examples.len(),
            3,
            "a heartbeat, a draining one, and a leaving"
        );
        for example in examples {
            assert!(is_worker_event(example), "{example}");
            let event =
                WorkerEvent::from_json(example).unwrap_or_else(|e| panic!("{e}: {example}"));
            let expected: serde_json::Value = serde_json::from_str(example).unwrap();
            assert_eq!(serde_json::to_value(&event).unwrap(), expected);
        }
    }

    #[test]
    fn bad_worker_events_are_refused() {
        for bad in [
            r#"{"version":1,"type":"worker.heartbeat","worker_id":"","timestamp":1,"command_queue_url":"q","capacity":1,"calls":0,"state":"active"}"#,
            r#"{"version":1,"type":"worker.heartbeat","worker_id":"w 1","timestamp":1,"command_queue_url":"q","capacity":1,"calls":0,"state":"active"}"#,
            r#"{"version":1,"type":"worker.heartbeat","worker_id":"w1","timestamp":1,"command_queue_url":"q","capacity":1,"calls":0,"state":"sleeping"}"#,
            r#"{"version":2,"type":"worker.left","worker_id":"w1","timestamp":1}"#,
            r#"{"version":1,"type":"worker.exploded","worker_id":"w1","timestamp":1}"#,
        ] {
            assert!(WorkerEvent::from_json(bad).is_err(), "{bad}");
        }
        let long = "w".repeat(MAX_ID_LEN + 1);
        assert!(WorkerId::try_from(long).is_err());
        assert!(WorkerId::try_from("worker-7.us-east-1a_2".to_owned()).is_ok());
    }

    #[test]
    fn call_events_are_not_worker_events() {
        assert!(!is_worker_event(
            r#"{"version":1,"type":"call.status","call_sid":"CA5f2b9d0c6e1a4b3f8c7d6e5f4a3b2c1d"}"#
        ));
        assert!(!is_worker_event("not json"));
        assert!(!is_worker_event("{}"));
    }

    fn heartbeat(id: &str, at: i64, state: WorkerState) -> WorkerEvent {
        WorkerEvent {
            version: EVENT_VERSION,
            worker_id: WorkerId::try_from(id.to_owned()).unwrap(),
            timestamp: at,
            kind: WorkerEventKind::Heartbeat {
                command_queue_url: "https://sqs.example/teleapi-worker-7.fifo".into(),
                capacity: 500,
                calls: 3,
                state,
            },
        }
    }

    #[test]
    fn heartbeats_renew_the_lease_in_order_and_only_while_live() {
        let now = Timestamp::from_millis(1_000_000);
        let first = apply(None, &heartbeat("w1", 10, WorkerState::Active), now, LEASE).unwrap();
        assert_eq!(first.status, WorkerStatus::Active);
        assert_eq!(first.lease_expires_at, now.plus(LEASE));

        let later = now.plus(HEARTBEAT_INTERVAL);
        let renewed = apply(
            Some(&first),
            &heartbeat("w1", 20, WorkerState::Draining),
            later,
            LEASE,
        )
        .unwrap();
        assert_eq!(renewed.status, WorkerStatus::Draining);
        assert_eq!(renewed.lease_expires_at, later.plus(LEASE));
        assert_eq!(renewed.date_created, now);

        assert!(
            apply(
                Some(&renewed),
                &heartbeat("w1", 20, WorkerState::Active),
                later,
                LEASE,
            )
            .is_err()
        );
        assert!(
            apply(
                Some(&renewed),
                &heartbeat("w1", 15, WorkerState::Active),
                later,
                LEASE,
            )
            .is_err()
        );

        let left = WorkerEvent {
            kind: WorkerEventKind::Left,
            timestamp: 30,
            ..heartbeat("w1", 30, WorkerState::Active)
        };
        let gone = apply(Some(&renewed), &left, later, LEASE).unwrap();
        assert_eq!((gone.status, gone.calls), (WorkerStatus::Left, 0));
        assert!(
            apply(
                Some(&gone),
                &heartbeat("w1", 40, WorkerState::Active),
                later,
                LEASE,
            )
            .is_err()
        );
        let expired = Worker {
            status: WorkerStatus::Expired,
            ..renewed
        };
        assert!(
            apply(
                Some(&expired),
                &heartbeat("w1", 40, WorkerState::Active),
                later,
                LEASE,
            )
            .is_err()
        );
        assert!(apply(None, &left, later, LEASE).is_err());
    }
}
