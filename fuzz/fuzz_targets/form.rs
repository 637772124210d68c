//! Form bodies and query strings through every parser that reads them: the modification's and
//! the create's validation, the list filters and paging, idempotency keys and page tokens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teleapi_domain::call::ListCallsRequest;
use teleapi_domain::paging::{PageToken, parse_paging_only};
use teleapi_domain::{AccountSid, AddressPolicy, Form, IdempotencyKey, ModifyRequest};

fuzz_target!(|data: &[u8]| {
    let account: AccountSid = "AC0123456789abcdef0123456789abcdef".parse().unwrap();
    let _ = IdempotencyKey::parse(&account, data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = PageToken::decode(text);
    }
    let Ok(form) = Form::parse(data) else {
        return;
    };
    for policy in [
        AddressPolicy::default(),
        AddressPolicy {
            allow_loopback: true,
        },
    ] {
        if let Ok(request) = ModifyRequest::parse(&form, policy) {
            let _ = request.parameters();
        }
        if let Ok(request) = teleapi_domain::call::CreateRequest::parse(&form, policy) {
            let _ = request.parameters();
        }
    }
    let _ = ListCallsRequest::parse(&form);
    let _ = parse_paging_only(&form);
});
