//! `teleapi-local` over real HTTP on loopback: the dev routes and the API routes together.

use std::time::Duration;

use serde_json::Value;
use teleapi::domain::{AccountSid, AuthToken};
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
