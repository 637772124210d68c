//! The media-worker kit: everything a media worker does except media.
//!
//! A worker built on it takes the commands of its calls in order from its queue (the `seq`
//! rule, duplicates and redeliveries absorbed), takes new calls from the queue it shares with
//! other workers while it is active, heartbeats its lease, drains and leaves, reports every
//! event with a deduplication id, fetches RCML with Twilio's parameters, and runs it: every verb
//! and attribute of [`rcml`], with Twilio's 13xxx warnings for the values it ignores. What it
//! needs from the world it runs in is a [`Media`]: legs to ring, answer and hang up, prompts
//! to play, legs to bridge, rooms, recordings and stream audio. The simulator of
//! `teleapi-local` is one (fake phones and tones); a SIP/RTP worker is another.
//!
//! ```text
//! Worker::new(config, queues, media).run()   // until it has left, or is killed
//! WorkerHandle: inbound(call), bridge_in(leg), drain(), kill(), life(), calls()
//! ```

pub mod amd;
pub mod audio;
mod fetch;
mod inbox;
mod leg;
pub mod media;
mod queues;
pub mod rcml;
mod recorder;
mod relay;
mod rooms;
mod shared;
mod streams;
mod worker;

pub use inbox::InboundCall;
pub use media::{
    AudioTap, Inputs, LegInfo, LegInput, Media, PlayId, Prompt, Recorded, RecordingMedia, Track,
};
pub use relay::{bridge_uri, bridged_agent};
pub use shared::{Life, Signing, Stores, WorkerConfig};
pub use streams::FRAME;
pub use worker::{SharedQueue, Worker, WorkerHandle, WorkerQueues};
