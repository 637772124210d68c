//! The console in a real browser: teleapi-local on loopback, headless Chromium driven through
//! chromedriver (WebDriver). The page places the walkthrough's call (its RCML dials Bob), then
//! transfers it to Alice with its redirect form, and what it shows is checked: the three legs as
//! a tree, the redirect intent applied, Bob's leg completed, the StatusCallbacks answered. A
//! screenshot is saved under the tests' output folder (`target/tmp/console/console.png`).
//!
//! Needs Debian's `chromium` and `chromium-driver`, which tests/run installs.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use teleapi_domain::{AccountSid, AuthToken};
use teleapi_local::{SimulatorConfig, Stack, StackOptions};
use tokio::net::TcpListener;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver, stopped (with the browsers it started) when the test ends, however it ends.
struct Driver {
    child: Child,
    url: String,
    profile: PathBuf,
}

impl Driver {
    fn start(output: &Path) -> Self {
        assert!(
            Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
            "the console test needs Debian's chromium and chromium-driver (tests/run installs them)"
        );
        let port = StdListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile: output.join("profile"),
        }
    }

    /// A headless Chromium session, once chromedriver listens. The flags keep Chromium off the
    /// network (this machine has none) and out of the way of anything else running.
    async fn session(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-quic",
                    "--no-first-run",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", self.profile.display()),
                ],
            }),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&self.url)
                .await
            {
                Ok(client) => return client,
                Err(err) if Instant::now() < deadline => {
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(err) => panic!("no WebDriver session: {err}"),
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// What the page shows, read in one go.
async fn page(client: &Client) -> Value {
    const READ: &str = r#"
        const all = (s) => [...document.querySelectorAll(s)];
        const text = (s) => document.querySelector(s)?.textContent ?? null;
        return {
            feed: text('#feed-state'),
            selected: text('#selected-sid'),
            answer: text('#answer'),
            calls: all('#calls .call').map((e) => ({
                sid: e.dataset.sid, status: e.dataset.status,
                parent: e.dataset.parent, depth: e.dataset.depth,
            })),
            workers: all('#workers .worker').map((e) => ({
                id: e.dataset.id, state: e.dataset.state,
                calls: [...e.querySelectorAll('[data-sid]')].map((c) => c.dataset.sid),
            })),
            rows: all('#timeline tr.row').map((e) => ({
                kind: e.dataset.kind, status: e.dataset.status ?? null,
                code: e.dataset.code ?? null, text: e.textContent,
            })),
        };"#;
    client
        .execute(READ, vec![])
        .await
        .expect("the page answers")
}

/// Reads the page until `done` holds of it (the page updates as the server tells it).
async fn until(client: &Client, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shown = page(client).await;
        if done(&shown) {
            return shown;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {what}; it shows:\n{shown:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn calls(shown: &Value) -> Vec<&Value> {
    shown["calls"].as_array().unwrap().iter().collect()
}

fn rows<'a>(shown: &'a Value, kind: &str) -> Vec<&'a Value> {
    shown["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == kind)
        .collect()
}

async fn click(client: &Client, selector: &str) {
    client
        .find(Locator::Css(selector))
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {selector}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_transfer_placed_from_the_page() {
    let output = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&output).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stack = Stack::build(StackOptions {
        dev: Some((
            AccountSid::generate(),
            AuthToken::new("0123456789abcdef0123456789abcdef"),
        )),
        simulator: SimulatorConfig {
            ring: Duration::from_millis(300),
            speed: 0.1,
            recordings_dir: output.join("recordings"),
            ..Default::default()
        },
        public_url: base.clone(),
        ..Default::default()
    })
    .await
    .expect("the stack starts");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(teleapi_local::serve(listener, stack, async {
        let _ = stopped.await;
    }));

    let driver = Driver::start(&output);
    let client = driver.session().await;
    // Tall enough for the screenshot to show the timeline under the forms.
    client.set_window_size(1280, 1150).await.unwrap();
    client.goto(&format!("{base}/")).await.unwrap();
    until(&client, "the feed connected", |p| p["feed"] == "live").await;

    // The form is filled in with the walkthrough's call: its RCML dials Bob.
    click(&client, "#place-call-submit").await;
    let shown = until(&client, "the call and Bob's leg, connected", |p| {
        let calls = calls(p);
        calls.len() == 2
            && calls.iter().all(|c| c["status"] == "in-progress")
            && p["selected"].as_str().is_some_and(|s| s == calls[0]["sid"])
    })
    .await;
    let parent = shown["selected"].as_str().unwrap().to_owned();
    assert_eq!(calls(&shown)[1]["parent"], parent.as_str(), "Bob's leg");
    assert_eq!(calls(&shown)[1]["depth"], "1");

    // Transfer to Alice: the redirect form is filled in with her RCML.
    click(&client, "#redirect-url-submit").await;
    until(&client, "the API's answer", |p| {
        p["answer"].as_str().is_some_and(|a| a.starts_with("200"))
    })
    .await;
    let shown = until(&client, "the transfer done", |p| {
        let calls = calls(p);
        let children: Vec<_> = calls
            .iter()
            .filter(|c| c["parent"] == parent.as_str())
            .collect();
        calls.len() == 3
            && children.len() == 2
            && children.iter().any(|c| c["status"] == "completed")
            && children.iter().any(|c| c["status"] == "in-progress")
            && rows(p, "intent").iter().any(|r| r["status"] == "applied")
            && rows(p, "callback").len() >= 3
            && rows(p, "fetch").len() >= 2
    })
    .await;
    // The media worker, with the calls it holds: the caller and Alice's leg (Bob's has ended).
    let alice = calls(&shown)
        .into_iter()
        .find(|c| c["parent"] == parent.as_str() && c["status"] == "in-progress")
        .unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut held = vec![parent.clone(), alice];
    held.sort();
    let shown = until(&client, "the worker and its calls", |p| {
        p["workers"].as_array().is_some_and(|w| {
            w.len() == 1 && w[0]["state"] == "active" && w[0]["calls"] == serde_json::json!(held)
        })
    })
    .await;
    let intents = rows(&shown, "intent");
    assert_eq!(intents.len(), 1, "{intents:#?}");
    assert!(
        intents[0]["text"].as_str().unwrap().contains("call-alice"),
        "{:#}",
        intents[0]
    );
    for callback in rows(&shown, "callback") {
        assert_eq!(callback["code"], "204", "the sink answered: {callback:#}");
    }
    let statuses: Vec<&str> = rows(&shown, "status")
        .iter()
        .filter_map(|r| r["status"].as_str())
        .collect();
    assert!(
        statuses.contains(&"ringing") && statuses.contains(&"in-progress"),
        "{statuses:?}"
    );
    // Bob's leg, selected from the tree, shows its own end.
    let bob = calls(&shown)
        .into_iter()
        .find(|c| c["status"] == "completed")
        .unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    click(&client, &format!("#calls .call[data-sid='{bob}']")).await;
    until(&client, "Bob's leg's end", |p| {
        p["selected"] == bob.as_str()
            && rows(p, "status").iter().any(|r| r["status"] == "completed")
    })
    .await;
    click(&client, &format!("#calls .call[data-sid='{parent}']")).await;
    until(&client, "the caller's timeline again", |p| {
        p["selected"] == parent.as_str() && !rows(p, "intent").is_empty()
    })
    .await;

    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(output.join("console.png"), &png).unwrap();
    client.close().await.unwrap();
    drop(driver);
    let _ = stop.send(());
    let _ = served.await;
}
