//! The integration suites of the workspace, one module each, in one test program: they share
//! one build and one link instead of sixteen. Run one with a filter:
//! `cargo test -p teleapi-tests --test suites e2e::` (or `tests/run -p teleapi-tests --test
//! suites e2e::`). What each holds is in its own file's first lines.

mod admin;
mod calls_api;
mod capacity;
mod conferences_api;
mod console;
mod contract;
mod e2e;
mod events_callbacks;
mod infra;
mod lambda_binaries;
mod lambda_events;
mod layering;
mod load;
mod local_http;
mod modify_call;
mod reliability;
mod security;
mod sip_calls;
mod sip_media;
mod worker_contract;
