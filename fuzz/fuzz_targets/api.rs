//! Whole requests through the API's entry point, on the memory twins, as API Gateway hands them
//! to a function: the input is `METHOD\nPATH?QUERY\nName: value\n...\n\nBODY`. The seeds name a
//! real account (with its credentials) and call, so the fuzzer reaches validation and the
//! writes behind it. Nothing may panic, and no answer may be a 5xx (these stores never fail).
#![no_main]

use std::sync::{Arc, OnceLock};

use lambda_http::http::{HeaderName, HeaderValue, Method};
use lambda_http::{Body, Request};
use libfuzzer_sys::fuzz_target;
use teleapi_adapters::media::FileMedia;
use teleapi_adapters::memory::{MemoryQueue, MemoryStore};
use teleapi_api::{ApiConfig, Services};
use teleapi_domain::{Account, AuthToken, Call, CallStatus, Instructions, Timestamp};
use teleapi_ports::{AccountStore, CallStore, SystemClock};

/// The seeds' account and call.
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const CALL: &str = "CA0123456789abcdef0123456789abcdef";

fn world() -> &'static (tokio::runtime::Runtime, Services) {
    static WORLD: OnceLock<(tokio::runtime::Runtime, Services)> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let store = MemoryStore::new();
        let now = Timestamp::now();
        let account = Account {
            sid: ACCOUNT.parse().unwrap(),
            auth_token: AuthToken::new(TOKEN),
            ..Account::open("Fuzz", None, now)
        };
        let mut call = Call::inbound(
            account.sid.clone(),
            "+15551230001".into(),
            "+15551230002".into(),
            Instructions::default(),
            CallStatus::InProgress,
            now,
        );
        call.sid = CALL.parse().unwrap();
        runtime.block_on(async {
            store.insert_account(&account).await.unwrap();
            store.insert_call(&call).await.unwrap();
        });
        let services = Services {
            accounts: Arc::new(store.clone()),
            conferences: Arc::new(store.clone()),
            recordings: Arc::new(store.clone()),
            numbers: Arc::new(store.clone()),
            queues: Arc::new(store.clone()),
            call_log: Arc::new(store.clone()),
            // Media of a folder of its own: nothing the fuzzer names is ever in it.
            media: Arc::new(FileMedia::new(
                std::env::temp_dir().join("teleapi-fuzz-media"),
            )),
            calls: Arc::new(store),
            commands: Arc::new(MemoryQueue::new("commands.fifo")),
            clock: Arc::new(SystemClock),
            config: ApiConfig::default(),
            account_cache: Default::default(),
            rate_limiter: None,
        };
        (runtime, services)
    })
}

fn request(data: &[u8]) -> Option<Request> {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let method = Method::from_bytes(lines.next()?).ok()?;
    let uri = std::str::from_utf8(lines.next()?).ok()?.parse().ok()?;
    let mut request = Request::new(if body.is_empty() {
        Body::Empty
    } else {
        Body::Binary(body.to_vec())
    });
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    for line in lines {
        let at = line.iter().position(|b| *b == b':')?;
        let name = HeaderName::from_bytes(&line[..at]).ok()?;
        let value = HeaderValue::from_bytes(line[at + 1..].trim_ascii()).ok()?;
        request.headers_mut().append(name, value);
    }
    Some(request)
}

fuzz_target!(|data: &[u8]| {
    let Some(request) = request(data) else {
        return;
    };
    let (runtime, services) = world();
    let response = runtime.block_on(teleapi_api::handle(services, request, None));
    assert!(
        response.status().as_u16() < 500,
        "{}: {:?}",
        response.status(),
        response.body()
    );
});
