//! Worker events: a media worker's heartbeats and its leaving, on the events queue
//! (docs/messages.md, "Worker events").

use crate::sid::WorkerId;
use crate::wire::event::EVENT_VERSION;
use crate::worker::WorkerState;
use serde::{Deserialize, Serialize};

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
    crate::wire::event::message_type(json).is_some_and(|kind| kind.starts_with("worker."))
}

impl WorkerEvent {
    pub fn from_json(json: &str) -> Result<Self, crate::wire::event::EventDecodeError> {
        let event: WorkerEvent = serde_json::from_str(json)?;
        if event.version != EVENT_VERSION {
            return Err(crate::wire::event::EventDecodeError::Version(event.version));
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
