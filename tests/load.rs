//! A bounded load test: wrk (Debian's package, installed by tests/run) drives modifications
//! through `teleapi-local` on DynamoDB and SQS (moto), on loopback, for a few seconds, first
//! spread over many calls, then all on one call. Afterwards: no answer but 200 and the documented
//! 503 back-pressure, every call's sequence numbers gap-free, and exactly one command on the queue
//! for every accepted intent. Prints wrk's figures (docs/benchmarks.md records them).

use std::collections::BTreeMap;
use std::process::Command;

use teleapi_domain::{AccountSid, AuthToken, CallSid, CallStatus, Timestamp};
use teleapi_local::{Backing, SimulatorConfig, Stack, StackOptions};
use tokio::net::TcpListener;

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// What one wrk run saw.
struct Run {
    statuses: BTreeMap<u16, u64>,
    summary: String,
}

/// Runs wrk for `seconds` with `connections`, posting a redirect to one of `calls` in turn.
fn wrk(base: &str, calls: &[CallSid], connections: u32, seconds: u32) -> Run {
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{SID}:{TOKEN}")
        )
    );
    let sids: Vec<String> = calls.iter().map(|c| format!("\"{c}\"")).collect();
    // Counts answers by status in each thread's Lua state; `done` (in wrk's main state) prints
    // them last.
    let script = format!(
        r#"local sids = {{{sids}}}
local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  i = 0
  statuses = {{}}
end
function request()
  i = i + 1
  local sid = sids[(i % #sids) + 1]
  return wrk.format("POST", "/call/2012-04-24/Accounts/{SID}/Calls/" .. sid .. ".json",
    {{["Authorization"] = "{auth}", ["Content-Type"] = "application/x-www-form-urlencoded"}},
    "Url=https%3A%2F%2Fapp.example.com%2Fnext" .. i)
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      io.write(string.format("status %d %d\n", status, count))
    end
  end
end
"#,
        sids = sids.join(", ")
    );
    let path = std::env::temp_dir().join(format!("teleapi-load-{}.lua", std::process::id()));
    std::fs::write(&path, script).unwrap();
    let output = Command::new("wrk")
        .args(["-t", "1", "-c", &connections.to_string(), "-d"])
        .arg(format!("{seconds}s"))
        .args(["--timeout", "10s", "-s"])
        .arg(&path)
        .arg(base)
        .output()
        .expect("wrk runs (tests/run installs Debian's wrk)");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "wrk: {text}");
    let mut statuses = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("status ") {
            let mut parts = rest.split_whitespace().map(|p| p.parse::<u64>().unwrap());
            statuses.insert(parts.next().unwrap() as u16, parts.next().unwrap());
        }
    }
    let summary = text
        .lines()
        .filter(|l| {
            l.contains("Requests/sec")
                || l.trim_start().starts_with("Latency")
                || l.contains("requests in")
        })
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    Run { statuses, summary }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modifications_under_load_keep_every_promise() {
    let stack = Stack::build(StackOptions {
        backing: Backing::Aws {
            endpoint: Some(teleapi_tests::moto::endpoint().to_owned()),
            prefix: format!("load{}", &teleapi_domain::sid::random_hex32()[..8]),
        },
        dev: Some((SID.parse::<AccountSid>().unwrap(), AuthToken::new(TOKEN))),
        simulator: SimulatorConfig {
            enabled: false,
            ..Default::default()
        },
        // The load is the point here, not the account's share of it.
        rate_limit: teleapi_domain::RateLimit::new(10_000, 5_000).unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let (calls, commands) = (stack.calls.clone(), stack.commands.clone());
    let mut backend = teleapi_tests::Backend::memory();
    backend.calls = calls.clone();
    backend.commands = commands;
    let mut sids = Vec::new();
    for _ in 0..20 {
        let call = teleapi_tests::call(
            &backend,
            &SID.parse().unwrap(),
            CallStatus::InProgress,
            Timestamp::now(),
        )
        .await;
        sids.push(call.sid);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(teleapi_local::serve(listener, stack, async {
        let _ = stopped.await;
    }));

    let spread = tokio::task::spawn_blocking({
        let (base, sids) = (base.clone(), sids.clone());
        move || wrk(&base, &sids, 8, 4)
    })
    .await
    .unwrap();
    let concentrated = tokio::task::spawn_blocking({
        let (base, one) = (base.clone(), vec![sids[0].clone()]);
        move || wrk(&base, &one, 8, 3)
    })
    .await
    .unwrap();
    let _ = stop.send(());
    let _ = server.await;

    let mut accepted = 0;
    for (name, run) in [
        ("spread over 20 calls", &spread),
        ("on one call", &concentrated),
    ] {
        println!("load, {name}: {}; statuses {:?}", run.summary, run.statuses);
        assert!(
            run.statuses.keys().all(|s| *s == 200 || *s == 503),
            "{name}: only 200 and 503 back-pressure: {:?}",
            run.statuses
        );
        accepted += run.statuses.get(&200).copied().unwrap_or(0);
    }
    assert!(accepted > 0, "some requests were accepted");

    let sent = backend.commands_by_intent().await;
    let mut intents = 0;
    for sid in &sids {
        let call = calls.call(sid).await.unwrap().unwrap();
        for seq in 1..=call.seq {
            let intent = calls
                .intent(&teleapi_domain::Subject::Call(sid.clone()), seq)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{sid}: seq {seq} missing: a gap"));
            assert_eq!(
                sent.get(intent.sid.as_str()),
                Some(&1),
                "{sid} seq {seq}: one command per intent"
            );
            intents += 1;
        }
        assert!(
            calls
                .intent(&teleapi_domain::Subject::Call(sid.clone()), call.seq + 1)
                .await
                .unwrap()
                .is_none()
        );
    }
    // wrk stops mid-request at its deadline: a request it gave up on may still have been
    // accepted, so the server may hold a few more intents than wrk counted 200s.
    assert!(
        intents >= accepted,
        "{intents} intents, {accepted} accepted"
    );
    assert!(
        intents <= accepted + 16,
        "{intents} intents, {accepted} accepted"
    );
    assert_eq!(sent.len() as u64, intents, "no command without its intent");
}
