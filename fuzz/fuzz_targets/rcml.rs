//! RCML documents: the `Twiml` parameter's validation, and the simulated worker's parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(document) = std::str::from_utf8(data) else {
        return;
    };
    let _ = teleapi::domain::Rcml::parse(document);
    let _ = teleapi_local::simulator::rcml::parse(document);
});
