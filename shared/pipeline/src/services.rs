//! What the reconciler and the lease sweep work with: the stores and queues of a dead worker's
//! calls, rooms and media, and the budgets of their writes.

use std::sync::Arc;
use std::time::Duration;
use teleapi_ports::{
    AccountStore, CallLogStore, CallStore, Clock, ConferenceStore, Queue, RecordingStore,
    WorkerStore,
};

/// What the reconciler works with.
#[derive(Clone)]
pub struct ReconcilerServices {
    /// Read for an account's listing partitions, to find the legs of a dead worker's calls.
    pub accounts: Arc<dyn AccountStore>,
    pub calls: Arc<dyn CallStore>,
    pub workers: Arc<dyn WorkerStore>,
    pub commands: Arc<dyn Queue>,
    /// Where the StatusCallbacks of calls ended for a dead worker go.
    pub callbacks: Arc<dyn Queue>,
    /// Where the notifications of the calls it ends go.
    pub call_log: Arc<dyn CallLogStore>,
    /// Read for a dead worker's call's recording, to fail it if it is not final.
    pub recordings: Arc<dyn RecordingStore>,
    /// Read for a dead worker's rooms, to end them.
    pub conferences: Arc<dyn ConferenceStore>,
    /// The events queue, where the reconciler reports what a worker cannot (streams and
    /// recordings failed, rooms ended) in its place; the call-events function applies them as
    /// any worker's.
    pub events: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    /// How long ending one call may keep retrying its write against concurrent writers.
    pub write_budget: Duration,
    /// The TTL of the intents that hang up those legs, and of the calls' notifications.
    pub intent_retention: Duration,
}
