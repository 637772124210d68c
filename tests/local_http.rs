//! `teleapi-local` over real HTTP on loopback: the dev routes and the API routes together.

use std::time::Duration;

use serde_json::Value;
use teleapi_domain::{AccountSid, AuthToken};
use teleapi_local::Stack;
use tokio::net::TcpListener;

struct Local {
    base: String,
    client: reqwest::Client,
    sid: String,
    token: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Local {
    let sid = AccountSid::generate();
    let token = "0123456789abcdef0123456789abcdef";
    let stack = Stack::in_memory(Some((sid.clone(), AuthToken::new(token)))).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(teleapi_local::serve(listener, stack, async {
        let _ = stopped.await;
    }));
    Local {
        base,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        sid: sid.to_string(),
        token: token.to_owned(),
        _stop: stop,
    }
}

impl Local {
    async fn post(&self, path: &str, body: &str, auth: bool) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned());
        if auth {
            request = request.basic_auth(&self.sid, Some(&self.token));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

#[tokio::test]
async fn dev_routes_and_the_api_work_together() {
    let local = start().await;

    let (status, account) = local.post("/dev/Accounts", "FriendlyName=Ops", false).await;
    assert_eq!(status, 201, "{account}");
    assert!(account["sid"].as_str().unwrap().starts_with("AC"));
    assert_eq!(account["auth_token"].as_str().unwrap().len(), 32);
    let parent = account["sid"].as_str().unwrap().to_owned();
    let (status, sub) = local
        .post(
            "/dev/Accounts",
            &format!("FriendlyName=Sub&ParentAccountSid={parent}"),
            false,
        )
        .await;
    assert_eq!(status, 201, "{sub}");
    assert_eq!(sub["parent_account_sid"], parent.as_str());
    let (status, _) = local
        .post(
            "/dev/Accounts",
            &format!("ParentAccountSid={}", sub["sid"].as_str().unwrap()),
            false,
        )
        .await;
    assert_eq!(status, 400, "no grandchildren");

    let (status, call) = local
        .post(
            "/dev/IncomingCalls",
            "From=%2B15551230001&To=%2B15551230002&Url=http%3A%2F%2F127.0.0.1%3A9%2Frcml&Method=get&Status=in-progress",
            false,
        )
        .await;
    assert_eq!(status, 201, "{call}");
    assert_eq!(call["status"], "in-progress");
    assert_eq!(call["account_sid"], local.sid.as_str());
    assert_eq!(call["from"], "+15551230001");
    let call_sid = call["sid"].as_str().unwrap().to_owned();

    let (status, ringing) = local
        .post(
            "/dev/IncomingCalls",
            "From=a&To=b&Url=https%3A%2F%2Fapp.example.com%2Fx&Status=Ringing",
            false,
        )
        .await;
    assert_eq!((status, ringing["status"].as_str()), (201, Some("ringing")));
    for bad in [
        "To=b&Url=https%3A%2F%2Fa.example%2F",
        "From=a&To=b&Url=nope",
        "From=a&To=b&Url=https%3A%2F%2Fa.example%2F&Status=on-hold",
        "From=a&To=b&Url=https%3A%2F%2Fa.example%2F&Extra=1",
    ] {
        let (status, body) = local.post("/dev/IncomingCalls", bad, false).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    let path = format!(
        "/call/2012-04-24/Accounts/{}/Calls/{call_sid}.json",
        local.sid
    );
    let (status, modified) = local
        .post(
            &path,
            "Url=http%3A%2F%2F127.0.0.1%3A9%2Falice&Method=GET",
            true,
        )
        .await;
    assert_eq!(status, 200, "{modified}");
    let (status, _) = local
        .post(&path, "Url=http%3A%2F%2F127.0.0.1%3A9%2Falice", false)
        .await;
    assert_eq!(status, 401);

    // The call was made with Status, so no simulated worker owns it: the redirect's intent is
    // recorded and waits for a worker.
    let modifications: Value = local
        .client
        .get(format!(
            "{}{}",
            local.base,
            path.replace(".json", "/Modifications.json")
        ))
        .basic_auth(&local.sid, Some(&local.token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let intent = &modifications["modifications"][0];
    assert_eq!(intent["sid"], modified["intent_sid"]);
    assert_eq!(intent["parameters"]["Url"], "http://127.0.0.1:9/alice");

    // The rest of the Calls API is served too.
    let calls = format!("/call/2012-04-24/Accounts/{}/Calls.json", local.sid);
    let (status, created) = local
        .post(
            &calls,
            "From=%2B15551230001&To=client%3Abob&Url=http%3A%2F%2F127.0.0.1%3A9%2Fconf",
            true,
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let listed: Value = local
        .client
        .get(format!("{}{calls}?PageSize=10", local.base))
        .basic_auth(&local.sid, Some(&local.token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["calls"].as_array().unwrap().len(), 3);
    assert_eq!(listed["calls"][0]["sid"], created["sid"]);

    // The event and callback loops run in-process: an event posted as a worker would makes the
    // app receive its StatusCallback.
    let sink = teleapi_tests::sink::Sink::start().await;
    // The ringing call was made with Status, so no simulated worker owns it: the test plays the
    // worker.
    let ringing_path = format!(
        "/call/2012-04-24/Accounts/{}/Calls/{}.json",
        local.sid,
        ringing["sid"].as_str().unwrap()
    );
    let sink_url = sink.url("/status");
    let callback =
        percent_encoding::utf8_percent_encode(&sink_url, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let (status, call) = local
        .post(&ringing_path, &format!("StatusCallback={callback}"), true)
        .await;
    assert_eq!(status, 200, "{call}");
    let event = serde_json::json!({
        "version": 1, "type": "call.status", "call_sid": call["sid"], "timestamp": 1_795_524_310_000_i64,
        "seq": 1, "status": "busy"
    });
    let response = local
        .client
        .post(format!("{}/dev/Events", local.base))
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let mut delivered = Vec::new();
    for _ in 0..100 {
        delivered = sink.received_at("/status");
        if !delivered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(delivered.len(), 1, "the StatusCallback arrived");
    assert_eq!(delivered[0].params["CallStatus"], "busy");
    assert!(delivered[0].header("x-teleapi-signature").is_some());

    let huge = format!("Url={}", "a".repeat(100 * 1024));
    let (status, body) = local.post(&path, &huge, true).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["code"], 413);
}

/// Sends `request` as raw bytes (so nothing on our side cleans it up) and answers the status
/// code, or 0 if the server closed the connection without one.
async fn raw(local: &Local, request: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = local.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buffer).await {
            if n == 0 || answer.ends_with(b"\r\n\r\n") {
                break;
            }
            answer.extend_from_slice(&buffer[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    let line = String::from_utf8_lossy(&answer);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Hostile requests at the HTTP level: invalid UTF-8 in the path, a header and the body; huge
/// values; duplicate parameters; percent-encoding tricks. Each gets a clear 4xx (or the server
/// refuses the connection's garbage outright), never a 5xx, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_clear_4xx_answers() {
    let local = start().await;
    let (status, call) = local
        .post(
            "/dev/IncomingCalls",
            "From=a&To=b&Url=https%3A%2F%2Fapp.example.com%2Fx&Status=in-progress",
            false,
        )
        .await;
    assert_eq!(status, 201);
    let call = call["sid"].as_str().unwrap().to_owned();
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", local.sid, local.token)
        )
    );
    let base = format!("/call/2012-04-24/Accounts/{}", local.sid);
    let post = |path: &[u8], headers: &[u8], body: &[u8]| -> Vec<u8> {
        let mut request = b"POST ".to_vec();
        request.extend_from_slice(path);
        request.extend_from_slice(format!(
            " HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        ).as_bytes());
        request.extend_from_slice(headers);
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        request
    };
    let modify = format!("{base}/Calls/{call}.json");
    let modify_path = modify.as_bytes();
    let huge = "a".repeat(200_000);
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        (
            "invalid UTF-8 in the body",
            post(modify_path, b"", b"Url=\xff\xfe"),
            &[400],
        ),
        (
            "invalid UTF-8 after decoding",
            post(modify_path, b"", b"Url=%ff%fe"),
            &[400],
        ),
        (
            "invalid UTF-8 in the path",
            post(
                &[
                    format!("{base}/Calls/").as_bytes(),
                    b"\xff",
                    call.as_bytes(),
                    b".json",
                ]
                .concat(),
                b"",
                b"Mute=true",
            ),
            &[400, 404],
        ),
        (
            "invalid UTF-8 in a header",
            post(modify_path, b"Idempotency-Key: \xff\xfe\r\n", b"Mute=true"),
            &[400],
        ),
        (
            "headers beyond the server's bound (1 MB)",
            post(
                modify_path,
                format!("X-Big: {}\r\n", huge.repeat(5)).as_bytes(),
                b"Mute=true",
            ),
            &[431, 0],
        ),
        (
            "a huge Authorization header",
            {
                let request = post(modify_path, b"", b"Mute=true");
                let text = String::from_utf8(request).unwrap();
                let at = text.find("Authorization: Basic ").unwrap() + 21;
                let mut out = text[..at].to_owned();
                out.push_str(&huge[..100_000]);
                out.push_str(&text[text[at..].find("\r\n").unwrap() + at..]);
                out.into_bytes()
            },
            &[401],
        ),
        (
            "a huge Idempotency-Key",
            post(
                modify_path,
                format!("Idempotency-Key: {}\r\n", &huge[..10_000]).as_bytes(),
                b"Mute=true",
            ),
            &[400],
        ),
        (
            "a huge parameter",
            post(
                modify_path,
                b"",
                format!("Url=https%3A%2F%2Fa.example%2F{huge}").as_bytes(),
            ),
            &[413],
        ),
        (
            "a huge value within the size limit",
            post(
                modify_path,
                b"",
                format!("Url=https%3A%2F%2Fa.example%2F{}", &huge[..60_000]).as_bytes(),
            ),
            &[400],
        ),
        (
            "duplicate parameters",
            post(modify_path, b"", b"Mute=true&Mute=false"),
            &[400],
        ),
        (
            "an encoded slash in the CallSid",
            post(
                format!("{base}/Calls/CA%2F..%2F{}.json", &call[2..]).as_bytes(),
                b"",
                b"Mute=true",
            ),
            &[404],
        ),
        (
            "a NUL in the CallSid",
            post(
                format!("{base}/Calls/{call}%00.json").as_bytes(),
                b"",
                b"Mute=true",
            ),
            &[404],
        ),
        (
            "double encoding",
            post(modify_path, b"", b"Url=https%253A%252F%252Fa.example%252F"),
            &[400],
        ),
        (
            "an overlong UTF-8 slash",
            post(modify_path, b"", b"Url=https%3A%2F%2Fa.example%C0%AFx"),
            &[400],
        ),
        (
            "an encoded parameter name",
            post(modify_path, b"", b"%4Dute=true"),
            &[200],
        ),
        (
            "a parameter without a value",
            post(modify_path, b"", b"Mute"),
            &[400],
        ),
        (
            "a NUL in a value",
            post(modify_path, b"", b"Url=https%3A%2F%2Fa.example%2F%00"),
            &[400],
        ),
        (
            "a path climbing out",
            post(
                format!("{base}/Calls/../../../Calls/{call}.json").as_bytes(),
                b"",
                b"Mute=true",
            ),
            &[404, 400],
        ),
        (
            "the wrong media type",
            {
                let mut r = post(modify_path, b"", b"{\"Mute\":true}");
                let at = r.windows(11).position(|w| w == b"application").unwrap();
                r.splice(
                    at..at + 33,
                    b"application/json                 ".iter().copied(),
                );
                r
            },
            &[415],
        ),
        (
            "a body longer than its Content-Length says",
            {
                let mut r = post(modify_path, b"", b"Mute=true");
                r.extend_from_slice(b"&Status=completed");
                r
            },
            &[200],
        ),
    ];
    for (what, request, expected) in cases {
        let status = raw(&local, &request).await;
        assert!(
            expected.contains(&status),
            "{what}: {status}, expected one of {expected:?}"
        );
    }
    // Still serving.
    let (status, _) = local.post(&modify, "Mute=false", true).await;
    assert_eq!(status, 200);
}

/// A fair share per account: one account driven at ten times its limit gets 429s (Twilio's
/// 20429, with `Retry-After`, and nothing written for them), while another account's requests,
/// made at the same time, are all answered as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_accounts_flood_leaves_another_accounts_answers_unchanged() {
    use teleapi_domain::{CallStatus, RateLimit, Timestamp};
    use teleapi_local::admin::{Command, run};
    let stack = teleapi_local::Stack::build(teleapi_local::StackOptions {
        rate_limit: RateLimit::new(20, 20).unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let (accounts, calls) = (stack.accounts.clone(), stack.calls.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(teleapi_local::serve(listener, stack, async {
        let _ = stopped.await;
    }));
    // The flooder has the deployment's default (20 a second here); the other its own limit.
    let mut pair = Vec::new();
    for name in ["flooder", "neighbour"] {
        let created = run(
            accounts.as_ref(),
            None,
            Command::Create {
                name: name.into(),
                parent: None,
            },
        )
        .await
        .unwrap();
        let sid: AccountSid = created["sid"].as_str().unwrap().parse().unwrap();
        let token = created["auth_token"].as_str().unwrap().to_owned();
        let call = teleapi_tests::new_call(&sid, CallStatus::InProgress, Timestamp::now());
        calls.insert_call(&call).await.unwrap();
        pair.push((sid, token, call.sid));
    }
    run(
        accounts.as_ref(),
        None,
        Command::SetRateLimit(pair[1].0.clone(), Some(RateLimit::new(50, 50).unwrap())),
    )
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let drive = |(sid, token, call): (AccountSid, String, teleapi_domain::CallSid),
                 per_second: u64,
                 seconds: u64| {
        let (client, base) = (client.clone(), base.clone());
        tokio::spawn(async move {
            let url = format!("{base}/call/2012-04-24/Accounts/{sid}/Calls/{call}.json");
            let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / per_second));
            let mut answers = Vec::new();
            for i in 0..per_second * seconds {
                ticks.tick().await;
                let mute = if i % 2 == 0 { "true" } else { "false" };
                let answer = client
                    .post(&url)
                    .basic_auth(&sid, Some(&token))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!("Mute={mute}"))
                    .send();
                answers.push(tokio::spawn(async move {
                    let answer = answer.await.unwrap();
                    let retry_after = answer
                        .headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_owned());
                    let status = answer.status().as_u16();
                    (status, retry_after, answer.json::<Value>().await.unwrap())
                }));
            }
            let mut out = Vec::new();
            for answer in answers {
                out.push(answer.await.unwrap());
            }
            out
        })
    };
    let flood = drive(pair[0].clone(), 200, 2);
    let steady = drive(pair[1].clone(), 20, 2);
    let (flood, steady) = (flood.await.unwrap(), steady.await.unwrap());

    let refused: Vec<_> = flood.iter().filter(|(status, ..)| *status == 429).collect();
    let accepted = flood.iter().filter(|(status, ..)| *status == 200).count();
    assert_eq!(refused.len() + accepted, flood.len(), "only 200 or 429");
    // 20 at once, then 20 a second for the two seconds (and a few for timing).
    assert!((20..=70).contains(&accepted), "{accepted} accepted");
    for (_, retry_after, body) in &refused {
        assert_eq!(body["code"], 20429);
        assert_eq!(body["status"], 429);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("20 requests a second")
        );
        assert_eq!(retry_after.as_deref(), Some("1"));
    }
    // Nothing was written for a refused request: one intent per accepted one.
    let intents = calls
        .list_intents(
            &teleapi_domain::Subject::Call(pair[0].2.clone()),
            &teleapi_domain::paging::PageRequest {
                size: 1000,
                after: None,
                backward: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(intents.items.len(), accepted);
    // The neighbour, at under half its own limit, never noticed.
    assert!(
        steady.iter().all(|(status, ..)| *status == 200),
        "{:?}",
        steady.iter().map(|(s, ..)| s).collect::<Vec<_>>()
    );
}
