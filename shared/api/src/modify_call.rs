//! `POST …/Accounts/{AccountSid}/Calls/{CallSid}`: modify a live call.
//!
//! Validate everything, then one conditional write (call item + intent [+ idempotency record]),
//! then one SendMessage. A write that loses a race against another modification of the same
//! call reads the call again and re-decides, within the write budget. A send that fails undoes
//! the intent and answers 503, so nothing is reported as done that was not.

use lambda_http::Request;
use lambda_http::http::StatusCode;

use super::error::ApiError;
use super::intents::{self, CallChange};
use super::representation::call_resource;
use super::{Route, Services, Success, form_body};
use teleapi_domain::call::plan;
use teleapi_domain::{IntentSid, ModifyRequest};

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
    let intent_sid = IntentSid::generate();
    let change = CallChange {
        call_sid: &call_sid,
        owner: &owner,
        key: key.as_ref(),
        fingerprint: &fingerprint,
        root: Some("Call"),
        status: StatusCode::OK,
    };
    intents::change_call(services, change, |before, now| {
        let retention = services.config.intent_retention;
        let planned = plan(before, &modification, intent_sid.clone(), now, retention)?;
        let resource = call_resource(&planned.call.listed(), Some(&planned.intent.sid));
        Ok((planned, resource))
    })
    .await
}
