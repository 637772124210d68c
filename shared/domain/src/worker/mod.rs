//! Media workers as the control plane knows them: each announces itself and renews a lease with
//! heartbeats on the events queue (group = its WorkerId). A worker whose lease runs out is dead
//! to the control plane: the calls it owned are ended for it. See docs/messages.md, "Worker
//! events".

mod apply;

pub use apply::*;

use crate::sid::WorkerId;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How often a worker sends `worker.heartbeat`.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// How long a heartbeat keeps a worker alive: three intervals, so two lost or late heartbeats
/// in a row are tolerated.
pub const LEASE: Duration = Duration::from_secs(30);

/// What a worker says it is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerState {
    /// Takes new calls.
    Active,
    /// Takes no new calls; the ones it has finish.
    Draining,
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
