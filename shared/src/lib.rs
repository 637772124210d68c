//! `teleapi`: the Calls API control plane shared by every function and by `teleapi-local`.
//!
//! - [`domain`]: the product's concepts and rules, pure.
//! - [`ports`]: the traits the domain needs from the world (stores, queues, clock).
//! - [`adapters`]: DynamoDB, SQS and in-memory implementations of the ports.
//! - [`api`]: one module per HTTP operation, from `lambda_http::Request` to a response.

pub mod account_cache;
pub mod adapters;
pub mod api;
pub mod call_events;
pub mod callbacks;
pub mod config;
pub mod consumer;
pub mod domain;
pub mod insight;
pub mod lambda;
pub mod leases;
pub mod ports;
pub mod reconcile;
pub mod retry;
pub mod system_intents;
pub mod telemetry;
