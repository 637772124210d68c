//! Faults injected at the ports, on the memory twins and on moto: whatever fails, and whenever,
//! an accepted modification reaches the worker exactly once, a refused one not at all, and no
//! intent stays pending. docs/reliability.md says what each test proves.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lambda_http::http::StatusCode;
use teleapi::domain::{Call, CallStatus, IntentStatus};
use teleapi::ports::Clock;
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
async fn reconcile(world: &World) {
    world.clock.advance(Duration::from_secs(61));
    teleapi::reconcile::reconcile_pending(
        world.services.calls.as_ref(),
        world.services.commands.as_ref(),
        world.clock.now(),
    )
    .await
    .expect("the reconciler runs");
}

/// The call's intents, by sequence number.
async fn intents(world: &World, call: &Call) -> BTreeMap<u64, teleapi::domain::Intent> {
    let stored = world.stored(call).await;
    let mut out = BTreeMap::new();
    for seq in 1..=stored.seq + 1 {
        if let Some(intent) = world.backend.calls.intent(&call.sid, seq).await.unwrap() {
            out.insert(seq, intent);
        }
    }
    out
}

/// Commands received by the worker, counted by IntentSid.
async fn delivered(world: &World) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for command in world.backend.drain_commands().await {
        *out.entry(command["intent_sid"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    out
}

/// The promise, checked on one call: sequence numbers without gaps, each intent either failed
/// (and never delivered) or delivered exactly once, none left pending.
async fn assert_kept(world: &World, call: &Call, delivered: &BTreeMap<String, usize>) {
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
            let intent = response.headers()[teleapi::api::intents::INTENT_SID_HEADER]
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
    world.clock.advance(Duration::from_secs(61));
    let report = teleapi::reconcile::reconcile_pending(
        world.services.calls.as_ref(),
        world.services.commands.as_ref(),
        world.clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(report.resent, 1);
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
