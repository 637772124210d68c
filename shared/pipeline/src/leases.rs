//! When a media worker dies: the reconciler finds workers whose lease ran out (docs/messages.md,
//! "Worker events") and ends every call they owned, as the worker can no longer say how they
//! ended: each call's final status and its StatusCallback, its running streams and its
//! recording failed (the events the worker can no longer send, sent in its place on the events
//! queue), its unsettled intents failed with a reason naming the worker, and a notification
//! (15000) saying why it ended. Its rooms end too: everyone left in them leaves and each ends,
//! reported in its place in the same way. Then the worker is marked `expired`, and nothing it
//! says later is applied. Safe to run twice or to stop half-way: ended calls leave the worker's
//! index, and a worker is marked only once its calls are all ended and its rooms reported.

use crate::call_events::write_progress;
use crate::services::ReconcilerServices;
use crate::system_intents::{SystemOutcome, record_system_intent};
use teleapi_domain::ConferenceSid;
use teleapi_domain::IntentStatus;
use teleapi_domain::call::CallFilter;
use teleapi_domain::call::SystemAction;
use teleapi_domain::call::{drop_call, lost_media};
use teleapi_domain::call_log::{LogLevel, Problem};
use teleapi_domain::conference::{ConferenceStatus, lost_room};
use teleapi_domain::paging::PageRequest;
use teleapi_domain::wire::event::Event;
use teleapi_domain::worker::Worker;
use teleapi_domain::{Call, CallSid, Timestamp};
use teleapi_ports::insight::{note_or_warn, notification_entry};
use teleapi_ports::retry::Retry;
use teleapi_ports::{OutgoingMessage, QueueError, Settlement, StoreError};

/// Workers, and calls and rooms per worker, looked at per run; what is left waits for the next
/// run.
const WORKERS: usize = 20;
const CALLS: usize = 500;
const ROOMS: usize = 100;

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Workers marked expired (all their calls ended).
    pub workers: usize,
    /// Calls ended for them.
    pub calls: usize,
    /// Intents of those calls failed.
    pub intents: usize,
    /// Legs of those calls on other workers, hung up.
    pub legs: usize,
    /// Rooms of those workers, ended.
    pub rooms: usize,
}

impl std::ops::AddAssign for Swept {
    fn add_assign(&mut self, more: Self) {
        self.workers += more.workers;
        self.calls += more.calls;
        self.intents += more.intents;
        self.legs += more.legs;
        self.rooms += more.rooms;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Ends the calls of every worker whose lease ran out before `now`, and hangs up the legs
/// that other workers hold of those calls.
pub async fn end_expired_workers(
    services: &ReconcilerServices,
    now: Timestamp,
) -> Result<Swept, SweepError> {
    let workers = services.workers.as_ref();
    let mut swept = Swept::default();
    for worker in workers.expired_workers(now, WORKERS).await? {
        let live = services.calls.live_calls(&worker.id, CALLS).await?;
        for sid in &live {
            let (ended, failed) = end_call(services, &worker, sid, now).await?;
            swept.calls += usize::from(ended);
            swept.intents += failed;
            if ended {
                swept.legs += hang_up_legs(services, &worker, sid, now).await?;
            }
        }
        let rooms = services
            .conferences
            .live_conferences(&worker.id, ROOMS)
            .await?;
        for sid in &rooms {
            swept.rooms += usize::from(end_room(services, &worker, sid, now).await?);
        }
        // With calls or rooms left over, the next run goes on; the worker stays findable until
        // then.
        let done = live.len() < CALLS && rooms.len() < ROOMS;
        if done && workers.expire_worker(&worker.id, now).await? {
            tracing::warn!(worker_id = %worker.id, "worker lease expired: its calls were ended");
            swept.workers += 1;
        }
    }
    Ok(swept)
}

/// Hangs up the live legs that `<Dial>`ed from `parent` (a call of the dead `worker`) and that
/// another worker holds: the leg they were bridged to is gone. (Legs on the dead worker end in
/// the same sweep.) Found through the account's listing, filtered on `ParentCallSid`.
async fn hang_up_legs(
    services: &ReconcilerServices,
    worker: &Worker,
    parent: &CallSid,
    now: Timestamp,
) -> Result<usize, SweepError> {
    let Some(call) = services.calls.call(parent).await? else {
        return Ok(0);
    };
    let shards = services
        .accounts
        .account(&call.account_sid)
        .await?
        .map_or(1, |a| a.listing_shards);
    let filter = CallFilter {
        parent_call_sid: Some(parent.clone()),
        ..CallFilter::default()
    };
    let mut page = PageRequest {
        size: 100,
        after: None,
        backward: false,
    };
    // A leg on the dead worker itself is left to this sweep, which ends it as one of its calls
    // (the leg's worker is not in the listing; the system intent reads the leg, and skips it).
    let action = SystemAction::HangUp {
        reason: format!(
            "The leg it was connected to ended: media worker {} stopped",
            worker.id
        ),
        dead_worker: worker.id.clone(),
    };
    let mut hung_up = 0;
    loop {
        let legs = services
            .calls
            .list_calls(&call.account_sid, shards, &filter, &page)
            .await?;
        for leg in &legs.items {
            if leg.status.is_final() {
                continue;
            }
            let outcome = record_system_intent(
                services.calls.as_ref(),
                services.commands.as_ref(),
                &leg.sid,
                &action,
                || now,
                services.intent_retention,
                services.write_budget,
            )
            .await?;
            hung_up += usize::from(matches!(outcome, SystemOutcome::Recorded(_)));
        }
        match legs.more {
            Some(after) => page.after = Some(after),
            None => return Ok(hung_up),
        }
    }
}

/// Ends the room `sid` of the dead `worker`, if it is still its and has not ended: everyone in
/// it leaves, and it ends ([`lost_room`]), reported in the worker's place in the room's group of
/// the events queue. (Its participants' calls were ended with the worker's other calls.)
/// Whether it was reported.
async fn end_room(
    services: &ReconcilerServices,
    worker: &Worker,
    sid: &ConferenceSid,
    now: Timestamp,
) -> Result<bool, SweepError> {
    let conferences = services.conferences.as_ref();
    let Some(room) = conferences.conference(sid).await? else {
        return Ok(false);
    };
    if room.status == ConferenceStatus::Completed || room.worker.as_ref() != Some(&worker.id) {
        return Ok(false);
    }
    let participants = conferences.participants(sid).await?;
    let messages = lost_room(&room, &participants, now)
        .into_iter()
        .map(|(id, event)| OutgoingMessage::fifo(sid.as_str(), id, event.to_json()));
    report_in_place(services, messages).await?;
    tracing::warn!(conference_sid = %sid, worker_id = %worker.id, "a dead worker's room ended");
    Ok(true)
}

/// Ends one call of `worker` and fails its unsettled intents: whether it ended the call, and how
/// many intents it failed.
async fn end_call(
    services: &ReconcilerServices,
    worker: &Worker,
    sid: &CallSid,
    now: Timestamp,
) -> Result<(bool, usize), SweepError> {
    let calls = services.calls.as_ref();
    // Its last heartbeat was applied when it was last written.
    let last_seen = worker.date_updated;
    let reason = format!(
        "Media worker {} stopped renewing its lease at {}; the call was ended",
        worker.id,
        last_seen.rfc2822()
    );
    // The index lags: a call that ended meanwhile, or moved to another worker, is not ours.
    let ours = |call: &Call| call.worker.as_ref() == Some(&worker.id);
    let lost = Lost {
        last_seen,
        why: "lease",
        problem: Problem::new(LogLevel::Error, 15000, reason.clone()),
    };
    if !drop_lost_call(services, sid, ours, lost, now).await? {
        return Ok((false, 0));
    }
    // (Were the sweep to stop here, the reconciler still fails these intents once no report
    // has come for five minutes.)
    let subject = teleapi_domain::Subject::Call(sid.clone());
    let mut failed = 0;
    let mut page = PageRequest {
        size: 200,
        after: None,
        backward: false,
    };
    loop {
        let intents = calls.list_intents(&subject, &page).await?;
        for intent in intents.items.iter().filter(|i| !i.status.is_settled()) {
            let settled = calls
                .settle_intent(Settlement {
                    subject: &subject,
                    seq: intent.seq,
                    intent_sid: Some(&intent.sid),
                    from: &[IntentStatus::Pending, IntentStatus::Enqueued],
                    to: IntentStatus::Failed,
                    reason: Some(&reason),
                    now,
                })
                .await?;
            failed += usize::from(settled);
        }
        match intents.more {
            Some(after) => page.after = Some(after),
            None => break,
        }
    }
    Ok((true, failed))
}

/// Why a call is ended as lost.
pub struct Lost<'a> {
    /// When it was last known alive: when it ended.
    pub last_seen: Timestamp,
    /// What ended it, a word: `{CallSid}-{why}` is its StatusCallback's idempotency token.
    pub why: &'a str,
    /// What its notification says.
    pub problem: Problem,
}

/// Ends the call `sid` as lost ([`drop_call`]) if it has not ended and `applies` to it: the
/// events of its streams and recording ([`lost_media`]) and its StatusCallback job first (a
/// crash after them repeats them, never loses them), then one conditional write, retried
/// against concurrent writers within the write budget; then the call's notification of why.
/// Whether it ended the call.
pub async fn drop_lost_call(
    services: &ReconcilerServices,
    sid: &CallSid,
    applies: impl Fn(&Call) -> bool,
    lost: Lost<'_>,
    now: Timestamp,
) -> Result<bool, SweepError> {
    let calls = services.calls.as_ref();
    let mut retry = Retry::within(services.write_budget);
    let mut queued = None;
    let mut reported = false;
    loop {
        let Some(call) = calls.call(sid).await? else {
            return Ok(false);
        };
        if !applies(&call) {
            return Ok(false);
        }
        let Some(progress) = drop_call(&call, lost.last_seen, now, lost.why) else {
            return Ok(false);
        };
        if !reported {
            report_lost_media(services, &call, &lost.problem.message, now).await?;
            reported = true;
        }
        let callbacks = services.callbacks.as_ref();
        if write_progress::<SweepError>(calls, callbacks, &progress, &mut queued, now).await? {
            let origin = format!("lost-{}", lost.why);
            let entry = notification_entry(lost.problem, sid, &call.account_sid, now, &origin);
            let retention = services.intent_retention;
            note_or_warn(services.call_log.as_ref(), &entry, retention).await;
            return Ok(true);
        }
        if !retry.again().await {
            return Err(StoreError::Unavailable(format!(
                "{sid} kept changing while it was being ended"
            ))
            .into());
        }
    }
}

/// Sends, in `call`'s group of the events queue, what its worker can no longer report of the
/// call's streams and recording ([`lost_media`]).
async fn report_lost_media(
    services: &ReconcilerServices,
    call: &Call,
    why: &str,
    now: Timestamp,
) -> Result<(), SweepError> {
    let recording = match &call.recording {
        Some(sid) => services.recordings.recording(sid).await?,
        None => None,
    };
    let events = lost_media(call, recording.as_ref(), why, now);
    report_in_place(services, events.into_iter().map(in_call_group)).await
}

/// An event about a call, with its deduplication id, as a message in the call's group.
pub(crate) fn in_call_group((id, event): (String, Event)) -> OutgoingMessage {
    OutgoingMessage::fifo(event.call_sid.as_str(), id, event.to_json())
}

/// Sends `messages` (events, each in its call's or room's group) on the events queue, as the
/// worker would have: the call-events function applies them as any worker's report.
pub(crate) async fn report_in_place(
    services: &ReconcilerServices,
    messages: impl IntoIterator<Item = OutgoingMessage>,
) -> Result<(), SweepError> {
    for message in messages {
        services.events.send(None, &message).await?;
    }
    Ok(())
}
