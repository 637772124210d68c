//! DynamoDB items <-> domain values. Attribute names are the contract of docs/data-model.md.

use std::collections::{BTreeMap, HashMap};
use teleapi_domain::recording::{
    PauseBehavior, Recording, RecordingChannels, RecordingSource, RecordingStatus, RecordingTrack,
    Trim, recording_position,
};

use aws_sdk_dynamodb::types::AttributeValue;

use std::borrow::Cow;
use teleapi_domain::account::MAX_LISTING_SHARDS;
use teleapi_domain::call::ListedCall;
use teleapi_domain::conference::{
    Conference, ConferenceStatus, EndReason, Participant, ParticipantState, ParticipantStatus,
    conference_position,
};
use teleapi_domain::number::{IncomingNumber, Voice, number_position};
use teleapi_domain::queue::{CallQueue, Member, queue_position};
use teleapi_domain::sid::{PhoneNumberSid, WorkerId};
use teleapi_domain::worker::{Worker, WorkerStatus};
use teleapi_domain::{
    Account, AccountStatus, AuthToken, Call, CallStatus, Direction, IdempotencyKey,
    IdempotencyRecord, Instructions, Intent, IntentAction, IntentCommand, IntentStatus, Method,
    RateLimit, StatusCallbackEvents, Timestamp, WebhookUrl,
};
use teleapi_ports::StoreError;

type Item = HashMap<String, AttributeValue>;

pub(super) fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn corrupt(attribute: &str) -> StoreError {
    StoreError::Failed(format!(
        "stored item has a missing or malformed '{attribute}'"
    ))
}

/// Reading one item: every accessor names the attribute it could not read.
struct Reader<'a>(&'a Item);

impl Reader<'_> {
    fn opt_s(&self, name: &str) -> Result<Option<&str>, StoreError> {
        match self.0.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::S(value)) => Ok(Some(value)),
            Some(_) => Err(corrupt(name)),
        }
    }

    fn s(&self, name: &str) -> Result<&str, StoreError> {
        self.opt_s(name)?.ok_or_else(|| corrupt(name))
    }

    fn parse<T>(&self, name: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<T, StoreError> {
        parse(self.s(name)?).ok_or_else(|| corrupt(name))
    }

    fn opt_parse<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        self.opt_s(name)?
            .map(|v| parse(v).ok_or_else(|| corrupt(name)))
            .transpose()
    }

    fn opt_n<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, StoreError> {
        match self.0.get(name) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(AttributeValue::N(value)) => value.parse().map(Some).map_err(|_| corrupt(name)),
            Some(_) => Err(corrupt(name)),
        }
    }

    fn n<T: std::str::FromStr>(&self, name: &str) -> Result<T, StoreError> {
        self.opt_n(name)?.ok_or_else(|| corrupt(name))
    }

    fn bool(&self, name: &str) -> Result<bool, StoreError> {
        match self.0.get(name) {
            Some(AttributeValue::Bool(value)) => Ok(*value),
            _ => Err(corrupt(name)),
        }
    }

    fn time(&self, name: &str) -> Result<Timestamp, StoreError> {
        self.n(name).map(Timestamp::from_millis)
    }

    fn opt_time(&self, name: &str) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.opt_n(name)?.map(Timestamp::from_millis))
    }

    /// TTL attributes are epoch seconds.
    fn ttl(&self, name: &str) -> Result<Timestamp, StoreError> {
        self.n::<i64>(name)
            .map(|secs| Timestamp::from_millis(secs.saturating_mul(1000)))
    }

    fn url(&self, name: &str) -> Result<Option<WebhookUrl>, StoreError> {
        Ok(self.opt_s(name)?.map(|v| WebhookUrl::trusted(v.to_owned())))
    }

    fn method(&self, name: &str) -> Result<Method, StoreError> {
        self.parse(name, Method::parse)
    }
}

/// Builds an item, leaving out absent optional values (DynamoDB has no use for nulls here).
#[derive(Default)]
struct Writer(Item);

impl Writer {
    fn s(mut self, name: &str, value: &str) -> Self {
        self.0.insert(name.into(), s(value));
        self
    }

    fn opt_s(self, name: &str, value: Option<&str>) -> Self {
        match value {
            Some(value) => self.s(name, value),
            None => self,
        }
    }

    fn n(mut self, name: &str, value: impl ToString) -> Self {
        self.0.insert(name.into(), n(value));
        self
    }

    fn opt_n(self, name: &str, value: Option<impl ToString>) -> Self {
        match value {
            Some(value) => self.n(name, value),
            None => self,
        }
    }

    fn bool(mut self, name: &str, value: bool) -> Self {
        self.0.insert(name.into(), AttributeValue::Bool(value));
        self
    }
}

pub(super) fn account_item(account: &Account) -> Item {
    Writer::default()
        .s("AccountSid", account.sid.as_str())
        .s("AuthToken", account.auth_token.expose())
        .s("FriendlyName", &account.friendly_name)
        .opt_s(
            "ParentAccountSid",
            account.parent.as_ref().map(|p| p.as_str()),
        )
        .s("Status", account.status.as_str())
        .n("DateCreated", account.date_created.millis())
        .n("ListingShards", account.listing_shards)
        .opt_n("RatePerSecond", account.rate_limit.map(|l| l.per_second))
        .opt_n("RateBurst", account.rate_limit.map(|l| l.burst))
        .opt_s("UsageKey", account.usage_key.as_deref())
        .0
}

pub(super) fn account_from(item: &Item) -> Result<Account, StoreError> {
    let r = Reader(item);
    Ok(Account {
        sid: r.parse("AccountSid", |v| v.parse().ok())?,
        auth_token: AuthToken::new(r.s("AuthToken")?),
        friendly_name: r.s("FriendlyName")?.to_owned(),
        parent: r.opt_parse("ParentAccountSid", |v| v.parse().ok())?,
        status: r.parse("Status", AccountStatus::parse)?,
        date_created: r.time("DateCreated")?,
        // Accounts stored before listings were partitioned have one partition.
        listing_shards: r
            .opt_n::<u8>("ListingShards")?
            .unwrap_or(1)
            .clamp(1, MAX_LISTING_SHARDS),
        rate_limit: match (r.opt_n("RatePerSecond")?, r.opt_n("RateBurst")?) {
            (Some(per_second), Some(burst)) => Some(RateLimit { per_second, burst }),
            (None, None) => None,
            _ => return Err(corrupt("RateBurst")),
        },
        usage_key: r.opt_s("UsageKey")?.map(str::to_owned),
    })
}

pub(super) fn call_item(call: &Call) -> Item {
    let i = &call.instructions;
    let events: Vec<AttributeValue> = i
        .status_callback_events
        .iter()
        .map(|e| s(e.as_str()))
        .collect();
    let mut item = Writer::default()
        .s("CallSid", call.sid.as_str())
        .s("AccountSid", call.account_sid.as_str())
        .s(
            "ListingKey",
            &teleapi_domain::paging::partition_key(&call.account_sid, call.listing_shard),
        )
        .s("Listing", &teleapi_domain::call::call_position(call))
        .opt_s(
            "ParentCallSid",
            call.parent_call_sid.as_ref().map(|p| p.as_str()),
        )
        .s("From", &call.from)
        .s("To", &call.to)
        .s("Direction", call.direction.as_str())
        .s("Status", call.status.as_str())
        .bool("Muted", call.muted)
        .opt_s("Url", i.url.as_ref().map(WebhookUrl::as_str))
        .s("Method", i.method.as_str())
        .opt_s(
            "FallbackUrl",
            i.fallback_url.as_ref().map(WebhookUrl::as_str),
        )
        .s("FallbackMethod", i.fallback_method.as_str())
        .opt_s(
            "StatusCallback",
            i.status_callback.as_ref().map(WebhookUrl::as_str),
        )
        .s("StatusCallbackMethod", i.status_callback_method.as_str())
        .opt_n("TimeLimit", i.time_limit)
        .opt_s("CommandQueue", call.command_queue.as_deref())
        .opt_s("Worker", call.worker.as_ref().map(WorkerId::as_str))
        .opt_s("Recording", call.recording.as_ref().map(|r| r.as_str()))
        .opt_s("AnsweredBy", call.answered_by.map(|a| a.as_str()))
        // The `queue` index: who waits in each queue, oldest first (a call that ended waits
        // nowhere, whether or not its worker has said so yet).
        .opt_s("QueueSid", call.waiting().map(|q| q.sid.as_str()))
        .opt_n("QueuedAt", call.waiting().map(|q| q.since.millis()))
        .opt_s(
            "Streams",
            (!call.streams.is_empty())
                .then(|| serde_json::to_string(&call.streams).expect("streams serialise"))
                .as_deref(),
        )
        // The `worker` index: the live calls of each worker, for when its lease runs out.
        .opt_s(
            "LiveWorker",
            call.worker
                .as_ref()
                .filter(|_| !call.status.is_final())
                .map(WorkerId::as_str),
        )
        .n("Seq", call.seq)
        .n("Version", call.version)
        .n("EventSeq", call.event_seq)
        .n("CallbackSeq", call.callback_seq)
        .bool("EndReported", call.end_reported)
        .n("DateCreated", call.date_created.millis())
        .n("DateUpdated", call.date_updated.millis())
        .opt_n("StartTime", call.start_time.map(Timestamp::millis))
        .opt_n("EndTime", call.end_time.map(Timestamp::millis))
        .opt_n("Duration", call.duration)
        .0;
    item.insert("StatusCallbackEvents".into(), AttributeValue::L(events));
    item
}

/// A call as an entry of the listing index holds it (schema::LISTING_PROJECTION).
pub(super) fn listed_from(item: &Item) -> Result<ListedCall<'static>, StoreError> {
    let r = Reader(item);
    Ok(ListedCall {
        sid: Cow::Owned(r.parse("CallSid", |v| v.parse().ok())?),
        account_sid: Cow::Owned(r.parse("AccountSid", |v| v.parse().ok())?),
        parent_call_sid: r
            .opt_parse("ParentCallSid", |v| v.parse().ok())?
            .map(Cow::Owned),
        from: Cow::Owned(r.s("From")?.to_owned()),
        to: Cow::Owned(r.s("To")?.to_owned()),
        direction: r.parse("Direction", Direction::parse)?,
        status: r.parse("Status", CallStatus::parse)?,
        muted: r.bool("Muted")?,
        answered_by: r.opt_parse("AnsweredBy", teleapi_domain::call::AnsweredBy::parse)?,
        date_created: r.time("DateCreated")?,
        date_updated: r.time("DateUpdated")?,
        start_time: r.opt_time("StartTime")?,
        end_time: r.opt_time("EndTime")?,
        duration: r.opt_n("Duration")?,
    })
}

pub(super) fn call_from(item: &Item) -> Result<Call, StoreError> {
    let r = Reader(item);
    let events = match item.get("StatusCallbackEvents") {
        Some(AttributeValue::L(values)) => values
            .iter()
            .map(|v| match v {
                AttributeValue::S(name) => teleapi_domain::CallbackEvent::parse(name),
                _ => None,
            })
            .collect::<Option<StatusCallbackEvents>>()
            .ok_or_else(|| corrupt("StatusCallbackEvents"))?,
        _ => return Err(corrupt("StatusCallbackEvents")),
    };
    // What the resource shows is read as the listing index holds it.
    let ListedCall {
        sid,
        account_sid,
        parent_call_sid,
        from,
        to,
        direction,
        status,
        muted,
        answered_by,
        date_created,
        date_updated,
        start_time,
        end_time,
        duration,
    } = listed_from(item)?;
    Ok(Call {
        sid: sid.into_owned(),
        account_sid: account_sid.into_owned(),
        parent_call_sid: parent_call_sid.map(Cow::into_owned),
        from: from.into_owned(),
        to: to.into_owned(),
        direction,
        status,
        muted,
        answered_by,
        date_created,
        date_updated,
        start_time,
        end_time,
        duration,
        instructions: Instructions {
            url: r.url("Url")?,
            method: r.method("Method")?,
            fallback_url: r.url("FallbackUrl")?,
            fallback_method: r.method("FallbackMethod")?,
            status_callback: r.url("StatusCallback")?,
            status_callback_method: r.method("StatusCallbackMethod")?,
            status_callback_events: events,
            time_limit: r.opt_n("TimeLimit")?,
        },
        command_queue: r.opt_s("CommandQueue")?.map(str::to_owned),
        worker: r.opt_parse("Worker", |v| WorkerId::try_from(v.to_owned()).ok())?,
        seq: r.n("Seq")?,
        version: r.n("Version")?,
        event_seq: r.n("EventSeq")?,
        callback_seq: r.n("CallbackSeq")?,
        end_reported: r.bool("EndReported")?,
        // Calls stored before listings were partitioned (no ListingKey yet) are in partition 0,
        // where `teleapi-admin backfill-listing` puts them.
        listing_shard: match r.opt_s("ListingKey")? {
            Some(key) => key
                .rsplit_once('#')
                .and_then(|(_, shard)| shard.parse().ok())
                .ok_or_else(|| corrupt("ListingKey"))?,
            None => 0,
        },
        recording: r.opt_parse("Recording", |v| v.parse().ok())?,
        streams: r
            .opt_parse("Streams", |v| serde_json::from_str(v).ok())?
            .unwrap_or_default(),
        queue: match (
            r.opt_parse("QueueSid", |v| v.parse().ok())?,
            r.opt_time("QueuedAt")?,
        ) {
            (Some(sid), Some(since)) => Some(teleapi_domain::queue::Waiting { sid, since }),
            (None, None) => None,
            _ => return Err(corrupt("QueuedAt")),
        },
    })
}

pub(super) fn intent_item(intent: &Intent) -> Item {
    let parameters = serde_json::to_string(&intent.parameters).expect("a string map serialises");
    Writer::default()
        .s("CallSid", intent.subject.as_str())
        .n("Seq", intent.seq)
        .s("IntentSid", intent.sid.as_str())
        .s("AccountSid", intent.account_sid.as_str())
        .s("Action", intent.action.as_str())
        .s("Parameters", &parameters)
        .s("Status", intent.status.as_str())
        .opt_s("Reason", intent.reason.as_deref())
        .opt_s(
            "Command",
            intent
                .command
                .as_ref()
                .map(IntentCommand::to_json)
                .as_deref(),
        )
        .opt_s("Queue", intent.queue.as_deref())
        .n("DateCreated", intent.date_created.millis())
        .n("DateUpdated", intent.date_updated.millis())
        .n("ExpiresAt", intent.expires_at.epoch_seconds())
        .0
}

pub(super) fn intent_from(item: &Item) -> Result<Intent, StoreError> {
    let r = Reader(item);
    let parameters: BTreeMap<String, String> =
        serde_json::from_str(r.s("Parameters")?).map_err(|_| corrupt("Parameters"))?;
    Ok(Intent {
        sid: r.parse("IntentSid", |v| v.parse().ok())?,
        subject: r.parse("CallSid", |v| v.parse().ok())?,
        account_sid: r.parse("AccountSid", |v| v.parse().ok())?,
        seq: r.n("Seq")?,
        action: r.parse("Action", IntentAction::parse)?,
        parameters,
        status: r.parse("Status", IntentStatus::parse)?,
        reason: r.opt_s("Reason")?.map(str::to_owned),
        command: r.opt_parse("Command", IntentCommand::from_json)?,
        queue: r.opt_s("Queue")?.map(str::to_owned),
        date_created: r.time("DateCreated")?,
        date_updated: r.time("DateUpdated")?,
        expires_at: r.ttl("ExpiresAt")?,
    })
}

pub(super) fn idempotency_item(record: &IdempotencyRecord) -> Item {
    Writer::default()
        .s("IdempotencyKey", record.key.as_str())
        .s("Fingerprint", &record.fingerprint)
        .n("Status", record.status)
        .s("Response", &record.response)
        .n("ExpiresAt", record.expires_at.epoch_seconds())
        .0
}

pub(super) fn idempotency_from(item: &Item) -> Result<IdempotencyRecord, StoreError> {
    let r = Reader(item);
    Ok(IdempotencyRecord {
        key: IdempotencyKey::from_stored(r.s("IdempotencyKey")?.to_owned()),
        fingerprint: r.s("Fingerprint")?.to_owned(),
        status: r.n("Status")?,
        response: r.s("Response")?.to_owned(),
        expires_at: r.ttl("ExpiresAt")?,
    })
}

/// How long a worker's item outlives its last write (its TTL): long enough to tell a late
/// event of a worker that has gone from a new worker.
pub(super) const WORKER_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(7 * 24 * 3600);

/// `LeaseShard` of a live worker: the one partition of the `leases` index (a thousand workers
/// renew 100 times a second, a tenth of what a partition takes).
pub(super) const LIVE_LEASES: &str = "live";

pub(super) fn worker_item(worker: &Worker) -> Item {
    Writer::default()
        .opt_s("LeaseShard", worker.status.is_live().then_some(LIVE_LEASES))
        .s("WorkerId", worker.id.as_str())
        .s("CommandQueue", &worker.command_queue)
        .n("Capacity", worker.capacity)
        .n("Calls", worker.calls)
        .s("Status", worker.status.as_str())
        .n("LastEvent", worker.last_event.millis())
        .n("LeaseExpiresAt", worker.lease_expires_at.millis())
        .n("DateCreated", worker.date_created.millis())
        .n("DateUpdated", worker.date_updated.millis())
        .n(
            "ExpiresAt",
            worker.date_updated.plus(WORKER_RETENTION).epoch_seconds(),
        )
        .0
}

pub(super) fn worker_from(item: &Item) -> Result<Worker, StoreError> {
    let r = Reader(item);
    Ok(Worker {
        id: r.parse("WorkerId", |v| WorkerId::try_from(v.to_owned()).ok())?,
        command_queue: r.s("CommandQueue")?.to_owned(),
        capacity: r.n("Capacity")?,
        calls: r.n("Calls")?,
        status: r.parse("Status", WorkerStatus::parse)?,
        last_event: r.time("LastEvent")?,
        lease_expires_at: r.time("LeaseExpiresAt")?,
        date_created: r.time("DateCreated")?,
        date_updated: r.time("DateUpdated")?,
    })
}

/// The sort key of a conference's own item; its participants' items have their CallSid.
pub(super) const CONFERENCE_MEMBER: &str = "conference";

pub(super) fn conference_item(conference: &Conference) -> Item {
    Writer::default()
        .s("ConferenceSid", conference.sid.as_str())
        .s("Member", CONFERENCE_MEMBER)
        .s("AccountSid", conference.account_sid.as_str())
        .s("ListingAccount", conference.account_sid.as_str())
        .s("Listing", &conference_position(conference))
        .s("FriendlyName", &conference.friendly_name)
        .s("Status", conference.status.as_str())
        .s("CommandQueue", &conference.command_queue)
        .opt_s("Worker", conference.worker.as_ref().map(WorkerId::as_str))
        // The `worker` index: the live rooms of each worker, for when its lease runs out.
        .opt_s(
            "LiveWorker",
            conference
                .worker
                .as_ref()
                .filter(|_| conference.status != ConferenceStatus::Completed)
                .map(WorkerId::as_str),
        )
        .n("EventSeq", conference.event_seq)
        .n("Seq", conference.seq)
        .n("Version", conference.version)
        .n("DateCreated", conference.date_created.millis())
        .n("DateUpdated", conference.date_updated.millis())
        .opt_s(
            "ReasonEnded",
            conference.reason_ended.map(EndReason::as_str),
        )
        .opt_s(
            "CallSidEnding",
            conference.call_sid_ending.as_ref().map(|c| c.as_str()),
        )
        .opt_n(
            "ExpiresAt",
            conference.expires_at.map(Timestamp::epoch_seconds),
        )
        .opt_s(
            "StatusCallback",
            conference
                .status_callback
                .as_ref()
                .map(|c| serde_json::to_string(c).expect("a callback serialises"))
                .as_deref(),
        )
        .0
}

pub(super) fn conference_from(item: &Item) -> Result<Conference, StoreError> {
    let r = Reader(item);
    Ok(Conference {
        sid: r.parse("ConferenceSid", |v| v.parse().ok())?,
        account_sid: r.parse("AccountSid", |v| v.parse().ok())?,
        friendly_name: r.s("FriendlyName")?.to_owned(),
        status: r.parse("Status", ConferenceStatus::parse)?,
        command_queue: r.s("CommandQueue")?.to_owned(),
        worker: r.opt_parse("Worker", |v| WorkerId::try_from(v.to_owned()).ok())?,
        event_seq: r.n("EventSeq")?,
        seq: r.n("Seq")?,
        version: r.n("Version")?,
        date_created: r.time("DateCreated")?,
        date_updated: r.time("DateUpdated")?,
        reason_ended: r.opt_parse("ReasonEnded", EndReason::parse)?,
        call_sid_ending: r.opt_parse("CallSidEnding", |v| v.parse().ok())?,
        status_callback: r.opt_parse("StatusCallback", |v| serde_json::from_str(v).ok())?,
        expires_at: item
            .contains_key("ExpiresAt")
            .then(|| r.ttl("ExpiresAt"))
            .transpose()?,
    })
}

pub(super) fn participant_item(participant: &Participant) -> Item {
    let state = &participant.state;
    Writer::default()
        .s("ConferenceSid", participant.conference_sid.as_str())
        .s("Member", state.call_sid.as_str())
        .s("AccountSid", participant.account_sid.as_str())
        .opt_s("Label", state.label.as_deref())
        .bool("Muted", state.muted)
        .bool("Hold", state.hold)
        .bool("Coaching", state.coaching)
        .opt_s(
            "CallSidToCoach",
            state.call_sid_to_coach.as_ref().map(|c| c.as_str()),
        )
        .bool("StartConferenceOnEnter", state.start_conference_on_enter)
        .bool("EndConferenceOnExit", state.end_conference_on_exit)
        .s("Status", participant.status.as_str())
        .n("EventSeq", participant.event_seq)
        .n("DateCreated", participant.date_created.millis())
        .n("DateUpdated", participant.date_updated.millis())
        .opt_n(
            "ExpiresAt",
            participant.expires_at.map(Timestamp::epoch_seconds),
        )
        .0
}

pub(super) fn participant_from(item: &Item) -> Result<Participant, StoreError> {
    let r = Reader(item);
    Ok(Participant {
        conference_sid: r.parse("ConferenceSid", |v| v.parse().ok())?,
        account_sid: r.parse("AccountSid", |v| v.parse().ok())?,
        state: ParticipantState {
            call_sid: r.parse("Member", |v| v.parse().ok())?,
            label: r.opt_s("Label")?.map(str::to_owned),
            muted: r.bool("Muted")?,
            hold: r.bool("Hold")?,
            coaching: r.bool("Coaching")?,
            call_sid_to_coach: r.opt_parse("CallSidToCoach", |v| v.parse().ok())?,
            start_conference_on_enter: r.bool("StartConferenceOnEnter")?,
            end_conference_on_exit: r.bool("EndConferenceOnExit")?,
        },
        status: r.parse("Status", ParticipantStatus::parse)?,
        event_seq: r.n("EventSeq")?,
        date_created: r.time("DateCreated")?,
        date_updated: r.time("DateUpdated")?,
        expires_at: item
            .contains_key("ExpiresAt")
            .then(|| r.ttl("ExpiresAt"))
            .transpose()?,
    })
}

pub(super) fn recording_item(recording: &Recording) -> Item {
    let position = recording_position(recording);
    Writer::default()
        .s("RecordingSid", recording.sid.as_str())
        .s("AccountSid", recording.account_sid.as_str())
        .s("CallSid", recording.call_sid.as_str())
        // The `account` and `call` indexes: newest first.
        .s("ListingAccount", recording.account_sid.as_str())
        .s("Listing", &position)
        .s("Status", recording.status.as_str())
        .s("Channels", recording.channels.as_str())
        .s("Track", recording.track.as_str())
        .s("Trim", recording.trim.as_str())
        .s("Source", recording.source.as_str())
        .s("PauseBehavior", recording.pause_behavior.as_str())
        .opt_s(
            "StatusCallback",
            recording
                .status_callback
                .as_ref()
                .map(|c| serde_json::to_string(c).expect("a callback serialises"))
                .as_deref(),
        )
        .n("StartTime", recording.start_time.millis())
        .opt_n("Duration", recording.duration)
        .opt_s("Media", recording.media.as_deref())
        .opt_n("ErrorCode", recording.error_code)
        .n("EventSeq", recording.event_seq)
        .n("Version", recording.version)
        .n("DateCreated", recording.date_created.millis())
        .n("DateUpdated", recording.date_updated.millis())
        .0
}

pub(super) fn recording_from(item: &Item) -> Result<Recording, StoreError> {
    let r = Reader(item);
    Ok(Recording {
        sid: r.parse("RecordingSid", |v| v.parse().ok())?,
        account_sid: r.parse("AccountSid", |v| v.parse().ok())?,
        call_sid: r.parse("CallSid", |v| v.parse().ok())?,
        status: r.parse("Status", RecordingStatus::parse)?,
        channels: r.parse("Channels", RecordingChannels::parse)?,
        track: r.parse("Track", RecordingTrack::parse)?,
        trim: r.parse("Trim", Trim::parse)?,
        source: r.parse("Source", RecordingSource::parse)?,
        pause_behavior: r.parse("PauseBehavior", PauseBehavior::parse)?,
        status_callback: r.opt_parse("StatusCallback", |v| serde_json::from_str(v).ok())?,
        start_time: r.time("StartTime")?,
        duration: r.opt_n("Duration")?,
        media: r.opt_s("Media")?.map(str::to_owned),
        error_code: r.opt_n("ErrorCode")?,
        event_seq: r.n("EventSeq")?,
        version: r.n("Version")?,
        date_created: r.time("DateCreated")?,
        date_updated: r.time("DateUpdated")?,
    })
}

/// A number's item (keyed by its sid), and the item that routes its `PhoneNumber` to it.
pub(super) fn number_item(number: &IncomingNumber) -> Item {
    let voice = &number.voice;
    let url = |u: &Option<WebhookUrl>| u.as_ref().map(|u| u.to_string());
    Writer::default()
        .s("NumberKey", number.sid.as_str())
        .s("AccountSid", number.account_sid.as_str())
        .s("PhoneNumber", &number.phone_number)
        .s("FriendlyName", &number.friendly_name)
        // The `account` index: newest first.
        .s("ListingAccount", number.account_sid.as_str())
        .s("Listing", &number_position(number))
        .opt_s("VoiceUrl", url(&voice.url).as_deref())
        .s("VoiceMethod", voice.method.as_str())
        .opt_s("VoiceFallbackUrl", url(&voice.fallback_url).as_deref())
        .s("VoiceFallbackMethod", voice.fallback_method.as_str())
        .opt_s("StatusCallback", url(&voice.status_callback).as_deref())
        .s(
            "StatusCallbackMethod",
            voice.status_callback_method.as_str(),
        )
        .n("Version", number.version)
        .n("DateCreated", number.date_created.millis())
        .n("DateUpdated", number.date_updated.millis())
        .0
}

pub(super) fn number_route_item(number: &IncomingNumber) -> Item {
    Writer::default()
        .s("NumberKey", &number.phone_number)
        .s("NumberSid", number.sid.as_str())
        .0
}

/// The sid a `PhoneNumber`'s route item names.
pub(super) fn number_route_from(item: &Item) -> Result<PhoneNumberSid, StoreError> {
    Reader(item).parse("NumberSid", |v| v.parse().ok())
}

pub(super) fn number_from(item: &Item) -> Result<IncomingNumber, StoreError> {
    let r = Reader(item);
    Ok(IncomingNumber {
        sid: r.parse("NumberKey", |v| v.parse().ok())?,
        account_sid: r.parse("AccountSid", |v| v.parse().ok())?,
        phone_number: r.s("PhoneNumber")?.to_owned(),
        friendly_name: r.s("FriendlyName")?.to_owned(),
        voice: Voice {
            url: r.url("VoiceUrl")?,
            method: r.method("VoiceMethod")?,
            fallback_url: r.url("VoiceFallbackUrl")?,
            fallback_method: r.method("VoiceFallbackMethod")?,
            status_callback: r.url("StatusCallback")?,
            status_callback_method: r.method("StatusCallbackMethod")?,
        },
        version: r.n("Version")?,
        date_created: r.time("DateCreated")?,
        date_updated: r.time("DateUpdated")?,
    })
}

pub(super) fn call_queue_item(queue: &CallQueue) -> Item {
    Writer::default()
        .s("QueueSid", queue.sid.as_str())
        .s("AccountSid", queue.account_sid.as_str())
        .s("FriendlyName", &queue.friendly_name)
        .n("MaxSize", queue.max_size)
        // The `account` index: newest first.
        .s("ListingAccount", queue.account_sid.as_str())
        .s("Listing", &queue_position(queue))
        .n("Version", queue.version)
        .n("DateCreated", queue.date_created.millis())
        .n("DateUpdated", queue.date_updated.millis())
        .0
}

pub(super) fn call_queue_from(item: &Item) -> Result<CallQueue, StoreError> {
    let r = Reader(item);
    Ok(CallQueue {
        sid: r.parse("QueueSid", |v| v.parse().ok())?,
        account_sid: r.parse("AccountSid", |v| v.parse().ok())?,
        friendly_name: r.s("FriendlyName")?.to_owned(),
        max_size: r.n("MaxSize")?,
        version: r.n("Version")?,
        date_created: r.time("DateCreated")?,
        date_updated: r.time("DateUpdated")?,
    })
}

/// A member as the calls' `queue` index holds it (keys only).
pub(super) fn member_from(item: &Item) -> Result<Member, StoreError> {
    let r = Reader(item);
    Ok(Member {
        call_sid: r.parse("CallSid", |v| v.parse().ok())?,
        queue_sid: r.parse("QueueSid", |v| v.parse().ok())?,
        date_enqueued: r.time("QueuedAt")?,
    })
}

/// A slot of the key pool (`PoolKey` `slot#{n}`): its key and, while lent, to whom and until when.
pub(super) fn pool_slot_item(
    pool_key: &str,
    key: &str,
    lent: Option<(&teleapi_domain::AccountSid, Timestamp)>,
) -> Item {
    Writer::default()
        .s("PoolKey", pool_key)
        .s("KeyValue", key)
        .opt_s("Account", lent.map(|(account, _)| account.as_str()))
        .opt_n("LentUntil", lent.map(|(_, until)| until.millis()))
        .0
}

/// The key a slot of the key pool holds.
pub(super) fn pool_key_from(item: &Item) -> Result<String, StoreError> {
    Reader(item).s("KeyValue").map(str::to_owned)
}

/// Which slot holds a key of the pool (`PoolKey` `key#{value}`).
pub(super) fn pool_index_item(pool_key: &str, slot: u32) -> Item {
    Writer::default().s("PoolKey", pool_key).n("Slot", slot).0
}

/// A number of a key-pool item: the size's `Slots`, a key's `Slot`.
pub(super) fn pool_number_from(item: &Item, name: &str) -> Result<u32, StoreError> {
    Reader(item).n(name)
}
