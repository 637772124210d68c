//! RCML documents: the `Twiml` parameter's validation, and the worker kit's parser (what every
//! media worker runs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(document) = std::str::from_utf8(data) else {
        return;
    };
    let _ = teleapi_domain::Rcml::parse(document);
    let _ = teleapi_worker::rcml::parse(document);
});
