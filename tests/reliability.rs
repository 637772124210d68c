//! Faults injected at the ports, on the memory twins and on moto: whatever fails, and whenever,
//! an accepted modification reaches the worker exactly once, a refused one not at all, and no
//! intent stays pending. docs/reliability.md says what each test proves.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lambda_http::http::StatusCode;
use teleapi_domain::{Call, CallStatus, IntentStatus};
use teleapi_ports::Clock;
use teleapi_tests::instrumented::{Schedule, Step};
use teleapi_tests::{Backend, World, body_json, body_text};

/// A world whose every port goes through `schedule`.
async fn faulty(backend: Backend) -> (World, Arc<Schedule>) {
    let schedule = Arc::new(Schedule::default());
    let world = World::new(backend.instrumented(schedule.clone())).await;
    (world, schedule)
}

/// Schedules `step` for the next call of `operation`.
fn next(schedule: &Schedule, operation: &'static str, step: Step) {
    schedule.at(operation, schedule.seen(operation), step);
}

/// Runs the reconciler as it runs once every intent is past its grace period. Tests receive
/// commands only after it: moto forgets a FIFO deduplication id once its message is deleted,
/// where SQS keeps it for five minutes whatever happens to the message (the memory twin does).
async fn reconcile(world: &World) -> teleapi_pipeline::reconcile::Reconciled {
    world.clock.advance(Duration::from_secs(61));
    // On the world's (faulty) store and queue.
    let services = teleapi_pipeline::reconcile::ReconcilerServices {
        calls: world.services.calls.clone(),
        commands: world.services.commands.clone(),
        ..world.backend.reconciler_services(world.clock.clone())
    };
    teleapi_pipeline::reconcile::reconcile_pending(&services, world.clock.now())
        .await
        .expect("the reconciler runs")
}

/// The call's intents, by sequence number.
async fn intents(world: &World, call: &Call) -> BTreeMap<u64, teleapi_domain::Intent> {
    let stored = world.stored(call).await;
    let mut out = BTreeMap::new();
    for seq in 1..=stored.seq + 1 {
        if let Some(intent) = world
            .backend
            .calls
            .intent(&teleapi_domain::Subject::Call(call.sid.clone()), seq)
            .await
            .unwrap()
        {
            out.insert(seq, intent);
        }
    }
    out
}

/// Commands received by the worker, counted by IntentSid.
async fn delivered(world: &World) -> BTreeMap<String, u64> {
    world.backend.commands_by_intent().await
}

/// The promise, checked on one call: sequence numbers without gaps, each intent either failed
/// (and never delivered) or delivered exactly once, none left pending.
async fn assert_kept(world: &World, call: &Call, delivered: &BTreeMap<String, u64>) {
    let intents = intents(world, call).await;
    let stored = world.stored(call).await;
    let seqs: Vec<u64> = intents.keys().copied().collect();
    assert_eq!(
        seqs,
        (call.seq + 1..=stored.seq).collect::<Vec<_>>(),
        "gap-free"
    );
    for intent in intents.values().filter(|i| i.seq > call.seq) {
        let times = delivered.get(intent.sid.as_str()).copied().unwrap_or(0);
        match intent.status {
            IntentStatus::Failed => assert_eq!(times, 0, "{} failed yet delivered", intent.sid),
            IntentStatus::Pending => panic!("{} left pending", intent.sid),
            _ => assert_eq!(times, 1, "{} delivered {times} times", intent.sid),
        }
    }
}

/// A write that landed but was answered as failed (a lost answer, or the SDK's retry of a write
/// that had landed, which then fails its own condition) counts once: one intent, one command.
async fn a_write_that_landed_is_not_done_twice((world, schedule): (World, Arc<Schedule>)) {
    for step in [Step::Lost, Step::Retried] {
        let call = world.call(CallStatus::InProgress).await;
        next(&schedule, "write_call", step);
        let response = world
            .modify(&call, "Url=https%3A%2F%2Fapp.example.com%2Fnext")
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{step:?}: {}",
            body_text(&response)
        );
        assert_eq!(
            world.stored(&call).await.seq,
            call.seq + 1,
            "{step:?}: one intent"
        );
        reconcile(&world).await;
        // One intent, delivered once (the worker also sees the previous round's dial again:
        // moto's deduplication gap, see `reconcile`).
        assert_kept(&world, &call, &delivered(&world).await).await;

        next(&schedule, "write_call", step);
        let created = world
            .post(
                "/Calls.json",
                "From=%2B15551230001&To=client%3Abob&Url=https%3A%2F%2Fapp.example.com%2Fb",
            )
            .await;
        assert_eq!(
            created.status(),
            StatusCode::CREATED,
            "{step:?}: {}",
            body_text(&created)
        );
        let sid = body_json(&created)["sid"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let new = world.backend.calls.call(&sid).await.unwrap().unwrap();
        assert_eq!(new.seq, 1);
        reconcile(&world).await;
        let before = Call { seq: 0, ..new };
        assert_kept(&world, &before, &delivered(&world).await).await;
    }
}

/// One port call fails (throttled, unavailable) at each step of a modification in turn, and then
/// two at once (the send and its undo): the answer is 200 or 503, never anything else, and once
/// the reconciler has run, the promise holds.
async fn a_failure_at_any_step_loses_nothing((world, schedule): (World, Arc<Schedule>)) {
    let faults: [&[&'static str]; 7] = [
        &["account"],
        &["call"],
        &["write_call"],
        &["intent"],
        &["send"],
        &["send", "fail_intent"],
        &["write_call", "intent"],
    ];
    for operations in faults {
        let call = world.call(CallStatus::InProgress).await;
        for operation in operations {
            next(&schedule, operation, Step::Fail);
        }
        let response = world.modify(&call, "Mute=true").await;
        let status = response.status();
        assert!(
            status == StatusCode::OK || status == StatusCode::SERVICE_UNAVAILABLE,
            "{operations:?}: {}",
            body_text(&response)
        );
        schedule.clear();
        reconcile(&world).await;
        let sent = delivered(&world).await;
        assert_kept(&world, &call, &sent).await;
        // The call shows the change exactly when an intent of it stands (was not failed).
        let stands = intents(&world, &call)
            .await
            .values()
            .any(|i| i.seq > call.seq && i.status != IntentStatus::Failed);
        assert_eq!(world.stored(&call).await.muted, stands, "{operations:?}");
        if status == StatusCode::OK {
            let intent = response.headers()[teleapi_api::intents::INTENT_SID_HEADER]
                .to_str()
                .unwrap();
            assert_eq!(sent.get(intent), Some(&1), "{operations:?}");
        }
    }
}

/// A command sent twice (a retried SendMessage, or the reconciler re-sending a command whose
/// worker has not reported yet) reaches the worker once: the queue drops the second copy by its
/// deduplication id, the IntentSid.
async fn duplicate_sends_reach_the_worker_once((world, schedule): (World, Arc<Schedule>)) {
    let call = world.call(CallStatus::InProgress).await;
    next(&schedule, "send", Step::Twice);
    assert_eq!(
        world.modify(&call, "Mute=true").await.status(),
        StatusCode::OK
    );
    // Not yet reported by the worker: after its grace period the reconciler sends it again.
    assert_eq!(reconcile(&world).await.resent, 1);
    let sent = delivered(&world).await;
    assert_eq!(
        sent.values().copied().collect::<Vec<_>>(),
        vec![1],
        "{sent:?}"
    );
}

/// Slow ports (a throttled table answering late) change nothing but the time taken.
async fn slow_ports_change_nothing_but_time((world, schedule): (World, Arc<Schedule>)) {
    let call = world.call(CallStatus::InProgress).await;
    for operation in ["call", "write_call", "send"] {
        next(
            &schedule,
            operation,
            Step::Delay(Duration::from_millis(300)),
        );
    }
    let response = world.modify(&call, "Mute=true").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        body_text(&response)
    );
    reconcile(&world).await;
    assert_kept(&world, &call, &delivered(&world).await).await;
}

teleapi_tests::on_both_backends!(
    with super::faulty;
    a_write_that_landed_is_not_done_twice,
    a_failure_at_any_step_loses_nothing,
    duplicate_sends_reach_the_worker_once,
    slow_ports_change_nothing_but_time,
);

/// The real modify-call binary, as Lambda runs it, on moto: it writes the intent, and is killed
/// (SIGKILL) while its SendMessage is in flight. Nothing is lost: the intent is pending, and the
/// reconciler delivers its command, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_killed_between_write_and_send_loses_nothing() {
    use teleapi_tests::runtime::{Emulator, api_event, start};
    use tokio::io::AsyncReadExt;

    let world = World::new(Backend::moto().await).await;
    let call = world.call(CallStatus::InProgress).await;
    // SQS, as the function sees it: a listener that takes the request and never answers.
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sqs = format!("http://{}", black_hole.local_addr().unwrap());
    let (arrived, sending) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = black_hole.accept().await.unwrap();
        let mut buffer = [0u8; 1024];
        let _ = socket.read(&mut buffer).await;
        let _ = arrived.send(());
        std::future::pending::<()>().await;
        drop(socket);
    });
    let mut env = world.backend.aws.as_ref().unwrap().function_env();
    env.push(("AWS_ENDPOINT_URL_SQS".into(), sqs));
    let emulator = Arc::new(Emulator::start().await);
    let mut function = start("modify-call", &emulator, &env);
    let event = api_event(
        "POST",
        &format!(
            "/call/2012-04-24/Accounts/{}/Calls/{}.json",
            world.account.sid, call.sid
        ),
        "",
        &world.auth(),
        "Url=https%3A%2F%2Fapp.example.com%2Fnext",
    );
    let invocation = tokio::spawn({
        let emulator = emulator.clone();
        async move { emulator.invoke(&event).await }
    });
    tokio::time::timeout(Duration::from_secs(20), sending)
        .await
        .expect("the function got as far as sending")
        .unwrap();
    function.0.kill().unwrap();
    function.0.wait().unwrap();
    invocation.abort();

    let intent = world
        .backend
        .calls
        .intent(
            &teleapi_domain::Subject::Call(call.sid.clone()),
            call.seq + 1,
        )
        .await
        .unwrap()
        .expect("the intent was written before the send");
    assert_eq!(intent.status, IntentStatus::Pending);
    assert!(world.backend.drain_commands().await.is_empty());
    reconcile(&world).await;
    let sent = delivered(&world).await;
    assert_eq!(sent.get(intent.sid.as_str()), Some(&1), "{sent:?}");
    assert_kept(&world, &call, &sent).await;
}

/// The simulated media worker with its commands delivered once, or every one twice: the events
/// it reports are the same (a redelivered command is recognised, not applied again or rejected,
/// and a `dial` redelivered after its call ended does not place the call again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_worker_absorbs_redelivered_commands() {
    use teleapi_adapters::memory::MemoryQueue;
    use teleapi_local::simulator::{Simulator, SimulatorConfig};
    use teleapi_ports::{OutgoingMessage, Queue};
    use teleapi_tests::instrumented::Instrumented;

    async fn run(copies: usize) -> Vec<String> {
        let queues = MemoryQueue::with_visibility("commands.fifo", Duration::from_secs(5));
        let events = queues.queue("events.fifo");
        let schedule = Arc::new(Schedule::default());
        if copies > 1 {
            schedule.always("receive", Step::Twice);
        }
        let commands: Arc<dyn Queue> = Arc::new(Instrumented::new(queues.clone(), schedule));
        let config = SimulatorConfig {
            ring: Duration::from_millis(20),
            speed: 0.01,
            enabled: true,
            ..Default::default()
        };
        let worker = tokio::spawn(
            Simulator::new(
                commands,
                |n| format!("worker-{n}.fifo"),
                Arc::new(events.clone()),
                config,
            )
            .run(),
        );
        let call = teleapi_domain::CallSid::generate();
        let command = |kind: &str, seq: u64, parameters: serde_json::Value| {
            let body = serde_json::json!({
                "version": 1, "type": kind, "call_sid": call, "seq": seq,
                "account_sid": "AC0123456789abcdef0123456789abcdef",
                "intent_sid": format!("MI{:032x}", seq), "parameters": parameters,
            });
            let command =
                teleapi_domain::wire::command::Command::from_json(&body.to_string()).unwrap();
            OutgoingMessage::command(&command)
        };
        let mut seen = Vec::new();
        let pause = serde_json::json!({"rcml": "<Response><Pause length=\"600\"/></Response>", "from": "+15551230001", "to": "client:bob"});
        queues
            .send(None, &command("dial", 1, pause.clone()))
            .await
            .unwrap();
        wait_for(&events, &mut seen, "in-progress").await;
        queues
            .send(None, &command("mute", 2, serde_json::json!({})))
            .await
            .unwrap();
        wait_for(&events, &mut seen, &format!("MI{:032x}", 2)).await;
        queues
            .send(None, &command("hangup", 3, serde_json::json!({})))
            .await
            .unwrap();
        wait_for(&events, &mut seen, "completed").await;
        // The dial again, after the call ended (a redelivery from a worker that crashed before
        // deleting it): refused, not placed.
        let mut again = command("dial", 1, pause);
        again.dedup_id = None;
        queues.send(None, &again).await.unwrap();
        wait_for(&events, &mut seen, &format!("MI{:032x}", 1)).await;
        worker.abort();
        seen
    }

    let intent = |seq: u64| format!("MI{seq:032x}");
    let expected = [
        "call.initiated ".to_owned(),
        format!("command.applied {}", intent(1)),
        "call.status ringing".to_owned(),
        "call.status in-progress".to_owned(),
        format!("command.applied {}", intent(2)),
        format!("command.applied {}", intent(3)),
        "call.status completed".to_owned(),
        format!("command.rejected {}", intent(1)),
    ];
    assert_eq!(run(1).await, expected, "delivered once");
    assert_eq!(run(2).await, expected, "every command delivered twice");
}

/// Reads the worker's call events into `seen` (as "type status-or-intent") until one ends with
/// `what`.
async fn wait_for(
    queue: &teleapi_adapters::memory::MemoryQueue,
    seen: &mut Vec<String>,
    what: &str,
) {
    use teleapi_ports::Queue;
    for _ in 0..100 {
        for message in queue
            .receive(None, 10, Duration::from_millis(100))
            .await
            .unwrap()
        {
            let event: serde_json::Value = serde_json::from_str(&message.body).unwrap();
            queue.delete(None, &message.receipt).await.unwrap();
            // The worker's heartbeats are not about the call.
            if teleapi_domain::wire::worker::is_worker_event(&message.body) {
                continue;
            }
            let detail = event["status"].as_str().or(event["intent_sid"].as_str());
            let line = format!(
                "{} {}",
                event["type"].as_str().unwrap(),
                detail.unwrap_or("")
            );
            let done = line.ends_with(what);
            seen.push(line);
            if done {
                return;
            }
        }
    }
    panic!("no {what}: {seen:?}");
}

/// DynamoDB throttling, as moto answers it on request: the SDK tries again with backoff and
/// jitter (its standard retry mode, `AWS_MAX_ATTEMPTS` tries within a 6 s operation timeout).
/// A request throttled fewer times than that succeeds; one throttled every time fails, and the
/// API answers 503 with Retry-After, having written nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_dynamodb_requests_are_retried_then_refused() {
    use teleapi_runtime::config::AWS_MAX_ATTEMPTS;
    use teleapi_tests::moto::throttle;

    let world = World::new(Backend::moto().await).await;
    let call = world.call(CallStatus::InProgress).await;
    let table = world.backend.aws.as_ref().unwrap().tables.calls.clone();
    throttle(&table, AWS_MAX_ATTEMPTS - 1).await;
    let response = world.modify(&call, "Mute=true").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{}",
        body_text(&response)
    );
    assert_eq!(throttle(&table, 0).await, u64::from(AWS_MAX_ATTEMPTS - 1));

    throttle(&table, 1000).await;
    let response = world.modify(&call, "Mute=false").await;
    let throttled = throttle(&table, 0).await - u64::from(AWS_MAX_ATTEMPTS - 1);
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        body_text(&response)
    );
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        throttled,
        u64::from(AWS_MAX_ATTEMPTS),
        "every try, and no more"
    );
    let stored = world.stored(&call).await;
    assert!(stored.muted, "the refused request changed nothing");
    assert_eq!(stored.seq, call.seq + 1);
}
