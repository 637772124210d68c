//! `POST …/Accounts/{AccountSid}/Calls`: create an outgoing call.
//!
//! One conditional write creates the call item (queued, outbound-api) with its first intent,
//! `dial` [+ idempotency record]; one SendMessage puts the `dial` command on the default commands
//! queue (group = CallSid). If the send fails the call is recorded as failed and the answer is 503.

use lambda_http::Request;
use lambda_http::http::StatusCode;

use super::error::ApiError;
use super::intents::{self, INTENT_SID_HEADER};
use super::representation::{call_resource, call_uri};
use super::{Route, Services, Success, form_body};
use serde_json::Value;

use teleapi_domain::call::Planned;
use teleapi_domain::call::{CreateRequest, plan_create};
use teleapi_domain::{Call, CallSid, CallStatus, IdempotencyKey, IntentSid, Timestamp};
use teleapi_ports::{CallWrite, RecordError};

pub async fn create_call(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (caller, owner) = super::accounts(services, route, request).await?;
    let form = form_body(request, services.config.max_body_bytes)?;
    let create = CreateRequest::parse(&form, services.config.address_policy)?;
    let key = intents::idempotency_key(request.headers(), &caller)?;
    let fingerprint = format!(
        "create {} {}",
        owner.sid,
        serde_json::to_string(&create.parameters()).expect("a string map serialises")
    );
    if let Some(answer) = intents::known_answer(services, key.as_ref(), &fingerprint).await? {
        return Ok(answer);
    }

    let now = services.clock.now();
    let planned = plan_create(
        &create,
        owner.sid.clone(),
        owner.listing_shards,
        CallSid::generate(),
        IntentSid::generate(),
        now,
        services.config.intent_retention,
    );
    let resource = call_resource(&planned.call.listed(), Some(&planned.intent.sid));
    let location = (
        "location",
        call_uri(&planned.call.account_sid, &planned.call.sid),
    );
    let new = NewCall {
        key: key.as_ref(),
        fingerprint: &fingerprint,
        root: Some("Call"),
        now,
    };
    record_new_call(services, &planned, resource, vec![location], new).await
}

/// How a new call's request answers: its key and fingerprint, its resource's XML root.
pub(super) struct NewCall<'a> {
    pub key: Option<&'a IdempotencyKey>,
    pub fingerprint: &'a str,
    pub root: Option<&'static str>,
    pub now: Timestamp,
}

/// Records a planned new call in one conditional write (the call, its `dial` intent and the
/// key's record of `resource`), then sends its `dial`: 201 with `resource`. If the command
/// cannot be queued, nobody will place the call: it is recorded as failed and the answer is 503.
pub(super) async fn record_new_call(
    services: &Services,
    planned: &Planned,
    resource: Value,
    mut headers: Vec<(&'static str, String)>,
    new: NewCall<'_>,
) -> Result<Success, ApiError> {
    let NewCall {
        key,
        fingerprint,
        root,
        now,
    } = new;
    let record = key.map(|key| {
        intents::remember(
            key,
            fingerprint,
            StatusCode::CREATED,
            &resource,
            now,
            services.config.idempotency_lifetime,
        )
    });
    let write = CallWrite {
        call: &planned.call,
        expected_version: None,
        intent: Some(&planned.intent),
        idempotency: record.as_ref(),
        now,
    };
    let written = services.calls.write_call(write).await;
    match intents::landed(services, &planned.intent, written).await {
        Ok(()) => {}
        Err(RecordError::KeyTaken) => {
            return intents::known_answer_as(services, key, fingerprint, root)
                .await?
                .ok_or(ApiError::Busy);
        }
        Err(RecordError::CallChanged) => {
            tracing::error!(call_sid = %planned.call.sid, "a new CallSid collided with a stored call");
            return Err(ApiError::Internal);
        }
        Err(RecordError::Store(err)) => return Err(err.into()),
    }
    let failed = Call {
        status: CallStatus::Failed,
        end_time: Some(now),
        ..planned.call.clone()
    };
    intents::dispatch(services, planned, failed, key).await?;
    headers.insert(0, (INTENT_SID_HEADER, planned.intent.sid.to_string()));
    Ok(Success {
        status: StatusCode::CREATED,
        root,
        resource,
        headers,
    })
}
