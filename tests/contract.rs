//! The adapter contract: every port behaves the same on the in-memory twins and on DynamoDB/SQS
//! (moto). Each case is an async fn over a `Backend`; the macro at the end runs it on both.

use std::time::Duration;

use teleapi_domain::call::CallFilter;
use teleapi_domain::call::{Planned, plan};
use teleapi_domain::paging::PageRequest;
use teleapi_domain::sid::WorkerId;
use teleapi_domain::worker::{Worker, WorkerStatus};
use teleapi_domain::{
    AccountSid, AccountStatus, Call, CallSid, CallStatus, Form, IdempotencyKey, IdempotencyRecord,
    IntentSid, IntentStatus, ModifyRequest, Timestamp,
};
use teleapi_ports::{
    CallWrite, InsertError, IntentFailure, OutgoingMessage, RecordError, Settlement,
};
use teleapi_tests::{Backend, account, call};

const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

fn planned(call: &Call, body: &str, now: Timestamp) -> Planned {
    let request = ModifyRequest::parse(&Form::parse(body.as_bytes()).unwrap(), Default::default())
        .expect("a valid test request");
    plan(call, &request, IntentSid::generate(), now, RETENTION).expect("a plannable request")
}

fn write<'a>(before: &Call, planned: &'a Planned, now: Timestamp) -> CallWrite<'a> {
    CallWrite {
        call: &planned.call,
        expected_version: Some(before.version),
        intent: Some(&planned.intent),
        idempotency: None,
        now,
    }
}

fn record(key: &IdempotencyKey, now: Timestamp, lifetime: Duration) -> IdempotencyRecord {
    IdempotencyRecord {
        key: key.clone(),
        fingerprint: "fp".into(),
        status: 200,
        response: "{}".into(),
        expires_at: now.plus(lifetime).whole_seconds(),
    }
}

async fn accounts_round_trip(b: &Backend) {
    let parent = account(b, None).await;
    let child = account(b, Some(&parent)).await;
    let read = b.accounts.account(&child.sid).await.unwrap().unwrap();
    assert_eq!(read, child);
    assert_eq!(read.parent.as_ref(), Some(&parent.sid));
    assert_eq!(read.status, AccountStatus::Active);
    assert_eq!(
        b.accounts.insert_account(&child).await,
        Err(InsertError::AlreadyExists)
    );
    let unknown = teleapi_domain::AccountSid::generate();
    assert_eq!(b.accounts.account(&unknown).await.unwrap(), None);
}

async fn calls_round_trip(b: &Backend) {
    let owner = account(b, None).await;
    let now = Timestamp::now().whole_seconds();
    let mut stored = call(b, &owner.sid, CallStatus::InProgress, now).await;
    assert_eq!(
        b.calls.call(&stored.sid).await.unwrap().as_ref(),
        Some(&stored)
    );
    assert_eq!(
        b.calls.insert_call(&stored).await,
        Err(InsertError::AlreadyExists)
    );

    // Every optional field set, and read back the same.
    stored.sid = teleapi_domain::CallSid::generate();
    stored.parent_call_sid = Some(teleapi_domain::CallSid::generate());
    stored.command_queue = Some("https://sqs.example/worker-7.fifo".into());
    stored.worker = Some(WorkerId::try_from("worker-7.1795524200".to_owned()).unwrap());
    stored.end_time = Some(now);
    stored.duration = Some(42);
    stored.instructions.time_limit = Some(600);
    stored.instructions.status_callback_events = [
        teleapi_domain::CallbackEvent::Ringing,
        teleapi_domain::CallbackEvent::Completed,
    ]
    .into_iter()
    .collect();
    b.calls.insert_call(&stored).await.unwrap();
    assert_eq!(
        b.calls.call(&stored.sid).await.unwrap().as_ref(),
        Some(&stored)
    );
}

async fn an_intent_and_its_call_are_written_together(b: &Backend) {
    let owner = account(b, None).await;
    let now = Timestamp::now();
    let before = call(b, &owner.sid, CallStatus::InProgress, now).await;
    let first = planned(&before, "Url=https://app.example.com/alice&Mute=true", now);
    b.calls
        .write_call(write(&before, &first, now))
        .await
        .unwrap();

    let after = b.calls.call(&before.sid).await.unwrap().unwrap();
    assert_eq!(after, first.call);
    assert_eq!((after.seq, after.version), (1, before.version + 1));
    let intent = b
        .calls
        .intent(&teleapi_domain::Subject::Call(before.sid.clone()), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(intent, first.intent);
    assert_eq!(intent.status, IntentStatus::Pending);
    assert!(intent.command.is_some());
}

async fn a_stale_version_writes_nothing(b: &Backend) {
    let owner = account(b, None).await;
    let now = Timestamp::now();
    let before = call(b, &owner.sid, CallStatus::InProgress, now).await;
    let first = planned(&before, "Url=https://app.example.com/a", now);
    let racing = planned(&before, "Url=https://app.example.com/b", now);
    b.calls
        .write_call(write(&before, &first, now))
        .await
        .unwrap();
    assert_eq!(
        b.calls.write_call(write(&before, &racing, now)).await,
        Err(RecordError::CallChanged)
    );
    assert_eq!(
        b.calls.call(&before.sid).await.unwrap().unwrap(),
        first.call
    );
    assert_eq!(
        b.calls
            .intent(&teleapi_domain::Subject::Call(before.sid.clone()), 1)
            .await
            .unwrap()
            .unwrap()
            .sid,
        first.intent.sid
    );
    assert_eq!(
        b.calls
            .intent(&teleapi_domain::Subject::Call(before.sid.clone()), 2)
            .await
            .unwrap(),
        None
    );
}

async fn an_existing_intent_number_is_never_overwritten(b: &Backend) {
    let owner = account(b, None).await;
    let now = Timestamp::now();
    let before = call(b, &owner.sid, CallStatus::InProgress, now).await;
    let first = planned(&before, "Url=https://app.example.com/a", now);
    b.calls
        .write_call(write(&before, &first, now))
        .await
        .unwrap();
    // A call item that went back in time (seq reused) must not clobber intent 1.
    let mut rewound = first.call.clone();
    rewound.seq = 0;
    let again = planned(&rewound, "Url=https://app.example.com/b", now);
    assert_eq!(again.intent.seq, 1);
    assert_eq!(
        b.calls.write_call(write(&first.call, &again, now)).await,
        Err(RecordError::CallChanged)
    );
    assert_eq!(
        b.calls
            .intent(&teleapi_domain::Subject::Call(before.sid.clone()), 1)
            .await
            .unwrap()
            .unwrap()
            .sid,
        first.intent.sid
    );
}

async fn an_idempotency_key_is_taken_once_until_it_expires(b: &Backend) {
    let owner = account(b, None).await;
    let now = Timestamp::now();
    let before = call(b, &owner.sid, CallStatus::InProgress, now).await;
    let key = IdempotencyKey::parse(&owner.sid, b"retry-1").unwrap();
    let first = planned(&before, "Url=https://app.example.com/a", now);
    let held = record(&key, now, Duration::from_secs(3600));
    b.calls
        .write_call(CallWrite {
            idempotency: Some(&held),
            ..write(&before, &first, now)
        })
        .await
        .unwrap();
    assert_eq!(
        b.calls.idempotency_record(&key, now).await.unwrap(),
        Some(held.clone())
    );

    let second = planned(&first.call, "Url=https://app.example.com/b", now);
    assert_eq!(
        b.calls
            .write_call(CallWrite {
                idempotency: Some(&held),
                ..write(&first.call, &second, now)
            })
            .await,
        Err(RecordError::KeyTaken)
    );
    assert_eq!(
        b.calls.call(&before.sid).await.unwrap().unwrap().seq,
        1,
        "nothing written"
    );

    // Past its expiry the record reads as absent and the key can be taken again.
    let later = now.plus(Duration::from_secs(3601));
    assert_eq!(b.calls.idempotency_record(&key, later).await.unwrap(), None);
    let third = planned(&first.call, "Url=https://app.example.com/c", later);
    let renewed = record(&key, later, Duration::from_secs(3600));
    b.calls
        .write_call(CallWrite {
            idempotency: Some(&renewed),
            ..write(&first.call, &third, later)
        })
        .await
        .unwrap();
    assert_eq!(
        b.calls.idempotency_record(&key, later).await.unwrap(),
        Some(renewed)
    );
}

async fn settling_an_intent_is_conditional(b: &Backend) {
    let owner = account(b, None).await;
    let now = Timestamp::now();
    let before = call(b, &owner.sid, CallStatus::InProgress, now).await;
    let first = planned(&before, "Mute=true", now);
    b.calls
        .write_call(write(&before, &first, now))
        .await
        .unwrap();
    let sid = &before.sid;
    assert!(
        b.calls
            .settle_intent(Settlement {
                subject: &teleapi_domain::Subject::Call(sid.clone()),
                seq: 1,
                intent_sid: None,
                from: &[IntentStatus::Pending],
                to: IntentStatus::Applied,
                reason: None,
                now,
            })
            .await
            .unwrap()
    );
    assert!(
        !b.calls
            .settle_intent(Settlement {
                subject: &teleapi_domain::Subject::Call(sid.clone()),
                seq: 1,
                intent_sid: None,
                from: &[IntentStatus::Pending],
                to: IntentStatus::Failed,
                reason: Some("late"),
                now,
            })
            .await
            .unwrap()
    );
    let intent = b
        .calls
        .intent(&teleapi_domain::Subject::Call(sid.clone()), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(intent.status, IntentStatus::Applied);
    assert_eq!(intent.reason, None);
    assert!(
        !b.calls
            .settle_intent(Settlement {
                subject: &teleapi_domain::Subject::Call(sid.clone()),
                seq: 9,
                intent_sid: None,
                from: &[IntentStatus::Pending],
                to: IntentStatus::Applied,
                reason: None,
                now,
            })
            .await
            .unwrap()
    );
}

async fn failing_an_intent_restores_the_call_and_releases_the_key(b: &Backend) {
    let owner = account(b, None).await;
    let now = Timestamp::now();
    let before = call(b, &owner.sid, CallStatus::InProgress, now).await;
    let key = IdempotencyKey::parse(&owner.sid, b"k").unwrap();
    let held = record(&key, now, Duration::from_secs(3600));
    let first = planned(&before, "Url=https://app.example.com/a&Mute=true", now);
    b.calls
        .write_call(CallWrite {
            idempotency: Some(&held),
            ..write(&before, &first, now)
        })
        .await
        .unwrap();
    let restored = Call {
        seq: 1,
        version: first.call.version + 1,
        ..before.clone()
    };
    let failure = IntentFailure {
        call_sid: &before.sid,
        seq: 1,
        reason: "no queue",
        now,
        restore: Some((&restored, first.call.version)),
        release_key: Some(&key),
    };
    assert!(b.calls.fail_intent(failure).await.unwrap());
    let after = b.calls.call(&before.sid).await.unwrap().unwrap();
    assert_eq!(after, restored);
    assert!(!after.muted);
    let intent = b
        .calls
        .intent(&teleapi_domain::Subject::Call(before.sid.clone()), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(intent.status, IntentStatus::Failed);
    assert_eq!(intent.reason.as_deref(), Some("no queue"));
    assert_eq!(b.calls.idempotency_record(&key, now).await.unwrap(), None);
    // Not pending any more: a second failure changes nothing.
    assert!(!b.calls.fail_intent(failure).await.unwrap());
}

async fn failing_an_intent_leaves_a_call_that_moved_on(b: &Backend) {
    let owner = account(b, None).await;
    let now = Timestamp::now();
    let before = call(b, &owner.sid, CallStatus::InProgress, now).await;
    let first = planned(&before, "Url=https://app.example.com/a", now);
    b.calls
        .write_call(write(&before, &first, now))
        .await
        .unwrap();
    let second = planned(&first.call, "Url=https://app.example.com/b", now);
    b.calls
        .write_call(write(&first.call, &second, now))
        .await
        .unwrap();
    let restored = Call {
        seq: 1,
        version: first.call.version + 1,
        ..before.clone()
    };
    let failure = IntentFailure {
        call_sid: &before.sid,
        seq: 1,
        reason: "no queue",
        now,
        restore: Some((&restored, first.call.version)),
        release_key: None,
    };
    assert!(b.calls.fail_intent(failure).await.unwrap());
    assert_eq!(
        b.calls.call(&before.sid).await.unwrap().unwrap(),
        second.call
    );
    assert_eq!(
        b.calls
            .intent(&teleapi_domain::Subject::Call(before.sid.clone()), 1)
            .await
            .unwrap()
            .unwrap()
            .status,
        IntentStatus::Failed
    );
}

async fn pending_intents_are_listed_oldest_first_until_settled(b: &Backend) {
    let owner = account(b, None).await;
    let start = Timestamp::now();
    let mut seen = Vec::new();
    for offset in [3u64, 1, 2] {
        let now = start.plus(Duration::from_secs(offset));
        let before = call(b, &owner.sid, CallStatus::InProgress, now).await;
        let p = planned(&before, "Mute=true", now);
        b.calls.write_call(write(&before, &p, now)).await.unwrap();
        seen.push((offset, p.intent));
    }
    let cutoff = start.plus(Duration::from_millis(2500));
    let pending = b.calls.pending_intents(cutoff, 10).await.unwrap();
    let offsets: Vec<u64> = pending
        .iter()
        .map(|i| seen.iter().find(|(_, s)| s.sid == i.sid).unwrap().0)
        .collect();
    assert_eq!(offsets, [1, 2], "older than the cutoff, oldest first");
    assert_eq!(b.calls.pending_intents(cutoff, 1).await.unwrap().len(), 1);

    // Enqueued, it still awaits its worker's report: still listed, as enqueued.
    let one = &pending[0];
    let settle = |from, to| Settlement {
        subject: &one.subject,
        seq: one.seq,
        intent_sid: None,
        from,
        to,
        reason: None,
        now: cutoff,
    };
    let settled = settle(&[IntentStatus::Pending], IntentStatus::Enqueued);
    assert!(b.calls.settle_intent(settled).await.unwrap());
    let pending = b.calls.pending_intents(cutoff, 10).await.unwrap();
    let statuses: Vec<(IntentSid, IntentStatus)> =
        pending.iter().map(|i| (i.sid.clone(), i.status)).collect();
    assert_eq!(
        statuses,
        [
            (one.sid.clone(), IntentStatus::Enqueued),
            (seen[2].1.sid.clone(), IntentStatus::Pending)
        ]
    );
    // Reported, it leaves the list.
    let settled = settle(&[IntentStatus::Enqueued], IntentStatus::Applied);
    assert!(b.calls.settle_intent(settled).await.unwrap());
    let pending = b.calls.pending_intents(cutoff, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_ne!(pending[0].sid, one.sid);
}

async fn settings_only_and_no_effect_intents_are_never_pending(b: &Backend) {
    let owner = account(b, None).await;
    let now = Timestamp::now();
    let before = call(b, &owner.sid, CallStatus::InProgress, now).await;
    let settings = planned(&before, "StatusCallback=https://app.example.com/cb", now);
    b.calls
        .write_call(write(&before, &settings, now))
        .await
        .unwrap();
    let cancel = planned(&settings.call, "Status=canceled", now);
    b.calls
        .write_call(write(&settings.call, &cancel, now))
        .await
        .unwrap();
    let later = now.plus(Duration::from_secs(1));
    assert!(b.calls.pending_intents(later, 10).await.unwrap().is_empty());
    assert_eq!(
        b.calls
            .intent(&teleapi_domain::Subject::Call(before.sid.clone()), 1)
            .await
            .unwrap()
            .unwrap()
            .status,
        IntentStatus::Applied
    );
    assert_eq!(
        b.calls
            .intent(&teleapi_domain::Subject::Call(before.sid.clone()), 2)
            .await
            .unwrap()
            .unwrap()
            .status,
        IntentStatus::NoEffect
    );
}

async fn creating_a_call_writes_it_once(b: &Backend) {
    let owner = account(b, None).await;
    let now = Timestamp::now();
    let request = teleapi_domain::call::CreateRequest::parse(
        &Form::parse(b"From=%2B15551230001&To=client:bob&Url=https://app.example.com/conf")
            .unwrap(),
        Default::default(),
    )
    .unwrap();
    let sid = teleapi_domain::CallSid::generate();
    let planned = teleapi_domain::call::plan_create(
        &request,
        owner.sid.clone(),
        owner.listing_shards,
        sid.clone(),
        IntentSid::generate(),
        now,
        RETENTION,
    );
    let create = CallWrite {
        call: &planned.call,
        expected_version: None,
        intent: Some(&planned.intent),
        idempotency: None,
        now,
    };
    b.calls.write_call(create).await.unwrap();
    assert_eq!(b.calls.call(&sid).await.unwrap().unwrap(), planned.call);
    assert_eq!(
        b.calls
            .intent(&teleapi_domain::Subject::Call(sid.clone()), 1)
            .await
            .unwrap()
            .unwrap(),
        planned.intent
    );
    assert_eq!(
        b.calls.write_call(create).await,
        Err(RecordError::CallChanged)
    );
}

async fn call_only_writes_are_conditional(b: &Backend) {
    let owner = account(b, None).await;
    let now = Timestamp::now();
    let before = call(b, &owner.sid, CallStatus::Ringing, now).await;
    let mut next = before.clone();
    next.status = CallStatus::InProgress;
    next.version += 1;
    next.event_seq = 2;
    let write = |call, expected_version| CallWrite {
        call,
        expected_version,
        intent: None,
        idempotency: None,
        now,
    };
    b.calls
        .write_call(write(&next, Some(before.version)))
        .await
        .unwrap();
    assert_eq!(b.calls.call(&before.sid).await.unwrap().unwrap(), next);
    assert_eq!(
        b.calls.write_call(write(&next, Some(before.version))).await,
        Err(RecordError::CallChanged),
        "stale version"
    );
    assert_eq!(
        b.calls.write_call(write(&next, None)).await,
        Err(RecordError::CallChanged),
        "creating a call that exists"
    );
}

async fn standard_messages_may_be_delayed(b: &Backend) {
    let q = b.callbacks.as_ref();
    q.send(
        None,
        &OutgoingMessage::standard("later".into(), Duration::from_secs(1)),
    )
    .await
    .unwrap();
    q.send(
        None,
        &OutgoingMessage::standard("now".into(), Duration::ZERO),
    )
    .await
    .unwrap();
    let first = q
        .receive(None, 10, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["now"]
    );
    assert_eq!(first[0].group, None);
    q.delete(None, &first[0].receipt).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let later = q
        .receive(None, 10, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(
        later.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["later"]
    );
}

fn page(size: usize, after: Option<String>, backward: bool) -> PageRequest {
    PageRequest {
        size,
        after,
        backward,
    }
}

/// Follows `more` forward from the start, collecting every item; also the most items a page
/// read.
async fn all_calls_reading(
    b: &Backend,
    account: &AccountSid,
    shards: u8,
    filter: &CallFilter,
    size: usize,
) -> (Vec<CallSid>, usize) {
    let mut out = Vec::new();
    let mut after = None;
    let mut most_scanned = 0;
    for _ in 0..200 {
        let got = b
            .calls
            .list_calls(account, shards, filter, &page(size, after, false))
            .await
            .unwrap();
        most_scanned = most_scanned.max(got.scanned);
        out.extend(got.items.iter().map(|c| c.sid.clone().into_owned()));
        match got.more {
            Some(more) => after = Some(more),
            None => return (out, most_scanned),
        }
    }
    panic!("listing did not end");
}

async fn all_calls(
    b: &Backend,
    account: &AccountSid,
    shards: u8,
    filter: &CallFilter,
    size: usize,
) -> Vec<CallSid> {
    all_calls_reading(b, account, shards, filter, size).await.0
}

/// An inbound call of `account`, in one of its `shards` listing partitions, stored.
async fn listed_call(
    b: &Backend,
    account: &AccountSid,
    shards: u8,
    status: CallStatus,
    at: Timestamp,
) -> Call {
    let call = teleapi_tests::new_call(account, status, at).listed_in(shards);
    b.calls.insert_call(&call).await.unwrap();
    call
}

/// Pages forward and backward over an account's calls spread over `shards` partitions: newest
/// first, every call once, whatever the page size.
async fn list_newest_first(b: &Backend, shards: u8) {
    let owner = account(b, None).await;
    let other = account(b, None).await;
    let start = Timestamp::now();
    let mut created = Vec::new();
    for i in 0..25u64 {
        // Pairs created in the same millisecond: the CallSid orders them.
        let at = start.plus(Duration::from_secs(i / 2));
        created.push(
            listed_call(b, &owner.sid, shards, CallStatus::InProgress, at)
                .await
                .sid,
        );
    }
    for i in 0..3u64 {
        let at = start.plus(Duration::from_secs(i));
        listed_call(b, &other.sid, shards, CallStatus::InProgress, at).await;
    }
    // Newest first: by creation time, then CallSid.
    let mut stored = Vec::new();
    for sid in &created {
        stored.push(b.calls.call(sid).await.unwrap().unwrap());
    }
    stored.sort_by_key(|c| std::cmp::Reverse(teleapi_domain::call::call_position(c)));
    let created: Vec<CallSid> = stored.iter().map(|c| c.sid.clone()).collect();
    let everything = CallFilter::default();

    let first = b
        .calls
        .list_calls(&owner.sid, shards, &everything, &page(10, None, false))
        .await
        .unwrap();
    let sids: Vec<CallSid> = first
        .items
        .iter()
        .map(|c| c.sid.clone().into_owned())
        .collect();
    assert_eq!(sids, created[..10]);
    assert!(first.more.is_some());
    if shards == 1 {
        assert_eq!(first.scanned, 10, "a page reads only that page");
    } else {
        // A fair share of the page from each partition, and a little more.
        let bound = 10 + 3 * usize::from(shards);
        assert!(first.scanned <= bound, "read {} > {bound}", first.scanned);
    }

    for size in [1, 7, 10, 24, 25, 26, 1000] {
        assert_eq!(
            all_calls(b, &owner.sid, shards, &everything, size).await,
            created,
            "page size {size}"
        );
    }

    // Backward from the first call of the third page: the second page, in display order.
    let third_start = teleapi_domain::call::call_position(&stored[20]);
    let back = b
        .calls
        .list_calls(
            &owner.sid,
            shards,
            &everything,
            &page(10, Some(third_start), true),
        )
        .await
        .unwrap();
    let sids: Vec<CallSid> = back
        .items
        .iter()
        .map(|c| c.sid.clone().into_owned())
        .collect();
    assert_eq!(sids, created[10..20]);
    // And backward from the second page's first: the first page, then the start.
    let second_start = back.items[0].position();
    let back = b
        .calls
        .list_calls(
            &owner.sid,
            shards,
            &everything,
            &page(10, Some(second_start), true),
        )
        .await
        .unwrap();
    assert_eq!(
        back.items
            .iter()
            .map(|c| c.sid.clone().into_owned())
            .collect::<Vec<_>>(),
        created[..10]
    );
}

async fn calls_are_listed_newest_first_page_by_page(b: &Backend) {
    list_newest_first(b, 1).await;
}

async fn first_page(
    b: &Backend,
    account: &AccountSid,
) -> Vec<teleapi_domain::call::ListedCall<'static>> {
    let (everything, first) = (CallFilter::default(), page(10, None, false));
    let got = b.calls.list_calls(account, 1, &everything, &first).await;
    got.unwrap().items
}

/// A page holds what the call's resource shows, every field of it (DynamoDB's listing index
/// projects them: a page reads nothing else), and follows the call as it changes.
async fn a_listed_call_shows_what_the_call_shows(b: &Backend) {
    let owner = account(b, None).await;
    let at = Timestamp::now();
    let parent = listed_call(b, &owner.sid, 1, CallStatus::InProgress, at).await;
    let mut call = teleapi_tests::new_call(
        &owner.sid,
        CallStatus::InProgress,
        at.plus(Duration::from_secs(1)),
    );
    call.parent_call_sid = Some(parent.sid.clone());
    call.direction = teleapi_domain::Direction::OutboundDial;
    call.muted = true;
    call.answered_by = Some(teleapi_domain::call::AnsweredBy::MachineEndBeep);
    b.calls.insert_call(&call).await.unwrap();
    assert_eq!(
        first_page(b, &owner.sid).await,
        [call.listed(), parent.listed()]
    );

    // Ended: its status, end and duration shown, and its date_updated moved with them.
    let mut ended = call.clone();
    ended.status = CallStatus::Completed;
    ended.end_time = Some(at.plus(Duration::from_secs(61)));
    ended.duration = Some(60);
    ended.version += 1;
    let ended = ended.updated_over(&call, at.plus(Duration::from_secs(61)));
    b.calls
        .write_call(CallWrite {
            call: &ended,
            expected_version: Some(call.version),
            intent: None,
            idempotency: None,
            now: at.plus(Duration::from_secs(61)),
        })
        .await
        .unwrap();
    // The index is eventually consistent on DynamoDB; moto's and the twin's are at once.
    assert_eq!(
        first_page(b, &owner.sid).await,
        [ended.listed(), parent.listed()]
    );
}

async fn a_large_accounts_calls_are_listed_across_its_partitions(b: &Backend) {
    list_newest_first(b, 5).await;
    list_newest_first(b, 16).await;
}

/// An account's partitions grow (never shrink): calls written over fewer partitions stay listed
/// once the account has more.
async fn listing_partitions_can_grow(b: &Backend) {
    let owner = account(b, None).await;
    let start = Timestamp::now();
    let mut created = Vec::new();
    for (i, shards) in [1u8, 1, 2, 2, 4, 4, 4, 8, 8, 8, 8, 8]
        .into_iter()
        .enumerate()
    {
        let at = start.plus(Duration::from_millis(i as u64));
        created.push(
            listed_call(b, &owner.sid, shards, CallStatus::Completed, at)
                .await
                .sid,
        );
    }
    created.reverse();
    let everything = CallFilter::default();
    for size in [1, 3, 50] {
        assert_eq!(
            all_calls(b, &owner.sid, 8, &everything, size).await,
            created
        );
    }
}

/// Filters across partitions: a filter that matches little reads on, in pages that may be
/// partial, and never repeats or skips a call.
async fn filters_across_partitions(b: &Backend) {
    let owner = account(b, None).await;
    let start = Timestamp::now().whole_seconds();
    let mut ringing = Vec::new();
    for i in 0..40u64 {
        let status = if i % 9 == 0 {
            CallStatus::Ringing
        } else {
            CallStatus::Completed
        };
        let at = start.plus(Duration::from_secs(i));
        let call = listed_call(b, &owner.sid, 6, status, at).await;
        if status == CallStatus::Ringing {
            ringing.push(call.sid);
        }
    }
    ringing.reverse();
    let by_status = CallFilter {
        status: Some(CallStatus::Ringing),
        ..CallFilter::default()
    };
    for size in [1, 2, 5] {
        assert_eq!(
            all_calls(b, &owner.sid, 6, &by_status, size).await,
            ringing,
            "page size {size}"
        );
    }
}

async fn call_filters(b: &Backend) {
    let owner = account(b, None).await;
    let start = Timestamp::now().whole_seconds();
    let mut expected_bob = Vec::new();
    let mut expected_ringing = Vec::new();
    let mut expected_late = Vec::new();
    let parent = teleapi_domain::CallSid::generate();
    let mut expected_children = Vec::new();
    for i in 0..12u64 {
        let at = start.plus(Duration::from_secs(60 * i));
        let status = if i % 3 == 0 {
            CallStatus::Ringing
        } else {
            CallStatus::InProgress
        };
        let mut c = teleapi_tests::new_call(&owner.sid, status, at);
        if i % 4 == 0 {
            c.to = "client:bob".into();
            expected_bob.push(c.sid.clone());
        }
        if i % 5 == 0 {
            c.parent_call_sid = Some(parent.clone());
            expected_children.push(c.sid.clone());
        }
        if status == CallStatus::Ringing {
            expected_ringing.push(c.sid.clone());
        } else if i >= 6 {
            expected_late.push(c.sid.clone());
        }
        b.calls.insert_call(&c).await.unwrap();
    }
    for list in [
        &mut expected_bob,
        &mut expected_ringing,
        &mut expected_late,
        &mut expected_children,
    ] {
        list.reverse();
    }
    let by_to = CallFilter {
        to: Some("client:bob".into()),
        ..CallFilter::default()
    };
    assert_eq!(all_calls(b, &owner.sid, 1, &by_to, 2).await, expected_bob);
    let by_status = CallFilter {
        status: Some(CallStatus::Ringing),
        ..CallFilter::default()
    };
    assert_eq!(
        all_calls(b, &owner.sid, 1, &by_status, 3).await,
        expected_ringing
    );
    let by_parent = CallFilter {
        parent_call_sid: Some(parent),
        ..CallFilter::default()
    };
    assert_eq!(
        all_calls(b, &owner.sid, 1, &by_parent, 5).await,
        expected_children
    );
    // Ringing calls have no start time: a start-time filter leaves them out.
    let late = CallFilter {
        started_at_or_after: Some(start.plus(Duration::from_secs(6 * 60))),
        started_at_or_before: Some(start.plus(Duration::from_secs(11 * 60))),
        ..CallFilter::default()
    };
    assert_eq!(all_calls(b, &owner.sid, 1, &late, 4).await, expected_late);
    let nobody = CallFilter {
        from: Some("+19999999999".into()),
        ..CallFilter::default()
    };
    assert!(all_calls(b, &owner.sid, 1, &nobody, 5).await.is_empty());
}

/// A call that changes status leaves the index entries of the filters it no longer matches, and
/// a modification that changes nothing the index holds still lists the call as it now is.
async fn listed_calls_are_read_as_they_now_are(b: &Backend) {
    let owner = account(b, None).await;
    let now = Timestamp::now();
    let call = listed_call(b, &owner.sid, 3, CallStatus::InProgress, now).await;
    let p = planned(&call, "Mute=true", now);
    b.calls.write_call(write(&call, &p, now)).await.unwrap();
    let everything = CallFilter::default();
    let owner = &owner.sid;
    let page_of = |filter: CallFilter| async move {
        b.calls
            .list_calls(owner, 3, &filter, &page(10, None, false))
            .await
            .unwrap()
            .items
    };
    let listed = page_of(everything.clone()).await;
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].muted,
        "the call as it is now, not as first indexed"
    );
    let mut ended = p.call.clone();
    ended.status = CallStatus::Completed;
    ended.version += 1;
    b.calls
        .write_call(CallWrite {
            call: &ended,
            expected_version: Some(p.call.version),
            intent: None,
            idempotency: None,
            now,
        })
        .await
        .unwrap();
    let in_progress = CallFilter {
        status: Some(CallStatus::InProgress),
        ..CallFilter::default()
    };
    assert!(page_of(in_progress).await.is_empty());
    let completed = CallFilter {
        status: Some(CallStatus::Completed),
        ..CallFilter::default()
    };
    assert_eq!(page_of(completed).await[0].status, CallStatus::Completed);
}

async fn intents_are_listed_in_sequence(b: &Backend) {
    let owner = account(b, None).await;
    let now = Timestamp::now();
    let mut current = call(b, &owner.sid, CallStatus::InProgress, now).await;
    for _ in 0..7 {
        let p = planned(&current, "Mute=true", now);
        b.calls.write_call(write(&current, &p, now)).await.unwrap();
        current = p.call;
    }
    let seqs = |page: &teleapi_domain::paging::Page<teleapi_domain::Intent>| -> Vec<u64> {
        page.items.iter().map(|i| i.seq).collect()
    };
    let first = b
        .calls
        .list_intents(
            &teleapi_domain::Subject::Call(current.sid.clone()),
            &page(3, None, false),
        )
        .await
        .unwrap();
    assert_eq!(seqs(&first), [1, 2, 3]);
    assert_eq!(first.scanned, 3);
    let second = b
        .calls
        .list_intents(
            &teleapi_domain::Subject::Call(current.sid.clone()),
            &page(3, first.more.clone(), false),
        )
        .await
        .unwrap();
    assert_eq!(seqs(&second), [4, 5, 6]);
    let third = b
        .calls
        .list_intents(
            &teleapi_domain::Subject::Call(current.sid.clone()),
            &page(3, second.more.clone(), false),
        )
        .await
        .unwrap();
    assert_eq!(seqs(&third), [7]);
    assert_eq!(third.more, None);
    let back = b
        .calls
        .list_intents(
            &teleapi_domain::Subject::Call(current.sid.clone()),
            &page(3, Some(teleapi_domain::paging::intent_position(4)), true),
        )
        .await
        .unwrap();
    assert_eq!(seqs(&back), [1, 2, 3]);
    let none = b
        .calls
        .list_intents(
            &teleapi_domain::Subject::Call(teleapi_domain::CallSid::generate()),
            &page(3, None, false),
        )
        .await
        .unwrap();
    assert!(none.items.is_empty() && none.more.is_none());
}

fn message(group: &str, dedup: &str, body: &str) -> OutgoingMessage {
    OutgoingMessage::fifo(group, dedup, body.to_owned())
}

async fn fifo_order_per_group_and_deduplication(b: &Backend) {
    let q = b.commands.as_ref();
    q.send(None, &message("A", "a1", "A1")).await.unwrap();
    q.send(None, &message("B", "b1", "B1")).await.unwrap();
    q.send(None, &message("A", "a2", "A2")).await.unwrap();
    q.send(None, &message("A", "a1", "A1 again")).await.unwrap(); // dropped: same dedup id

    let mut bodies = Vec::new();
    let mut deliveries = 0;
    while bodies.len() < 3 && deliveries < 20 {
        deliveries += 1;
        for m in q
            .receive(None, 10, Duration::from_millis(500))
            .await
            .unwrap()
        {
            assert_eq!(m.receive_count, 1);
            bodies.push((m.group.clone().unwrap(), m.body.clone()));
            q.delete(None, &m.receipt).await.unwrap();
        }
    }
    let group = |g: &str| -> Vec<String> {
        bodies
            .iter()
            .filter(|(x, _)| x == g)
            .map(|(_, b)| b.clone())
            .collect()
    };
    assert_eq!(group("A"), ["A1", "A2"]);
    assert_eq!(group("B"), ["B1"]);
    assert!(
        q.receive(None, 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn an_unacknowledged_message_comes_back_and_holds_its_group(b: &Backend) {
    let q = b.commands.as_ref();
    q.send(None, &message("G", "g1", "first")).await.unwrap();
    q.send(None, &message("G", "g2", "second")).await.unwrap();
    let got = q
        .receive(None, 1, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "first");
    // While "first" is in flight, "second" is held back.
    assert!(
        q.receive(None, 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    // Not deleted: after the visibility timeout (2 s in tests) it is delivered again, first.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let again = q
        .receive(None, 1, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(again[0].body, "first");
    assert_eq!(again[0].receive_count, 2);
}

async fn a_released_message_is_delivered_again_at_once(b: &Backend) {
    let q = b.commands.as_ref();
    q.send(None, &message("R", "r1", "not mine")).await.unwrap();
    q.send(None, &message("R", "r2", "after it")).await.unwrap();
    let got = q
        .receive(None, 1, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(got[0].body, "not mine");
    q.release(None, &got[0].receipt).await.unwrap();
    // At once (the visibility timeout is 2 s in tests), first in its group again, counted.
    let again = q
        .receive(None, 1, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "released: visible again at once");
    assert_eq!(again[0].body, "not mine");
    assert_eq!(again[0].receive_count, 2);
    q.delete(None, &again[0].receipt).await.unwrap();
    let next = q
        .receive(None, 1, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(next[0].body, "after it");
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(&teleapi_tests::Backend::memory()).await;
                }
            )*
        }
        mod moto {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(&teleapi_tests::Backend::moto().await).await;
                }
            )*
        }
    };
}

/// A worker is created by its first event, replaced by later ones while it is live, and never
/// revived once it has left; a stale or duplicate event changes nothing.
async fn workers_are_recorded_in_order_and_never_revived(b: &Backend) {
    let id =
        WorkerId::try_from(format!("worker-{}", &IntentSid::generate().as_str()[2..14])).unwrap();
    assert_eq!(b.workers.worker(&id).await.unwrap(), None);
    let now = Timestamp::now().whole_seconds();
    let at = |seconds: i64| Timestamp::from_millis(1_795_524_248_000 + seconds * 1000);
    let first = Worker {
        id: id.clone(),
        command_queue: "https://sqs.us-east-1.amazonaws.com/123456789012/teleapi-worker-7.fifo"
            .into(),
        capacity: 500,
        calls: 3,
        status: WorkerStatus::Active,
        last_event: at(0),
        lease_expires_at: now.plus(teleapi_domain::worker::LEASE),
        date_created: now,
        date_updated: now,
    };
    assert!(b.workers.record_worker(&first).await.unwrap());
    assert_eq!(b.workers.worker(&id).await.unwrap().as_ref(), Some(&first));

    let draining = Worker {
        status: WorkerStatus::Draining,
        calls: 2,
        last_event: at(10),
        ..first.clone()
    };
    assert!(b.workers.record_worker(&draining).await.unwrap());
    for stale in [at(10), at(5)] {
        let older = Worker {
            last_event: stale,
            status: WorkerStatus::Active,
            ..first.clone()
        };
        assert!(!b.workers.record_worker(&older).await.unwrap(), "{stale:?}");
    }
    assert_eq!(
        b.workers.worker(&id).await.unwrap().as_ref(),
        Some(&draining)
    );

    let left = Worker {
        status: WorkerStatus::Left,
        calls: 0,
        last_event: at(20),
        ..draining.clone()
    };
    assert!(b.workers.record_worker(&left).await.unwrap());
    let back = Worker {
        last_event: at(30),
        ..first.clone()
    };
    assert!(!b.workers.record_worker(&back).await.unwrap());
    assert_eq!(b.workers.worker(&id).await.unwrap().as_ref(), Some(&left));
}

/// A worker's live calls are found by its id, oldest first, until they end.
async fn a_workers_live_calls_are_found_until_they_end(b: &Backend) {
    let owner = account(b, None).await;
    let worker = |n: u8| {
        WorkerId::try_from(format!("w{n}-{}", &IntentSid::generate().as_str()[2..14])).unwrap()
    };
    let (ours, theirs) = (worker(1), worker(2));
    let start = Timestamp::now();
    let mut owned = Vec::new();
    for (offset, who, status) in [
        (2, Some(&ours), CallStatus::InProgress),
        (1, Some(&ours), CallStatus::Ringing),
        (3, Some(&ours), CallStatus::Completed),
        (4, Some(&theirs), CallStatus::InProgress),
        (5, None, CallStatus::InProgress),
    ] {
        let now = start.plus(Duration::from_secs(offset));
        let stored = call(b, &owner.sid, CallStatus::Queued, now).await;
        let mut next = stored.clone();
        next.worker = who.cloned();
        next.status = status;
        next.version += 1;
        let write = CallWrite {
            call: &next,
            expected_version: Some(stored.version),
            intent: None,
            idempotency: None,
            now,
        };
        b.calls.write_call(write).await.unwrap();
        if who == Some(&ours) {
            owned.push((offset, next));
        }
    }
    let sids = |offsets: &[u64]| -> Vec<CallSid> {
        offsets
            .iter()
            .map(|o| {
                owned
                    .iter()
                    .find(|(offset, _)| offset == o)
                    .unwrap()
                    .1
                    .sid
                    .clone()
            })
            .collect()
    };
    assert_eq!(b.calls.live_calls(&ours, 10).await.unwrap(), sids(&[1, 2]));
    assert_eq!(b.calls.live_calls(&ours, 1).await.unwrap(), sids(&[1]));
    assert_eq!(b.calls.live_calls(&theirs, 10).await.unwrap().len(), 1);

    let (_, ringing) = owned.iter().find(|(o, _)| *o == 1).unwrap();
    let mut ended = ringing.clone();
    ended.status = CallStatus::NoAnswer;
    ended.version += 1;
    let write = CallWrite {
        call: &ended,
        expected_version: Some(ringing.version),
        intent: None,
        idempotency: None,
        now: start,
    };
    b.calls.write_call(write).await.unwrap();
    assert_eq!(b.calls.live_calls(&ours, 10).await.unwrap(), sids(&[2]));
    let stored = b.calls.call(&ended.sid).await.unwrap().unwrap();
    assert_eq!(
        stored.worker.as_ref(),
        Some(&ours),
        "an ended call still names its worker"
    );
}

/// Workers whose lease ran out are found (no Scan on DynamoDB), the longest gone first, and
/// marked expired only while their lease is still out; a renewed one is not.
async fn expired_leases_are_found_and_marked_once(b: &Backend) {
    use teleapi_domain::worker::LEASE;
    let now = Timestamp::now().whole_seconds();
    let worker = |n: u64, lease_from: Timestamp| Worker {
        id: WorkerId::try_from(format!("w{n}-{}", &IntentSid::generate().as_str()[2..14])).unwrap(),
        command_queue: "https://sqs.example/teleapi-worker-7.fifo".into(),
        capacity: 10,
        calls: 0,
        status: WorkerStatus::Active,
        last_event: Timestamp::from_millis(1),
        lease_expires_at: lease_from.plus(LEASE),
        date_created: lease_from,
        date_updated: lease_from,
    };
    // Far in the future, so that other cases' workers (leases around now) sort before them.
    let base = now.plus(Duration::from_secs(1_000_000));
    let (older, newer) = (
        worker(1, base),
        worker(2, base.plus(Duration::from_secs(5))),
    );
    for w in [&newer, &older] {
        assert!(b.workers.record_worker(w).await.unwrap());
    }
    let ids = |found: Vec<Worker>| -> Vec<WorkerId> {
        found
            .into_iter()
            .filter(|w| w.id == older.id || w.id == newer.id)
            .map(|w| w.id)
            .collect()
    };
    let during = base.plus(LEASE);
    assert!(ids(b.workers.expired_workers(during, 1000).await.unwrap()).is_empty());
    assert!(
        !b.workers.expire_worker(&older.id, during).await.unwrap(),
        "still leased"
    );
    let after = base.plus(LEASE).plus(Duration::from_secs(10));
    assert_eq!(
        ids(b.workers.expired_workers(after, 1000).await.unwrap()),
        [older.id.clone(), newer.id.clone()]
    );
    // The newer one renews just in time; the older one is marked, once.
    let renewed = Worker {
        last_event: Timestamp::from_millis(2),
        lease_expires_at: after.plus(LEASE),
        ..newer.clone()
    };
    assert!(b.workers.record_worker(&renewed).await.unwrap());
    assert!(b.workers.expire_worker(&older.id, after).await.unwrap());
    assert!(!b.workers.expire_worker(&older.id, after).await.unwrap());
    assert!(!b.workers.expire_worker(&newer.id, after).await.unwrap());
    assert!(ids(b.workers.expired_workers(after, 1000).await.unwrap()).is_empty());
    let marked = b.workers.worker(&older.id).await.unwrap().unwrap();
    assert_eq!(marked.status, WorkerStatus::Expired);
    let back = Worker {
        last_event: Timestamp::from_millis(3),
        ..older.clone()
    };
    assert!(
        !b.workers.record_worker(&back).await.unwrap(),
        "never revived"
    );
}

contract!(
    expired_leases_are_found_and_marked_once,
    a_workers_live_calls_are_found_until_they_end,
    workers_are_recorded_in_order_and_never_revived,
    accounts_round_trip,
    calls_round_trip,
    an_intent_and_its_call_are_written_together,
    a_stale_version_writes_nothing,
    an_existing_intent_number_is_never_overwritten,
    an_idempotency_key_is_taken_once_until_it_expires,
    settling_an_intent_is_conditional,
    failing_an_intent_restores_the_call_and_releases_the_key,
    failing_an_intent_leaves_a_call_that_moved_on,
    pending_intents_are_listed_oldest_first_until_settled,
    settings_only_and_no_effect_intents_are_never_pending,
    creating_a_call_writes_it_once,
    calls_are_listed_newest_first_page_by_page,
    a_listed_call_shows_what_the_call_shows,
    a_large_accounts_calls_are_listed_across_its_partitions,
    listing_partitions_can_grow,
    filters_across_partitions,
    listed_calls_are_read_as_they_now_are,
    call_filters,
    intents_are_listed_in_sequence,
    call_only_writes_are_conditional,
    standard_messages_may_be_delayed,
    fifo_order_per_group_and_deduplication,
    an_unacknowledged_message_comes_back_and_holds_its_group,
    a_released_message_is_delivered_again_at_once,
);

/// An intent left pending under the earlier layout of the `pending` index (sixteen partitions,
/// named by the CallSid's last hex digit) is still found by the reconciler's sweep.
#[tokio::test]
async fn pending_intents_of_the_earlier_index_layout_are_still_found() {
    let b = teleapi_tests::Backend::moto().await;
    let aws = b.aws.clone().unwrap();
    let owner = account(&b, None).await;
    let now = Timestamp::now();
    let before = call(&b, &owner.sid, CallStatus::InProgress, now).await;
    let p = planned(&before, "Mute=true", now);
    b.calls.write_call(write(&before, &p, now)).await.unwrap();
    let sid = p.intent.subject.as_str();
    aws.dynamodb
        .update_item()
        .table_name(&aws.tables.intents)
        .key(
            "CallSid",
            aws_sdk_dynamodb::types::AttributeValue::S(sid.to_owned()),
        )
        .key(
            "Seq",
            aws_sdk_dynamodb::types::AttributeValue::N(p.intent.seq.to_string()),
        )
        .update_expression("SET PendingShard = :legacy")
        .expression_attribute_values(
            ":legacy",
            aws_sdk_dynamodb::types::AttributeValue::S(sid[sid.len() - 1..].to_owned()),
        )
        .send()
        .await
        .unwrap();
    let pending = b
        .calls
        .pending_intents(now.plus(Duration::from_secs(1)), 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].sid, p.intent.sid);
}

// ---------------------------------------------------------------- conferences

mod conferences {
    use teleapi_domain::conference::{
        Conference, ConferenceChange, ConferenceFilter, ConferenceStatus, Participant,
        ParticipantState, ParticipantStatus,
    };
    use teleapi_domain::paging::PageRequest;
    use teleapi_domain::{AccountSid, CallSid, ConferenceSid, Timestamp};
    use teleapi_tests::Backend;

    fn conference(account: &AccountSid, name: &str, at: i64) -> Conference {
        Conference {
            sid: ConferenceSid::generate(),
            account_sid: account.clone(),
            friendly_name: name.into(),
            status: ConferenceStatus::Init,
            command_queue: "https://sqs.example/worker.fifo".into(),
            worker: Some("worker-1".to_owned().try_into().unwrap()),
            event_seq: 1,
            seq: 0,
            version: 1,
            date_created: Timestamp::from_millis(at),
            date_updated: Timestamp::from_millis(at),
            reason_ended: None,
            call_sid_ending: None,
            status_callback: Some(teleapi_domain::conference::ConferenceCallback {
                url: teleapi_domain::WebhookUrl::parse(
                    "https://app.example.com/conference-events",
                    Default::default(),
                )
                .unwrap(),
                method: teleapi_domain::Method::Get,
                events: vec![teleapi_domain::conference::ConferenceCallbackEvent::Join],
            }),
            expires_at: None,
        }
    }

    fn participant(conference: &Conference, seq: u64, at: i64) -> Participant {
        Participant {
            conference_sid: conference.sid.clone(),
            account_sid: conference.account_sid.clone(),
            state: ParticipantState {
                label: Some("agent".into()),
                ..ParticipantState::new(CallSid::generate())
            },
            status: ParticipantStatus::Connected,
            event_seq: seq,
            date_created: Timestamp::from_millis(at),
            date_updated: Timestamp::from_millis(at),
            expires_at: None,
        }
    }

    fn new(conference: &Conference) -> ConferenceChange {
        ConferenceChange::Conference {
            conference: conference.clone(),
            expected_version: None,
        }
    }

    /// A conference is created once and then changed only from the version read; a participant
    /// only by a later event; the room lists who is connected, in the order they joined.
    pub async fn conferences_and_participants_are_written_under_their_conditions(b: &Backend) {
        let s = &b.conferences;
        let account = AccountSid::generate();
        let room = conference(&account, "room-1", 1_000);
        assert_eq!(s.conference(&room.sid).await.unwrap(), None);
        assert!(s.write_conference(&new(&room)).await.unwrap());
        assert!(
            !s.write_conference(&new(&room)).await.unwrap(),
            "created once"
        );
        assert_eq!(s.conference(&room.sid).await.unwrap().as_ref(), Some(&room));

        let mut started = room.clone();
        started.status = ConferenceStatus::InProgress;
        started.version = 2;
        started.event_seq = 3;
        let change = |conference: &Conference, expected| ConferenceChange::Conference {
            conference: conference.clone(),
            expected_version: Some(expected),
        };
        assert!(!s.write_conference(&change(&started, 7)).await.unwrap());
        assert!(s.write_conference(&change(&started, 1)).await.unwrap());
        assert!(
            !s.write_conference(&change(&started, 1)).await.unwrap(),
            "stale"
        );
        assert_eq!(
            s.conference(&room.sid).await.unwrap().as_ref(),
            Some(&started)
        );

        let first = participant(&room, 2, 2_000);
        let second = participant(&room, 4, 1_500);
        let third = participant(&room, 5, 3_000);
        for p in [&third, &first, &second] {
            let put = ConferenceChange::Participant((*p).clone());
            assert!(s.write_conference(&put).await.unwrap());
            assert!(
                !s.write_conference(&put).await.unwrap(),
                "the same event again"
            );
        }
        let mut older = first.clone();
        older.state.muted = true;
        older.event_seq = 1;
        assert!(
            !s.write_conference(&ConferenceChange::Participant(older))
                .await
                .unwrap()
        );
        let mut gone = third.clone();
        gone.status = ParticipantStatus::Complete;
        gone.event_seq = 6;
        gone.expires_at = Some(Timestamp::from_millis(9_000_000_000_000));
        assert!(
            s.write_conference(&ConferenceChange::Participant(gone.clone()))
                .await
                .unwrap()
        );

        let sids = |ps: Vec<Participant>| -> Vec<CallSid> {
            ps.into_iter().map(|p| p.state.call_sid).collect()
        };
        assert_eq!(
            sids(s.participants(&room.sid).await.unwrap()),
            vec![second.state.call_sid.clone(), first.state.call_sid.clone()],
            "connected, in the order they joined"
        );
        let read = s
            .participant(&room.sid, &third.state.call_sid)
            .await
            .unwrap();
        assert_eq!(read, Some(gone), "who left is still read");
        assert_eq!(
            s.participant(&room.sid, &first.state.call_sid)
                .await
                .unwrap(),
            Some(first)
        );
        let other = ConferenceSid::generate();
        assert!(s.participants(&other).await.unwrap().is_empty());
        assert_eq!(
            s.participant(&other, &second.state.call_sid).await.unwrap(),
            None
        );
    }

    /// The rooms a worker runs are found until they end (the reconciler's way to a dead
    /// worker's rooms), oldest first, a worker's alone.
    pub async fn a_workers_live_conferences_are_found_until_they_end(b: &Backend) {
        use teleapi_domain::sid::WorkerId;
        let s = &b.conferences;
        let account = AccountSid::generate();
        let ours =
            WorkerId::try_from(format!("w-{}", &CallSid::generate().as_str()[2..14])).unwrap();
        let theirs = WorkerId::try_from(format!("{ours}-other")).unwrap();
        let room = |at: i64, worker: &WorkerId| {
            let mut room = conference(&account, "room", at);
            room.worker = Some(worker.clone());
            room
        };
        let (first, second, elsewhere) =
            (room(2_000, &ours), room(1_000, &ours), room(1_500, &theirs));
        let mut nameless = room(500, &ours);
        nameless.worker = None;
        for room in [&first, &second, &elsewhere, &nameless] {
            assert!(s.write_conference(&new(room)).await.unwrap());
        }
        let live = |worker: WorkerId, limit| async move {
            s.live_conferences(&worker, limit).await.unwrap()
        };
        assert_eq!(
            live(ours.clone(), 10).await,
            [second.sid.clone(), first.sid.clone()]
        );
        assert_eq!(
            live(ours.clone(), 1).await,
            std::slice::from_ref(&second.sid)
        );
        assert_eq!(live(theirs, 10).await, std::slice::from_ref(&elsewhere.sid));

        let mut ended = second.clone();
        ended.status = ConferenceStatus::Completed;
        ended.version = 2;
        let change = ConferenceChange::Conference {
            conference: ended,
            expected_version: Some(1),
        };
        assert!(s.write_conference(&change).await.unwrap());
        let left = live(ours, 10).await;
        assert_eq!(
            left,
            std::slice::from_ref(&first.sid),
            "an ended room leaves it"
        );
    }

    /// An API change of a conference is written whole or not at all: the conference under its
    /// version, the participant only if no worker event moved it and it is still in the room,
    /// the intent under a free number, the key only once.
    pub async fn a_conference_change_is_one_conditional_write(b: &Backend) {
        use teleapi_domain::conference::{ConferenceChangeRequest, ParticipantUpdate, plan};
        use teleapi_domain::{IdempotencyKey, IdempotencyRecord, IntentSid, IntentStatus};
        use teleapi_ports::{ConferenceWrite, RecordError};
        let s = &b.conferences;
        let account = AccountSid::generate();
        let room = conference(&account, "room-1", 1_000);
        assert!(s.write_conference(&new(&room)).await.unwrap());
        let agent = participant(&room, 2, 2_000);
        let put = ConferenceChange::Participant(agent.clone());
        assert!(s.write_conference(&put).await.unwrap());
        let now = Timestamp::from_millis(3_000);
        let mute = ConferenceChangeRequest::Participant(
            agent.state.call_sid.clone(),
            ParticipantUpdate {
                muted: Some(true),
                ..Default::default()
            },
        );
        let retention = std::time::Duration::from_secs(3600);
        let planned = plan(
            &room,
            std::slice::from_ref(&agent),
            &mute,
            IntentSid::generate(),
            now,
            retention,
        )
        .unwrap();
        let after = planned.participant.as_ref().unwrap();
        let key = IdempotencyKey::parse(&account, b"mute-1").unwrap();
        let record = IdempotencyRecord {
            key: key.clone(),
            fingerprint: "fp".into(),
            status: 200,
            response: "{}".into(),
            expires_at: now.plus(retention).whole_seconds(),
        };
        let write = |version, seq, record| ConferenceWrite {
            conference: &planned.conference,
            expected_version: version,
            participant: Some((after, seq)),
            intent: &planned.intent,
            idempotency: record,
            now,
        };
        let unchanged = || async {
            assert_eq!(s.conference(&room.sid).await.unwrap().as_ref(), Some(&room));
            let stored = s
                .participant(&room.sid, &agent.state.call_sid)
                .await
                .unwrap();
            assert_eq!(stored.as_ref(), Some(&agent));
            let subject = room.sid.clone().into();
            assert_eq!(b.calls.intent(&subject, 1).await.unwrap(), None);
        };
        assert_eq!(
            s.write_conference_intent(write(9, 2, None)).await,
            Err(RecordError::CallChanged),
            "the conference moved on"
        );
        assert_eq!(
            s.write_conference_intent(write(1, 1, None)).await,
            Err(RecordError::CallChanged),
            "a worker event changed the participant"
        );
        unchanged().await;
        assert_eq!(
            s.write_conference_intent(write(1, 2, Some(&record))).await,
            Ok(())
        );
        let stored = s.conference(&room.sid).await.unwrap().unwrap();
        assert_eq!((stored.seq, stored.version), (1, 2));
        let muted = s
            .participant(&room.sid, &agent.state.call_sid)
            .await
            .unwrap();
        assert!(muted.unwrap().state.muted);
        let intent = b
            .calls
            .intent(&room.sid.clone().into(), 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (intent.sid, intent.status),
            (planned.intent.sid.clone(), IntentStatus::Pending)
        );
        assert_eq!(
            intent.command, planned.intent.command,
            "the command survives the store"
        );
        let pending = b
            .calls
            .pending_intents(now.plus(retention), 1000)
            .await
            .unwrap();
        assert!(
            pending.iter().any(|i| i.sid == planned.intent.sid),
            "pending"
        );
        assert_eq!(
            s.write_conference_intent(write(2, 2, Some(&record))).await,
            Err(RecordError::KeyTaken)
        );
        assert!(
            b.calls
                .idempotency_record(&key, now)
                .await
                .unwrap()
                .is_some()
        );
    }

    /// An account's conferences, newest first, page by page, with Twilio's filters; never
    /// another account's.
    pub async fn conferences_are_listed_newest_first_with_filters(b: &Backend) {
        let s = &b.conferences;
        let account = AccountSid::generate();
        let mut written = Vec::new();
        for (i, name) in ["a", "b", "a", "c", "a"].iter().enumerate() {
            let at = 1_000 * (i64::try_from(i).unwrap() + 1);
            let mut c = conference(&account, name, at);
            if i % 2 == 1 {
                c.status = ConferenceStatus::Completed;
                c.date_updated = Timestamp::from_millis(at + 10_000);
            }
            assert!(s.write_conference(&new(&c)).await.unwrap());
            written.push(c);
        }
        let stranger = conference(&AccountSid::generate(), "a", 2_500);
        assert!(s.write_conference(&new(&stranger)).await.unwrap());

        let account = &account;
        let list = |filter: ConferenceFilter| async move {
            let mut sids = Vec::new();
            let mut after = None;
            loop {
                let request = PageRequest {
                    size: 2,
                    after: after.clone(),
                    backward: false,
                };
                let page = s
                    .list_conferences(account, &filter, &request)
                    .await
                    .unwrap();
                sids.extend(
                    page.items
                        .into_iter()
                        .map(|c| c.friendly_name + &c.date_created.millis().to_string()),
                );
                match page.more {
                    Some(more) => after = Some(more),
                    None => return sids,
                }
            }
        };
        assert_eq!(
            list(ConferenceFilter::default()).await,
            ["a5000", "c4000", "a3000", "b2000", "a1000"]
        );
        let named = ConferenceFilter {
            friendly_name: Some("a".into()),
            ..Default::default()
        };
        assert_eq!(list(named).await, ["a5000", "a3000", "a1000"]);
        let completed = ConferenceFilter {
            status: Some(ConferenceStatus::Completed),
            ..Default::default()
        };
        assert_eq!(list(completed).await, ["c4000", "b2000"]);
        let window = ConferenceFilter {
            created_from: Some(Timestamp::from_millis(2_000)),
            created_to: Some(Timestamp::from_millis(4_000)),
            updated_to: Some(Timestamp::from_millis(5_000)),
            ..Default::default()
        };
        assert_eq!(list(window).await, ["a3000"]);
    }
}

use conferences::{
    a_conference_change_is_one_conditional_write,
    a_workers_live_conferences_are_found_until_they_end,
    conferences_and_participants_are_written_under_their_conditions,
    conferences_are_listed_newest_first_with_filters,
};

mod conference_contract {
    use super::*;
    contract!(
        a_conference_change_is_one_conditional_write,
        a_workers_live_conferences_are_found_until_they_end,
        conferences_and_participants_are_written_under_their_conditions,
        conferences_are_listed_newest_first_with_filters,
    );
}

// ---------------------------------------------------------------- recordings

mod recordings {
    use std::time::Duration;

    use teleapi_domain::paging::PageRequest;
    use teleapi_domain::recording::{
        Recording, RecordingFilter, RecordingOptions, RecordingStatus, plan_start,
    };
    use teleapi_domain::{
        AccountSid, Call, CallStatus, Form, IdempotencyKey, IdempotencyRecord, IntentSid,
        IntentStatus, RecordingSid, Timestamp,
    };
    use teleapi_ports::{RecordError, RecordingWrite};
    use teleapi_tests::Backend;

    const RETENTION: Duration = Duration::from_secs(3600);

    fn options() -> RecordingOptions {
        let form = Form::parse(
            b"RecordingChannels=dual&RecordingStatusCallback=https%3A%2F%2Fapp.example.com%2Fr",
        )
        .unwrap();
        RecordingOptions::parse_start(&form, Default::default()).unwrap()
    }

    /// A recording of `call` started at `at` (ms), as the API plans it.
    fn recording(call: &Call, at: i64) -> Recording {
        let now = Timestamp::from_millis(at);
        let sid = RecordingSid::generate();
        plan_start(
            call,
            None,
            &options(),
            sid,
            IntentSid::generate(),
            now,
            RETENTION,
        )
        .unwrap()
        .recording
    }

    fn live_call(account: &AccountSid, at: i64) -> Call {
        teleapi_tests::new_call(account, CallStatus::InProgress, Timestamp::from_millis(at))
    }

    /// A worker's report replaces the recording only under the version it was read at; a
    /// recording is created once; a deletion holds only for the version read.
    pub async fn recordings_are_written_under_their_conditions(b: &Backend) {
        let s = &b.recordings;
        let account = AccountSid::generate();
        let first = recording(&live_call(&account, 1_000), 1_000);
        assert_eq!(s.recording(&first.sid).await.unwrap(), None);
        assert!(s.write_recording(&first, None).await.unwrap());
        assert!(
            !s.write_recording(&first, None).await.unwrap(),
            "created once"
        );
        assert_eq!(
            s.recording(&first.sid).await.unwrap().as_ref(),
            Some(&first)
        );
        let done = Recording {
            status: RecordingStatus::Completed,
            duration: Some(12),
            media: Some("s3://bucket/key.wav".into()),
            event_seq: 2,
            version: 2,
            ..first.clone()
        };
        assert!(!s.write_recording(&done, Some(7)).await.unwrap(), "stale");
        assert!(s.write_recording(&done, Some(1)).await.unwrap());
        assert_eq!(s.recording(&first.sid).await.unwrap().as_ref(), Some(&done));
        assert!(!s.delete_recording(&first.sid, 1).await.unwrap());
        assert!(s.delete_recording(&first.sid, 2).await.unwrap());
        assert_eq!(s.recording(&first.sid).await.unwrap(), None);
        assert!(!s.delete_recording(&first.sid, 2).await.unwrap());
    }

    /// A start writes the call (its next intent number and active recording), the recording,
    /// the intent and the key together, or nothing.
    pub async fn a_recording_change_is_one_conditional_write(b: &Backend) {
        let account = AccountSid::generate();
        let now = Timestamp::from_millis(5_000);
        let call = teleapi_tests::call(b, &account, CallStatus::InProgress, now).await;
        let planned = plan_start(
            &call,
            None,
            &options(),
            RecordingSid::generate(),
            IntentSid::generate(),
            now,
            RETENTION,
        )
        .unwrap();
        let key = IdempotencyKey::parse(&account, b"record-1").unwrap();
        let record = IdempotencyRecord {
            key: key.clone(),
            fingerprint: "fp".into(),
            status: 201,
            response: "{}".into(),
            expires_at: now.plus(RETENTION).whole_seconds(),
        };
        let write = |planned, idempotency| RecordingWrite {
            planned,
            idempotency,
            now,
        };
        // The call moved on since it was read: nothing is written.
        let mut stale = planned.clone();
        stale.call_version += 5;
        assert_eq!(
            b.recordings
                .write_recording_intent(write(&stale, None))
                .await,
            Err(RecordError::CallChanged)
        );
        assert_eq!(
            b.recordings
                .recording(&planned.recording.sid)
                .await
                .unwrap(),
            None
        );
        assert_eq!(b.calls.call(&call.sid).await.unwrap().as_ref(), Some(&call));

        assert_eq!(
            b.recordings
                .write_recording_intent(write(&planned, Some(&record)))
                .await,
            Ok(())
        );
        let stored = b.calls.call(&call.sid).await.unwrap().unwrap();
        assert_eq!(stored.recording.as_ref(), Some(&planned.recording.sid));
        assert_eq!((stored.seq, stored.version), (1, call.version + 1));
        assert_eq!(
            b.recordings
                .recording(&planned.recording.sid)
                .await
                .unwrap()
                .as_ref(),
            Some(&planned.recording)
        );
        let intent = b
            .calls
            .intent(&call.sid.clone().into(), 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(intent.status, IntentStatus::Pending);
        assert_eq!(
            intent.command, planned.intent.command,
            "the command survives the store"
        );
        assert!(
            b.calls
                .idempotency_record(&key, now)
                .await
                .unwrap()
                .is_some()
        );

        // The same key again: taken. A second recording created over the first: refused.
        let mut again = planned.clone();
        again.call = stored.clone();
        again.call_version = stored.version;
        again.call.version = stored.version + 1;
        again.intent.seq = 2;
        again.call.seq = 2;
        assert_eq!(
            b.recordings
                .write_recording_intent(write(&again, Some(&record)))
                .await,
            Err(RecordError::KeyTaken)
        );
        assert_eq!(
            b.recordings
                .write_recording_intent(write(&again, None))
                .await,
            Err(RecordError::CallChanged),
            "the recording exists already"
        );
    }

    /// An account's recordings, newest first, page by page; a call's alone; a window of
    /// creation times; never another account's.
    pub async fn recordings_are_listed_newest_first_by_account_and_call(b: &Backend) {
        let s = &b.recordings;
        let account = AccountSid::generate();
        let (one, two) = (live_call(&account, 1_000), live_call(&account, 1_000));
        let other = live_call(&AccountSid::generate(), 1_000);
        let mut written = Vec::new();
        for (call, at) in [
            (&one, 1_000),
            (&two, 2_000),
            (&one, 3_000),
            (&two, 4_000),
            (&other, 3_500),
        ] {
            let r = recording(call, at);
            assert!(s.write_recording(&r, None).await.unwrap());
            written.push(r);
        }
        let list = |filter: RecordingFilter, size: usize, after: Option<String>| {
            let s = s.clone();
            let account = account.clone();
            async move {
                let page = PageRequest {
                    size,
                    after,
                    backward: false,
                };
                s.list_recordings(&account, &filter, &page).await.unwrap()
            }
        };
        let times = |page: &teleapi_domain::paging::Page<Recording>| -> Vec<i64> {
            page.items.iter().map(|r| r.date_created.millis()).collect()
        };
        let first = list(RecordingFilter::default(), 3, None).await;
        assert_eq!(times(&first), [4_000, 3_000, 2_000]);
        let rest = list(RecordingFilter::default(), 3, first.more.clone()).await;
        assert_eq!(times(&rest), [1_000]);
        let of_one = RecordingFilter {
            call_sid: Some(one.sid.clone()),
            ..Default::default()
        };
        assert_eq!(times(&list(of_one, 10, None).await), [3_000, 1_000]);
        let window = RecordingFilter {
            created_from: Some(Timestamp::from_millis(2_000)),
            created_to: Some(Timestamp::from_millis(3_000)),
            ..Default::default()
        };
        assert_eq!(times(&list(window, 10, None).await), [3_000, 2_000]);
        let foreign = RecordingFilter {
            call_sid: Some(other.sid.clone()),
            ..Default::default()
        };
        assert!(
            list(foreign, 10, None).await.items.is_empty(),
            "another account's call"
        );
    }
}

use recordings::{
    a_recording_change_is_one_conditional_write,
    recordings_are_listed_newest_first_by_account_and_call,
    recordings_are_written_under_their_conditions,
};

mod recording_contract {
    use super::*;
    contract!(
        a_recording_change_is_one_conditional_write,
        recordings_are_listed_newest_first_by_account_and_call,
        recordings_are_written_under_their_conditions,
    );
}

// ---------------------------------------------------------------- recordings' media

mod media {
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use teleapi_adapters::media::{FileMedia, S3Media};
    use teleapi_domain::sid::random_hex32;
    use teleapi_ports::{Media, MediaStore};

    /// Deployed: a worker puts media under its key; it is handed out as a presigned URL that
    /// works without credentials, for a few minutes, for objects of the stack's bucket alone;
    /// deleting removes the object.
    #[tokio::test]
    async fn media_on_s3_is_handed_out_presigned() {
        let endpoint = teleapi_tests::moto::endpoint();
        let bucket = format!("recordings-{}", &random_hex32()[..12]);
        let http = reqwest::Client::new();
        let created = http
            .put(format!("{endpoint}/{bucket}"))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success(), "{}", created.status());
        let credentials = Credentials::new("test", "test", None, None, "test");
        let media = S3Media::new(
            bucket.clone(),
            "us-east-1".into(),
            Some(endpoint.to_owned()),
            SharedCredentialsProvider::new(credentials),
        );
        let key = format!("AC{}/RE{}.wav", random_hex32(), random_hex32());
        let location = media
            .put(&key, "audio/x-wav", b"RIFF....WAVE".to_vec())
            .await
            .unwrap();
        assert_eq!(location, media.location(&key));
        assert_eq!(location, format!("s3://{bucket}/{key}"));
        for bad in ["", "../RE0.wav", "AC0//RE0.wav", "AC0/RE 0.wav", "AC0/.."] {
            assert!(
                media.put(bad, "audio/x-wav", Vec::new()).await.is_err(),
                "{bad:?}"
            );
        }

        let Some(Media::Redirect(url)) = media.fetch(&location).await.unwrap() else {
            panic!("a presigned URL");
        };
        assert!(
            url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires=300"),
            "{url}"
        );
        let got = http.get(&url).send().await.unwrap();
        assert_eq!(got.status(), 200);
        assert_eq!(got.bytes().await.unwrap().as_ref(), b"RIFF....WAVE");
        for elsewhere in [
            format!("s3://another-bucket/{key}"),
            format!("s3://{bucket}/"),
            "file:///etc/passwd".to_owned(),
        ] {
            assert_eq!(media.fetch(&elsewhere).await.unwrap(), None, "{elsewhere}");
        }
        media.delete(&location).await.unwrap();
        assert_eq!(http.get(&url).send().await.unwrap().status(), 404);
        media.delete(&location).await.unwrap();
    }

    /// teleapi-local: files of its recordings folder (named by their key's last segment), and
    /// nothing outside it.
    #[tokio::test]
    async fn media_in_files_is_served_from_its_folder_only() {
        let dir = std::env::temp_dir().join(format!("media-{}", &random_hex32()[..12]));
        std::fs::create_dir_all(&dir).unwrap();
        let media = FileMedia::new(&dir);
        let file = dir.join("RE0123456789abcdef0123456789abcdef.wav");
        let key = "AC0123456789abcdef0123456789abcdef/RE0123456789abcdef0123456789abcdef.wav";
        let location = media
            .put(key, "audio/x-wav", b"RIFF".to_vec())
            .await
            .unwrap();
        assert_eq!(location, format!("file://{}", file.display()));
        for bad in ["", "../RE0.wav", "AC0//RE0.wav", "AC0/RE 0.wav", "AC0/.."] {
            assert!(
                media.put(bad, "audio/x-wav", Vec::new()).await.is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            media.fetch(&location).await.unwrap(),
            Some(Media::Bytes(b"RIFF".to_vec()))
        );
        for elsewhere in [
            format!("file://{}/../RE0.wav", dir.display()),
            "file:///etc/passwd".to_owned(),
            format!("s3://bucket/{}", file.display()),
            format!("file://{}/missing.wav", dir.display()),
        ] {
            assert_eq!(media.fetch(&elsewhere).await.unwrap(), None, "{elsewhere}");
        }
        media.delete(&location).await.unwrap();
        assert!(!file.exists());
        media.delete(&location).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

// ---------------------------------------------------------------- calls' logs

mod call_log {
    use std::cmp::Reverse;
    use std::collections::BTreeMap;
    use std::time::Duration;

    use futures_util::future::join_all;
    use teleapi_domain::call_log::{
        LogEntry, LogLevel, LoggedRequest, LoggedResponse, MAX_ENTRIES, Notification,
        NotificationFilter, Problem, RequestEntry, RequestKind, notification_position,
        request_position,
    };
    use teleapi_domain::paging::{Page, PageRequest};
    use teleapi_domain::{AccountSid, CallSid, Method, NotificationSid, Timestamp};
    use teleapi_ports::insight::{notification_entry, request_entry};
    use teleapi_tests::Backend;

    use super::page;

    /// 1 March 2026, 00:00 UTC: the day the logged calls begin.
    const DAY: i64 = 1_772_323_200_000;
    const HOUR: i64 = 3_600_000;
    const DAY_MS: i64 = 24 * HOUR;

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_millis(millis)
    }

    /// Well after the test: the memory twin drops what has expired, and nothing here should.
    fn kept() -> Timestamp {
        Timestamp::now().plus(Duration::from_secs(24 * 3600))
    }

    /// A request of `call` at `millis` and its answer (`None`: no answer, a connect timeout),
    /// as the writers build it.
    fn request(
        call: &CallSid,
        account: &AccountSid,
        millis: i64,
        kind: RequestKind,
        status: Option<u16>,
    ) -> LogEntry {
        let request = LoggedRequest {
            kind,
            url: format!("https://app.example.com/{}?n={millis}", kind.as_str()),
            method: if millis % 2 == 0 {
                Method::Post
            } else {
                Method::Get
            },
            parameters: BTreeMap::from([
                ("CallSid".to_owned(), call.to_string()),
                ("CallStatus".to_owned(), "in-progress".to_owned()),
            ]),
            signed: true,
            attempt: 1,
        };
        let response = match status {
            Some(code) => LoggedResponse {
                status_code: Some(code),
                content_type: Some("application/xml".into()),
                duration_ms: 42,
                body: Some("<Response><Say>Hello</Say></Response>".into()),
                error: None,
            },
            None => LoggedResponse {
                duration_ms: 5_000,
                error: Some("connect timeout".into()),
                ..LoggedResponse::default()
            },
        };
        request_entry(call, account, at(millis), request, response)
    }

    fn notice(
        call: &CallSid,
        account: &AccountSid,
        millis: i64,
        level: LogLevel,
        code: u32,
    ) -> LogEntry {
        let problem = Problem::new(level, code, format!("problem {code} at {millis}"))
            .at_request("https://app.example.com/rcml", Method::Post);
        notification_entry(
            problem,
            call,
            account,
            at(millis),
            &format!("event {millis}"),
        )
    }

    fn as_request(entry: &LogEntry) -> RequestEntry {
        match entry {
            LogEntry::Request(request) => request.clone(),
            LogEntry::Notification(n) => panic!("not a request: {n:?}"),
        }
    }

    fn as_notification(entry: &LogEntry) -> Notification {
        match entry {
            LogEntry::Notification(n) => n.clone(),
            LogEntry::Request(r) => panic!("not a notification: {r:?}"),
        }
    }

    /// The requests among `entries`, newest first (by position: time, then what they record).
    fn requests_newest_first(entries: &[LogEntry]) -> Vec<RequestEntry> {
        let mut requests: Vec<RequestEntry> = entries
            .iter()
            .filter(|e| matches!(e, LogEntry::Request(_)))
            .map(as_request)
            .collect();
        requests.sort_by_key(|r| Reverse(request_position(r)));
        requests
    }

    /// The notifications among `entries` that `keep`, newest first.
    fn notifications_newest_first(
        entries: &[LogEntry],
        keep: impl Fn(&Notification) -> bool,
    ) -> Vec<Notification> {
        let mut notifications: Vec<Notification> = entries
            .iter()
            .filter(|e| matches!(e, LogEntry::Notification(_)))
            .map(as_notification)
            .filter(|n| keep(n))
            .collect();
        notifications.sort_by_key(|n| Reverse(notification_position(n)));
        notifications
    }

    async fn append_all(b: &Backend, entries: &[LogEntry]) {
        for entry in entries {
            assert_eq!(
                b.call_log.append(entry, kept()).await,
                Ok(true),
                "{entry:?}"
            );
        }
    }

    /// Follows `more` forward from the start: every page at most `size` items.
    async fn all_pages<T, F, Fut>(size: usize, read: F) -> Vec<T>
    where
        F: Fn(PageRequest) -> Fut,
        Fut: std::future::Future<Output = Page<T>>,
    {
        let mut out = Vec::new();
        let mut after = None;
        for _ in 0..1000 {
            let got = read(page(size, after, false)).await;
            assert!(got.items.len() <= size, "{} > {size}", got.items.len());
            out.extend(got.items);
            match got.more {
                Some(more) => after = Some(more),
                None => return out,
            }
        }
        panic!("listing did not end");
    }

    async fn all_requests(b: &Backend, call: &CallSid, size: usize) -> Vec<RequestEntry> {
        all_pages(size, |p| async move {
            b.call_log.requests(call, &p).await.unwrap()
        })
        .await
    }

    async fn all_notifications(
        b: &Backend,
        account: &AccountSid,
        call: Option<&CallSid>,
        filter: &NotificationFilter,
        size: usize,
    ) -> Vec<Notification> {
        all_pages(size, |p| async move {
            b.call_log
                .notifications(account, call, filter, &p)
                .await
                .unwrap()
        })
        .await
    }

    /// A call's requests, newest first, page by page in both directions, as they were
    /// appended (cut to what a log keeps); never another call's.
    pub async fn a_calls_requests_are_listed_newest_first_page_by_page(b: &Backend) {
        let account = AccountSid::generate();
        let (one, other) = (CallSid::generate(), CallSid::generate());
        let kinds = [
            RequestKind::Rcml,
            RequestKind::Action,
            RequestKind::StatusCallback,
            RequestKind::Fallback,
            RequestKind::RecordingCallback,
            RequestKind::StreamCallback,
            RequestKind::ConferenceCallback,
        ];
        let mut written: Vec<LogEntry> = (0..12i64)
            .map(|i| {
                // Appended out of time order.
                let millis = DAY + (i * 7 % 12) * 1_000 + i;
                let status = match i {
                    4 => None,
                    7 => Some(500),
                    _ => Some(200),
                };
                request(
                    &one,
                    &account,
                    millis,
                    kinds[i as usize % kinds.len()],
                    status,
                )
            })
            .collect();
        // A body longer than a log keeps, and two requests in the same millisecond (what they
        // record orders them).
        let long = {
            let LogEntry::Request(mut long) =
                request(&one, &account, DAY + 20_000, RequestKind::Rcml, Some(200))
            else {
                unreachable!()
            };
            long.response.body = Some("x".repeat(5_000));
            request_entry(&one, &account, long.at, long.request, long.response)
        };
        written.push(long);
        written.push(request(
            &one,
            &account,
            DAY + 20_000,
            RequestKind::Action,
            Some(204),
        ));
        append_all(b, &written).await;
        let others: Vec<LogEntry> = (0..3)
            .map(|i| {
                request(
                    &other,
                    &account,
                    DAY + i * 1_000 + 500,
                    RequestKind::Rcml,
                    Some(200),
                )
            })
            .collect();
        append_all(b, &others).await;
        // A notification of the call is not one of its requests.
        append_all(
            b,
            &[notice(&one, &account, DAY + 5_500, LogLevel::Error, 11200)],
        )
        .await;

        let expected = requests_newest_first(&written);
        assert_eq!(expected.len(), 14);
        assert!(
            expected.iter().any(|r| r.response.status_code.is_none()
                && r.response.error.as_deref() == Some("connect timeout")),
            "one request without an answer"
        );
        assert_eq!(
            expected[..2]
                .iter()
                .map(|r| r.response.body.as_ref().map_or(0, String::len))
                .max(),
            Some(teleapi_domain::call_log::MAX_BODY_BYTES),
            "the long body is cut"
        );
        for size in [1, 5, 50] {
            assert_eq!(
                all_requests(b, &one, size).await,
                expected,
                "page size {size}"
            );
        }
        let first = b
            .call_log
            .requests(&one, &page(5, None, false))
            .await
            .unwrap();
        assert_eq!(first.items, expected[..5]);
        assert!(first.more.is_some());
        let whole = b
            .call_log
            .requests(&one, &page(50, None, false))
            .await
            .unwrap();
        assert_eq!(whole.items, expected);
        assert_eq!(whole.more, None);

        // Backward from the eleventh: the five before it, in display order; from the third:
        // the two before it, and the start.
        let back = b
            .call_log
            .requests(&one, &page(5, Some(request_position(&expected[10])), true))
            .await
            .unwrap();
        assert_eq!(back.items, expected[5..10]);
        assert!(back.more.is_some());
        let back = b
            .call_log
            .requests(&one, &page(5, Some(request_position(&expected[2])), true))
            .await
            .unwrap();
        assert_eq!(back.items, expected[..2]);
        assert_eq!(back.more, None);
        // Forward from the fourth: the rest.
        let rest = b
            .call_log
            .requests(&one, &page(50, Some(request_position(&expected[3])), false))
            .await
            .unwrap();
        assert_eq!(rest.items, expected[4..]);

        assert_eq!(
            all_requests(b, &other, 2).await,
            requests_newest_first(&others)
        );
        assert!(
            all_requests(b, &CallSid::generate(), 5).await.is_empty(),
            "a call without a log"
        );
    }

    /// A redelivered event or a retried write lands on the entry it wrote the first time.
    pub async fn the_same_entry_twice_is_one_entry(b: &Backend) {
        let account = AccountSid::generate();
        let call = CallSid::generate();
        let entry = request(&call, &account, DAY + 1_000, RequestKind::Rcml, Some(200));
        let rebuilt = request(&call, &account, DAY + 1_000, RequestKind::Rcml, Some(200));
        assert_eq!(entry, rebuilt);
        append_all(b, &[entry.clone(), entry.clone(), rebuilt]).await;
        assert_eq!(all_requests(b, &call, 10).await, [as_request(&entry)]);
        // The same request with another answer (a retry that got one) is another entry.
        let retried = request(&call, &account, DAY + 1_000, RequestKind::Rcml, Some(500));
        append_all(b, std::slice::from_ref(&retried)).await;
        assert_eq!(
            all_requests(b, &call, 10).await,
            requests_newest_first(&[entry, retried])
        );

        let problem = Problem::new(LogLevel::Error, 11200, "HTTP retrieval failure")
            .at_request("https://app.example.com/rcml", Method::Post);
        let noted = |origin: &str| {
            notification_entry(problem.clone(), &call, &account, at(DAY + 2_000), origin)
        };
        let first = noted("event 7");
        append_all(b, &[first.clone(), noted("event 7")]).await;
        let once = vec![as_notification(&first)];
        let everything = NotificationFilter::default();
        assert_eq!(
            all_notifications(b, &account, Some(&call), &everything, 10).await,
            once
        );
        assert_eq!(
            all_notifications(b, &account, None, &everything, 10).await,
            once
        );
        assert_eq!(
            b.call_log
                .notification(&call, &once[0].sid)
                .await
                .unwrap()
                .as_ref(),
            Some(&once[0])
        );
        // Another origin (another event reporting the same problem): another notification.
        let second = noted("event 8");
        append_all(b, std::slice::from_ref(&second)).await;
        assert_eq!(
            all_notifications(b, &account, Some(&call), &everything, 10).await,
            notifications_newest_first(&[first, second], |_| true)
        );
    }

    /// A call's log takes MAX_ENTRIES entries, requests and notifications together; later
    /// ones are refused and not kept. Another call's log is its own.
    pub async fn a_calls_log_is_bounded(b: &Backend) {
        let account = AccountSid::generate();
        let (call, other) = (CallSid::generate(), CallSid::generate());
        let max = i64::try_from(MAX_ENTRIES).unwrap();
        let entry = |call: &CallSid, i: i64| {
            let millis = DAY + i * 1_000;
            if i % 10 == 9 {
                notice(call, &account, millis, LogLevel::Warning, 13227)
            } else {
                request(
                    call,
                    &account,
                    millis,
                    RequestKind::StatusCallback,
                    Some(200),
                )
            }
        };
        let kept_entries: Vec<LogEntry> = (0..max).map(|i| entry(&call, i)).collect();
        let expires = kept();
        for chunk in kept_entries.chunks(50) {
            let appended = join_all(chunk.iter().map(|e| b.call_log.append(e, expires))).await;
            assert!(
                appended.iter().all(|a| *a == Ok(true)),
                "{:?}",
                appended.iter().find(|a| **a != Ok(true))
            );
        }
        // Full: newer entries are refused, and so is one already kept (the log counts writes).
        for i in max..max + 5 {
            assert_eq!(
                b.call_log.append(&entry(&call, i), kept()).await,
                Ok(false),
                "entry {i}"
            );
        }
        assert_eq!(b.call_log.append(&kept_entries[0], kept()).await, Ok(false));

        let requests = all_requests(b, &call, 100).await;
        assert_eq!(requests, requests_newest_first(&kept_entries));
        let notifications = all_notifications(
            b,
            &account,
            Some(&call),
            &NotificationFilter::default(),
            100,
        )
        .await;
        assert_eq!(
            notifications,
            notifications_newest_first(&kept_entries, |_| true)
        );
        assert_eq!(
            u64::try_from(requests.len() + notifications.len()).unwrap(),
            MAX_ENTRIES
        );

        let elsewhere = entry(&other, max + 1);
        assert_eq!(b.call_log.append(&elsewhere, kept()).await, Ok(true));
        assert_eq!(all_requests(b, &other, 10).await, [as_request(&elsewhere)]);
    }

    /// An account's notifications across its calls, or one call's, newest first, filtered by
    /// level and by a window of times (bounds included), page by page; never another
    /// account's, never a request.
    pub async fn notifications_are_listed_by_call_and_by_account_with_filters(b: &Backend) {
        use LogLevel::{Error, Warning};
        let (x, y) = (AccountSid::generate(), AccountSid::generate());
        let (one, two, theirs) = (
            CallSid::generate(),
            CallSid::generate(),
            CallSid::generate(),
        );
        let (d0, d1, d2) = (DAY, DAY + DAY_MS, DAY + 2 * DAY_MS);
        let xs = vec![
            notice(&one, &x, d0 + HOUR, Error, 11200),
            notice(&two, &x, d0 + 2 * HOUR, Warning, 15003),
            // Two calls' notifications in the same millisecond: an index page may end between
            // them.
            notice(&one, &x, d1 + HOUR, Error, 11205),
            notice(&two, &x, d1 + HOUR, Error, 11200),
            notice(&one, &x, d1 + 2 * HOUR, Warning, 13227),
            notice(&two, &x, d2 + HOUR, Warning, 12300),
            notice(&one, &x, d2 + 3 * HOUR, Error, 11750),
            notice(&two, &x, d2 + 5 * HOUR, Error, 21220),
        ];
        let ys = vec![
            notice(&theirs, &y, d1 + HOUR, Error, 11200),
            notice(&theirs, &y, d0, Warning, 13227),
        ];
        let requests = vec![
            request(&one, &x, d1 + HOUR, RequestKind::Rcml, Some(500)),
            request(&two, &x, d2 + HOUR, RequestKind::Rcml, None),
            request(&theirs, &y, d1 + HOUR, RequestKind::Rcml, Some(200)),
        ];
        append_all(b, &xs).await;
        append_all(b, &ys).await;
        append_all(b, &requests).await;

        let everything = NotificationFilter::default();
        let of = |call: &CallSid| {
            let call = call.clone();
            move |n: &Notification| n.call_sid == call
        };
        let all_x = notifications_newest_first(&xs, |_| true);
        assert_eq!(all_x.len(), 8);
        assert_eq!(all_notifications(b, &x, None, &everything, 50).await, all_x);
        assert_eq!(
            all_notifications(b, &y, None, &everything, 50).await,
            notifications_newest_first(&ys, |_| true)
        );
        assert_eq!(
            all_notifications(b, &x, Some(&one), &everything, 50).await,
            notifications_newest_first(&xs, of(&one))
        );
        assert_eq!(
            all_notifications(b, &x, Some(&two), &everything, 50).await,
            notifications_newest_first(&xs, of(&two))
        );
        assert!(
            all_notifications(b, &x, Some(&theirs), &everything, 50)
                .await
                .is_empty(),
            "another account's call"
        );
        assert!(
            all_notifications(b, &AccountSid::generate(), None, &everything, 50)
                .await
                .is_empty()
        );

        // Filters: the level; a window whose bounds are notifications' own times; a day.
        for level in [Error, Warning] {
            let filter = NotificationFilter {
                level: Some(level),
                ..NotificationFilter::default()
            };
            assert_eq!(
                all_notifications(b, &x, None, &filter, 50).await,
                notifications_newest_first(&xs, |n| n.level == level),
                "{level:?}"
            );
            assert_eq!(
                all_notifications(b, &x, Some(&two), &filter, 50).await,
                notifications_newest_first(&xs, |n| n.level == level && n.call_sid == two),
                "{level:?} of a call"
            );
        }
        let window = NotificationFilter {
            level: None,
            from: Some(at(d1 + HOUR)),
            to: Some(at(d2 + HOUR)),
        };
        let in_window = |n: &Notification| (d1 + HOUR..=d2 + HOUR).contains(&n.at.millis());
        let windowed = all_notifications(b, &x, None, &window, 50).await;
        assert_eq!(windowed, notifications_newest_first(&xs, in_window));
        assert_eq!(windowed.len(), 4, "both bounds included");
        assert_eq!(
            all_notifications(b, &x, Some(&one), &window, 50).await,
            notifications_newest_first(&xs, |n| in_window(n) && n.call_sid == one)
        );
        let second_day = NotificationFilter {
            level: Some(Error),
            from: Some(at(d1)),
            to: Some(at(d1 + DAY_MS - 1)),
        };
        assert_eq!(
            all_notifications(b, &x, None, &second_day, 50).await,
            notifications_newest_first(&xs, |n| {
                n.level == Error && n.at.millis() / DAY_MS == d1 / DAY_MS
            })
        );
        let after_all = NotificationFilter {
            from: Some(at(d2 + 5 * HOUR + 1)),
            ..NotificationFilter::default()
        };
        assert!(
            all_notifications(b, &x, None, &after_all, 50)
                .await
                .is_empty()
        );

        // Pages of two visit every notification once; so do filtered ones, and backward pages.
        // (Sizes 1 and 5 end a page between the two of the same millisecond.)
        for size in [1, 2, 3, 5] {
            assert_eq!(
                all_notifications(b, &x, None, &everything, size).await,
                all_x,
                "page size {size}"
            );
        }
        let errors = NotificationFilter {
            level: Some(Error),
            ..NotificationFilter::default()
        };
        assert_eq!(
            all_notifications(b, &x, None, &errors, 2).await,
            notifications_newest_first(&xs, |n| n.level == Error)
        );
        assert_eq!(
            all_notifications(b, &x, Some(&one), &everything, 1).await,
            notifications_newest_first(&xs, of(&one))
        );
        let back = b
            .call_log
            .notifications(
                &x,
                None,
                &everything,
                &page(2, Some(notification_position(&all_x[5])), true),
            )
            .await
            .unwrap();
        assert_eq!(back.items, all_x[3..5]);
        let back = b
            .call_log
            .notifications(
                &x,
                None,
                &everything,
                &page(3, Some(notification_position(&all_x[1])), true),
            )
            .await
            .unwrap();
        assert_eq!(back.items, all_x[..1]);
        assert_eq!(back.more, None);

        // One notification, by its call and sid.
        let mine = as_notification(&xs[0]);
        let twos = as_notification(&xs[1]);
        assert_eq!(
            b.call_log.notification(&one, &mine.sid).await.unwrap(),
            Some(mine.clone())
        );
        assert_eq!(
            b.call_log.notification(&two, &twos.sid).await.unwrap(),
            Some(twos.clone())
        );
        assert_eq!(
            b.call_log.notification(&one, &twos.sid).await.unwrap(),
            None
        );
        assert_eq!(
            b.call_log.notification(&two, &mine.sid).await.unwrap(),
            None
        );
        assert_eq!(
            b.call_log
                .notification(&one, &NotificationSid::generate())
                .await
                .unwrap(),
            None
        );

        // Requests are not notifications, nor notifications requests.
        for call in [&one, &two, &theirs] {
            assert_eq!(
                all_requests(b, call, 10).await,
                requests_newest_first(
                    &requests
                        .iter()
                        .filter(|r| r.call_sid() == call)
                        .cloned()
                        .collect::<Vec<_>>()
                )
            );
        }
    }
}

use call_log::{
    a_calls_log_is_bounded, a_calls_requests_are_listed_newest_first_page_by_page,
    notifications_are_listed_by_call_and_by_account_with_filters,
    the_same_entry_twice_is_one_entry,
};

mod call_log_contract {
    use super::*;
    contract!(
        a_calls_requests_are_listed_newest_first_page_by_page,
        the_same_entry_twice_is_one_entry,
        a_calls_log_is_bounded,
        notifications_are_listed_by_call_and_by_account_with_filters,
    );
}

// ---------------------------------------------------------------- phone numbers

mod numbers {
    use teleapi_domain::number::{IncomingNumber, NumberChanges, NumberFilter};
    use teleapi_domain::paging::PageRequest;
    use teleapi_domain::{AccountSid, Form, Timestamp};
    use teleapi_ports::InsertError;
    use teleapi_tests::Backend;

    fn number(account: &AccountSid, phone: &str, at: i64) -> IncomingNumber {
        let body = format!(
            "PhoneNumber={}&VoiceUrl=https%3A%2F%2Fapp.example.com%2Fvoice",
            phone.replace('+', "%2B")
        );
        IncomingNumber::parse_create(
            account.clone(),
            &Form::parse(body.as_bytes()).unwrap(),
            Default::default(),
            Timestamp::from_millis(at),
        )
        .unwrap()
    }

    /// A number is found by its sid and by the number called; its `PhoneNumber` is taken once
    /// in the deployment, whichever account asks, until it is deleted.
    pub async fn a_number_is_unique_and_found_both_ways(b: &Backend) {
        let s = &b.numbers;
        let (one, other) = (AccountSid::generate(), AccountSid::generate());
        // Each backend has tables of its own: the number is free.
        let phone = "+15551230000";
        let first = number(&one, phone, 1_000);
        s.insert_number(&first).await.unwrap();
        assert_eq!(s.number(&first.sid).await.unwrap().as_ref(), Some(&first));
        assert_eq!(s.number_called(phone).await.unwrap().as_ref(), Some(&first));
        assert_eq!(s.number_called("+15550000000").await.unwrap(), None);
        let taken = number(&other, phone, 2_000);
        assert_eq!(
            s.insert_number(&taken).await,
            Err(InsertError::AlreadyExists)
        );
        assert_eq!(
            s.number(&taken.sid).await.unwrap(),
            None,
            "nothing of it was written"
        );

        // Updates are conditional on the version.
        let changes = NumberChanges::parse_update(
            &Form::parse(b"FriendlyName=Front&VoiceUrl=").unwrap(),
            Default::default(),
        )
        .unwrap();
        let changed = changes.applied_to(&first, Timestamp::from_millis(3_000));
        assert!(s.update_number(&changed, first.version).await.unwrap());
        assert!(!s.update_number(&changed, first.version).await.unwrap());
        assert_eq!(
            s.number_called(phone).await.unwrap().as_ref(),
            Some(&changed)
        );

        // Deletion is conditional too, and frees the number for anyone.
        assert!(!s.delete_number(&changed, first.version).await.unwrap());
        assert!(s.delete_number(&changed, changed.version).await.unwrap());
        assert_eq!(s.number(&first.sid).await.unwrap(), None);
        assert_eq!(s.number_called(phone).await.unwrap(), None);
        assert!(!s.delete_number(&changed, changed.version).await.unwrap());
        s.insert_number(&taken).await.unwrap();
        assert_eq!(
            s.number_called(phone).await.unwrap().map(|n| n.account_sid),
            Some(other)
        );
    }

    /// An account's numbers, newest first, page by page and filtered; never another's.
    pub async fn numbers_are_listed_newest_first_by_account(b: &Backend) {
        let s = &b.numbers;
        let (mine, theirs) = (AccountSid::generate(), AccountSid::generate());
        let base = 15_550_000_000u64;
        let mut created = Vec::new();
        for i in 0..5u64 {
            let n = number(
                &mine,
                &format!("+{}", base + i),
                1_000 + i64::try_from(i).unwrap(),
            );
            s.insert_number(&n).await.unwrap();
            created.push(n);
        }
        s.insert_number(&number(&theirs, &format!("+{}", base + 7), 999))
            .await
            .unwrap();
        let first = s
            .list_numbers(
                &mine,
                &NumberFilter::default(),
                &PageRequest {
                    size: 3,
                    after: None,
                    backward: false,
                },
            )
            .await
            .unwrap();
        let sids: Vec<_> = first.items.iter().map(|n| n.sid.clone()).collect();
        let newest: Vec<_> = created
            .iter()
            .rev()
            .take(3)
            .map(|n| n.sid.clone())
            .collect();
        assert_eq!(sids, newest);
        let rest = s
            .list_numbers(
                &mine,
                &NumberFilter::default(),
                &PageRequest {
                    size: 3,
                    after: first.more.clone(),
                    backward: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 2);
        assert_eq!(rest.items[1].sid, created[0].sid);
        let filter = NumberFilter {
            phone_number: Some(format!("{}", base + 3)),
            friendly_name: None,
        };
        let found = s
            .list_numbers(
                &mine,
                &filter,
                &PageRequest {
                    size: 50,
                    after: None,
                    backward: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(found.items, vec![created[3].clone()]);
    }
}

use numbers::{a_number_is_unique_and_found_both_ways, numbers_are_listed_newest_first_by_account};

mod number_contract {
    use super::*;
    contract!(
        a_number_is_unique_and_found_both_ways,
        numbers_are_listed_newest_first_by_account,
    );
}

// ---------------------------------------------------------------- call queues

mod queues {
    use teleapi_domain::paging::PageRequest;
    use teleapi_domain::queue::{CallQueue, QueueChanges, Waiting};
    use teleapi_domain::{AccountSid, Call, CallStatus, Form, QueueSid, Timestamp};
    use teleapi_ports::{CallWrite, InsertError};
    use teleapi_tests::{Backend, account, call};

    fn queue(account: &AccountSid, name: &str, at: i64) -> CallQueue {
        let body = format!("FriendlyName={name}&MaxSize=20");
        CallQueue::parse_create(
            account.clone(),
            &Form::parse(body.as_bytes()).unwrap(),
            Timestamp::from_millis(at),
        )
        .unwrap()
    }

    /// A queue is its account's by name: created once, changed and deleted under its version,
    /// listed newest first, never another account's.
    pub async fn a_queue_is_its_accounts_by_name(b: &Backend) {
        let s = &b.queues;
        let (mine, theirs) = (AccountSid::generate(), AccountSid::generate());
        let support = queue(&mine, "support", 1_000);
        s.insert_call_queue(&support).await.unwrap();
        assert_eq!(
            s.call_queue(&support.sid).await.unwrap().as_ref(),
            Some(&support)
        );
        assert_eq!(
            s.insert_call_queue(&queue(&mine, "support", 2_000)).await,
            Err(InsertError::AlreadyExists),
            "a name is one queue of the account"
        );
        assert_eq!(
            s.call_queue(&support.sid).await.unwrap().as_ref(),
            Some(&support),
            "the second creation wrote nothing"
        );
        // Another account's queue of the same name is another queue.
        let same_name = queue(&theirs, "support", 1_500);
        assert_ne!(same_name.sid, support.sid);
        s.insert_call_queue(&same_name).await.unwrap();

        let bigger = QueueChanges::parse_update(&Form::parse(b"MaxSize=200").unwrap())
            .unwrap()
            .applied_to(&support, Timestamp::from_millis(3_000))
            .unwrap()
            .unwrap();
        assert!(s.update_call_queue(&bigger, support.version).await.unwrap());
        assert!(!s.update_call_queue(&bigger, support.version).await.unwrap());
        assert_eq!(
            s.call_queue(&support.sid)
                .await
                .unwrap()
                .map(|q| q.max_size),
            Some(200)
        );

        let sales = queue(&mine, "sales", 4_000);
        s.insert_call_queue(&sales).await.unwrap();
        let first = s
            .list_call_queues(
                &mine,
                &PageRequest {
                    size: 1,
                    after: None,
                    backward: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(first.items, vec![sales.clone()]);
        let rest = s
            .list_call_queues(
                &mine,
                &PageRequest {
                    size: 5,
                    after: first.more.clone(),
                    backward: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(rest.items, vec![bigger.clone()]);

        assert!(
            !s.delete_call_queue(&support.sid, support.version)
                .await
                .unwrap()
        );
        assert!(
            s.delete_call_queue(&support.sid, bigger.version)
                .await
                .unwrap()
        );
        assert_eq!(s.call_queue(&support.sid).await.unwrap(), None);
        assert!(
            !s.delete_call_queue(&support.sid, bigger.version)
                .await
                .unwrap()
        );
    }

    async fn wait_in(b: &Backend, call: &Call, waiting: Option<Waiting>) -> Call {
        let next = Call {
            queue: waiting,
            version: call.version + 1,
            ..call.clone()
        };
        let write = CallWrite {
            call: &next,
            expected_version: Some(call.version),
            intent: None,
            idempotency: None,
            now: Timestamp::now(),
        };
        b.calls.write_call(write).await.unwrap();
        next
    }

    async fn members(b: &Backend, queue: &QueueSid) -> Vec<(teleapi_domain::CallSid, i64)> {
        let mut found: Vec<_> = b
            .queues
            .members(queue)
            .await
            .unwrap()
            .into_iter()
            .map(|m| {
                assert_eq!(m.queue_sid, *queue);
                (m.call_sid, m.date_enqueued.millis())
            })
            .collect();
        found.sort_by_key(|(_, at)| *at);
        found
    }

    /// A queue's members are the calls that wait in it and have not ended, with when they
    /// joined; a call that leaves, or ends, is no longer one.
    pub async fn a_queues_members_are_the_calls_waiting_in_it(b: &Backend) {
        let owner = account(b, None).await;
        let support = QueueSid::named(&owner.sid, "support");
        let sales = QueueSid::named(&owner.sid, "sales");
        let now = Timestamp::now();
        let mut calls = Vec::new();
        for (n, queue) in [(1, &support), (2, &support), (3, &sales)] {
            let placed = call(b, &owner.sid, CallStatus::InProgress, now).await;
            let waiting = Waiting {
                sid: queue.clone(),
                since: Timestamp::from_millis(1_000 * n),
            };
            let waits = wait_in(b, &placed, Some(waiting.clone())).await;
            assert_eq!(
                b.calls.call(&waits.sid).await.unwrap().unwrap().queue,
                Some(waiting),
                "the call keeps where it waits"
            );
            calls.push(waits);
        }
        assert_eq!(
            members(b, &support).await,
            vec![(calls[0].sid.clone(), 1_000), (calls[1].sid.clone(), 2_000)]
        );
        assert_eq!(
            members(b, &sales).await,
            vec![(calls[2].sid.clone(), 3_000)]
        );

        // One leaves its queue; another's call ends while it still says it waits.
        wait_in(b, &calls[0], None).await;
        let mut ended = calls[2].clone();
        ended.status = CallStatus::Completed;
        wait_in(b, &ended, ended.queue.clone()).await;
        assert_eq!(
            members(b, &support).await,
            vec![(calls[1].sid.clone(), 2_000)]
        );
        assert_eq!(members(b, &sales).await, Vec::new());
        assert_eq!(
            members(b, &QueueSid::named(&owner.sid, "nobody")).await,
            Vec::new()
        );
    }
}

use queues::{a_queue_is_its_accounts_by_name, a_queues_members_are_the_calls_waiting_in_it};

mod queue_contract {
    use super::*;
    contract!(
        a_queue_is_its_accounts_by_name,
        a_queues_members_are_the_calls_waiting_in_it,
    );
}

// ---------------------------------------------------------------- the key pool

mod key_pool {
    use std::time::Duration;

    use teleapi_domain::{AccountSid, Timestamp};
    use teleapi_ports::key_pool::{LEASE, PoolSize, lend};
    use teleapi_tests::Backend;

    /// A slot's key is lent to one account at a time, renewed by that account, free again when
    /// its loan ends; a key is in the pool once; only a last slot nobody holds is taken out.
    pub async fn a_key_of_the_pool_is_lent_to_one_account_at_a_time(b: &Backend) {
        let pool = b.key_pool.as_ref();
        let now = Timestamp::now();
        let (a, x, y) = (
            AccountSid::generate(),
            AccountSid::generate(),
            AccountSid::generate(),
        );
        let later = |secs| now.plus(Duration::from_secs(secs));
        assert_eq!(pool.pool_size().await.unwrap(), 0);
        assert_eq!(pool.lend_slot(0, &a, now, later(360)).await.unwrap(), None);
        assert_eq!(pool.take_last_key(now).await.unwrap(), None, "empty");

        assert_eq!(pool.add_key("k0", None).await.unwrap(), 0);
        assert_eq!(pool.add_key("k1", Some((&x, later(10)))).await.unwrap(), 1);
        assert_eq!(
            pool.add_key("k0", None).await.unwrap(),
            0,
            "once in the pool"
        );
        assert_eq!(pool.pool_size().await.unwrap(), 2);

        let lent = |slot, account, at| async move {
            pool.lend_slot(
                slot,
                account,
                at,
                Timestamp::from_millis(at.millis() + 360_000),
            )
            .await
            .unwrap()
        };
        assert_eq!(lent(0, &a, now).await.as_deref(), Some("k0"));
        assert_eq!(lent(0, &y, now).await, None, "lent to a");
        assert_eq!(
            lent(0, &a, later(100)).await.as_deref(),
            Some("k0"),
            "renewed"
        );
        assert_eq!(lent(0, &y, later(400)).await, None, "renewed until 460 s");
        assert_eq!(
            lent(1, &a, now).await,
            None,
            "lent to x (handed on with it)"
        );
        assert_eq!(
            lent(1, &x, now).await.as_deref(),
            Some("k1"),
            "x's own loan"
        );
        assert_eq!(lent(2, &a, now).await, None, "no such slot");

        // x's loan runs to 360 s: the last slot is not taken out before.
        assert_eq!(pool.take_last_key(later(300)).await.unwrap(), None);
        assert_eq!(pool.pool_size().await.unwrap(), 2);
        assert_eq!(
            pool.take_last_key(later(361)).await.unwrap().as_deref(),
            Some("k1")
        );
        assert_eq!(pool.pool_size().await.unwrap(), 1);
        assert_eq!(lent(1, &x, later(361)).await, None, "gone from the pool");
        assert_eq!(
            pool.add_key("k1", None).await.unwrap(),
            1,
            "back at the end"
        );

        // Through the lending rule: each account its own key while the pool has one free.
        let size = PoolSize::default();
        let at = later(1000);
        let first = lend(pool, &size, &x, at, LEASE).await.unwrap();
        let second = lend(pool, &size, &y, at, LEASE).await.unwrap();
        assert!(first.is_some() && second.is_some() && first != second);
        assert_eq!(
            lend(pool, &size, &a, at, LEASE).await.unwrap(),
            None,
            "full"
        );
        assert_eq!(
            lend(pool, &size, &x, at, LEASE).await.unwrap(),
            first,
            "its own"
        );
    }
}

use key_pool::a_key_of_the_pool_is_lent_to_one_account_at_a_time;

mod key_pool_contract {
    use super::*;
    contract!(a_key_of_the_pool_is_lent_to_one_account_at_a_time);
}
