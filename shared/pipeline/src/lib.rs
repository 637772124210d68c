//! The control plane's consumers: what it does with the queues and the schedule.
//!
//! - [`call_events`]: media workers' reports (call, conference, recording, stream and worker
//!   events), applied to the stores, with the callbacks and intent outcomes they make.
//! - [`callbacks`]: StatusCallback and fallback requests to the application.
//! - [`reconcile`]: the scheduled sweep that settles intents a crash left pending, and
//!   [`leases`]: ends the calls and rooms of workers whose lease ran out.
//! - [`system_intents`]: commands the control plane sends on its own behalf.
//! - [`consumer`]: a batch's partial-failure rule, for Lambda's batches and local polling.

pub mod call_events;
pub mod callbacks;
pub mod consumer;
pub mod leases;
pub mod reconcile;
pub mod services;
pub mod system_intents;
