//! What a worker's heartbeats and its leaving do to its record and its lease.

use super::*;
use crate::time::Timestamp;
use crate::wire::worker::WorkerEvent;
use crate::wire::worker::WorkerEventKind;
use std::time::Duration;

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
    use crate::sid::MAX_ID_LEN;
    use crate::wire::event::EVENT_VERSION;
    use crate::wire::worker::is_worker_event;

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
