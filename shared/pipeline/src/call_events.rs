//! The call-events function's work: apply one worker event. Call events go through the state
//! machine ([`teleapi_domain::call`]) and one conditional write; command events settle their
//! intent. Callback jobs are queued before the write that records the event, so a crash between
//! the two can only repeat a job (same job id, which the application sees as the idempotency
//! token), never lose one.

use std::sync::Arc;
use std::time::Duration;

use crate::consumer::BatchMessage;
use crate::system_intents::send_after_write;
use teleapi_domain::call::{Progress, Verdict, progress};
use teleapi_domain::call_log::{LogEntry, LogLevel, Problem};
use teleapi_domain::conference;
use teleapi_domain::recording;
use teleapi_domain::stream;
use teleapi_domain::wire::callback::{CallbackJob, JobKind};
use teleapi_domain::wire::conference::{ConferenceEvent, ConferenceEventKind};
use teleapi_domain::wire::event::RecordingReport;
use teleapi_domain::wire::event::StreamReport;
use teleapi_domain::wire::event::{Event, EventKind};
use teleapi_domain::wire::worker::{WorkerEvent, WorkerEventKind};
use teleapi_domain::worker;
use teleapi_domain::{IntentSid, IntentStatus, Subject, Timestamp};
use teleapi_ports::account_cache::AccountCache;
use teleapi_ports::insight;
use teleapi_ports::retry::Retry;
use teleapi_ports::{
    AccountStore, CallLogStore, CallQueueStore, CallStore, CallWrite, Clock, ConferenceStore,
    InsertError, OutgoingMessage, Queue, QueueError, RecordError, RecordingStore, Settlement,
    StoreError, WorkerStore,
};

#[derive(Debug, Clone)]
pub struct EventConfig {
    pub intent_retention: Duration,
    /// How long one event may keep retrying its write against concurrent writers.
    pub write_budget: Duration,
    /// How long an account read for a new call's listing partitions is reused.
    pub account_cache_ttl: Duration,
    /// How long a worker's heartbeat holds it ([`worker::LEASE`]; shorter in tests).
    pub worker_lease: Duration,
    /// Where the API is reached, for `RecordingUrl` (TELEAPI_PUBLIC_URL).
    pub public_url: String,
}

impl Default for EventConfig {
    fn default() -> Self {
        Self {
            intent_retention: Duration::from_secs(30 * 24 * 3600),
            write_budget: Duration::from_secs(5),
            account_cache_ttl: Duration::from_secs(10),
            worker_lease: worker::LEASE,
            public_url: String::new(),
        }
    }
}

#[derive(Clone)]
pub struct EventServices {
    /// Read (through the cache) when an event creates a call: how many listing partitions its
    /// account has.
    pub accounts: Arc<dyn AccountStore>,
    pub account_cache: AccountCache,
    pub calls: Arc<dyn CallStore>,
    /// Where heartbeats renew the workers' leases.
    pub workers: Arc<dyn WorkerStore>,
    /// Where conference events are recorded.
    pub conferences: Arc<dyn ConferenceStore>,
    /// Where recording events are recorded.
    pub recordings: Arc<dyn RecordingStore>,
    /// Where a queue a caller's `<Enqueue>` names is made, if its account has none of that name.
    pub queues: Arc<dyn CallQueueStore>,
    /// Where the workers' requests and the problems of calls are logged.
    pub call_log: Arc<dyn CallLogStore>,
    pub commands: Arc<dyn Queue>,
    pub callbacks: Arc<dyn Queue>,
    /// The events dead-letter queue (FIFO), for messages that can never be applied.
    pub dead_letters: Arc<dyn Queue>,
    pub clock: Arc<dyn Clock>,
    pub config: EventConfig,
}

/// Handles one message of the events queue. A poison message (not an event this version
/// understands) goes straight to the dead-letter queue, so that it does not hold back the later
/// events of its call while SQS redelivers it; any other failure is returned for redelivery.
pub async fn consume(services: &EventServices, message: &BatchMessage) -> Result<(), EventError> {
    match handle_event(services, &message.body).await {
        Ok(_) => Ok(()),
        Err(EventError::Poison(why)) => {
            let group = message.group.clone().unwrap_or_else(|| "poison".into());
            services
                .dead_letters
                .send(
                    None,
                    &OutgoingMessage::fifo(group, message.id.clone(), message.body.clone()),
                )
                .await?;
            tracing::warn!(message_id = %message.id, reason = %why, "poison event dead-lettered");
            Ok(())
        }
        Err(err) => Err(err),
    }
}

/// What an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// It was written to its call's log (`http.request`, `call.notification`).
    Logged,
    /// The call moved on (and what was queued for it).
    Applied { callback: bool, intent: bool },
    /// An intent was settled (`false`: it already was).
    Settled(bool),
    /// Nothing to do, and why.
    Ignored(String),
}

/// In a log line: `applied, callback queued`, `ignored: …`.
impl std::fmt::Display for Handled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Logged => f.write_str("logged"),
            Self::Applied { callback, intent } => {
                f.write_str("applied")?;
                if *callback {
                    f.write_str(", callback queued")?;
                }
                if *intent {
                    f.write_str(", intent settled")?;
                }
                Ok(())
            }
            Self::Settled(true) => f.write_str("intent settled"),
            Self::Settled(false) => f.write_str("intent already settled"),
            Self::Ignored(why) => write!(f, "ignored: {why}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The message is not an event this version understands: it will never succeed.
    #[error("poison message: {0}")]
    Poison(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

pub async fn handle_event(services: &EventServices, body: &str) -> Result<Handled, EventError> {
    // Call events are most of the traffic: parsed once; only what is not one is looked at again.
    let event = match Event::from_json(body) {
        Ok(event) => event,
        Err(_) if teleapi_domain::wire::worker::is_worker_event(body) => {
            return handle_worker_event(services, body).await;
        }
        Err(_) if teleapi_domain::wire::conference::is_conference_event(body) => {
            return handle_conference_event(services, body).await;
        }
        Err(err) => return Err(EventError::Poison(err.to_string())),
    };
    let handled = match &event.kind {
        EventKind::CommandApplied { intent_sid, seq } => {
            let subject = Subject::Call(event.call_sid.clone());
            settle(
                services,
                &subject,
                intent_sid,
                *seq,
                IntentStatus::Applied,
                None,
            )
            .await?
        }
        EventKind::CommandRejected {
            intent_sid,
            seq,
            reason,
        } => {
            let subject = Subject::Call(event.call_sid.clone());
            settle(
                services,
                &subject,
                intent_sid,
                *seq,
                IntentStatus::Rejected,
                Some(reason),
            )
            .await?
        }
        EventKind::HttpRequest {
            account_sid,
            request,
            response,
        } => {
            let at = Timestamp::from_millis(event.timestamp);
            let entry = insight::request_entry(
                &event.call_sid,
                account_sid,
                at,
                request.clone(),
                response.clone(),
            );
            log(services, &entry).await?
        }
        EventKind::QueueAgentWaiting {
            queue_sid,
            address,
            token,
            url,
            method,
        } => {
            let bridge = teleapi_domain::queue::Bridge {
                queue_sid: queue_sid.clone(),
                agent_call_sid: event.call_sid.clone(),
                address: address.clone(),
                token: token.clone(),
                url: url.clone(),
                method: *method,
            };
            take_caller_for(services, bridge).await?
        }
        EventKind::CallNotification {
            account_sid,
            level,
            error_code,
            message,
            url,
            method,
        } => {
            let problem = Problem {
                request_url: url.clone(),
                request_method: *method,
                ..Problem::new(*level, *error_code, message.clone())
            };
            let at = Timestamp::from_millis(event.timestamp);
            // Named by the whole event: a redelivery lands on the same notification.
            let origin = event.to_json();
            let entry =
                insight::notification_entry(problem, &event.call_sid, account_sid, at, &origin);
            log(services, &entry).await?
        }
        kind => match (kind.recording(), kind.stream()) {
            (Some(report), _) => record(services, &event, &report).await?,
            (_, Some(report)) => stream(services, &event, &report).await?,
            _ => advance(services, &event).await?,
        },
    };
    let status = match &event.kind {
        EventKind::CallStatus { status, .. } => Some(tracing::field::display(status.as_str())),
        _ => None,
    };
    tracing::info!(
        target: "teleapi::event",
        event = %event.name(),
        call_sid = %event.call_sid,
        status,
        handled = %handled,
        "event"
    );
    Ok(handled)
}

/// A heartbeat or a leaving: one conditional write of the worker, which a concurrent or later
/// event of the same worker may win (then this one is stale).
async fn handle_worker_event(services: &EventServices, body: &str) -> Result<Handled, EventError> {
    let event = WorkerEvent::from_json(body).map_err(|e| EventError::Poison(e.to_string()))?;
    let current = services.workers.worker(&event.worker_id).await?;
    let now = services.clock.now();
    let handled = match worker::apply(current.as_ref(), &event, now, services.config.worker_lease) {
        Err(why) => Handled::Ignored(why),
        Ok(next) if services.workers.record_worker(&next).await? => Handled::Applied {
            callback: false,
            intent: false,
        },
        Ok(_) => Handled::Ignored(format!(
            "{} for worker {}: a later event was recorded first",
            event.name(),
            event.worker_id
        )),
    };
    // A heartbeat every 10 s per worker is housekeeping: below the default level.
    if matches!(event.kind, WorkerEventKind::Heartbeat { .. }) {
        tracing::debug!(target: "teleapi::event", event = %event.name(), worker_id = %event.worker_id, handled = %handled, "event");
    } else {
        tracing::info!(target: "teleapi::event", event = %event.name(), worker_id = %event.worker_id, handled = %handled, "event");
    }
    Ok(handled)
}

/// A conference event: one conditional write of the conference or of one participant. Events
/// of a conference arrive in order (one message group); a write that loses its condition means
/// a duplicate or a stale event, which changes nothing.
async fn handle_conference_event(
    services: &EventServices,
    body: &str,
) -> Result<Handled, EventError> {
    let event = ConferenceEvent::from_json(body).map_err(|e| EventError::Poison(e.to_string()))?;
    let store = services.conferences.as_ref();
    let sid = &event.conference_sid;
    let subject = Subject::Conference(sid.clone());
    let outcome = match &event.kind {
        ConferenceEventKind::CommandApplied { intent_sid, seq } => {
            Some((intent_sid, *seq, IntentStatus::Applied, None))
        }
        ConferenceEventKind::CommandRejected {
            intent_sid,
            seq,
            reason,
        } => Some((
            intent_sid,
            *seq,
            IntentStatus::Rejected,
            Some(reason.as_str()),
        )),
        _ => None,
    };
    if let Some((intent_sid, seq, to, reason)) = outcome {
        let settled = settle(services, &subject, intent_sid, seq, to, reason).await?;
        tracing::info!(target: "teleapi::event", event = %event.name(), conference_sid = %sid, handled = %settled, "event");
        return Ok(settled);
    }
    let current = store.conference(sid).await?;
    let participant = match (&current, event.kind.call_sid()) {
        (Some(_), Some(call_sid)) => store.participant(sid, call_sid).await?,
        _ => None,
    };
    let now = services.clock.now();
    if let (ConferenceEventKind::Announcement { .. }, Some(current)) = (&event.kind, &current) {
        // Nothing to record: only the application hears of it.
        let jobs = conference::callbacks(current, None, &event, now);
        queue_jobs(services, &jobs).await?;
        return Ok(Handled::Applied {
            callback: !jobs.is_empty(),
            intent: false,
        });
    }
    let retention = services.config.intent_retention;
    let planned = conference::apply(
        current.as_ref(),
        participant.as_ref(),
        &event,
        now,
        retention,
    );
    let handled = match planned {
        Err(why) => Handled::Ignored(why),
        Ok(change) => {
            // The application's requests first, so that a crash before the write can only
            // repeat them (same job ids), never lose them.
            let after = match &change {
                conference::ConferenceChange::Conference { conference, .. } => Some(conference),
                conference::ConferenceChange::Participant(_) => current.as_ref(),
            };
            let jobs = after.map_or_else(Vec::new, |c| {
                conference::callbacks(c, participant.as_ref(), &event, now)
            });
            queue_jobs(services, &jobs).await?;
            if store.write_conference(&change).await? {
                Handled::Applied {
                    callback: !jobs.is_empty(),
                    intent: false,
                }
            } else {
                Handled::Ignored(format!(
                    "{} of {sid}: a concurrent write got there first",
                    event.name()
                ))
            }
        }
    };
    tracing::info!(
        target: "teleapi::event",
        event = %event.name(),
        conference_sid = %sid,
        handled = %handled,
        "event"
    );
    Ok(handled)
}

/// A recording event: one conditional write of the recording, under the version it was read
/// at (the API's changes write it too); a write that loses re-reads and re-decides, and a
/// duplicate is then seen as such. The RecordingStatusCallback it makes is queued first.
async fn record(
    services: &EventServices,
    event: &Event,
    report: &RecordingReport<'_>,
) -> Result<Handled, EventError> {
    let mut retry = Retry::within(services.config.write_budget);
    let mut queued: Option<CallbackJob> = None;
    loop {
        let sid = report.recording_sid();
        let current = services.recordings.recording(sid).await?;
        let now = services.clock.now();
        let next = match recording::apply(current.as_ref(), &event.call_sid, report, now) {
            Ok(next) => next,
            Err(why) => return Ok(Handled::Ignored(why)),
        };
        let job = recording::callback(&next, report, &services.config.public_url);
        if let Some(job) = &job
            && queued.as_ref() != Some(job)
        {
            queue_jobs(services, std::slice::from_ref(job)).await?;
            queued = Some(job.clone());
        }
        let expected = current.as_ref().map(|r| r.version);
        if services.recordings.write_recording(&next, expected).await? {
            if next.status == recording::RecordingStatus::Failed {
                // What the deployment's RecordingsFailing alarm counts.
                tracing::warn!(
                    target: "teleapi::recording",
                    recording_sid = %next.sid,
                    call_sid = %next.call_sid,
                    error_code = next.error_code.unwrap_or(0),
                    "recording failed"
                );
            }
            return Ok(Handled::Applied {
                callback: job.is_some(),
                intent: false,
            });
        }
        if !retry.again().await {
            return Err(StoreError::Unavailable(format!(
                "recording {sid} kept changing while applying {}",
                event.name()
            ))
            .into());
        }
    }
}

/// A stream event: one conditional write of the call (which keeps its streams), under the
/// version read; a write that loses re-reads and re-decides. Its StatusCallback is queued first.
async fn stream(
    services: &EventServices,
    event: &Event,
    report: &StreamReport<'_>,
) -> Result<Handled, EventError> {
    let mut retry = Retry::within(services.config.write_budget);
    let mut queued: Option<CallbackJob> = None;
    loop {
        let Some(current) = services.calls.call(&event.call_sid).await? else {
            return Ok(Handled::Ignored(format!(
                "{} for unknown call {}",
                event.name(),
                event.call_sid
            )));
        };
        let now = services.clock.now();
        let (next, changed) = match stream::apply(&current, report, now) {
            Ok(applied) => applied,
            Err(why) => return Ok(Handled::Ignored(why)),
        };
        let job = stream::callback(&next, &changed, report, now);
        if let Some(job) = &job
            && queued.as_ref() != Some(job)
        {
            queue_jobs(services, std::slice::from_ref(job)).await?;
            queued = Some(job.clone());
        }
        let write = CallWrite {
            call: &next,
            expected_version: Some(current.version),
            intent: None,
            idempotency: None,
            now,
        };
        match services.calls.write_call(write).await {
            Ok(()) => {
                if let StreamReport::Failed { error, .. } = report {
                    // What the deployment's StreamsFailing alarm counts.
                    tracing::warn!(
                        target: "teleapi::stream",
                        stream_sid = %changed.sid(),
                        call_sid = %next.sid,
                        error = %error,
                        "stream failed"
                    );
                }
                return Ok(Handled::Applied {
                    callback: job.is_some(),
                    intent: false,
                });
            }
            Err(RecordError::Store(err)) => return Err(err.into()),
            Err(RecordError::CallChanged | RecordError::KeyTaken) => {}
        }
        if !retry.again().await {
            return Err(StoreError::Unavailable(format!(
                "{} kept changing while applying {}",
                event.call_sid,
                event.name()
            ))
            .into());
        }
    }
}

/// An entry of a call's log, as the worker reported it: the event names the call's account,
/// so the call is not read (a fetch logged costs its two writes alone; docs/capacity.md).
async fn log(services: &EventServices, entry: &LogEntry) -> Result<Handled, EventError> {
    insight::note(
        services.call_log.as_ref(),
        entry,
        services.config.intent_retention,
    )
    .await?;
    Ok(Handled::Logged)
}

/// The notification of RCML that failed: a warning when the call's FallbackUrl is asked for
/// RCML instead (`progress` queues its request), an error when the call ends of it.
fn rcml_failure(event: &Event, progress: &Progress) -> Option<LogEntry> {
    let EventKind::RcmlFailed {
        seq,
        url,
        error_code,
        detail,
    } = &event.kind
    else {
        return None;
    };
    let rescued = progress
        .callback
        .as_ref()
        .is_some_and(|job| job.kind == JobKind::Fallback);
    let (level, then) = if rescued {
        (
            LogLevel::Warning,
            "the FallbackUrl was asked for RCML instead",
        )
    } else {
        (LogLevel::Error, "the call was ended")
    };
    let problem = Problem {
        request_url: Some(url.clone()),
        ..Problem::new(
            level,
            *error_code,
            format!("RCML at {url} failed: {detail}; {then}"),
        )
    };
    let call = &progress.call;
    Some(insight::notification_entry(
        problem,
        &call.sid,
        &call.account_sid,
        Timestamp::from_millis(event.timestamp),
        &format!("event {seq}"),
    ))
}

async fn queue_jobs(services: &EventServices, jobs: &[CallbackJob]) -> Result<(), EventError> {
    for job in jobs {
        services
            .callbacks
            .send(
                None,
                &OutgoingMessage::standard(job.to_json(), Duration::ZERO),
            )
            .await?;
    }
    Ok(())
}

async fn settle(
    services: &EventServices,
    subject: &Subject,
    intent_sid: &IntentSid,
    seq: u64,
    to: IntentStatus,
    reason: Option<&str>,
) -> Result<Handled, EventError> {
    let changed = services
        .calls
        .settle_intent(Settlement {
            subject,
            seq,
            intent_sid: Some(intent_sid),
            from: &[IntentStatus::Pending, IntentStatus::Enqueued],
            to,
            reason,
            now: services.clock.now(),
        })
        .await?;
    Ok(Handled::Settled(changed))
}

async fn advance(services: &EventServices, event: &Event) -> Result<Handled, EventError> {
    let intent_sid = IntentSid::generate();
    let mut retry = Retry::within(services.config.write_budget);
    let mut queued: Option<CallbackJob> = None;
    let mut listing_shards = None;
    let mut noted = false;
    loop {
        let current = services.calls.call(&event.call_sid).await?;
        let now = services.clock.now();
        if let (None, None, EventKind::CallInitiated { account_sid, .. }) =
            (&current, listing_shards, &event.kind)
        {
            // A new call: it goes into one of its account's listing partitions.
            let account = services
                .account_cache
                .account(
                    services.accounts.as_ref(),
                    account_sid,
                    now,
                    services.config.account_cache_ttl,
                    |_| true,
                )
                .await?;
            listing_shards = Some(account.map_or(1, |a| a.listing_shards));
        }
        let verdict = progress(
            current.as_ref(),
            event,
            now,
            services.config.intent_retention,
            intent_sid.clone(),
            listing_shards.unwrap_or(1),
        );
        let progress = match verdict {
            Verdict::Ignore(why) => {
                tracing::info!(call_sid = %event.call_sid, reason = %why, "event ignored");
                return Ok(Handled::Ignored(why));
            }
            Verdict::Apply(progress) => progress,
        };
        // The queue a caller joins exists before the call says it waits there (a redelivered
        // event, once applied, is ignored: a queue made after could be lost).
        if let EventKind::CallEnqueued {
            queue_sid, queue, ..
        } = &event.kind
        {
            ensure_queue(services, &progress.call.account_sid, queue_sid, queue, now).await?;
        }
        // Before the write that applies the event, as a callback job is: once applied, a
        // redelivered event is ignored, so a note written after could be lost.
        if !noted && let Some(entry) = rcml_failure(event, &progress) {
            let retention = services.config.intent_retention;
            insight::note(services.call_log.as_ref(), &entry, retention).await?;
            noted = true;
        }
        let calls = services.calls.as_ref();
        let callbacks = services.callbacks.as_ref();
        match write_progress::<EventError>(calls, callbacks, &progress, &mut queued, now).await? {
            true => {
                if let Some(intent) = &progress.intent {
                    send_after_write(services.commands.as_ref(), intent).await;
                }
                return Ok(Handled::Applied {
                    callback: progress.callback.is_some(),
                    intent: progress.intent.is_some(),
                });
            }
            false => {
                if !retry.again().await {
                    return Err(StoreError::Unavailable(format!(
                        "{} kept changing while applying {}",
                        event.call_sid,
                        event.name()
                    ))
                    .into());
                }
            }
        }
    }
}

/// An agent waits on its worker with no caller of its queue there: the queue's first caller
/// that still waits (on any worker) is taken for it, by the same conditional write as a `Front`
/// dequeue (one intent of the caller, its command `queue.bridge` to the caller's worker), so
/// that two agents, or an agent and a dequeue through the API, never take the same caller.
async fn take_caller_for(
    services: &EventServices,
    bridge: teleapi_domain::queue::Bridge,
) -> Result<Handled, EventError> {
    let agent = services.calls.call(&bridge.agent_call_sid).await?;
    if agent.is_none_or(|a| a.status.is_final()) {
        return Ok(Handled::Ignored("the agent's call has ended".into()));
    }
    let members = services.queues.members(&bridge.queue_sid).await?;
    let action = teleapi_domain::call::SystemAction::Bridge(Box::new(bridge.clone()));
    for member in members {
        if member.call_sid == bridge.agent_call_sid {
            continue;
        }
        let outcome = crate::system_intents::record_system_intent(
            services.calls.as_ref(),
            services.commands.as_ref(),
            &member.call_sid,
            &action,
            || services.clock.now(),
            services.config.intent_retention,
            services.config.write_budget,
        )
        .await?;
        if let crate::system_intents::SystemOutcome::Recorded(intent) = outcome {
            tracing::info!(queue_sid = %bridge.queue_sid, caller = %member.call_sid, agent = %bridge.agent_call_sid, intent_sid = %intent, "queue: a caller taken for an agent on another worker");
            return Ok(Handled::Applied {
                callback: false,
                intent: true,
            });
        }
    }
    Ok(Handled::Ignored("nobody waits in the queue".into()))
}

/// Makes the queue `<Enqueue>` named, unless its account has it (Twilio makes a queue by its
/// first caller): read first, since it nearly always exists.
async fn ensure_queue(
    services: &EventServices,
    account: &teleapi_domain::AccountSid,
    sid: &teleapi_domain::QueueSid,
    name: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    if services.queues.call_queue(sid).await?.is_some() {
        return Ok(());
    }
    let queue = teleapi_domain::queue::CallQueue::implicit(account.clone(), name, now);
    if queue.sid != *sid {
        // Not the sid of that name: the worker is wrong; the call still says where it waits.
        tracing::warn!(queue_sid = %sid, "call.enqueued names a queue its name does not make");
        return Ok(());
    }
    match services.queues.insert_call_queue(&queue).await {
        Ok(()) | Err(InsertError::AlreadyExists) => Ok(()),
        Err(InsertError::Store(err)) => Err(err),
    }
}

/// Queues `progress`'s callback job, unless `queued` holds it already (an earlier round of the
/// same change queued it), then writes the call and its intent under the version they were
/// planned from. `Ok(false)`: the call changed since it was read; read it again. The job goes
/// first, so that a crash between the two can only repeat it (same job id), never lose it.
pub(crate) async fn write_progress<E: From<StoreError> + From<QueueError>>(
    calls: &dyn CallStore,
    callbacks: &dyn Queue,
    progress: &Progress,
    queued: &mut Option<CallbackJob>,
    now: Timestamp,
) -> Result<bool, E> {
    if let Some(job) = &progress.callback
        && queued.as_ref() != Some(job)
    {
        callbacks
            .send(
                None,
                &OutgoingMessage::standard(job.to_json(), Duration::ZERO),
            )
            .await?;
        *queued = Some(job.clone());
    }
    let write = CallWrite {
        call: &progress.call,
        expected_version: progress.expected_version,
        intent: progress.intent.as_ref(),
        idempotency: None,
        now,
    };
    match calls.write_call(write).await {
        Ok(()) => Ok(true),
        Err(RecordError::Store(err)) => Err(err.into()),
        Err(RecordError::CallChanged | RecordError::KeyTaken) => Ok(false),
    }
}
