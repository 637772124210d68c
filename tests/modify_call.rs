//! `POST …/Calls/{CallSid}` through the real handler, on the memory twins and on moto: what a
//! user of the API sees, case by case.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use lambda_http::http::{HeaderValue, StatusCode, header};
use teleapi_domain::{Account, AccountStatus, CallStatus, IntentStatus, Timestamp};
use teleapi_ports::Clock as _;
use teleapi_ports::{OutgoingMessage, Queue, QueueError, ReceivedMessage};
use teleapi_tests::{
    Backend, World, assert_error, basic_auth, body_json, body_text, call_path, modify_request,
};

/// (body, expected status, expected code, text the message must contain)
#[rustfmt::skip]
const VALIDATION: &[(&str, u16, u64, &str)] = &[
    ("", 400, 21200, "modifies nothing"),
    ("Foo=bar", 400, 20001, "Unknown parameter 'Foo'"),
    ("url=https://app.example.com/a", 400, 20001, "Unknown parameter 'url'"),
    ("Url=not-a-url", 400, 21205, "Url is not a valid URL"),
    ("Url=ftp://app.example.com/a", 400, 21205, "http or https"),
    ("Url=https://app.example.com/%20a b", 400, 21205, "whitespace"),
    ("Url=http://169.254.169.254/latest/meta-data", 400, 21205, "link-local"),
    ("Url=http://10.0.0.8/rcml", 400, 21205, "private"),
    ("Url=http://127.0.0.1/rcml", 400, 21205, "loopback"),
    ("Url=https://app.example.com/a&Url=https://app.example.com/b", 400, 21200, "more than once"),
    ("Method=GET", 400, 21200, "together with Url"),
    ("Url=https://app.example.com/a&Method=PUT", 400, 21209, "GET or POST"),
    ("Status=bogus", 400, 21200, "canceled or completed"),
    ("Status=completed&Url=https://app.example.com/a", 400, 21200, "combined with Url"),
    ("Status=completed&Mute=true", 400, 21200, "combined with Mute"),
    ("Status=canceled&Twiml=%3CResponse%2F%3E", 400, 21200, "combined with Twiml"),
    ("Mute=yes", 400, 21200, "true or false"),
    ("MoveConnectedCallLeg=true", 400, 21200, "together with Url or Twiml"),
    ("Url=https://app.example.com/a&MoveConnectedCallLeg=1", 400, 21200, "true or false"),
    ("Twiml=%3CSay%3Ehi%3C%2FSay%3E", 400, 12100, "root element must be <Response>"),
    ("Twiml=%3CResponse%3E", 400, 12100, "not well-formed"),
    ("Url=https://app.example.com/a&Twiml=%3CResponse%2F%3E", 400, 21200, "not both"),
    ("TimeLimit=0", 400, 21200, "from 1 to 14400"),
    ("TimeLimit=14401", 400, 21200, "from 1 to 14400"),
    ("TimeLimit=%2B5", 400, 21200, "whole number"),
    ("TimeLimit=ten", 400, 21200, "whole number"),
    ("StatusCallbackEvent=hungup", 400, 21626, "not one of initiated"),
    ("StatusCallbackEvent=", 400, 21626, "empty"),
    ("FallbackUrl=/relative", 400, 21205, "FallbackUrl is not a valid URL"),
    ("FallbackMethod=GET", 400, 21200, "together with FallbackUrl"),
    ("StatusCallback=https://app.example.com/cb&StatusCallbackMethod=HEAD", 400, 21209, "GET or POST"),
    ("StatusCallback=javascript:alert(1)", 400, 21205, "http or https"),
    ("Url=%FF%FE", 400, 21200, "not valid UTF-8"),
];

#[tokio::test]
async fn every_bad_parameter_gets_a_400_naming_it_and_nothing_is_written() {
    let world = World::new(Backend::memory()).await;
    let call = world.call(CallStatus::InProgress).await;
    for (body, status, code, mentions) in VALIDATION {
        let response = world.modify(&call, body).await;
        assert_error(&response, *status, *code, mentions);
    }
    assert_eq!(world.stored(&call).await, call, "no request wrote anything");
    assert!(world.backend.drain_commands().await.is_empty());
}

/// (body, expected intent action) for valid requests on a call in progress.
const ACCEPTED: &[(&str, &str)] = &[
    ("Url=https://app.example.com/alice", "redirect"),
    ("Url=https://app.example.com/alice&Method=get", "redirect"),
    (
        "Twiml=%3CResponse%3E%3CSay%3EHi%3C%2FSay%3E%3C%2FResponse%3E",
        "execute",
    ),
    (
        "Url=https://app.example.com/a&MoveConnectedCallLeg=TRUE",
        "redirect",
    ),
    ("Mute=TRUE", "mute"),
    ("Mute=false", "unmute"),
    ("Status=Completed", "hangup"),
    (
        "Status=completed&StatusCallback=https://app.example.com/done",
        "hangup",
    ),
    (
        "FallbackUrl=https://app.example.com/fb&FallbackMethod=Get",
        "update",
    ),
    (
        "StatusCallback=https://app.example.com/cb&StatusCallbackMethod=get",
        "update",
    ),
    (
        "StatusCallbackEvent=ringing+answered&StatusCallbackEvent=completed",
        "update",
    ),
    ("TimeLimit=600", "update"),
];

#[tokio::test]
async fn every_valid_request_is_accepted_with_its_intent() {
    let world = World::new(Backend::memory()).await;
    for (body, action) in ACCEPTED {
        let call = world.call(CallStatus::InProgress).await;
        let response = world.modify(&call, body).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{body}: {}",
            body_text(&response)
        );
        let intent = world
            .backend
            .calls
            .intent(&teleapi_domain::Subject::Call(call.sid.clone()), 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(intent.action.as_str(), *action, "{body}");
    }
}

async fn the_response_is_the_call_resource_with_the_intent(world: World) {
    let call = world.call(CallStatus::InProgress).await;
    let response = world
        .modify(&call, "Url=https://app.example.com/alice&Mute=true")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let json = body_json(&response);
    let intent_sid = response.headers()["teleapi-intent-sid"].to_str().unwrap();
    assert!(intent_sid.starts_with("MI"));
    assert_eq!(json["intent_sid"], intent_sid);
    for field in [
        "sid",
        "account_sid",
        "parent_call_sid",
        "to",
        "from",
        "status",
        "direction",
        "start_time",
        "end_time",
        "duration",
        "date_created",
        "date_updated",
        "api_version",
        "uri",
        "subresource_uris",
        "muted",
    ] {
        assert!(json.get(field).is_some(), "missing {field} in {json}");
    }
    assert_eq!(json["sid"], call.sid.as_str());
    assert_eq!(json["status"], "in-progress");
    assert_eq!(json["direction"], "inbound");
    assert_eq!(json["api_version"], "2012-04-24");
    assert_eq!(json["muted"], true);
    assert_eq!(json["date_created"], call.date_created.rfc2822());
    assert!(json["date_updated"].as_str().unwrap().ends_with("+0000"));
    assert_eq!(
        json["uri"],
        format!(
            "/call/2012-04-24/Accounts/{}/Calls/{}.json",
            world.account.sid, call.sid
        )
    );

    let stored = world.stored(&call).await;
    assert_eq!((stored.seq, stored.muted), (1, true));
    assert_eq!(
        stored.instructions.url.unwrap().as_str(),
        "https://app.example.com/alice"
    );
    let intent = world
        .backend
        .calls
        .intent(&teleapi_domain::Subject::Call(call.sid.clone()), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(intent.sid.as_str(), intent_sid);
    assert_eq!(intent.status, IntentStatus::Pending);
    assert_eq!(intent.parameters["Url"], "https://app.example.com/alice");
    assert_eq!(intent.parameters["Method"], "POST");
    assert!(intent.expires_at > Timestamp::now().plus(Duration::from_secs(29 * 24 * 3600)));

    // One command, in the call's group, deduplicated by the intent.
    let commands = world.backend.drain_commands().await;
    assert_eq!(commands.len(), 1);
    let command = &commands[0];
    assert_eq!(command["version"], 1);
    assert_eq!(command["type"], "redirect");
    assert_eq!(command["call_sid"], call.sid.as_str());
    assert_eq!(command["account_sid"], world.account.sid.as_str());
    assert_eq!(command["intent_sid"], intent_sid);
    assert_eq!(command["seq"], 1);
    assert_eq!(
        command["parameters"]["url"],
        "https://app.example.com/alice"
    );
    assert_eq!(command["parameters"]["method"], "POST");
    assert_eq!(command["parameters"]["mute"], true);
}

async fn the_three_path_forms_and_the_two_formats(world: World) {
    let call = world.call(CallStatus::InProgress).await;
    let auth = basic_auth(&world.account);
    let (ac, ca) = (&world.account.sid, &call.sid);
    for (path, accept, json) in [
        (
            format!("/call/2012-04-24/Accounts/{ac}/Calls/{ca}"),
            None,
            false,
        ),
        (
            format!("/call/2012-04-24/Accounts/{ac}/Calls/{ca}"),
            Some("application/json"),
            true,
        ),
        (
            format!("/call/2012-04-24/Accounts/{ac}/Calls.json/{ca}"),
            None,
            true,
        ),
        (
            format!("/call/2012-04-24/Accounts/{ac}/Calls/{ca}.json"),
            None,
            true,
        ),
    ] {
        let mut request = modify_request(&path, Some(&auth), "Mute=true");
        if let Some(accept) = accept {
            request
                .headers_mut()
                .insert(header::ACCEPT, HeaderValue::from_static(accept));
        }
        let response = world.send(request).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let text = body_text(&response);
        if json {
            assert_eq!(body_json(&response)["sid"], ca.as_str(), "{path}");
        } else {
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/xml");
            assert!(text.starts_with("<?xml"), "{text}");
            assert!(text.contains(&format!(
                "<Call><Sid>{ca}</Sid><AccountSid>{ac}</AccountSid>"
            )));
            assert!(text.contains("<Muted>true</Muted>"));
            assert!(text.contains("<IntentSid>MI"));
        }
    }
    // Errors follow the same rule.
    let path = format!("/call/2012-04-24/Accounts/{ac}/Calls/{ca}");
    let response = world
        .send(modify_request(&path, Some(&auth), "Mute=maybe"))
        .await;
    let text = body_text(&response);
    assert!(text.contains("<RestException><Code>21200</Code>"), "{text}");
    assert!(text.contains("<Status>400</Status>"), "{text}");
}

async fn credentials_and_accounts(world: World) {
    let call = world.call(CallStatus::InProgress).await;
    let path = call_path(&world.account.sid, call.sid.as_str());

    let response = world.send(modify_request(&path, None, "Mute=true")).await;
    assert_error(&response, 401, 20003, "Authenticate");
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        r#"Basic realm="teleapi""#
    );

    let mut wrong = world.account.clone();
    wrong.auth_token = teleapi_domain::AuthToken::new("0123456789abcdef0123456789abcdef");
    let response = world
        .send(modify_request(
            &path,
            Some(&basic_auth(&wrong)),
            "Mute=true",
        ))
        .await;
    assert_error(&response, 401, 20003, "Authenticate");

    let stranger = Account::open("Stranger", None, Timestamp::now());
    let response = world
        .send(modify_request(
            &path,
            Some(&basic_auth(&stranger)),
            "Mute=true",
        ))
        .await;
    assert_error(&response, 401, 20003, "Authenticate");

    let response = world
        .send(modify_request(&path, Some("Basic %%%"), "Mute=true"))
        .await;
    assert_error(&response, 401, 20003, "Authenticate");

    // A suspended account is refused even with the right token.
    let mut suspended = Account::open("Suspended", None, Timestamp::now());
    suspended.status = AccountStatus::Suspended;
    world
        .backend
        .accounts
        .insert_account(&suspended)
        .await
        .unwrap();
    let own_path = call_path(&suspended.sid, call.sid.as_str());
    let response = world
        .send(modify_request(
            &own_path,
            Some(&basic_auth(&suspended)),
            "Mute=true",
        ))
        .await;
    assert_error(&response, 403, 10001, "not active");

    // Another account's path: refused, whether or not that account exists.
    let other = teleapi_tests::account(&world.backend, None).await;
    for target in [
        other.sid.to_string(),
        teleapi_domain::AccountSid::generate().to_string(),
    ] {
        let path = format!("/call/2012-04-24/Accounts/{target}/Calls/{}.json", call.sid);
        let response = world
            .send(modify_request(
                &path,
                Some(&basic_auth(&world.account)),
                "Mute=true",
            ))
            .await;
        assert_error(&response, 403, 20003, "may not act for");
    }

    assert_eq!(world.stored(&call).await.seq, 0, "nothing was written");
}

async fn a_parent_acts_for_its_subaccounts_and_not_the_reverse(world: World) {
    let child = teleapi_tests::account(&world.backend, Some(&world.account)).await;
    let childs_call = teleapi_tests::call(
        &world.backend,
        &child.sid,
        CallStatus::InProgress,
        world.clock.now(),
    )
    .await;
    let path = call_path(&child.sid, childs_call.sid.as_str());
    let response = world
        .send(modify_request(
            &path,
            Some(&basic_auth(&world.account)),
            "Mute=true",
        ))
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        body_text(&response)
    );

    let parents_call = world.call(CallStatus::InProgress).await;
    let path = call_path(&world.account.sid, parents_call.sid.as_str());
    let response = world
        .send(modify_request(
            &path,
            Some(&basic_auth(&child)),
            "Mute=true",
        ))
        .await;
    assert_error(&response, 403, 20003, "may not act for");

    // A parent naming itself in the path cannot reach its subaccount's call that way.
    let path = call_path(&world.account.sid, childs_call.sid.as_str());
    let response = world
        .send(modify_request(
            &path,
            Some(&basic_auth(&world.account)),
            "Mute=true",
        ))
        .await;
    assert_error(&response, 404, 20404, "not found");
}

async fn unknown_foreign_and_malformed_calls_are_not_found(world: World) {
    let other = teleapi_tests::account(&world.backend, None).await;
    let foreign = teleapi_tests::call(
        &world.backend,
        &other.sid,
        CallStatus::InProgress,
        world.clock.now(),
    )
    .await;
    let auth = basic_auth(&world.account);
    for call_sid in [
        foreign.sid.to_string(),
        teleapi_domain::CallSid::generate().to_string(),
        "CA123".to_owned(),
        "not-a-sid".to_owned(),
    ] {
        let path = call_path(&world.account.sid, &call_sid);
        let response = world
            .send(modify_request(&path, Some(&auth), "Mute=true"))
            .await;
        assert_error(&response, 404, 20404, "not found");
    }
    assert_eq!(
        world
            .backend
            .calls
            .call(&foreign.sid)
            .await
            .unwrap()
            .unwrap(),
        foreign,
        "the other account's call is untouched"
    );
}

async fn ended_calls_and_mute_out_of_progress_are_conflicts(world: World) {
    for status in [
        CallStatus::Completed,
        CallStatus::Canceled,
        CallStatus::Busy,
        CallStatus::Failed,
        CallStatus::NoAnswer,
    ] {
        let call = world.call(status).await;
        let response = world.modify(&call, "Url=https://app.example.com/a").await;
        assert_error(&response, 409, 21220, "has ended");
    }
    for status in [CallStatus::Queued, CallStatus::Ringing] {
        let call = world.call(status).await;
        let response = world.modify(&call, "Mute=true").await;
        assert_error(
            &response,
            409,
            21220,
            "Mute applies only to a call in progress",
        );
    }
    assert!(world.backend.drain_commands().await.is_empty());
}

async fn canceled_and_completed_by_call_state(world: World) {
    // canceled on a call in progress: accepted, recorded as having no effect, nothing sent.
    let live = world.call(CallStatus::InProgress).await;
    let response = world.modify(&live, "Status=canceled").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_json(&response)["status"], "in-progress");
    let intent = world
        .backend
        .calls
        .intent(&teleapi_domain::Subject::Call(live.sid.clone()), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(intent.status, IntentStatus::NoEffect);
    assert!(intent.reason.unwrap().contains("already in progress"));
    assert_eq!(world.stored(&live).await.status, CallStatus::InProgress);
    assert!(world.backend.drain_commands().await.is_empty());

    // canceled on a ringing call ends it as canceled.
    let ringing = world.call(CallStatus::Ringing).await;
    let response = world.modify(&ringing, "Status=CANCELED").await;
    assert_eq!(body_json(&response)["status"], "canceled");
    let commands = world.backend.drain_commands().await;
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0]["type"], "hangup");
    assert_eq!(commands[0]["parameters"]["status"], "canceled");

    // completed on a call in progress ends it as completed, with its duration.
    world.clock.advance(Duration::from_secs(75));
    let response = world.modify(&live, "Status=completed").await;
    let json = body_json(&response);
    assert_eq!(json["status"], "completed");
    assert_eq!(json["duration"], "75");
    assert!(json["end_time"].is_string());
    let stored = world.stored(&live).await;
    assert_eq!((stored.status, stored.seq), (CallStatus::Completed, 2));
    let commands = world.backend.drain_commands().await;
    assert_eq!(commands[0]["parameters"]["status"], "completed");

    // And once ended, the call takes no more modifications.
    let response = world.modify(&live, "Status=completed").await;
    assert_error(&response, 409, 21220, "has ended");
}

async fn a_repeated_idempotency_key_returns_the_first_answer(world: World) {
    let call = world.call(CallStatus::InProgress).await;
    let path = call_path(&world.account.sid, call.sid.as_str());
    let auth = basic_auth(&world.account);
    let keyed = |body: &str, key: &'static str| {
        let mut request = modify_request(&path, Some(&auth), body);
        request
            .headers_mut()
            .insert("Idempotency-Key", HeaderValue::from_static(key));
        request
    };
    let first = world
        .send(keyed("Url=https://app.example.com/a", "k-1"))
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    world.clock.advance(Duration::from_secs(3600));
    let again = world
        .send(keyed("Url=https://app.example.com/a&Method=POST", "k-1"))
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(body_json(&again), body_json(&first));
    assert_eq!(
        again.headers()["teleapi-intent-sid"],
        first.headers()["teleapi-intent-sid"]
    );
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(world.stored(&call).await.seq, 1, "one intent");
    assert_eq!(world.backend.drain_commands().await.len(), 1, "one command");

    let different = world
        .send(keyed("Url=https://app.example.com/b", "k-1"))
        .await;
    assert_error(&different, 422, 422, "different parameters");

    // Another account's identical key is its own.
    let child = teleapi_tests::account(&world.backend, Some(&world.account)).await;
    let mut request = modify_request(
        &path,
        Some(&basic_auth(&child)),
        "Url=https://app.example.com/a",
    );
    request
        .headers_mut()
        .insert("Idempotency-Key", HeaderValue::from_static("k-1"));
    assert_eq!(world.send(request).await.status(), StatusCode::FORBIDDEN);

    // After 24 hours the key is forgotten and the request runs again.
    world.clock.advance(Duration::from_secs(23 * 3600 + 1));
    let later = world
        .send(keyed("Url=https://app.example.com/a", "k-1"))
        .await;
    assert_eq!(later.status(), StatusCode::OK);
    assert_ne!(
        later.headers()["teleapi-intent-sid"],
        first.headers()["teleapi-intent-sid"]
    );
    assert_eq!(world.stored(&call).await.seq, 2);

    let long_key = "k".repeat(256);
    let mut request = modify_request(&path, Some(&auth), "Mute=true");
    request
        .headers_mut()
        .insert("Idempotency-Key", HeaderValue::from_str(&long_key).unwrap());
    assert_error(&world.send(request).await, 400, 21200, "Idempotency-Key");
}

async fn commands_go_to_the_queue_named_on_the_call(world: World) {
    let worker_queue = world.backend.worker_queue("worker-7").await;
    let mut call = world.call(CallStatus::InProgress).await;
    call.sid = teleapi_domain::CallSid::generate();
    call.command_queue = Some(worker_queue.clone());
    world.backend.calls.insert_call(&call).await.unwrap();
    let response = world.modify(&call, "Mute=true").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        world.backend.drain_commands().await.is_empty(),
        "not on the default queue"
    );
    let received = world
        .backend
        .commands
        .receive(Some(&worker_queue), 10, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].group.as_deref(), Some(call.sid.as_str()));
    assert!(received[0].body.contains("\"type\":\"mute\""));
}

async fn fifty_concurrent_modifications_get_gap_free_sequence_numbers(world: World) {
    let call = world.call(CallStatus::InProgress).await;
    let world = Arc::new(world);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let world = world.clone();
            let call = call.clone();
            tokio::spawn(async move {
                let body = format!("Url=https://app.example.com/step-{i}");
                world.modify(&call, &body).await
            })
        })
        .collect();
    let mut intent_sids = Vec::new();
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            body_text(&response)
        );
        intent_sids.push(
            body_json(&response)["intent_sid"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let stored = world.stored(&call).await;
    assert_eq!(stored.seq, 50);
    let mut seen = Vec::new();
    for seq in 1..=50 {
        let intent = world
            .backend
            .calls
            .intent(&teleapi_domain::Subject::Call(call.sid.clone()), seq)
            .await
            .unwrap()
            .unwrap();
        assert!(
            intent_sids.contains(&intent.sid.to_string()),
            "intent {seq} answered"
        );
        seen.push(intent.sid.to_string());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 50, "fifty distinct intents");
    // The call's Url is the last accepted one's: no lost update.
    let last = world
        .backend
        .calls
        .intent(&teleapi_domain::Subject::Call(call.sid.clone()), 50)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.instructions.url.unwrap().as_str(),
        last.parameters["Url"]
    );
    let mut commands: Vec<u64> = world
        .backend
        .drain_commands()
        .await
        .iter()
        .map(|c| c["seq"].as_u64().unwrap())
        .collect();
    commands.sort_unstable();
    assert_eq!(
        commands,
        (1..=50).collect::<Vec<u64>>(),
        "one command per intent"
    );
}

/// A commands queue that fails or never answers, on demand.
struct FaultyQueue {
    inner: Arc<dyn Queue>,
    mode: Mutex<Fault>,
}

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    Fail,
    Hang,
}

#[async_trait]
impl Queue for FaultyQueue {
    async fn send(&self, queue: Option<&str>, message: &OutgoingMessage) -> Result<(), QueueError> {
        let mode = *self.mode.lock().unwrap();
        match mode {
            Fault::None => self.inner.send(queue, message).await,
            Fault::Fail => Err(QueueError::Unavailable("injected".into())),
            Fault::Hang => std::future::pending().await,
        }
    }
    async fn receive(
        &self,
        queue: Option<&str>,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        self.inner.receive(queue, max, wait).await
    }
    async fn delete(&self, queue: Option<&str>, receipt: &str) -> Result<(), QueueError> {
        self.inner.delete(queue, receipt).await
    }
    async fn release(&self, queue: Option<&str>, receipt: &str) -> Result<(), QueueError> {
        self.inner.release(queue, receipt).await
    }
}

fn with_faulty_queue(world: &mut World) -> Arc<FaultyQueue> {
    let faulty = Arc::new(FaultyQueue {
        inner: world.backend.commands.clone(),
        mode: Mutex::new(Fault::None),
    });
    world.services.commands = faulty.clone();
    faulty
}

async fn a_failed_send_undoes_the_intent_and_answers_503(mut world: World) {
    let faulty = with_faulty_queue(&mut world);
    let call = world.call(CallStatus::InProgress).await;
    let path = call_path(&world.account.sid, call.sid.as_str());
    let auth = basic_auth(&world.account);
    let keyed = || {
        let mut request = modify_request(
            &path,
            Some(&auth),
            "Url=https://app.example.com/a&Mute=true",
        );
        request
            .headers_mut()
            .insert("Idempotency-Key", HeaderValue::from_static("retry-me"));
        request
    };
    *faulty.mode.lock().unwrap() = Fault::Fail;
    let response = world.send(keyed()).await;
    assert_error(&response, 503, 503, "nothing it asked for was done");
    assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    let intent = world
        .backend
        .calls
        .intent(&teleapi_domain::Subject::Call(call.sid.clone()), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(intent.status, IntentStatus::Failed);
    let stored = world.stored(&call).await;
    assert_eq!(
        (stored.muted, stored.instructions.url.clone()),
        (false, call.instructions.url.clone()),
        "call restored"
    );
    assert_eq!(stored.seq, 1, "the failed intent keeps its number");

    // The key was released: the retry runs for real.
    *faulty.mode.lock().unwrap() = Fault::None;
    let retry = world.send(keyed()).await;
    assert_eq!(retry.status(), StatusCode::OK, "{}", body_text(&retry));
    assert_eq!(world.stored(&call).await.seq, 2);
    let commands = world.backend.drain_commands().await;
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0]["seq"], 2);
}

async fn a_crash_between_write_and_send_is_delivered_by_the_reconciler(mut world: World) {
    let faulty = with_faulty_queue(&mut world);
    let call = world.call(CallStatus::InProgress).await;
    *faulty.mode.lock().unwrap() = Fault::Hang;
    // The request writes its intent, then dies while sending: its future is dropped mid-send.
    let died = tokio::time::timeout(
        Duration::from_secs(2),
        world.modify(&call, "Url=https://app.example.com/a"),
    )
    .await;
    assert!(died.is_err(), "the request never answered");
    let intent = world
        .backend
        .calls
        .intent(&teleapi_domain::Subject::Call(call.sid.clone()), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(intent.status, IntentStatus::Pending);
    *faulty.mode.lock().unwrap() = Fault::None;

    let reconcile = |world: &World| {
        // The reconciler on the world's (faulty) store and queue.
        let services = teleapi_pipeline::reconcile::ReconcilerServices {
            calls: world.services.calls.clone(),
            commands: world.services.commands.clone(),
            ..world.backend.reconciler_services(world.clock.clone())
        };
        let now = world.clock.now();
        async move {
            teleapi_pipeline::reconcile::reconcile_pending(&services, now)
                .await
                .unwrap()
        }
    };
    // Within the grace period the reconciler leaves it alone: the request might still be running.
    assert_eq!(reconcile(&world).await.resent, 0);
    world.clock.advance(Duration::from_secs(61));
    assert_eq!(reconcile(&world).await.resent, 1);
    assert_eq!(reconcile(&world).await.resent, 0, "once");
    let intent = world
        .backend
        .calls
        .intent(&teleapi_domain::Subject::Call(call.sid.clone()), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(intent.status, IntentStatus::Enqueued);
    let commands = world.backend.drain_commands().await;
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0]["intent_sid"], intent.sid.as_str());

    // One that stayed pending past the delivery window is failed, not sent.
    let other = world.call(CallStatus::InProgress).await;
    *faulty.mode.lock().unwrap() = Fault::Hang;
    let _ = tokio::time::timeout(Duration::from_secs(2), world.modify(&other, "Mute=true")).await;
    *faulty.mode.lock().unwrap() = Fault::None;
    world.clock.advance(Duration::from_secs(241));
    let report = reconcile(&world).await;
    assert_eq!((report.resent, report.failed), (0, 1));
    let intent = world
        .backend
        .calls
        .intent(&teleapi_domain::Subject::Call(other.sid.clone()), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(intent.status, IntentStatus::Failed);
    assert!(world.backend.drain_commands().await.is_empty());

    // The first one's command went out again at 61 s, and no worker has reported it since: at
    // 302 s it is past the report deadline, failed in the same run, and not again.
    assert_eq!(report.unreported, 1);
    let first = world
        .backend
        .calls
        .intent(&teleapi_domain::Subject::Call(call.sid.clone()), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.status, first.reason.as_deref()),
        (
            IntentStatus::Failed,
            Some(teleapi_pipeline::reconcile::UNREPORTED)
        )
    );
    assert_eq!(reconcile(&world).await, Default::default());
}

async fn request_size_and_media_type(world: World) {
    let call = world.call(CallStatus::InProgress).await;
    let path = call_path(&world.account.sid, call.sid.as_str());
    let auth = basic_auth(&world.account);
    let huge = format!("Url=https://app.example.com/{}", "a".repeat(70 * 1024));
    assert_error(
        &world.send(modify_request(&path, Some(&auth), &huge)).await,
        413,
        413,
        "larger than",
    );

    let mut json = modify_request(&path, Some(&auth), r#"{"Url":"https://app.example.com/a"}"#);
    json.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    assert_error(&world.send(json).await, 415, 415, "x-www-form-urlencoded");

    let mut none = modify_request(&path, Some(&auth), "Mute=true");
    none.headers_mut().remove(header::CONTENT_TYPE);
    assert_error(&world.send(none).await, 415, 415, "x-www-form-urlencoded");

    let mut get = modify_request(&path, Some(&auth), "");
    *get.method_mut() = lambda_http::http::Method::DELETE;
    let response = world.send(get).await;
    assert_error(&response, 405, 405, "Method not allowed");
    assert_eq!(response.headers()[header::ALLOW], "GET, POST");
    assert_eq!(world.stored(&call).await, call);
}

teleapi_tests::on_both_backends!(
    the_response_is_the_call_resource_with_the_intent,
    the_three_path_forms_and_the_two_formats,
    credentials_and_accounts,
    a_parent_acts_for_its_subaccounts_and_not_the_reverse,
    unknown_foreign_and_malformed_calls_are_not_found,
    ended_calls_and_mute_out_of_progress_are_conflicts,
    canceled_and_completed_by_call_state,
    a_repeated_idempotency_key_returns_the_first_answer,
    commands_go_to_the_queue_named_on_the_call,
    fifty_concurrent_modifications_get_gap_free_sequence_numbers,
    a_failed_send_undoes_the_intent_and_answers_503,
    a_crash_between_write_and_send_is_delivered_by_the_reconciler,
    request_size_and_media_type,
);
