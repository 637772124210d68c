//! `teleapi-bench`: what a modification costs, measured against the floor of the same work, in
//! the same run, so that the figures hold on a noisy machine. Run by `tests/bench`, which builds
//! everything in release mode first. Prints one table; docs/benchmarks.md records the latest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use teleapi_adapters::http::HttpWebhooks;
use teleapi_domain::call::plan;
use teleapi_domain::wire::callback::{CallbackJob, JOB_VERSION, JobKind};
use teleapi_domain::{
    AddressPolicy, AuthToken, Call, CallStatus, Form, IntentSid, Method, ModifyRequest, Timestamp,
    WebhookUrl,
};
use teleapi_ports::{CallWrite, OutgoingMessage};
use teleapi_tests::instrumented::Counter;
use teleapi_tests::runtime::{Emulator, Outcome};
use teleapi_tests::{Backend, World, basic_auth};
use tokio::net::TcpListener;

mod ab;
mod amd;
mod live;
mod media;

const LOCAL: AddressPolicy = AddressPolicy {
    allow_loopback: true,
};
const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";

struct Row {
    figure: String,
    value: String,
    target: String,
    met: Option<bool>,
    detail: String,
}

struct Stats {
    median: f64,
    p10: f64,
    p90: f64,
    runs: usize,
}

fn stats(samples: &[f64]) -> Stats {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    Stats {
        median: at(0.5),
        p10: at(0.1),
        p90: at(0.9),
        runs: sorted.len(),
    }
}

fn describe(s: &Stats, unit: &str) -> String {
    format!(
        "median {:.2} {unit}, p10-p90 {:.2}-{:.2}, n={}",
        s.median, s.p10, s.p90, s.runs
    )
}

fn release_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

// ---------------------------------------------------------------- round trips

async fn round_trips(rows: &mut Vec<Row>) {
    let counter = Arc::new(Counter::default());
    let backend = Backend::memory().instrumented(counter.clone());
    let world = World::new(backend).await;
    let sink = teleapi_tests::sink::Sink::start().await;
    let format = |counts: BTreeMap<&'static str, u64>| -> (u64, u64, u64, String) {
        let reads: u64 = [
            "account",
            "call",
            "intent",
            "idempotency_record",
            "pending_intents",
            "list_calls",
            "list_intents",
        ]
        .iter()
        .map(|k| counts.get(k).copied().unwrap_or(0))
        .sum();
        let writes: u64 = [
            "write_call",
            "append",
            "settle_intent",
            "fail_intent",
            "insert_call",
            "insert_account",
            "update_account",
        ]
        .iter()
        .map(|k| counts.get(k).copied().unwrap_or(0))
        .sum();
        let sends = counts.get("send").copied().unwrap_or(0);
        let detail = counts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        (reads, writes, sends, detail)
    };

    let mut call = world.call(CallStatus::InProgress).await;
    call.instructions.status_callback = Some(WebhookUrl::trusted(sink.url("/status")));
    call.sid = teleapi_domain::CallSid::generate();
    world.backend.calls.insert_call(&call).await.unwrap();
    let modify = || world.modify(&call, "Url=https%3A%2F%2Fapp.example.com%2Fa");
    // The account's first request reads it; the next ones, for 10 s, use the cached copy.
    counter.reset();
    assert_eq!(modify().await.status(), 200);
    let (r, w, s, d) = format(counter.counts());
    rows.push(Row {
        figure: "round trips: modification, account not cached".into(),
        value: format!("{r} reads + {w} write + {s} send"),
        target: "1 write + 1 send (reads: data-model.md)".into(),
        met: Some(w == 1 && s == 1),
        detail: d,
    });
    counter.reset();
    assert_eq!(modify().await.status(), 200);
    let (r, w, s, d) = format(counter.counts());
    rows.push(Row {
        figure: "round trips: modification, account cached".into(),
        value: format!("{r} read + {w} write + {s} send"),
        target: "1 write + 1 send (reads: data-model.md)".into(),
        met: Some(w == 1 && s == 1 && r == 1),
        detail: d,
    });

    counter.reset();
    let created = world
        .post(
            "/Calls.json",
            "From=%2B15551230001&To=client%3Abob&Url=https%3A%2F%2Fapp.example.com%2Fb",
        )
        .await;
    assert_eq!(created.status(), 201);
    let (r, w, s, d) = format(counter.counts());
    rows.push(Row {
        figure: "round trips: create".into(),
        value: format!("{r} reads + {w} write + {s} send"),
        target: "1 write + 1 send".into(),
        met: Some(w == 1 && s == 1),
        detail: d,
    });

    let events = world.backend.event_services(world.clock.clone());
    counter.reset();
    let event = json!({"version": 1, "type": "call.status", "call_sid": call.sid, "timestamp": Timestamp::now().millis(), "seq": 1, "status": "completed", "duration": 3});
    teleapi_pipeline::call_events::handle_event(&events, &event.to_string())
        .await
        .unwrap();
    let (r, w, s, d) = format(counter.counts());
    rows.push(Row {
        figure: "round trips: event (call.status + callback job)".into(),
        value: format!("{r} read + {w} write + {s} send"),
        target: "1 write (+1 send per callback)".into(),
        met: Some(w == 1),
        detail: d,
    });

    let callbacks = world
        .backend
        .callback_services(world.clock.clone(), Arc::new(HttpWebhooks::new(LOCAL)));
    let job = Backend::drain(world.backend.callbacks.as_ref())
        .await
        .remove(0);
    counter.reset();
    teleapi_pipeline::callbacks::run_job(&callbacks, &job)
        .await
        .unwrap();
    let (r, w, s, d) = format(counter.counts());
    rows.push(Row {
        figure: "round trips: callback".into(),
        value: format!("{r} read + {w} write + {s} send + 1 HTTP request"),
        target: "1 read (the AuthToken) + 1 write (the attempt, in the call's log)".into(),
        met: Some(r == 1 && w == 1 && s == 0),
        detail: d,
    });
}

// ---------------------------------------------------------------- backend floor

async fn backend_floor(rows: &mut Vec<Row>, runs: usize) {
    let backend = Backend::moto().await;
    let prefix = format!("bench{}", &teleapi_domain::sid::random_hex32()[..8]);
    let stack = teleapi_local::Stack::build(teleapi_local::StackOptions {
        backing: teleapi_local::Backing::Aws {
            endpoint: Some(teleapi_tests::moto::endpoint().to_owned()),
            prefix,
        },
        dev: Some((SID.parse().unwrap(), AuthToken::new(TOKEN))),
        simulator: teleapi_local::SimulatorConfig {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let calls = stack.calls.clone();
    let account = stack.dev_account.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(teleapi_local::serve(
        listener,
        stack,
        std::future::pending(),
    ));
    let http = reqwest::Client::new();

    // The floor: the same conditional write and the same SendMessage, made directly on the
    // same moto, for calls of their own (written only here, so their version is known).
    let now = Timestamp::now();
    let mut api_calls = Vec::new();
    let mut floor_calls = Vec::new();
    // And the floor with the one read the design requires (data-model.md, "A modification,
    // request by request"): the call's consistent GetItem, which gives the intent its seq. On
    // tables and queues of its own, which grow as fast as teleapi-local's and the other floor's
    // (moto's requests slow down as a table or a FIFO queue fills).
    let read_backend = Backend::moto().await;
    let mut read_calls = Vec::new();
    for _ in 0..50 {
        read_calls.push(
            teleapi_tests::call(&read_backend, &account.sid, CallStatus::InProgress, now)
                .await
                .sid,
        );
        api_calls.push(
            teleapi_tests::call(
                &backend_like(&calls),
                &account.sid,
                CallStatus::InProgress,
                now,
            )
            .await
            .sid,
        );
        floor_calls
            .push(teleapi_tests::call(&backend, &account.sid, CallStatus::InProgress, now).await);
    }
    let request = ModifyRequest::parse(
        &Form::parse(b"Url=https%3A%2F%2Fapp.example.com%2Fa").unwrap(),
        AddressPolicy::default(),
    )
    .unwrap();
    let (mut api, mut floor, mut floor_read) = (Vec::new(), Vec::new(), Vec::new());
    let bare = |backend: &Backend, call: Call| {
        let (store, queue, request) = (backend.calls.clone(), backend.commands.clone(), &request);
        async move {
            let planned = plan(
                &call,
                request,
                IntentSid::generate(),
                Timestamp::now(),
                Duration::from_secs(3600),
            )
            .unwrap();
            store
                .write_call(CallWrite {
                    call: &planned.call,
                    expected_version: Some(call.version),
                    intent: Some(&planned.intent),
                    idempotency: None,
                    now: Timestamp::now(),
                })
                .await
                .unwrap();
            let command = OutgoingMessage::intent_command(planned.intent.command.as_ref().unwrap());
            queue.send(None, &command).await.unwrap();
            planned.call
        }
    };
    for i in 0..runs + 20 {
        let sid = &api_calls[i % api_calls.len()];
        let started = Instant::now();
        let answer = http
            .post(format!(
                "{base}/call/2012-04-24/Accounts/{SID}/Calls/{sid}.json"
            ))
            .basic_auth(SID, Some(TOKEN))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("Url=https%3A%2F%2Fapp.example.com%2Fa")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let api_ms = started.elapsed().as_secs_f64() * 1000.0;

        let call = &mut floor_calls[i % 50];
        let started = Instant::now();
        *call = bare(&backend, call.clone()).await;
        let floor_ms = started.elapsed().as_secs_f64() * 1000.0;

        let started = Instant::now();
        let read = read_backend.calls.call(&read_calls[i % 50]).await;
        bare(&read_backend, read.unwrap().unwrap()).await;
        let read_ms = started.elapsed().as_secs_f64() * 1000.0;
        if i >= 20 {
            api.push(api_ms);
            floor.push(floor_ms);
            floor_read.push(read_ms);
        }
    }
    let (a, f, r) = (stats(&api), stats(&floor), stats(&floor_read));
    let ratio = a.median / r.median;
    rows.push(Row {
        figure: "backend floor: modification / bare read+write+send (moto)".into(),
        value: format!("{ratio:.2}x"),
        target: "<= 1.15".into(),
        met: Some(ratio <= 1.15),
        detail: format!(
            "teleapi-local {}; floor {}",
            describe(&a, "ms"),
            describe(&r, "ms")
        ),
    });
    // Without the call's read, which no design of the data model can skip: what it weighs.
    rows.push(Row {
        figure: "backend floor: modification / bare write+send, no read (moto)".into(),
        value: format!("{:.2}x", a.median / f.median),
        target: "-".into(),
        met: None,
        detail: format!(
            "floor without the read {}; the read is {:.0}% of the floor with it",
            describe(&f, "ms"),
            100.0 * (1.0 - f.median / r.median)
        ),
    });
}

/// A `Backend` view of a store, for the fixtures that take one.
fn backend_like(calls: &Arc<dyn teleapi_ports::CallStore>) -> Backend {
    let mut backend = Backend::memory();
    backend.calls = calls.clone();
    backend
}

// ---------------------------------------------------------------- handler cost

fn wrk(url: &str, script: Option<&Path>, seconds: u32) -> f64 {
    let mut command = Command::new("wrk");
    command.args(["-t", "1", "-c", "16", "-d", &format!("{seconds}s")]);
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command
        .arg(url)
        .output()
        .expect("wrk runs (Debian package wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .unwrap_or_else(|| panic!("wrk said: {text}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A release `teleapi-local` in memory, without the simulator, with 200 calls of the dev account
/// in progress, a wrk script that mutes them in turn and one that fetches them in turn.
struct LocalServer {
    process: std::process::Child,
    base: String,
    script: PathBuf,
    get_script: PathBuf,
}

impl LocalServer {
    async fn start(extra: &[&str]) -> Self {
        let mut process = Command::new(release_dir().join("teleapi-local"))
            .args(["--listen", "127.0.0.1:0", "--no-simulator"])
            .args(extra)
            .env("TELEAPI_DEV_ACCOUNT_SID", SID)
            .env("TELEAPI_DEV_AUTH_TOKEN", TOKEN)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("teleapi-local (release) starts");
        let base = {
            use std::io::BufRead;
            let mut stdout = std::io::BufReader::new(process.stdout.take().unwrap());
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            // Read the rest of what it prints, so that it never writes into a closed pipe.
            std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
            line.split("listening on ")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned()
        };
        let http = reqwest::Client::new();
        let mut sids = Vec::new();
        for _ in 0..200 {
            let body = "From=%2B15551230001&To=%2B15551230002&Url=https%3A%2F%2Fapp.example.com%2Fa&Status=in-progress";
            let call: Value = http
                .post(format!("{base}/dev/IncomingCalls"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            sids.push(format!("\"{}\"", call["sid"].as_str().unwrap()));
        }
        let auth = basic_auth(&teleapi_domain::Account {
            sid: SID.parse().unwrap(),
            auth_token: AuthToken::new(TOKEN),
            ..teleapi_domain::Account::open("x", None, Timestamp::now())
        });
        // The 200 calls in turn, each request `method` with `body`.
        let script = |name: &str, method: &str, body: &str| {
            let path = std::env::temp_dir().join(format!(
                "teleapi-bench-{}-{}-{name}.lua",
                std::process::id(),
                process.id()
            ));
            std::fs::write(
                &path,
                format!(
                    "local sids = {{{}}}\nlocal i = 0\nrequest = function()\n  i = i + 1\n  local sid = sids[(i % #sids) + 1]\n  return wrk.format(\"{method}\", \"/call/2012-04-24/Accounts/{SID}/Calls/\" .. sid .. \".json\", {{[\"Authorization\"] = \"{auth}\", [\"Content-Type\"] = \"application/x-www-form-urlencoded\"}}, {body})\nend\n",
                    sids.join(", ")
                ),
            )
            .unwrap();
            path
        };
        let (script, get_script) = (
            script("modify", "POST", "\"Mute=true\""),
            script("get", "GET", "nil"),
        );
        Self {
            process,
            base,
            script,
            get_script,
        }
    }

    /// A `/proc/{pid}/status` figure, in KiB (`VmRSS`, `VmHWM`).
    fn memory_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.process.id()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_file(&self.script);
        let _ = std::fs::remove_file(&self.get_script);
    }
}

/// A rate limit no benchmark reaches: the limiter runs on every request and never refuses one.
const UNREACHED_LIMIT: &str = "10000000/10000000";

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

async fn handler_cost(rows: &mut Vec<Row>, rounds: usize) {
    // A limit wrk never reaches, still counted on every request.
    let local = LocalServer::start(&["--rate-limit", UNREACHED_LIMIT]).await;
    let (mut modify, mut get, mut trivial) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        trivial.push(wrk(&format!("{}/dev/rcml/hold", local.base), None, 4));
        get.push(wrk(&local.base, Some(&local.get_script), 4));
        modify.push(wrk(&local.base, Some(&local.script), 4));
    }
    let (m, g, t) = (stats(&modify), stats(&get), stats(&trivial));
    let ratio = m.median / g.median;
    rows.push(Row {
        figure: "handler cost: modification rps / GET of the call rps (memory)".into(),
        value: format!("{ratio:.2}"),
        target: ">= 0.5".into(),
        met: Some(ratio >= 0.5),
        detail: format!(
            "modify {}; GET of the same calls {}",
            describe(&m, "req/s"),
            describe(&g, "req/s")
        ),
    });
    rows.push(Row {
        figure: "handler cost: modification rps / trivial route rps (memory)".into(),
        value: format!("{:.2}", m.median / t.median),
        target: "-".into(),
        met: None,
        detail: format!(
            "trivial {}; the GET of a call against it {:.2}",
            describe(&t, "req/s"),
            g.median / t.median
        ),
    });
    rows.push(Row {
        figure: "peak memory of teleapi-local under that load".into(),
        value: mib(local.memory_kib("VmHWM:")),
        target: "-".into(),
        met: None,
        detail: format!(
            "VmHWM after {} s of modifications, default retention (1 day)",
            rounds * 4
        ),
    });
}

/// Memory held flat: 60 s of modifications as fast as wrk sends them, with intents, keys and
/// queued commands kept 5 s (`--retention 5s`); resident memory at 10 s and at 60 s.
async fn memory_flatness(rows: &mut Vec<Row>) {
    let local = LocalServer::start(&["--retention", "5s", "--rate-limit", UNREACHED_LIMIT]).await;
    let (base, script) = (local.base.clone(), local.script.clone());
    let load = std::thread::spawn(move || wrk(&base, Some(&script), 60));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let at_10 = local.memory_kib("VmRSS:");
    let rps = tokio::task::spawn_blocking(move || load.join().unwrap())
        .await
        .unwrap();
    let at_60 = local.memory_kib("VmRSS:");
    let ratio = at_60 as f64 / at_10.max(1) as f64;
    rows.push(Row {
        figure: "memory of teleapi-local: RSS at 60 s / at 10 s of modifications".into(),
        value: format!("{ratio:.2}"),
        target: "<= 1.2".into(),
        met: Some(ratio <= 1.2),
        detail: format!(
            "{} at 10 s, {} at 60 s, peak {}; {rps:.0} req/s, --retention 5s",
            mib(at_10),
            mib(at_60),
            mib(local.memory_kib("VmHWM:"))
        ),
    });
}

// ---------------------------------------------------------------- cold start and sizes

fn api_event() -> Value {
    teleapi_tests::runtime::api_event(
        "GET",
        &format!("/call/2012-04-24/Accounts/{SID}/Calls.json"),
        "",
        "",
        "",
    )
}

async fn cold_start(rows: &mut Vec<Row>, runs: usize) {
    let lambda = workspace().join("target/lambda");
    let backend = Backend::moto().await;
    let mut env = backend.aws.as_ref().unwrap().function_env();
    env.retain(|(k, _)| k != "RUST_LOG");
    for name in [
        teleapi_runtime::config::UNAUTHENTICATED_KEY_ENV,
        teleapi_runtime::config::UNASSIGNED_KEY_ENV,
    ] {
        env.push((name.to_owned(), format!("bench-{name}")));
    }
    let functions: Vec<(&str, Value)> = vec![
        ("hello-lambda", api_event()),
        ("hello-sdk-lambda", api_event()),
        (
            "authorize-account",
            teleapi_tests::runtime::authorizer_event(
                &format!("/call/2012-04-24/Accounts/{SID}/Calls.json"),
                "Basic bm9wZTpub3Bl",
            ),
        ),
        ("modify-call", api_event()),
        ("create-call", api_event()),
        ("get-call", api_event()),
        ("list-calls", api_event()),
        ("call-events", json!({"Records": []})),
        ("callback", json!({"Records": []})),
        ("reconcile-intents", json!({"source": "aws.events"})),
    ];
    let mut times: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    // Exec to its first request for an event: its initialisation. A scheduled function's
    // first answer is its work (the reconciler's sweep), which nobody waits for; what a cold
    // start adds to it is this.
    let mut ready: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let ms = |from: Instant, to: Instant| (to - from).as_secs_f64() * 1000.0;
    for _ in 0..runs {
        for (name, event) in &functions {
            let binary = lambda.join(name).join("bootstrap");
            let emulator = Emulator::start().await;
            let started = Instant::now();
            let mut child = Command::new(&binary)
                .env_clear()
                .env("AWS_LAMBDA_RUNTIME_API", &emulator.address)
                .env("AWS_LAMBDA_FUNCTION_NAME", name)
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
            let outcome = emulator.invoke(event).await;
            let elapsed = started.elapsed().as_secs_f64() * 1000.0;
            let polled = emulator.first_poll().expect("it asked for its event");
            ready.entry(name).or_default().push(ms(started, polled));
            assert!(
                matches!(outcome, Outcome::Response(_)),
                "{name}: {outcome:?}"
            );
            let _ = child.kill();
            let _ = child.wait();
            times.entry(name).or_default().push(elapsed);
        }
    }
    let hello = stats(&times["hello-lambda"]);
    let hello_ready = stats(&ready["hello-lambda"]);
    let floor = stats(&times["hello-sdk-lambda"]);
    let floor_ready = stats(&ready["hello-sdk-lambda"]);
    // What any function that talks to AWS pays: the SDK's configuration and clients (their
    // connector's root certificates) and JSON logs. Ours are held to 1.5x of that floor.
    rows.push(Row {
        figure: "cold start: hello-world with the SDK's clients / hello-world lambda_http (first answer)".into(),
        value: format!("{:.2}x", floor.median / hello.median),
        target: "-".into(),
        met: None,
        detail: format!(
            "hello-sdk {}; hello {}",
            describe(&floor, "ms"),
            describe(&hello, "ms")
        ),
    });
    for (name, _) in functions.iter().skip(2) {
        let scheduled = *name == "reconcile-intents";
        // The API and queue functions are timed to their first answer (a request or batch
        // that needs no store); the scheduled reconciler to its readiness, both against the
        // floor's (and hello's).
        let (s, base, bare, to) = if scheduled {
            (
                stats(&ready[name]),
                &floor_ready,
                &hello_ready,
                "ready for its first event",
            )
        } else {
            (stats(&times[name]), &floor, &hello, "first answer")
        };
        let ratio = s.median / base.median;
        rows.push(Row {
            figure: format!("cold start: {name} / hello-world with the SDK's clients ({to})"),
            value: format!("{ratio:.2}x"),
            target: "<= 1.5".into(),
            met: Some(ratio <= 1.5),
            detail: format!(
                "{name} {}; floor {}; {:.2}x hello's {:.2} ms",
                describe(&s, "ms"),
                describe(base, "ms"),
                s.median / bare.median,
                bare.median
            ),
        });
    }
    // The reconciler's first answer is its sweep: its work, which must end within its timeout
    // (60 s, the schedule's minute), with room to spare.
    let sweeps: Vec<f64> = times["reconcile-intents"]
        .iter()
        .zip(&ready["reconcile-intents"])
        .map(|(answer, ready)| answer - ready)
        .collect();
    let sweep = stats(&sweeps);
    rows.push(Row {
        figure: "reconcile-intents: its first sweep, after its start (moto)".into(),
        value: format!("{:.0} ms", sweep.median),
        target: "<= 6000 ms (a tenth of its timeout)".into(),
        met: Some(sweep.median <= 6000.0),
        detail: format!(
            "{}; the pending index's 80 partitions, queried at once (moto serialises them)",
            describe(&sweep, "ms")
        ),
    });
    for (name, _) in &functions {
        let bytes = std::fs::metadata(lambda.join(name).join("bootstrap"))
            .map(|m| m.len())
            .unwrap_or(0);
        let mib = bytes as f64 / (1024.0 * 1024.0);
        rows.push(Row {
            figure: format!("binary size: {name}"),
            value: format!("{mib:.2} MiB"),
            target: if name.starts_with("hello") {
                "-".into()
            } else {
                "<= 8 MiB".into()
            },
            met: (!name.starts_with("hello")).then_some(mib <= 8.0),
            detail: format!("{bytes} bytes, cargo lambda build --release, x86_64"),
        });
    }
}

// ---------------------------------------------------------------- callback throughput

async fn fast_sink() -> String {
    let app = axum::Router::new().fallback(|| async { axum::http::StatusCode::NO_CONTENT });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

async fn callback_throughput(rows: &mut Vec<Row>, rounds: usize) {
    let world = World::new(Backend::memory()).await;
    let callbacks = world
        .backend
        .callback_services(world.clock.clone(), Arc::new(HttpWebhooks::new(LOCAL)));
    let sink = fast_sink().await;
    let url = WebhookUrl::trusted(format!("{sink}/status"));
    let job = |n: usize| CallbackJob {
        version: JOB_VERSION,
        job_id: format!("job-{n}"),
        kind: JobKind::StatusCallback,
        account_sid: world.account.sid.clone(),
        call_sid: Some(teleapi_domain::CallSid::generate()),
        conference_sid: None,
        url: url.clone(),
        method: Method::Post,
        parameters: [
            ("CallSid", "CA0123456789abcdef0123456789abcdef"),
            ("AccountSid", SID),
            ("From", "+15551230001"),
            ("To", "+15551230002"),
            ("CallStatus", "completed"),
            ("Direction", "inbound"),
            ("ApiVersion", "2012-04-24"),
            ("CallDuration", "42"),
            ("Timestamp", "Tue, 24 Nov 2026 12:45:10 +0000"),
            ("SequenceNumber", "3"),
            ("CallbackSource", "call-progress-events"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        attempts: 0,
        history: Vec::new(),
    };
    let per_round = 1000;
    let bodies: Vec<String> = (0..per_round).map(|n| job(n).to_json()).collect();
    let form = teleapi_pipeline::callbacks::build_request(&job(0), TOKEN)
        .body
        .unwrap();
    let bare_client = reqwest::Client::new();
    let post = || async {
        let started = Instant::now();
        let answer = bare_client
            .post(url.as_str())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.clone())
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        let body = answer.text().await.unwrap();
        assert!((200..300).contains(&status));
        (status, body, started.elapsed())
    };
    // The attempt recorded as DESIGN's call log requires (the same entry, the same store), which
    // the bare loop does not do: the floor of a callback whose log survives the sandbox.
    let log = world.backend.call_log.clone();
    let record = |n: usize, (status, body, took): (u16, String, Duration)| {
        let (log, url, job) = (log.clone(), url.clone(), job(n));
        async move {
            let response = teleapi_domain::call_log::LoggedResponse {
                status_code: Some(status),
                content_type: None,
                duration_ms: u64::try_from(took.as_millis()).unwrap(),
                body: Some(body),
                error: None,
            };
            let request = teleapi_domain::call_log::LoggedRequest {
                kind: job.log_kind(),
                url: url.as_str().to_owned(),
                method: Method::Post,
                parameters: job.parameters,
                signed: true,
                attempt: 1,
            };
            let call = job.call_sid.as_ref().unwrap();
            let at = Timestamp::now();
            let entry = teleapi_ports::insight::request_entry(
                call,
                &job.account_sid,
                at,
                request,
                response,
            );
            let retention = Duration::from_secs(86_400);
            teleapi_ports::insight::note_or_warn(log.as_ref(), &entry, retention).await;
        }
    };
    let (mut ours, mut bare, mut logged) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        // Ours: batches of 10 (the SQS batch size), one job after the other, as the function runs them.
        let started = Instant::now();
        for batch in bodies.chunks(10) {
            for body in batch {
                let outcome = teleapi_pipeline::callbacks::run_job(&callbacks, body)
                    .await
                    .unwrap();
                assert_eq!(outcome, teleapi_pipeline::callbacks::JobOutcome::Delivered);
            }
        }
        ours.push(per_round as f64 / started.elapsed().as_secs_f64());
        // The bare loop: the same requests, the same concurrency (one at a time).
        let started = Instant::now();
        for _ in 0..per_round {
            post().await;
        }
        bare.push(per_round as f64 / started.elapsed().as_secs_f64());
        // And each attempt logged.
        let started = Instant::now();
        for n in 0..per_round {
            record(n, post().await).await;
        }
        logged.push(per_round as f64 / started.elapsed().as_secs_f64());
    }
    let (o, b, l) = (stats(&ours), stats(&bare), stats(&logged));
    let ratio = o.median / l.median;
    rows.push(Row {
        figure: "callback throughput: callback handler / bare reqwest loop with the call log"
            .into(),
        value: format!("{ratio:.2}"),
        target: ">= 0.8".into(),
        met: Some(ratio >= 0.8),
        detail: format!(
            "handler {}; bare, each attempt logged {}",
            describe(&o, "jobs/s"),
            describe(&l, "req/s")
        ),
    });
    // Without the call log, which an attempt must write before its function answers.
    rows.push(Row {
        figure: "callback throughput: callback handler / bare reqwest loop, no log".into(),
        value: format!("{:.2}", o.median / b.median),
        target: "-".into(),
        met: None,
        detail: format!(
            "bare {}; logging is {:.0}% of the logged loop's time",
            describe(&b, "req/s"),
            100.0 * (1.0 - l.median / b.median)
        ),
    });
}

// ---------------------------------------------------------------- capacity

/// The capacity and cost model: printed, and written into docs/capacity.md.
async fn capacity() {
    let generated = teleapi_tests::capacity::model().await;
    println!("{generated}");
    let path = workspace().join("docs/capacity.md");
    let document = std::fs::read_to_string(&path).expect("docs/capacity.md");
    let updated = teleapi_tests::capacity::with_model(&document, &generated)
        .expect("docs/capacity.md has the generated section's markers");
    if updated != document {
        std::fs::write(&path, updated).expect("docs/capacity.md is writable");
        println!("docs/capacity.md updated");
    }
}

// ---------------------------------------------------------------- main

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU")
        .to_owned();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(String::new(), |kib| {
            format!(", {:.0} GiB", kib as f64 / 1024.0 / 1024.0)
        });
    format!("{cpu}, {cores} cores{memory}")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200);
    let only: Option<String> = std::env::args().nth(1);
    if only.as_deref() == Some("ab") {
        // `ab BASE_BENCH [GROUP…]`: this bench against another commit's (tests/bench ab REV).
        let args: Vec<String> = std::env::args().skip(2).collect();
        let base = args.first().expect("ab BASE_BENCH [GROUP…]");
        let worse = ab::ab(Path::new(base), &args[1..]);
        std::process::exit(i32::from(worse));
    }
    let wants = |name: &str| only.as_deref().is_none_or(|o| o == name);
    println!(
        "teleapi-bench on {}; {} (UTC)",
        machine(),
        Timestamp::now().rfc2822()
    );
    let mut rows = Vec::new();
    if wants("capacity") {
        capacity().await;
    }
    if wants("round-trips") {
        round_trips(&mut rows).await;
    }
    if wants("floor") {
        backend_floor(&mut rows, runs).await;
    }
    if wants("handler") {
        handler_cost(&mut rows, 3).await;
    }
    if wants("memory") {
        memory_flatness(&mut rows).await;
    }
    if wants("cold-start") {
        cold_start(&mut rows, (runs / 20).max(5)).await;
    }
    if wants("callbacks") {
        callback_throughput(&mut rows, 5).await;
    }
    if wants("media") {
        media::media(&mut rows).await;
    }
    if wants("amd") {
        amd::amd(&mut rows).await;
    }
    // Part two of the media figures: `tests/bench media` runs both parts, `tests/bench live`
    // this one alone.
    if wants("media") || only.as_deref() == Some("live") {
        live::live(&mut rows).await;
    }
    let width = rows.iter().map(|r| r.figure.len()).max().unwrap_or(10);
    println!();
    println!(
        "| {:width$} | {:>28} | {:>24} | {:4} | runs, median and spread",
        "figure", "value", "target", "met"
    );
    println!(
        "|{}|{}|{}|{}|{}",
        "-".repeat(width + 2),
        "-".repeat(30),
        "-".repeat(26),
        "-".repeat(6),
        "-".repeat(40)
    );
    for row in &rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        println!(
            "| {:width$} | {:>28} | {:>24} | {:4} | {}",
            row.figure, row.value, row.target, met, row.detail
        );
    }
}
