//! How worker events move a call along: the call state machine, and what each event asks the
//! control plane to do (a StatusCallback, a fallback request, ending a call whose RCML failed).
//! Pure: the call-events function reads the call, asks [`progress`], and writes what it says.

use std::time::Duration;

use crate::call::amd_callback;
use crate::call::fallback;
use crate::call::status_callback;
use crate::call::{Call, CallStatus, Instructions};
use crate::call::{SystemAction, plan_system};
use crate::intent::Intent;
use crate::recording::{Recording, RecordingStatus};
use crate::sid::{CallSid, IntentSid};
use crate::stream::{Stream, StreamStatus};
use crate::time::Timestamp;
use crate::webhook::CallbackEvent;
use crate::wire::callback::CallbackJob;
use crate::wire::event::{EVENT_VERSION, Event, EventKind};
/// What to write for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The call as it will be written.
    pub call: Call,
    /// The version the stored call must still have; `None`: the call is new.
    pub expected_version: Option<u64>,
    /// A request to make to the application, queued before the write.
    pub callback: Option<CallbackJob>,
    /// An intent of the control plane's own, recorded with the write and sent after it.
    pub intent: Option<Intent>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Apply(Box<Progress>),
    /// Nothing to do, and why (duplicate, stale, illegal, unknown call).
    Ignore(String),
}

/// Live statuses in the order a call goes through them; every final status comes last.
fn rank(status: CallStatus) -> u8 {
    match status {
        CallStatus::Queued => 0,
        CallStatus::Ringing => 1,
        CallStatus::InProgress => 2,
        _ => 3,
    }
}

/// Whether a worker may move a call from `current` to `reported`. Forward only; one final status
/// may replace another only until the worker has reported the end itself (a hang-up request sets
/// a provisional final status, which the worker's report confirms or corrects).
pub fn may_move(current: CallStatus, reported: CallStatus, end_reported: bool) -> bool {
    if current.is_final() && reported.is_final() {
        return !end_reported;
    }
    rank(reported) > rank(current)
}

fn ignore(message: String) -> Verdict {
    Verdict::Ignore(message)
}

/// The event that a status is announced as, to StatusCallbackEvent subscribers.
fn callback_event(status: CallStatus) -> CallbackEvent {
    match status {
        CallStatus::Queued => CallbackEvent::Initiated,
        CallStatus::Ringing => CallbackEvent::Ringing,
        CallStatus::InProgress => CallbackEvent::Answered,
        _ => CallbackEvent::Completed,
    }
}

/// A StatusCallback for `event` if the call subscribed to it, numbering it and counting it on
/// `next`.
fn announce(
    next: &mut Call,
    event: CallbackEvent,
    event_seq: u64,
    at: Timestamp,
) -> Option<CallbackJob> {
    if !next.instructions.status_callback_events.contains(event) {
        return None;
    }
    let mut job = status_callback(next, event_seq, next.callback_seq, at)?;
    if event == CallbackEvent::Initiated {
        // Twilio announces the initiated event with CallStatus=initiated.
        job.parameters
            .insert("CallStatus".into(), "initiated".into());
    }
    next.callback_seq += 1;
    Some(job)
}

/// Decides what `event` does to `current` (the call as read; `None` if unknown). Command events
/// are not call events: they settle intents, and get `Ignore` here.
/// `listing_shards` is the account's, for a call the event creates.
pub fn progress(
    current: Option<&Call>,
    event: &Event,
    now: Timestamp,
    retention: Duration,
    intent_sid: IntentSid,
    listing_shards: u8,
) -> Verdict {
    let at = Timestamp::from_millis(event.timestamp);
    let seq = match &event.kind {
        EventKind::CallInitiated { seq, .. }
        | EventKind::CallStatus { seq, .. }
        | EventKind::RcmlFailed { seq, .. }
        | EventKind::CallAnsweredBy { seq, .. }
        | EventKind::CallEnqueued { seq, .. }
        | EventKind::CallDequeued { seq, .. } => *seq,
        EventKind::CommandApplied { .. } | EventKind::CommandRejected { .. } => {
            return ignore("command events settle intents".into());
        }
        EventKind::RecordingStarted { .. }
        | EventKind::RecordingChanged { .. }
        | EventKind::StreamStarted { .. }
        | EventKind::StreamStopped { .. }
        | EventKind::StreamFailed { .. } => {
            return ignore("recording and stream events have their own numbers".into());
        }
        EventKind::HttpRequest { .. } | EventKind::CallNotification { .. } => {
            return ignore("requests and notifications go to the call's log".into());
        }
        EventKind::QueueAgentWaiting { .. } => {
            return ignore("an agent waiting takes a caller, and changes nothing itself".into());
        }
    };
    if let Some(call) = current
        && seq <= call.event_seq
    {
        return ignore(format!(
            "{} #{seq} already applied (last #{}): duplicate or stale",
            event.name(),
            call.event_seq
        ));
    }

    match (&event.kind, current) {
        (
            EventKind::CallInitiated {
                account_sid,
                direction,
                from,
                to,
                parent_call_sid,
                command_queue_url,
                worker_id,
                url,
                method,
                fallback_url,
                fallback_method,
                status_callback,
                status_callback_method,
                ..
            },
            None,
        ) => {
            let call = Call {
                sid: event.call_sid.clone(),
                account_sid: account_sid.clone(),
                parent_call_sid: parent_call_sid.clone(),
                from: from.clone(),
                to: to.clone(),
                direction: *direction,
                status: CallStatus::Queued,
                muted: false,
                // An inbound call: its number's settings (its StatusCallback told of the end
                // only, as Twilio's numbers are).
                instructions: Instructions {
                    url: url.clone(),
                    method: method.unwrap_or_default(),
                    fallback_url: fallback_url.clone(),
                    fallback_method: fallback_method.unwrap_or_default(),
                    status_callback: status_callback.clone(),
                    status_callback_method: status_callback_method.unwrap_or_default(),
                    ..Instructions::default()
                },
                command_queue: Some(command_queue_url.clone()),
                worker: worker_id.clone(),
                seq: 0,
                version: 1,
                event_seq: seq,
                callback_seq: 0,
                end_reported: false,
                date_created: at,
                date_updated: now,
                start_time: None,
                end_time: None,
                duration: None,
                listing_shard: crate::call::shard_of(&event.call_sid, listing_shards),
                recording: None,
                streams: Vec::new(),
                answered_by: None,
                queue: None,
            };
            Verdict::Apply(Box::new(Progress {
                call,
                expected_version: None,
                callback: None,
                intent: None,
            }))
        }
        (
            EventKind::CallInitiated {
                command_queue_url,
                worker_id,
                ..
            },
            Some(call),
        ) => {
            let mut next = bumped(call, seq);
            next.command_queue = Some(command_queue_url.clone());
            next.worker = worker_id.clone();
            let callback = announce(&mut next, CallbackEvent::Initiated, seq, at);
            apply(call, next, callback, None, now)
        }
        (
            EventKind::CallStatus {
                status,
                start_time,
                end_time,
                duration,
                ..
            },
            Some(call),
        ) => {
            if !may_move(call.status, *status, call.end_reported) {
                return ignore(format!(
                    "illegal transition {} -> {} for {}",
                    call.status.as_str(),
                    status.as_str(),
                    call.sid
                ));
            }
            let mut next = bumped(call, seq);
            next.status = *status;
            if *status == CallStatus::InProgress || (status.is_final() && start_time.is_some()) {
                next.start_time = start_time
                    .map(Timestamp::from_millis)
                    .or(next.start_time)
                    .or(Some(at));
            }
            if status.is_final() {
                let end = end_time.map_or(at, Timestamp::from_millis);
                next.end_time = Some(end);
                next.end_reported = true;
                next.queue = None;
                next.duration = match (duration, next.start_time) {
                    (Some(seconds), _) => Some(*seconds),
                    (None, Some(start)) if *status == CallStatus::Completed => {
                        Some(end.seconds_since(start))
                    }
                    _ => None,
                };
            }
            let callback = announce(&mut next, callback_event(*status), seq, at);
            apply(call, next, callback, None, now)
        }
        (
            EventKind::RcmlFailed {
                url,
                error_code,
                detail,
                ..
            },
            Some(call),
        ) => {
            if call.status.is_final() {
                return ignore(format!("rcml.failed for {} which has ended", call.sid));
            }
            let fallback_url = call.instructions.fallback_url.as_ref();
            let failed_fallback =
                fallback_url.is_some_and(|f| f.as_str().split('#').next() == Some(url.as_str()));
            if !failed_fallback && let Some(job) = fallback(call, seq, *error_code, url) {
                return apply(call, bumped(call, seq), Some(job), None, now);
            }
            let reason = format!(
                "RCML failed at {url}: error {error_code} ({detail}); {}",
                if failed_fallback {
                    "the FallbackUrl failed too"
                } else {
                    "no FallbackUrl"
                }
            );
            match plan_system(
                call,
                &SystemAction::Fail { reason },
                intent_sid,
                now,
                retention,
            ) {
                Some(planned) => {
                    let mut next = planned.call;
                    next.event_seq = seq;
                    apply(call, next, None, Some(planned.intent), now)
                }
                None => ignore(format!("rcml.failed for {} which has ended", call.sid)),
            }
        }
        (
            EventKind::CallAnsweredBy {
                answered_by,
                machine_detection_duration,
                callback,
                ..
            },
            Some(call),
        ) => {
            let mut next = bumped(call, seq);
            next.answered_by = Some(*answered_by);
            let job = callback.as_ref().map(|callback| {
                amd_callback(
                    &next,
                    seq,
                    *answered_by,
                    *machine_detection_duration,
                    callback,
                )
            });
            apply(call, next, job, None, now)
        }
        (EventKind::CallEnqueued { queue_sid, .. }, Some(call)) => {
            let mut next = bumped(call, seq);
            if call.status.is_final() {
                // Its end came first (the API hung it up): it waits nowhere.
                return apply(call, next, None, None, now);
            }
            next.queue = Some(crate::queue::Waiting {
                sid: queue_sid.clone(),
                since: at,
            });
            apply(call, next, None, None, now)
        }
        (EventKind::CallDequeued { queue_sid, .. }, Some(call)) => {
            let mut next = bumped(call, seq);
            if next.queue.as_ref().is_some_and(|q| q.sid == *queue_sid) {
                next.queue = None;
            }
            apply(call, next, None, None, now)
        }
        (_, None) => ignore(format!(
            "{} for unknown call {}",
            event.name(),
            event.call_sid
        )),
        (
            EventKind::CommandApplied { .. }
            | EventKind::CommandRejected { .. }
            | EventKind::RecordingStarted { .. }
            | EventKind::RecordingChanged { .. }
            | EventKind::StreamStarted { .. }
            | EventKind::StreamStopped { .. }
            | EventKind::StreamFailed { .. }
            | EventKind::HttpRequest { .. }
            | EventKind::CallNotification { .. }
            | EventKind::QueueAgentWaiting { .. },
            Some(_),
        ) => ignore("not an event of the call's progress".into()),
    }
}

/// Ends `call`, which the platform lost (its worker's lease ran out; no worker ever took it):
/// `completed` if it was answered, else `failed`, as Twilio reports such a call; ended at
/// `last_seen`, when it was last known alive (never before the call began), with the
/// StatusCallback a `completed` event sends, whose idempotency token is `{CallSid}-{why}`. The
/// end counts as reported: nothing a worker says later changes it. `None` if the call has
/// already ended.
pub fn drop_call(call: &Call, last_seen: Timestamp, now: Timestamp, why: &str) -> Option<Progress> {
    if call.status.is_final() {
        return None;
    }
    let mut next = call.clone();
    next.version += 1;
    next.end_reported = true;
    next.queue = None;
    let began = call.start_time.unwrap_or(call.date_created);
    let end = last_seen.max(began);
    next.end_time = Some(end);
    match call.start_time {
        Some(start) if call.status == CallStatus::InProgress => {
            next.status = CallStatus::Completed;
            next.duration = Some(end.seconds_since(start));
        }
        _ => next.status = CallStatus::Failed,
    }
    let mut callback = announce(&mut next, CallbackEvent::Completed, call.event_seq, now);
    if let Some(job) = &mut callback {
        // One per call, and apart from the ids of the worker's events.
        job.job_id = format!("{}-{why}", call.sid);
    }
    Some(Progress {
        call: next.updated_over(call, now),
        expected_version: Some(call.version),
        callback,
        intent: None,
    })
}

/// Twilio's "Recording failed": what a recording the control plane fails in its worker's place
/// ends with.
pub const RECORDING_LOST: u32 = 16_105;

/// The events a worker that lost `call` can no longer send, for the control plane to send in
/// its place: every running stream failed (`why` is its `StreamError`), and the call's
/// `recording` (the one it names), unless final, failed: its media went with the worker.
pub fn lost_media(
    call: &Call,
    recording: Option<&Recording>,
    why: &str,
    now: Timestamp,
) -> Vec<(String, Event)> {
    let mut events: Vec<(String, Event)> = call
        .streams
        .iter()
        .filter(|s| s.status == StreamStatus::InProgress)
        .map(|s| stream_failed(&call.sid, s, why, now))
        .collect();
    let recording =
        recording.filter(|r| call.recording.as_ref() == Some(&r.sid) && !r.status.is_final());
    events.extend(recording.map(|r| recording_failed(r, now)));
    events
}

/// `stream.failed` for `stream` of the call `call_sid`, as its worker would report it, and its
/// deduplication id. Numbered after the last event applied to the stream, so that a report of
/// the worker's own still on its way (it comes first in the call's group) makes it a duplicate.
pub fn stream_failed(
    call_sid: &CallSid,
    stream: &Stream,
    why: &str,
    now: Timestamp,
) -> (String, Event) {
    let kind = EventKind::StreamFailed {
        seq: stream.event_seq + 1,
        stream_sid: stream.spec.stream_sid.clone(),
        error: why.to_owned(),
    };
    (
        format!("{}-failed", stream.spec.stream_sid),
        reported(call_sid, kind, now),
    )
}

/// `recording.status` `failed` ([`RECORDING_LOST`]) for `recording`, as its worker would report
/// it, and its deduplication id; numbered as [`stream_failed`] is.
pub fn recording_failed(recording: &Recording, now: Timestamp) -> (String, Event) {
    let kind = EventKind::RecordingChanged {
        seq: recording.event_seq + 1,
        recording_sid: recording.sid.clone(),
        status: RecordingStatus::Failed,
        duration: None,
        media_url: None,
        error_code: Some(RECORDING_LOST),
    };
    (
        format!("{}-failed", recording.sid),
        reported(&recording.call_sid, kind, now),
    )
}

fn reported(call_sid: &CallSid, kind: EventKind, now: Timestamp) -> Event {
    Event {
        version: EVENT_VERSION,
        call_sid: call_sid.clone(),
        timestamp: now.millis(),
        kind,
    }
}

/// `call` with the event counted and the version moved on.
fn bumped(call: &Call, seq: u64) -> Call {
    let mut next = call.clone();
    next.event_seq = seq;
    next.version += 1;
    next
}

fn apply(
    call: &Call,
    next: Call,
    callback: Option<CallbackJob>,
    intent: Option<Intent>,
    now: Timestamp,
) -> Verdict {
    Verdict::Apply(Box::new(Progress {
        call: next.updated_over(call, now),
        expected_version: Some(call.version),
        callback,
        intent,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Direction;
    use crate::sid::{AccountSid, CallSid};
    use crate::webhook::{StatusCallbackEvents, WebhookUrl};
    use CallStatus::*;

    #[test]
    fn the_state_machine_moves_forward_only() {
        for (from, to, end_reported, allowed) in [
            (Queued, Ringing, false, true),
            (Queued, InProgress, false, true),
            (Ringing, InProgress, false, true),
            (InProgress, Completed, false, true),
            (Ringing, NoAnswer, false, true),
            (Queued, Busy, false, true),
            (Ringing, Ringing, false, false),
            (InProgress, Ringing, false, false),
            (InProgress, Queued, false, false),
            (Completed, InProgress, false, false),
            (Completed, Completed, false, true),
            (Canceled, Completed, false, true),
            (Completed, Completed, true, false),
            (Completed, Failed, true, false),
        ] {
            assert_eq!(
                may_move(from, to, end_reported),
                allowed,
                "{from:?} -> {to:?} ({end_reported})"
            );
        }
    }

    fn call(status: CallStatus) -> Call {
        let mut call = Call::inbound(
            AccountSid::generate(),
            "+15551230001".into(),
            "+15551230002".into(),
            Instructions::default(),
            status,
            Timestamp::from_millis(1_000),
        );
        call.instructions.status_callback =
            Some(WebhookUrl::trusted("https://app.example.com/cb".into()));
        call.instructions.status_callback_events = CallbackEvent::ALL
            .into_iter()
            .collect::<StatusCallbackEvents>();
        call.event_seq = 2;
        call
    }

    fn event(call_sid: &CallSid, kind: EventKind) -> Event {
        Event {
            version: 1,
            call_sid: call_sid.clone(),
            timestamp: 61_000,
            kind,
        }
    }

    fn run(current: Option<&Call>, event: &Event) -> Verdict {
        progress(
            current,
            event,
            Timestamp::from_millis(62_000),
            Duration::from_secs(60),
            IntentSid::generate(),
            1,
        )
    }

    #[test]
    fn a_status_event_moves_the_call_and_announces_it() {
        let current = call(InProgress);
        let completed = event(
            &current.sid,
            EventKind::CallStatus {
                seq: 3,
                status: Completed,
                start_time: None,
                end_time: None,
                duration: None,
            },
        );
        let Verdict::Apply(progress) = run(Some(&current), &completed) else {
            panic!("applied")
        };
        assert_eq!(progress.expected_version, Some(current.version));
        assert_eq!(
            (
                progress.call.status,
                progress.call.event_seq,
                progress.call.callback_seq
            ),
            (Completed, 3, 1)
        );
        assert_eq!(progress.call.duration, Some(60));
        assert!(progress.call.end_reported);
        let job = progress.callback.unwrap();
        assert_eq!(job.parameters["CallStatus"], "completed");
        assert_eq!(job.parameters["CallDuration"], "60");
        assert_eq!(job.parameters["SequenceNumber"], "0");
        assert_eq!(job.job_id, format!("{}-e3", current.sid));

        // The same event again, or an older one, changes nothing.
        let mut after = progress.call.clone();
        after.version += 1;
        assert!(matches!(run(Some(&after), &completed), Verdict::Ignore(_)));
        let stale = event(
            &current.sid,
            EventKind::CallStatus {
                seq: 2,
                status: Ringing,
                start_time: None,
                end_time: None,
                duration: None,
            },
        );
        assert!(matches!(run(Some(&current), &stale), Verdict::Ignore(_)));
        // An illegal transition is ignored.
        let backwards = event(
            &current.sid,
            EventKind::CallStatus {
                seq: 4,
                status: Ringing,
                start_time: None,
                end_time: None,
                duration: None,
            },
        );
        assert!(matches!(
            run(Some(&current), &backwards),
            Verdict::Ignore(_)
        ));
    }

    #[test]
    fn a_caller_waits_in_its_queue_until_it_leaves_or_ends() {
        let current = call(InProgress);
        let queue = crate::QueueSid::named(&current.account_sid, "support");
        let enqueued = event(
            &current.sid,
            EventKind::CallEnqueued {
                seq: 3,
                queue_sid: queue.clone(),
                queue: "support".into(),
            },
        );
        let Verdict::Apply(joined) = run(Some(&current), &enqueued) else {
            panic!("applied")
        };
        let waiting = crate::queue::Waiting {
            sid: queue.clone(),
            since: Timestamp::from_millis(61_000),
        };
        assert_eq!(joined.call.queue.as_ref(), Some(&waiting));
        assert!(joined.callback.is_none() && joined.intent.is_none());
        // Again, it is a duplicate.
        assert!(matches!(
            run(Some(&joined.call), &enqueued),
            Verdict::Ignore(_)
        ));

        // It leaves: it waits nowhere. A dequeue of another queue leaves it where it is.
        let left = |seq, sid: &crate::QueueSid| {
            event(
                &current.sid,
                EventKind::CallDequeued {
                    seq,
                    queue_sid: sid.clone(),
                },
            )
        };
        let other = crate::QueueSid::named(&current.account_sid, "sales");
        let Verdict::Apply(elsewhere) = run(Some(&joined.call), &left(4, &other)) else {
            panic!("applied")
        };
        assert_eq!(elsewhere.call.queue.as_ref(), Some(&waiting));
        let Verdict::Apply(gone) = run(Some(&joined.call), &left(4, &queue)) else {
            panic!("applied")
        };
        assert_eq!(gone.call.queue, None);

        // Its end takes it out of its queue, and an ended call joins none.
        let completed = event(
            &current.sid,
            EventKind::CallStatus {
                seq: 4,
                status: Completed,
                start_time: None,
                end_time: None,
                duration: None,
            },
        );
        let Verdict::Apply(ended) = run(Some(&joined.call), &completed) else {
            panic!("applied")
        };
        assert_eq!(
            (ended.call.queue.as_ref(), ended.call.waiting()),
            (None, None)
        );
        let late = event(
            &current.sid,
            EventKind::CallEnqueued {
                seq: 5,
                queue_sid: queue,
                queue: "support".into(),
            },
        );
        let Verdict::Apply(still) = run(Some(&ended.call), &late) else {
            panic!("applied")
        };
        assert_eq!(still.call.queue, None);
        let lost = drop_call(
            &joined.call,
            Timestamp::from_millis(70_000),
            Timestamp::from_millis(71_000),
            "lost",
        )
        .unwrap();
        assert_eq!(
            lost.call.queue, None,
            "a call its worker lost waits nowhere"
        );
    }

    #[test]
    fn unsubscribed_events_are_not_announced() {
        let mut current = call(Ringing);
        current.instructions.status_callback_events = StatusCallbackEvents::default();
        let answered = event(
            &current.sid,
            EventKind::CallStatus {
                seq: 3,
                status: InProgress,
                start_time: Some(50_000),
                end_time: None,
                duration: None,
            },
        );
        let Verdict::Apply(progress) = run(Some(&current), &answered) else {
            panic!("applied")
        };
        assert_eq!(progress.callback, None);
        assert_eq!(progress.call.callback_seq, 0);
        assert_eq!(
            progress.call.start_time,
            Some(Timestamp::from_millis(50_000))
        );
    }

    #[test]
    fn an_unknown_inbound_call_is_created_on_initiated() {
        let sid = CallSid::generate();
        let initiated = event(
            &sid,
            EventKind::CallInitiated {
                seq: 1,
                account_sid: AccountSid::generate(),
                direction: Direction::Inbound,
                from: "+15551230001".into(),
                to: "+15551230002".into(),
                parent_call_sid: None,
                command_queue_url: "https://sqs.example/worker-1.fifo".into(),
                worker_id: None,
                url: Some(WebhookUrl::trusted("https://app.example.com/bob".into())),
                method: None,
                fallback_url: None,
                fallback_method: None,
                status_callback: None,
                status_callback_method: None,
            },
        );
        let Verdict::Apply(progress) = run(None, &initiated) else {
            panic!("applied")
        };
        assert_eq!(progress.expected_version, None);
        assert_eq!(progress.call.status, Queued);
        assert_eq!(
            progress.call.command_queue.as_deref(),
            Some("https://sqs.example/worker-1.fifo")
        );
        assert!(matches!(
            run(
                None,
                &event(
                    &sid,
                    EventKind::CallStatus {
                        seq: 2,
                        status: Ringing,
                        start_time: None,
                        end_time: None,
                        duration: None
                    }
                )
            ),
            Verdict::Ignore(_)
        ));
    }

    #[test]
    fn a_failed_rcml_falls_back_or_fails_the_call() {
        let mut current = call(InProgress);
        let failed = event(
            &current.sid,
            EventKind::RcmlFailed {
                seq: 3,
                url: "https://app.example.com/rcml".into(),
                error_code: 11200,
                detail: "HTTP 500".into(),
            },
        );
        let Verdict::Apply(progress) = run(Some(&current), &failed) else {
            panic!("applied")
        };
        assert_eq!(progress.call.status, Failed);
        let intent = progress.intent.unwrap();
        assert_eq!(
            intent
                .command
                .unwrap()
                .into_call()
                .unwrap()
                .parameters
                .status,
            Some(crate::HangupStatus::Failed)
        );
        assert!(intent.reason.unwrap().contains("no FallbackUrl"));

        current.instructions.fallback_url = Some(WebhookUrl::trusted(
            "https://app.example.com/fallback#rc=1".into(),
        ));
        let Verdict::Apply(progress) = run(Some(&current), &failed) else {
            panic!("applied")
        };
        assert_eq!(progress.call.status, InProgress);
        assert_eq!(progress.intent, None);
        let job = progress.callback.unwrap();
        assert_eq!(job.kind, crate::wire::callback::JobKind::Fallback);
        assert_eq!(job.parameters["ErrorCode"], "11200");
        assert_eq!(job.parameters["ErrorUrl"], "https://app.example.com/rcml");

        // When the fallback document itself fails, the call fails.
        let fallback_failed = event(
            &current.sid,
            EventKind::RcmlFailed {
                seq: 4,
                url: "https://app.example.com/fallback".into(),
                error_code: 12100,
                detail: "parse".into(),
            },
        );
        let Verdict::Apply(progress) = run(Some(&current), &fallback_failed) else {
            panic!("applied")
        };
        assert_eq!(progress.call.status, Failed);
        assert!(
            progress
                .intent
                .unwrap()
                .reason
                .unwrap()
                .contains("FallbackUrl failed too")
        );
    }
}
