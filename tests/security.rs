//! The security promises, tested: credentials never reach the logs, no account reaches another's
//! calls on any route, and a webhook host that changes its DNS answer cannot steer a callback to
//! a private address. (Every private address class and redirects: events_callbacks.rs; constant-
//! time token comparison: `AuthToken::matches`, with the reasoning in docs/reliability.md.)

use std::sync::{Arc, Mutex};

use lambda_http::http::StatusCode;
use teleapi_adapters::http::{HostResolver, HttpWebhooks};
use teleapi_api::ROUTES;
use teleapi_domain::call_log::{LogEntry, LogLevel, Problem};
use teleapi_domain::paging::PageRequest;
use teleapi_domain::{AddressPolicy, CallStatus, Method};
use teleapi_ports::{DeliveryError, WebhookClient, WebhookRequest};
use teleapi_tests::runtime::{Emulator, Outcome, api_event, start_logging};
use teleapi_tests::sink::Sink;
use teleapi_tests::{
    BASE, Backend, World, account, basic_auth, body_text, get_request, post_request,
};

/// A path of `ROUTES` with its placeholders filled in (a stream by its name).
fn path(template: &str, account: &str, call: &str, conference: &str, recording: &str) -> String {
    template
        .replace("{AccountSid}", account)
        .replace("{ConferenceSid}", conference)
        .replace("{CallSid}", call)
        .replace("{RecordingSid}", recording)
        .replace("{StreamSid}", "bot")
        .replace("{NotificationSid}", NOTIFICATION.get().unwrap())
}

/// Their call's notification, for the routes that name one.
static NOTIFICATION: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn body_for(method: &str, template: &str) -> &'static str {
    let conference = template.contains("{ConferenceSid}");
    if method == "POST" {
        if template.ends_with("Recordings") || template.ends_with("Recordings.json") {
            return "RecordingChannels=dual";
        }
        if template.ends_with("{RecordingSid}") {
            return "Status=paused";
        }
        if template.ends_with("Streams") || template.ends_with("Streams.json") {
            return "Url=wss%3A%2F%2Fbot.example.com%2Fmedia";
        }
        if template.ends_with("{StreamSid}") {
            return "Status=stopped";
        }
    }
    match (method, conference, template.contains("{CallSid}")) {
        ("POST", true, true) => "Muted=true",
        ("POST", true, false)
            if template.ends_with("Participants") || template.ends_with("Participants.json") =>
        {
            "From=%2B15551230001&To=client%3Abob"
        }
        ("POST", true, false) => "Status=completed",
        ("POST", false, true) => "Mute=true",
        ("POST", false, false) => {
            "From=%2B15551230001&To=client%3Abob&Url=https%3A%2F%2Fapp.example.com%2Fb"
        }
        _ => "",
    }
}

/// On every route: another account's credentials on this account's path are refused (403), and
/// this account's calls named under the other account's path are not found (404). Nothing is
/// written or sent either way.
#[tokio::test]
async fn no_account_reaches_another_accounts_calls_on_any_route() {
    let world = World::new(Backend::memory()).await;
    let theirs = world.call(CallStatus::InProgress).await;
    // Their call is in their conference, whose routes are held to the same rule.
    let room = world.conference_with(&theirs).await;
    // And their call's recording.
    let recording = teleapi_domain::recording::plan_start(
        &theirs,
        None,
        &teleapi_domain::recording::RecordingOptions::parse_start(
            &teleapi_domain::Form::parse(b"").unwrap(),
            AddressPolicy::default(),
        )
        .unwrap(),
        teleapi_domain::RecordingSid::generate(),
        teleapi_domain::IntentSid::generate(),
        theirs.date_created,
        std::time::Duration::from_secs(3600),
    )
    .unwrap()
    .recording;
    let recordings = &world.backend.recordings;
    assert!(recordings.write_recording(&recording, None).await.unwrap());
    // And their call's log: one notification.
    let notice = teleapi_ports::insight::notification_entry(
        Problem::new(LogLevel::Warning, 12200, "a verb was skipped"),
        &theirs.sid,
        &theirs.account_sid,
        theirs.date_created,
        "security",
    );
    let log = &world.backend.call_log;
    let kept = theirs
        .date_created
        .plus(std::time::Duration::from_secs(3600));
    assert!(log.append(&notice, kept).await.unwrap());
    let LogEntry::Notification(notice) = notice else {
        unreachable!()
    };
    NOTIFICATION.get_or_init(|| notice.sid.to_string());
    let intruder = account(&world.backend, None).await;
    let auth = basic_auth(&intruder);
    for (method, template, _) in ROUTES {
        let body = body_for(method, template);
        let request = |path: &str| match method {
            "GET" => get_request(path, Some(&auth)),
            "DELETE" => {
                let mut request = get_request(path, Some(&auth));
                *request.method_mut() = lambda_http::http::Method::DELETE;
                request
            }
            _ => post_request(path, Some(&auth), body),
        };
        let (account, call) = (world.account.sid.as_str(), theirs.sid.as_str());
        let sid = recording.sid.as_str();
        let foreign = path(template, account, call, room.sid.as_str(), sid);
        let answer = world.send(request(&foreign)).await;
        assert_eq!(
            answer.status(),
            StatusCode::FORBIDDEN,
            "{method} {template}: {}",
            body_text(&answer)
        );
        assert!(!body_text(&answer).contains(theirs.sid.as_str()));
        if ["{CallSid}", "{ConferenceSid}", "{RecordingSid}"]
            .iter()
            .any(|sid| template.contains(sid))
        {
            let own = path(
                template,
                intruder.sid.as_str(),
                call,
                room.sid.as_str(),
                sid,
            );
            let answer = world.send(request(&own)).await;
            assert_eq!(
                answer.status(),
                StatusCode::NOT_FOUND,
                "{method} {template}: {}",
                body_text(&answer)
            );
        }
    }
    assert_eq!(world.stored(&theirs).await, theirs, "nothing written");
    let stored = world
        .backend
        .conferences
        .conference(&room.sid)
        .await
        .unwrap();
    assert_eq!(stored.as_ref(), Some(&room), "nothing written");
    assert_eq!(
        recordings.recording(&recording.sid).await.unwrap().as_ref(),
        Some(&recording),
        "nothing written"
    );
    assert!(
        world.backend.drain_commands().await.is_empty(),
        "nothing sent"
    );
    let page = PageRequest {
        size: 50,
        after: None,
        backward: false,
    };
    let notices = log
        .notifications(
            &theirs.account_sid,
            Some(&theirs.sid),
            &Default::default(),
            &page,
        )
        .await
        .unwrap();
    assert_eq!(
        notices.items,
        [notice],
        "no refusal noted in their call's log"
    );
    let requests = log.requests(&theirs.sid, &page).await.unwrap();
    assert!(requests.items.is_empty(), "nothing logged");
    // The intruder's own listing does not show the other account's calls either.
    let listing = world
        .send(get_request(
            &format!("{BASE}/Accounts/{}/Calls.json", intruder.sid),
            Some(&auth),
        ))
        .await;
    assert_eq!(listing.status(), StatusCode::OK);
    assert!(!body_text(&listing).contains(theirs.sid.as_str()));
    // Nor their notifications.
    let notifications = world
        .send(get_request(
            &format!("{BASE}/Accounts/{}/Notifications.json", intruder.sid),
            Some(&auth),
        ))
        .await;
    assert_eq!(notifications.status(), StatusCode::OK);
    assert!(!body_text(&notifications).contains(theirs.sid.as_str()));
}

/// The real modify-call binary, logging at `debug` and at `trace` (as someone chasing a problem
/// would set it): after refused and accepted requests, neither the AuthToken nor the
/// Authorization header's value appears anywhere in its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_the_logs() {
    let world = World::new(Backend::moto().await).await;
    let call = world.call(CallStatus::InProgress).await;
    let token = world.account.auth_token.expose().to_owned();
    let good = world.auth();
    let mut wrong = world.account.clone();
    wrong.auth_token = teleapi_domain::AuthToken::new("f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0");
    let mut unknown = wrong.clone();
    unknown.sid = teleapi_domain::AccountSid::generate();
    let attempts = [
        basic_auth(&wrong),
        basic_auth(&unknown),
        "Basic bm90LWEtc2lkOnNlY3JldC1pbi1hLWJhZC1oZWFkZXI=".to_owned(), // not-a-sid:secret-in-a-bad-header
        good.clone(),
    ];
    for level in ["debug", "trace"] {
        let log_path = std::env::temp_dir().join(format!(
            "teleapi-security-{level}-{}.log",
            std::process::id()
        ));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut env = world.backend.aws.as_ref().unwrap().function_env();
        env.push(("RUST_LOG".into(), level.into()));
        let emulator = Emulator::start().await;
        let function = start_logging("modify-call", &emulator, &env, Some(log));
        for auth in &attempts {
            let event = api_event(
                "POST",
                &format!(
                    "{BASE}/Accounts/{}/Calls/{}.json",
                    world.account.sid, call.sid
                ),
                "",
                auth,
                "Mute=true",
            );
            let Outcome::Response(answer) = emulator.invoke(&event).await else {
                panic!("the function failed");
            };
            let expected = if auth == &good { 200 } else { 401 };
            assert_eq!(answer["statusCode"], expected, "{answer}");
        }
        drop(function);
        let text = std::fs::read_to_string(&log_path).unwrap();
        assert!(text.lines().count() > 3, "{level}: the log has lines");
        for auth in &attempts {
            let encoded = auth.trim_start_matches("Basic ");
            assert!(
                !text.contains(encoded),
                "{level}: an Authorization value is in the log"
            );
        }
        for secret in [
            token.as_str(),
            wrong.auth_token.expose(),
            "secret-in-a-bad-header",
        ] {
            assert!(!text.contains(secret), "{level}: {secret} is in the log");
        }
        let _ = std::fs::remove_file(&log_path);
    }
}

/// DNS that answers differently each time (rebinding): every connection's addresses are checked
/// when they are resolved, so a host that answered with an allowed address first and a private
/// one next is refused the second time, instead of the check passing on one answer and the
/// connection going to another.
#[tokio::test]
async fn a_host_rebinding_to_a_private_address_is_refused() {
    struct Rebinding {
        answers: Mutex<Vec<Vec<std::net::IpAddr>>>,
        asked: Mutex<u32>,
    }

    #[async_trait::async_trait]
    impl HostResolver for Rebinding {
        async fn lookup(&self, _host: &str) -> std::io::Result<Vec<std::net::IpAddr>> {
            *self.asked.lock().unwrap() += 1;
            let mut answers = self.answers.lock().unwrap();
            Ok(if answers.len() > 1 {
                answers.remove(0)
            } else {
                answers[0].clone()
            })
        }
    }

    let sink = Sink::start().await;
    let port = sink.base.rsplit(':').next().unwrap().to_owned();
    // Loopback stands in for the public address here (the policy allows it, as in local runs);
    // the private one is 10.0.0.7.
    let resolver = Arc::new(Rebinding {
        answers: Mutex::new(vec![
            vec!["127.0.0.1".parse().unwrap()],
            vec!["10.0.0.7".parse().unwrap(), "127.0.0.1".parse().unwrap()],
            vec!["10.0.0.7".parse().unwrap()],
        ]),
        asked: Mutex::new(0),
    });
    let policy = AddressPolicy {
        allow_loopback: true,
    };
    let client = HttpWebhooks::with_resolver(policy, resolver.clone());
    // Each request with its own connect timeout, so its own connection pool: a new connection.
    let request = |connect_ms: u64| WebhookRequest {
        method: Method::Post,
        url: format!("http://rebinding.test:{port}/cb"),
        headers: Vec::new(),
        body: Some("a=1".into()),
        delivery: teleapi_domain::wire::callback::Delivery {
            connect_timeout: std::time::Duration::from_millis(connect_ms),
            ..Default::default()
        },
    };
    assert_eq!(client.send(&request(1400)).await.unwrap().status, 200);
    // A new connection: resolved again, the private answer dropped, the allowed one used.
    assert_eq!(client.send(&request(1500)).await.unwrap().status, 200);
    // Only private now: refused, and nothing reached anything.
    let answer = client.send(&request(1600)).await;
    assert!(
        matches!(answer, Err(DeliveryError::Refused(_))),
        "{answer:?}"
    );
    assert_eq!(
        *resolver.asked.lock().unwrap(),
        3,
        "one check per connection"
    );
    assert_eq!(sink.received_at("/cb").len(), 2);
}
