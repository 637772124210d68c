//! The real function binaries, started as Lambda runs them (against a Lambda Runtime API
//! emulator) with DynamoDB and SQS on moto: each answers a valid and an invalid event, and a
//! function that cannot initialise says why on the init-error endpoint.

use std::time::Duration;

use serde_json::{Value, json};
use teleapi_domain::{CallStatus, Timestamp};
use teleapi_tests::runtime::{Emulator, Outcome, api_event, authorizer_event, start};
use teleapi_tests::sink::Sink;
use teleapi_tests::{Backend, World, basic_auth};

/// An SQS event of one message.
fn sqs_event(id: &str, body: &str, group: Option<&str>) -> Value {
    let mut attributes =
        json!({ "ApproximateReceiveCount": "1", "SentTimestamp": "1795521600000" });
    if let Some(group) = group {
        attributes["MessageGroupId"] = json!(group);
    }
    json!({ "Records": [{
        "messageId": id,
        "receiptHandle": "handle",
        "body": body,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:events.fifo",
        "awsRegion": "us-east-1",
    }]})
}

fn response(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Response(value) => value,
        Outcome::Error(error) => panic!("the function failed: {error}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_functions_answer_api_gateway_events() {
    let world = World::new(Backend::moto().await).await;
    let env = world.backend.aws.as_ref().unwrap().function_env();
    let call = world.call(CallStatus::InProgress).await;
    let auth = basic_auth(&world.account);
    let base = format!("/call/2012-04-24/Accounts/{}", world.account.sid);
    let cases = [
        (
            "modify-call",
            api_event(
                "POST",
                &format!("{base}/Calls/{}.json", call.sid),
                "",
                &auth,
                "Mute=true",
            ),
            200,
        ),
        (
            "get-call",
            api_event(
                "GET",
                &format!("{base}/Calls/{}.json", call.sid),
                "",
                &auth,
                "",
            ),
            200,
        ),
        (
            "get-call",
            api_event(
                "GET",
                &format!("{base}/Calls/{}/Modifications.json", call.sid),
                "",
                &auth,
                "",
            ),
            200,
        ),
        (
            "list-calls",
            api_event(
                "GET",
                &format!("{base}/Calls.json"),
                "PageSize=5",
                &auth,
                "",
            ),
            200,
        ),
        (
            "create-call",
            api_event(
                "POST",
                &format!("{base}/Calls.json"),
                "",
                &auth,
                "From=%2B15551230001&To=client%3Abob&Url=https%3A%2F%2Fapp.example.com%2Fbob",
            ),
            201,
        ),
        // Invalid requests, answered as the API answers them.
        (
            "modify-call",
            api_event(
                "POST",
                &format!("{base}/Calls/{}.json", call.sid),
                "",
                "Basic nope",
                "Mute=true",
            ),
            401,
        ),
        (
            "create-call",
            api_event(
                "POST",
                &format!("{base}/Calls.json"),
                "",
                &auth,
                "To=client%3Abob",
            ),
            400,
        ),
        (
            "list-calls",
            api_event(
                "GET",
                &format!("{base}/Calls.json"),
                "PageSize=0",
                &auth,
                "",
            ),
            400,
        ),
        // A route of another function: this one does not serve it.
        (
            "get-call",
            api_event("POST", &format!("{base}/Calls.json"), "", &auth, ""),
            404,
        ),
    ];
    for name in ["modify-call", "get-call", "list-calls", "create-call"] {
        let emulator = Emulator::start().await;
        let _function = start(name, &emulator, &env);
        for (_, event, status) in cases.iter().filter(|(n, _, _)| *n == name) {
            let answer = response(emulator.invoke(event).await);
            assert_eq!(answer["statusCode"], *status, "{name}: {answer}");
        }
        // Not an API Gateway event at all: the runtime reports an invocation error.
        match emulator.invoke(&json!({ "unexpected": true })).await {
            Outcome::Error(error) => assert!(error["errorMessage"].is_string(), "{name}: {error}"),
            Outcome::Response(answer) => panic!("{name} answered a non-event: {answer}"),
        }
    }
    assert!(
        world.stored(&call).await.muted,
        "modify-call wrote to DynamoDB"
    );
}

/// The authorizer, as API Gateway invokes it: the account's own API key for its credentials, the
/// shared keys otherwise, and always a policy allowing the whole stage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorizer_names_each_accounts_api_key() {
    let world = World::new(Backend::moto().await).await;
    let mut env = world.backend.aws.as_ref().unwrap().function_env();
    env.push((
        "TELEAPI_UNAUTHENTICATED_USAGE_KEY".into(),
        "stack-unauthenticated-requests".into(),
    ));
    env.push((
        "TELEAPI_UNASSIGNED_USAGE_KEY".into(),
        "stack-unassigned-accounts".into(),
    ));
    let mut keyed = world.account.clone();
    keyed.usage_key = Some(format!("stack-{}", keyed.sid));
    world.backend.accounts.update_account(&keyed).await.unwrap();
    let plain = teleapi_tests::account(&world.backend, None).await;
    let path = format!("/call/2012-04-24/Accounts/{}/Calls.json", keyed.sid);

    let emulator = Emulator::start().await;
    let _function = start("authorize-account", &emulator, &env);
    for (auth, key) in [
        (basic_auth(&keyed), format!("stack-{}", keyed.sid)),
        (basic_auth(&plain), "stack-unassigned-accounts".to_owned()),
        (
            "Basic bm9wZTpub3Bl".to_owned(),
            "stack-unauthenticated-requests".to_owned(),
        ),
    ] {
        let answer = response(emulator.invoke(&authorizer_event(&path, &auth)).await);
        assert_eq!(answer["usageIdentifierKey"], key.as_str(), "{answer}");
        let statement = &answer["policyDocument"]["Statement"][0];
        assert_eq!(statement["Effect"], "Allow");
        assert_eq!(
            statement["Resource"],
            "arn:aws:execute-api:us-east-1:123456789012:abc123/live/*/*"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_functions_answer_sqs_and_scheduled_events() {
    let world = World::new(Backend::moto().await).await;
    let mut env = world.backend.aws.as_ref().unwrap().function_env();
    env.push(("TELEAPI_ALLOW_LOOPBACK_WEBHOOKS".into(), "true".into()));
    let sink = Sink::start().await;
    let mut call = world.call(CallStatus::InProgress).await;
    call.sid = teleapi_domain::CallSid::generate();
    call.instructions.status_callback =
        Some(teleapi_domain::WebhookUrl::trusted(sink.url("/status")));
    world.backend.calls.insert_call(&call).await.unwrap();

    // call-events: a valid event is applied; a poison one is dead-lettered, not failed.
    let emulator = Emulator::start().await;
    let _events = start("call-events", &emulator, &env);
    let completed = json!({
        "version": 1, "type": "call.status", "call_sid": call.sid, "timestamp": Timestamp::now().millis(),
        "seq": 1, "status": "completed", "duration": 12
    });
    let answer = response(
        emulator
            .invoke(&sqs_event(
                "m-1",
                &completed.to_string(),
                Some(call.sid.as_str()),
            ))
            .await,
    );
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    assert_eq!(world.stored(&call).await.status, CallStatus::Completed);
    let answer = response(
        emulator
            .invoke(&sqs_event("m-2", "{not json", Some("CAx")))
            .await,
    );
    assert_eq!(
        answer["batchItemFailures"],
        json!([]),
        "poison goes to the DLQ: {answer}"
    );
    assert_eq!(
        Backend::drain(world.backend.event_dead_letters.as_ref()).await,
        ["{not json"]
    );
    // A worker's heartbeat: the function records the worker in its table.
    let worker = teleapi_domain::sid::WorkerId::try_from("worker-7.1".to_owned()).unwrap();
    let heartbeat = json!({
        "version": 1, "type": "worker.heartbeat", "worker_id": worker, "timestamp": 1,
        "command_queue_url": "https://sqs.example/teleapi-worker-7.fifo", "capacity": 500,
        "calls": 1, "state": "active"
    });
    let answer = response(
        emulator
            .invoke(&sqs_event(
                "m-3",
                &heartbeat.to_string(),
                Some("worker-7.1"),
            ))
            .await,
    );
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let recorded = world
        .backend
        .workers
        .worker(&worker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recorded.capacity, 500);

    // callback: the job call-events queued is delivered to the app.
    let jobs = Backend::drain(world.backend.callbacks.as_ref()).await;
    assert_eq!(jobs.len(), 1);
    let emulator = Emulator::start().await;
    let _callback = start("callback", &emulator, &env);
    let answer = response(emulator.invoke(&sqs_event("j-1", &jobs[0], None)).await);
    assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    let received = sink.received_at("/status");
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].params["CallStatus"], "completed");
    assert_eq!(received[0].params["CallDuration"], "12");
    match emulator.invoke(&json!("not an SQS event")).await {
        Outcome::Error(_) => {}
        Outcome::Response(answer) => panic!("callback answered a non-event: {answer}"),
    }

    // reconcile-intents: a scheduled event; nothing is pending, and a worker whose lease ran out
    // a minute ago has its live call ended. (The emulator's 30 s deadline leaves no time for a
    // second sweep: the function answers at once.)
    use teleapi_domain::sid::WorkerId;
    use teleapi_domain::worker::{LEASE, Worker, WorkerStatus};
    let gone = Timestamp::now().minus(Duration::from_secs(60));
    let dead = Worker {
        id: WorkerId::try_from(format!("dead-{}", &call.sid.as_str()[2..14])).unwrap(),
        command_queue: "https://sqs.example/teleapi-worker-9.fifo".into(),
        capacity: 10,
        calls: 1,
        status: WorkerStatus::Active,
        last_event: gone,
        lease_expires_at: gone,
        date_created: gone.minus(LEASE),
        date_updated: gone.minus(LEASE),
    };
    assert!(world.backend.workers.record_worker(&dead).await.unwrap());
    let orphan = world.call(CallStatus::InProgress).await;
    let mut owned = orphan.clone();
    owned.worker = Some(dead.id.clone());
    owned.version += 1;
    let write = teleapi_ports::CallWrite {
        call: &owned,
        expected_version: Some(orphan.version),
        intent: None,
        idempotency: None,
        now: Timestamp::now(),
    };
    world.backend.calls.write_call(write).await.unwrap();
    let emulator = Emulator::start().await;
    let _reconciler = start("reconcile-intents", &emulator, &env);
    let scheduled = json!({ "version": "0", "source": "aws.events", "detail-type": "Scheduled Event", "detail": {} });
    let answer = response(emulator.invoke(&scheduled).await);
    assert_eq!(
        answer,
        json!({
            "resent": 0, "failed": 0, "unreported": 0, "deferred": 0, "untaken_calls": 0,
            "expired_workers": 1, "ended_calls": 1, "failed_intents": 0, "hung_up_legs": 0,
            "ended_rooms": 0
        })
    );
    assert_eq!(world.stored(&orphan).await.status, CallStatus::Completed);
}

#[tokio::test]
async fn a_function_that_cannot_initialise_reports_why() {
    for name in teleapi_runtime::config::FUNCTIONS {
        let emulator = Emulator::start().await;
        let mut function = start(name, &emulator, &[]);
        let error = emulator.init_error().await;
        assert_eq!(error["errorType"], "Runtime.ConfigurationError", "{name}");
        assert!(
            error["errorMessage"]
                .as_str()
                .unwrap()
                .contains("is not set"),
            "{name}: {error}"
        );
        let exited = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = function.0.try_wait().unwrap() {
                    return Some(status);
                }
                if std::time::Instant::now() > deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .await
        .unwrap();
        assert!(
            exited.is_some_and(|s| !s.success()),
            "{name} exits with an error"
        );
    }
}
