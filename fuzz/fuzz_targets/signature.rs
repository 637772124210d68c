//! The callback signature: any token, URL and parameters (split from the input at NUL bytes).
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use teleapi_domain::Method;
use teleapi_domain::wire::callback::signature;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let token = parts.next().unwrap_or_default();
    let url = parts.next().unwrap_or_default();
    let mut parameters = BTreeMap::new();
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        parameters.insert(name.to_owned(), value.to_owned());
    }
    for method in [Method::Get, Method::Post] {
        let first = signature(token, url, method, &parameters);
        assert_eq!(
            first,
            signature(token, url, method, &parameters),
            "deterministic"
        );
        assert_eq!(first.len(), 28, "Base64 of 20 bytes");
    }
});
