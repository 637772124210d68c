//! How a function starts and runs: its configuration from the environment ([`config`]), the
//! Lambda runtime loops that hand events to the API and the pipeline ([`lambda`]), and logging
//! ([`telemetry`]).

pub mod config;
pub mod lambda;
pub mod telemetry;
