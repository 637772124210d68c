//! Media streams of live calls, Twilio-shaped: `POST …/Calls/{Sid}/Streams` starts one (the
//! call's audio to the application's WebSocket), `POST …/Calls/{Sid}/Streams/{Sid or Name}`
//! with `Status=stopped` stops it. A modification of the call in all but name: the call item
//! keeps its streams, so each is one conditional write of the call and its intent, then one
//! command to the call's worker (a failed send undoes it: 503).

use lambda_http::Request;
use lambda_http::http::StatusCode;
use serde_json::{Value, json};

use super::error::ApiError;
use super::intents::{self, CallChange};
use super::representation::BASE_PATH;
use super::{Route, Services, Success, form_body};
use teleapi_domain::call::Planned;
use teleapi_domain::stream;
use teleapi_domain::stream::{PlannedStream, StartStream, Stream};
use teleapi_domain::{Call, IntentSid, StreamSid};

/// The Stream resource with Twilio's field names.
pub fn stream_resource(call: &Call, stream: &Stream) -> Value {
    json!({
        "sid": stream.sid(),
        "account_sid": call.account_sid,
        "call_sid": call.sid,
        "name": stream.spec.name,
        "status": stream.status.as_str(),
        "date_updated": teleapi_domain::Timestamp::from_millis(stream.date_updated).rfc2822(),
        "uri": format!(
            "{BASE_PATH}/Accounts/{}/Calls/{}/Streams/{}.json",
            call.account_sid,
            call.sid,
            stream.sid()
        ),
    })
}

/// The planned change, as the call-change pipeline writes it, and its answer.
fn written(planned: PlannedStream) -> (Planned, Value) {
    let mut resource = stream_resource(&planned.call, &planned.stream);
    resource["intent_sid"] = json!(planned.intent.sid);
    (
        Planned {
            call: planned.call,
            intent: planned.intent,
        },
        resource,
    )
}

pub async fn start_stream(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (caller, owner) = super::accounts(services, route, request).await?;
    let call_sid = route.call_sid()?;
    let form = form_body(request, services.config.max_body_bytes)?;
    let start = StartStream::parse(&form, services.config.address_policy)?;
    let key = intents::idempotency_key(request.headers(), &caller)?;
    let fingerprint = format!(
        "stream-start {call_sid} {}",
        serde_json::to_string(&start.parameters()).expect("a string map serialises")
    );
    let (stream_sid, intent_sid) = (StreamSid::generate(), IntentSid::generate());
    let change = CallChange {
        call_sid: &call_sid,
        owner: &owner,
        key: key.as_ref(),
        fingerprint: &fingerprint,
        root: Some("Stream"),
        status: StatusCode::CREATED,
    };
    intents::change_call(services, change, |call, now| {
        let retention = services.config.intent_retention;
        let sid = stream_sid.clone();
        let planned = stream::plan_start(call, &start, sid, intent_sid.clone(), now, retention)?;
        Ok(written(planned))
    })
    .await
}

pub async fn stop_stream(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (caller, owner) = super::accounts(services, route, request).await?;
    let call_sid = route.call_sid()?;
    let form = form_body(request, services.config.max_body_bytes)?;
    stream::parse_stop(&form)?;
    let raw = route.stream.as_deref().unwrap_or_default();
    let named = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned();
    let key = intents::idempotency_key(request.headers(), &caller)?;
    let fingerprint = format!("stream-stop {call_sid} {named}");
    let intent_sid = IntentSid::generate();
    let change = CallChange {
        call_sid: &call_sid,
        owner: &owner,
        key: key.as_ref(),
        fingerprint: &fingerprint,
        root: Some("Stream"),
        status: StatusCode::OK,
    };
    intents::change_call(services, change, |call, now| {
        let found = stream::find(call, &named)
            .ok_or_else(|| ApiError::NotFound(teleapi_domain::sid::shorten(&named)))?;
        let retention = services.config.intent_retention;
        let planned = stream::plan_stop(call, found, intent_sid.clone(), now, retention)?;
        Ok(written(planned))
    })
    .await
}
