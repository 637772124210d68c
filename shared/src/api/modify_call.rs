//! `POST …/Accounts/{AccountSid}/Calls/{CallSid}`: modify a live call.
//!
//! Validate everything, then one conditional write (call item + intent [+ idempotency record]),
//! then one SendMessage. A write that loses a race against another modification of the same
//! call reads the call again and re-decides, within the write budget. A send that fails undoes
//! the intent and answers 503, so nothing is reported as done that was not.

use std::time::Instant;

use lambda_http::Request;
use lambda_http::http::StatusCode;

use super::error::ApiError;
use super::intents::{self, INTENT_SID_HEADER};
use super::representation::call_resource;
use super::{Route, Services, Success, form_body};
use crate::domain::modify::plan;
use crate::domain::{IntentSid, ModifyRequest};
use crate::ports::{CallWrite, RecordError};

pub async fn modify_call(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (caller, owner) = super::accounts(services, route, request).await?;
    let call_sid = route.call_sid()?;
    let form = form_body(request, services.config.max_body_bytes)?;
    let modification = ModifyRequest::parse(&form, services.config.address_policy)?;
    let key = intents::idempotency_key(request.headers(), &caller)?;
    let fingerprint = format!(
        "modify {call_sid} {}",
        serde_json::to_string(&modification.parameters()).expect("a string map serialises")
    );
    if let Some(answer) = intents::known_answer(services, key.as_ref(), &fingerprint).await? {
        return Ok(answer);
    }

    let intent_sid = IntentSid::generate();
    let deadline = Instant::now() + services.config.write_budget;
    let mut attempt = 0;
    let (before, planned, resource) = loop {
        let now = services.clock.now();
        let before = super::owned_call(services, &owner, &call_sid).await?;
        let planned = plan(
            &before,
            &modification,
            intent_sid.clone(),
            now,
            services.config.intent_retention,
        )?;
        let resource = call_resource(&planned.call, Some(&planned.intent.sid));
        let record = key.as_ref().map(|key| {
            intents::remember(
                key,
                &fingerprint,
                StatusCode::OK,
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
        match intents::landed(services, &planned.intent, written).await {
            Ok(()) => break (before, planned, resource),
            Err(RecordError::CallChanged) => {}
            Err(RecordError::KeyTaken) => {
                // A concurrent request with the same key won: answer as it did. (If its record
                // expired between the write and this read, go round again.)
                if let Some(answer) =
                    intents::known_answer(services, key.as_ref(), &fingerprint).await?
                {
                    return Ok(answer);
                }
            }
            Err(RecordError::Store(err)) => return Err(err.into()),
        }
        if Instant::now() >= deadline {
            return Err(ApiError::Busy);
        }
        tokio::time::sleep(intents::backoff(attempt)).await;
        attempt += 1;
    };

    intents::dispatch(services, &planned, before, key.as_ref()).await?;
    Ok(Success {
        status: StatusCode::OK,
        root: Some("Call"),
        resource,
        headers: vec![(INTENT_SID_HEADER, planned.intent.sid.to_string())],
    })
}
