//! `POST …/Accounts/{AccountSid}/Calls/{CallSid}`: modify a live call.
//!
//! Validate everything, then one conditional write (call item + intent [+ idempotency record]),
//! then one SendMessage. A write that loses a race against another modification of the same
//! call reads the call again and re-decides, within the write budget. A send that fails undoes
//! the intent and answers 503, so nothing is reported as done that was not.

use std::time::{Duration, Instant};

use lambda_http::Request;
use lambda_http::http::StatusCode;
use serde_json::Value;

use super::error::ApiError;
use super::representation::call_resource;
use super::{Route, Services, Success, auth, form_body};
use crate::domain::idempotency::KEY_LIFETIME;
use crate::domain::modify::{Planned, plan};
use crate::domain::{
    Call, CallSid, IdempotencyKey, IdempotencyRecord, IntentSid, ModifyRequest, Timestamp,
};
use crate::ports::{IntentFailure, IntentWrite, OutgoingMessage, RecordError};

pub const INTENT_SID_HEADER: &str = "teleapi-intent-sid";
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Set on an answer replayed for a repeated Idempotency-Key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

pub async fn modify_call(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let caller = auth::authenticate(services, request.headers()).await?;
    let owner = auth::authorize(services, caller.clone(), &route.account_sid).await?;
    let raw_call_sid = route.call_sid.as_deref().unwrap_or_default();
    let call_sid: CallSid = raw_call_sid
        .parse()
        .map_err(|_| ApiError::NotFound(crate::domain::sid::shorten(raw_call_sid)))?;
    let form = form_body(request, services.config.max_body_bytes)?;
    let modification = ModifyRequest::parse(&form, services.config.address_policy)?;
    let key = match request.headers().get(IDEMPOTENCY_KEY_HEADER) {
        Some(value) => Some(
            IdempotencyKey::parse(&caller.sid, value.as_bytes())
                .ok_or(ApiError::InvalidIdempotencyKey)?,
        ),
        None => None,
    };
    let fingerprint = format!(
        "{} {}",
        call_sid,
        serde_json::to_string(&modification.parameters()).expect("a string map serialises")
    );
    if let Some(key) = &key {
        let now = services.clock.now();
        if let Some(record) = services.calls.idempotency_record(key, now).await? {
            return replay(&record, &fingerprint);
        }
    }

    let intent_sid = IntentSid::generate();
    let deadline = Instant::now() + services.config.write_budget;
    let mut attempt = 0;
    let (before, planned, resource) = loop {
        let now = services.clock.now();
        let before = services
            .calls
            .call(&call_sid)
            .await?
            .filter(|call| call.account_sid == owner.sid)
            .ok_or_else(|| ApiError::NotFound(call_sid.to_string()))?;
        let planned = plan(
            &before,
            &modification,
            intent_sid.clone(),
            now,
            services.config.intent_retention,
        )?;
        let resource = call_resource(&planned.call, Some(&planned.intent.sid));
        let record = key.as_ref().map(|key| IdempotencyRecord {
            key: key.clone(),
            fingerprint: fingerprint.clone(),
            status: StatusCode::OK.as_u16(),
            response: resource.to_string(),
            expires_at: now.plus(KEY_LIFETIME).whole_seconds(),
        });
        let write = IntentWrite {
            call: &planned.call,
            expected_version: Some(before.version),
            intent: &planned.intent,
            idempotency: record.as_ref(),
            now,
        };
        match services.calls.record_intent(write).await {
            Ok(()) => break (before, planned, resource),
            Err(RecordError::CallChanged) => {}
            Err(RecordError::KeyTaken) => {
                // A concurrent request with the same key won: answer as it did. (If its record
                // expired between the write and this read, go round again.)
                if let Some(key) = &key
                    && let Some(record) = services.calls.idempotency_record(key, now).await?
                {
                    return replay(&record, &fingerprint);
                }
            }
            Err(RecordError::Store(err)) => return Err(err.into()),
        }
        if Instant::now() >= deadline {
            return Err(ApiError::Busy);
        }
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    };

    if let Some(command) = &planned.intent.command {
        let message = OutgoingMessage {
            group: call_sid.to_string(),
            dedup_id: planned.intent.sid.to_string(),
            body: command.to_json(),
        };
        if let Err(err) = services
            .commands
            .send(planned.intent.queue.as_deref(), &message)
            .await
        {
            tracing::error!(intent_sid = %planned.intent.sid, error = %err, "command not sent");
            let undone = undo(services, &before, &planned, key.as_ref()).await;
            return Err(ApiError::CommandNotQueued {
                intent_sid: planned.intent.sid.clone(),
                undone,
            });
        }
    }
    Ok(Success {
        status: StatusCode::OK,
        root: "Call",
        resource,
        headers: vec![(INTENT_SID_HEADER, planned.intent.sid.to_string())],
    })
}

/// Full-jitter exponential backoff: a random wait up to 10 ms x 2^attempt, at most 250 ms.
fn backoff(attempt: u32) -> Duration {
    let ceiling = Duration::from_millis(10)
        .saturating_mul(1 << attempt.min(5))
        .min(Duration::from_millis(250));
    let mut bytes = [0u8; 4];
    let fraction = match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    };
    ceiling.mul_f64(fraction)
}

/// The command could not be sent: fail the intent, put the call back as it was (unless a later
/// modification has written it since) and release the idempotency key, in one write. `false`
/// if even that failed: the intent then stays pending and the reconciler delivers it.
async fn undo(
    services: &Services,
    before: &Call,
    planned: &Planned,
    key: Option<&IdempotencyKey>,
) -> bool {
    let now: Timestamp = services.clock.now();
    let restored = Call {
        seq: planned.call.seq,
        version: planned.call.version + 1,
        date_updated: now,
        ..before.clone()
    };
    let failure = IntentFailure {
        call_sid: &before.sid,
        seq: planned.intent.seq,
        reason: "The command could not be queued for the call's media worker",
        now,
        restore: Some((&restored, planned.call.version)),
        release_key: key,
    };
    match services.calls.fail_intent(failure).await {
        Ok(_) => true,
        Err(err) => {
            tracing::error!(intent_sid = %planned.intent.sid, error = %err, "intent not undone; the reconciler will deliver it");
            false
        }
    }
}

fn replay(record: &IdempotencyRecord, fingerprint: &str) -> Result<Success, ApiError> {
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
        root: "Call",
        resource,
        headers: vec![
            (INTENT_SID_HEADER, intent_sid),
            (REPLAYED_HEADER, "true".into()),
        ],
    })
}
