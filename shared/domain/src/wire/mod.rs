//! The messages on the queues, as JSON with a version: commands to media workers, their
//! events, and callback jobs (docs/messages.md). Each decodes what docs/messages.md shows.

pub mod callback;
pub mod command;
pub mod conference;
pub mod event;
pub mod worker;
