//! RCML documents: the `Twiml` parameter's validation, and the simulated worker's parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The simulated worker's parser, compiled here from its source: the fuzz build then needs
// teleapi-local's code, not its dependencies (the web server, the AWS admin SDK, the audio
// encoders), which instrumented would take minutes to build.
#[path = "../../local/src/simulator/rcml.rs"]
#[allow(dead_code)]
mod simulator_rcml;

fuzz_target!(|data: &[u8]| {
    let Ok(document) = std::str::from_utf8(data) else {
        return;
    };
    let _ = teleapi_domain::Rcml::parse(document);
    let _ = simulator_rcml::parse(document);
});
