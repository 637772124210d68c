//! Recordings of live calls, Twilio-shaped: `POST …/Calls/{Sid}/Recordings` (start),
//! `POST …/Calls/{Sid}/Recordings/{Sid}` (pause, resume, stop; `Twilio.CURRENT` names the
//! call's active one), the lists (a call's, the account's), one recording, its media
//! (`…/Recordings/{Sid}.wav`) and its deletion.
//!
//! A start or a change goes through the modification pipeline: everything checked first; one
//! conditional write (the call with its next intent number, the recording as it is to be, the
//! intent, the Idempotency-Key); one command to the call's worker, in the call's message group.
//! What the recording then is, its duration and media, the worker reports.

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::intents::{self, INTENT_SID_HEADER};
use super::list::{bad_token, envelope, list_path, query_form};
use super::representation::{API_VERSION, BASE_PATH};
use super::{Route, Services, Success, call_in_path, form_body, owned_call};
use teleapi_domain::recording::{
    ListRecordingsRequest, PlannedRecording, Recording, RecordingOptions, RecordingStateError,
    RecordingUpdate, plan_start, plan_update, recording_path, recording_position,
    recording_position_sid,
};
use teleapi_domain::{Account, Call, IntentSid, RecordingSid};
use teleapi_ports::retry::Retry;
use teleapi_ports::{Media, OutgoingMessage, RecordError, RecordingWrite};

/// What `Twilio.CURRENT` in place of a RecordingSid names: the call's active recording.
pub const CURRENT: &str = "Twilio.CURRENT";

/// The API's address as the client reached it: the configured public URL, or the request's
/// scheme (`X-Forwarded-Proto`, which API Gateway and teleapi-local set; https otherwise), its
/// `Host`, and API Gateway's stage when the path carries one.
fn public_url(services: &Services, request: &Request) -> String {
    if let Some(url) = &services.config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = match request
        .headers()
        .get("x-forwarded-proto")
        .map(HeaderValue::as_bytes)
    {
        Some(b"http") => "http",
        _ => "https",
    };
    let path = request.uri().path();
    let stage = path.find("/call/").map_or("", |at| &path[..at]);
    format!("{scheme}://{host}{stage}")
}

/// The Recording resource with Twilio's field names; `under_call` for the call's sub-resource
/// (whose `uri` is under the call).
pub fn recording_resource(recording: &Recording, base: &str, under_call: bool) -> Value {
    let path = recording_path(recording);
    let uri = if under_call {
        format!(
            "{BASE_PATH}/Accounts/{}/Calls/{}/Recordings/{}.json",
            recording.account_sid, recording.call_sid, recording.sid
        )
    } else {
        format!("{path}.json")
    };
    json!({
        "sid": recording.sid,
        "account_sid": recording.account_sid,
        "call_sid": recording.call_sid,
        "conference_sid": null,
        "api_version": API_VERSION,
        "date_created": recording.date_created.rfc2822(),
        "date_updated": recording.date_updated.rfc2822(),
        "start_time": recording.start_time.rfc2822(),
        "duration": recording.duration.map(|d| d.to_string()),
        "status": recording.status.as_str(),
        "channels": recording.channels.count(),
        "source": recording.source.as_str(),
        "track": recording.track.as_str(),
        "error_code": recording.error_code,
        "price": null,
        "price_unit": "USD",
        "encryption_details": null,
        "uri": uri,
        "media_url": format!("{base}{path}"),
        "subresource_uris": {
            "transcriptions": format!("{path}/Transcriptions.json"),
        },
    })
}

/// The recording the path names, if it exists and belongs to `owner` (and, under a call, to
/// that call); 404 otherwise, whichever it is. `Twilio.CURRENT` under a call names its active
/// recording.
async fn owned_recording(
    services: &Services,
    owner: &Account,
    route: &Route,
    call: Option<&Call>,
) -> Result<Recording, ApiError> {
    let raw = route.recording_sid.as_deref().unwrap_or_default();
    let not_found = || ApiError::NotFound(teleapi_domain::sid::shorten(raw));
    let sid: RecordingSid = match (raw, call) {
        (CURRENT, Some(call)) => call.recording.clone().ok_or_else(not_found)?,
        _ => raw.parse().map_err(|_| not_found())?,
    };
    let recording = services
        .recordings
        .recording(&sid)
        .await?
        .filter(|r| r.account_sid == owner.sid)
        .filter(|r| call.is_none_or(|c| c.sid == r.call_sid))
        .ok_or_else(not_found)?;
    if raw == CURRENT && !recording.status.is_active() {
        return Err(not_found());
    }
    Ok(recording)
}

pub async fn list_recordings(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let call = call_in_path(services, &owner, route).await?;
    let list =
        ListRecordingsRequest::parse(&query_form(request)?, call.as_ref().map(|c| c.sid.clone()))?;
    if let Some(token) = &list.paging.token {
        recording_position_sid(&token.after).ok_or_else(bad_token)?;
    }
    let page = services
        .recordings
        .list_recordings(&owner.sid, &list.filter, &list.paging.request())
        .await?;
    let path = list_path(
        &owner.sid,
        call.as_ref().map(|c| &c.sid),
        "Recordings",
        route,
    );
    let base = public_url(services, request);
    let items = page
        .items
        .iter()
        .map(|r| recording_resource(r, &base, call.is_some()))
        .collect();
    let resource = envelope(
        "recordings",
        items,
        &page,
        recording_position,
        &list.paging,
        &path,
        &list.query,
    );
    Ok(Success::ok(None, resource))
}

pub async fn get_recording(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let call = call_in_path(services, &owner, route).await?;
    let recording = owned_recording(services, &owner, route, call.as_ref()).await?;
    let base = public_url(services, request);
    Ok(Success::ok(
        Some("Recording"),
        recording_resource(&recording, &base, call.is_some()),
    ))
}

/// `GET …/Recordings/{Sid}.wav` (or `.mp3`): the media, with the account's credentials.
/// Deployed, a redirect to a presigned URL of the bucket that works for a few minutes; in
/// teleapi-local, the file. 404 until the worker has reported the media. The MP3 is the
/// worker's too, beside the WAV it reports (same key, `.mp3`).
pub async fn recording_media(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let recording = owned_recording(services, &owner, route, None).await?;
    let extension = route.media.unwrap_or("wav");
    let not_found = || ApiError::NotFound(format!("{}.{extension}", recording.sid));
    let Some(location) = recording
        .media
        .as_deref()
        .map(|wav| media_location(wav, extension))
    else {
        return Err(not_found());
    };
    let mut response = match services.media.fetch(&location).await? {
        None => return Err(not_found()),
        Some(Media::Bytes(bytes)) => {
            let content_type = match extension {
                "mp3" => "audio/mpeg",
                _ => "audio/x-wav",
            };
            let mut response = Response::new(Body::Binary(bytes));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        Some(Media::Redirect(url)) => {
            let mut response = Response::new(Body::Empty);
            *response.status_mut() = StatusCode::FOUND;
            let location = HeaderValue::from_str(&url).map_err(|_| ApiError::Internal)?;
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
    };
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}

/// Where the media of `extension` is: the WAV the worker reported, or the MP3 beside it.
fn media_location(wav: &str, extension: &str) -> String {
    match (extension, wav.strip_suffix(".wav")) {
        ("mp3", Some(stem)) => format!("{stem}.mp3"),
        _ => wav.to_owned(),
    }
}

/// `DELETE`: a recording that has completed (or ended absent or failed), with its media.
pub async fn delete_recording(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let call = call_in_path(services, &owner, route).await?;
    let recording = owned_recording(services, &owner, route, call.as_ref()).await?;
    if !recording.status.is_final() {
        return Err(RecordingStateError::NotFinished(
            recording.sid.clone(),
            recording.status.as_str(),
        )
        .into());
    }
    // The media first: a failure leaves the recording listed, and a retry deletes both.
    if let Some(wav) = &recording.media {
        services.media.delete(&media_location(wav, "mp3")).await?;
        services.media.delete(wav).await?;
    }
    if !services
        .recordings
        .delete_recording(&recording.sid, recording.version)
        .await?
    {
        return Err(ApiError::Busy);
    }
    Ok(Success {
        status: StatusCode::NO_CONTENT,
        root: None,
        resource: Value::Null,
        headers: Vec::new(),
    })
}

/// What a start or a change asks for.
enum Change {
    Start(RecordingOptions),
    Update(RecordingUpdate),
}

pub async fn start_recording(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (caller, owner) = super::accounts(services, route, request).await?;
    let form = form_body(request, services.config.max_body_bytes)?;
    let options = RecordingOptions::parse_start(&form, services.config.address_policy)?;
    apply(
        services,
        route,
        request,
        &caller,
        &owner,
        Change::Start(options),
    )
    .await
}

pub async fn update_recording(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (caller, owner) = super::accounts(services, route, request).await?;
    let form = form_body(request, services.config.max_body_bytes)?;
    let update = RecordingUpdate::parse(&form)?;
    apply(
        services,
        route,
        request,
        &caller,
        &owner,
        Change::Update(update),
    )
    .await
}

async fn apply(
    services: &Services,
    route: &Route,
    request: &Request,
    caller: &Account,
    owner: &Account,
    change: Change,
) -> Result<Success, ApiError> {
    let call_sid = route.call_sid()?;
    let key = intents::idempotency_key(request.headers(), caller)?;
    let (kind, parameters) = match &change {
        Change::Start(options) => ("start", options.parameters()),
        Change::Update(update) => ("update", update.parameters()),
    };
    let fingerprint = format!(
        "recording-{kind} {call_sid} {} {}",
        route.recording_sid.as_deref().unwrap_or_default(),
        serde_json::to_string(&parameters).expect("a string map serialises")
    );
    let root = Some("Recording");
    if let Some(answer) =
        intents::known_answer_as(services, key.as_ref(), &fingerprint, root).await?
    {
        return Ok(answer);
    }
    let base = public_url(services, request);
    let intent_sid = IntentSid::generate();
    let recording_sid = RecordingSid::generate();
    let mut retry = Retry::within(services.config.write_budget);
    let (planned, status, resource) = loop {
        let now = services.clock.now();
        let retention = services.config.intent_retention;
        let call = owned_call(services, owner, &call_sid).await?;
        let planned: PlannedRecording = match &change {
            Change::Start(options) => {
                let active = match &call.recording {
                    Some(sid) => services.recordings.recording(sid).await?,
                    None => None,
                };
                let sid = recording_sid.clone();
                plan_start(
                    &call,
                    active.as_ref(),
                    options,
                    sid,
                    intent_sid.clone(),
                    now,
                    retention,
                )?
            }
            Change::Update(update) => {
                let recording = owned_recording(services, owner, route, Some(&call)).await?;
                plan_update(
                    &call,
                    &recording,
                    update,
                    intent_sid.clone(),
                    now,
                    retention,
                )?
            }
        };
        let status = match change {
            Change::Start(_) => StatusCode::CREATED,
            Change::Update(_) => StatusCode::OK,
        };
        let mut resource = recording_resource(&planned.recording, &base, true);
        resource["intent_sid"] = json!(planned.intent.sid);
        let record = key.as_ref().map(|key| {
            intents::remember(
                key,
                &fingerprint,
                status,
                &resource,
                now,
                services.config.idempotency_lifetime,
            )
        });
        let write = RecordingWrite {
            planned: &planned,
            idempotency: record.as_ref(),
            now,
        };
        let written = services.recordings.write_recording_intent(write).await;
        match intents::landed(services, &planned.intent, written).await {
            Ok(()) => break (planned, status, resource),
            Err(RecordError::CallChanged) => {}
            Err(RecordError::KeyTaken) => {
                if let Some(answer) =
                    intents::known_answer_as(services, key.as_ref(), &fingerprint, root).await?
                {
                    return Ok(answer);
                }
            }
            Err(RecordError::Store(err)) => return Err(err.into()),
        }
        if !retry.again().await {
            return Err(ApiError::Busy);
        }
    };

    // The command, in the call's message group. If it cannot be sent, the intent stays pending:
    // the reconciler sends it again within two minutes, or fails it (docs/decisions.md).
    if let Some(command) = &planned.intent.command {
        let message = OutgoingMessage::intent_command(command);
        if let Err(err) = services
            .commands
            .send(planned.intent.queue.as_deref(), &message)
            .await
        {
            tracing::error!(intent_sid = %planned.intent.sid, error = %err, "recording command not sent; the reconciler will");
            return Err(ApiError::CommandNotQueued {
                intent_sid: planned.intent.sid.clone(),
                undone: false,
            });
        }
    }
    Ok(Success {
        status,
        root,
        resource,
        headers: vec![(INTENT_SID_HEADER, planned.intent.sid.to_string())],
    })
}
