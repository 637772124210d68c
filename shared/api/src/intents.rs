//! What every operation that records an intent shares: the Idempotency-Key protocol, and sending
//! the intent's command (or undoing the intent when the send fails).

use lambda_http::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::error::ApiError;
use super::{Services, Success};
use teleapi_domain::call::Planned;
use teleapi_domain::{
    Account, Call, CallSid, IdempotencyKey, IdempotencyRecord, Intent, Timestamp,
};
use teleapi_ports::retry::Retry;
use teleapi_ports::{CallWrite, IntentFailure, OutgoingMessage, RecordError};

pub const INTENT_SID_HEADER: &str = "teleapi-intent-sid";
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Set on an answer replayed for a repeated Idempotency-Key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The request's Idempotency-Key, scoped to the account that sent it.
pub fn idempotency_key(
    headers: &HeaderMap,
    caller: &Account,
) -> Result<Option<IdempotencyKey>, ApiError> {
    headers
        .get(IDEMPOTENCY_KEY_HEADER)
        .map(|value| {
            IdempotencyKey::parse(&caller.sid, value.as_bytes())
                .ok_or(ApiError::InvalidIdempotencyKey)
        })
        .transpose()
}

/// The first answer to this key, if the key was used: replayed for the same request, 422 for
/// another one.
pub async fn known_answer(
    services: &Services,
    key: Option<&IdempotencyKey>,
    fingerprint: &str,
) -> Result<Option<Success>, ApiError> {
    known_answer_as(services, key, fingerprint, Some("Call")).await
}

/// [`known_answer`] for a resource other than a call (`root` names its XML element).
pub async fn known_answer_as(
    services: &Services,
    key: Option<&IdempotencyKey>,
    fingerprint: &str,
    root: Option<&'static str>,
) -> Result<Option<Success>, ApiError> {
    let Some(key) = key else {
        return Ok(None);
    };
    match services
        .calls
        .idempotency_record(key, services.clock.now())
        .await?
    {
        Some(record) => replay(&record, fingerprint, root).map(Some),
        None => Ok(None),
    }
}

/// What a key remembers of an accepted request.
pub fn remember(
    key: &IdempotencyKey,
    fingerprint: &str,
    status: StatusCode,
    resource: &Value,
    now: Timestamp,
    lifetime: std::time::Duration,
) -> IdempotencyRecord {
    IdempotencyRecord {
        key: key.clone(),
        fingerprint: fingerprint.to_owned(),
        status: status.as_u16(),
        response: resource.to_string(),
        expires_at: now.plus(lifetime).whole_seconds(),
    }
}

fn replay(
    record: &IdempotencyRecord,
    fingerprint: &str,
    root: Option<&'static str>,
) -> Result<Success, ApiError> {
    if record.fingerprint != fingerprint {
        return Err(ApiError::IdempotencyKeyReused);
    }
    let resource: Value = serde_json::from_str(&record.response).map_err(|err| {
        tracing::error!(error = %err, "stored idempotent response is not JSON");
        ApiError::Internal
    })?;
    let intent_sid = resource
        .get("intent_sid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Ok(Success {
        status: StatusCode::from_u16(record.status).unwrap_or(StatusCode::OK),
        root,
        resource,
        headers: vec![
            (INTENT_SID_HEADER, intent_sid),
            (REPLAYED_HEADER, "true".into()),
        ],
    })
}

/// Whether `write` failed only in appearance: the write carrying `intent` is stored although its
/// answer said otherwise. That happens when the answer is lost (a timeout after DynamoDB applied
/// the transaction) and when the SDK retries a write that had landed (the retry then fails its
/// own condition and reports `CallChanged` or `KeyTaken`). One consistent read of the intent's
/// key tells: it holds this IntentSid only if this request wrote it.
pub async fn landed(
    services: &Services,
    intent: &Intent,
    write: Result<(), RecordError>,
) -> Result<(), RecordError> {
    if write.is_ok() {
        return write;
    }
    match services.calls.intent(&intent.subject, intent.seq).await {
        Ok(Some(stored)) if stored.sid == intent.sid => {
            tracing::warn!(intent_sid = %intent.sid, "a write reported as failed had landed");
            Ok(())
        }
        _ => write,
    }
}

/// Sends the intent's command, if it has one. If the send fails, undoes the intent in one write
/// (intent failed, call put back as `restored` unless a later write owns it, key released) and
/// answers 503; if even that write fails, the intent stays pending for the reconciler and the
/// answer says so.
pub async fn dispatch(
    services: &Services,
    planned: &Planned,
    restored: Call,
    key: Option<&IdempotencyKey>,
) -> Result<(), ApiError> {
    let Some(command) = &planned.intent.command else {
        return Ok(());
    };
    let message = OutgoingMessage::intent_command(command);
    let Err(err) = services
        .commands
        .send(planned.intent.queue.as_deref(), &message)
        .await
    else {
        return Ok(());
    };
    tracing::error!(intent_sid = %planned.intent.sid, error = %err, "command not sent");
    let now = services.clock.now();
    let restored = Call {
        seq: planned.call.seq,
        version: planned.call.version + 1,
        date_updated: now,
        ..restored
    };
    let failure = IntentFailure {
        call_sid: &planned.call.sid,
        seq: planned.intent.seq,
        reason: "The command could not be queued for the call's media worker",
        now,
        restore: Some((&restored, planned.call.version)),
        release_key: key,
    };
    let undone = match services.calls.fail_intent(failure).await {
        Ok(_) => true,
        Err(err) => {
            tracing::error!(intent_sid = %planned.intent.sid, error = %err, "intent not undone; the reconciler will deliver it");
            false
        }
    };
    Err(ApiError::CommandNotQueued {
        intent_sid: planned.intent.sid.clone(),
        undone,
    })
}

/// A change of one call through the API (a modification, a stream started or stopped): what
/// [`change_call`] needs besides the plan.
pub struct CallChange<'a> {
    pub call_sid: &'a CallSid,
    pub owner: &'a Account,
    pub key: Option<&'a IdempotencyKey>,
    pub fingerprint: &'a str,
    /// The XML element of the resource answered.
    pub root: Option<&'static str>,
    pub status: StatusCode,
}

/// Plans a change of the call as read and writes it (call item + intent + idempotency record,
/// one conditional write); a write that loses a race against another change of the call reads
/// the call again and re-plans, within the write budget (then 503). `plan` returns the change
/// and the resource to answer with. Then sends the intent's command ([`dispatch`]: a failed
/// send undoes the change and answers 503). A request whose key was used answers as the first
/// one did.
pub async fn change_call(
    services: &Services,
    change: CallChange<'_>,
    plan: impl Fn(&Call, Timestamp) -> Result<(Planned, Value), ApiError>,
) -> Result<Success, ApiError> {
    let CallChange {
        call_sid,
        owner,
        key,
        fingerprint,
        root,
        status,
    } = change;
    if let Some(answer) = known_answer_as(services, key, fingerprint, root).await? {
        return Ok(answer);
    }
    let mut retry = Retry::within(services.config.write_budget);
    let (before, planned, resource) = loop {
        let now = services.clock.now();
        let before = super::owned_call(services, owner, call_sid).await?;
        let (planned, resource) = plan(&before, now)?;
        let record = key.map(|key| {
            remember(
                key,
                fingerprint,
                status,
                &resource,
                now,
                services.config.idempotency_lifetime,
            )
        });
        let write = CallWrite {
            call: &planned.call,
            expected_version: Some(before.version),
            intent: Some(&planned.intent),
            idempotency: record.as_ref(),
            now,
        };
        let written = services.calls.write_call(write).await;
        match landed(services, &planned.intent, written).await {
            Ok(()) => break (before, planned, resource),
            Err(RecordError::CallChanged) => {}
            Err(RecordError::KeyTaken) => {
                // A concurrent request with the same key won: answer as it did. (If its record
                // expired between the write and this read, go round again.)
                if let Some(answer) = known_answer_as(services, key, fingerprint, root).await? {
                    return Ok(answer);
                }
            }
            Err(RecordError::Store(err)) => return Err(err.into()),
        }
        if !retry.again().await {
            return Err(ApiError::Busy);
        }
    };
    dispatch(services, &planned, before, key).await?;
    Ok(Success {
        status,
        root,
        resource,
        headers: vec![(INTENT_SID_HEADER, planned.intent.sid.to_string())],
    })
}
