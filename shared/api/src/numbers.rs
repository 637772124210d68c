//! Phone numbers, Twilio-shaped: `…/IncomingPhoneNumbers` (create, list) and
//! `…/IncomingPhoneNumbers/{PN}` (fetch, update, delete). A number's `PhoneNumber` is taken
//! once in the deployment; an inbound call to it runs its `VoiceUrl` (docs/data-model.md,
//! "numbers").

use lambda_http::Request;
use lambda_http::http::StatusCode;
use serde_json::{Value, json};

use super::error::ApiError;
use super::list::{bad_token, envelope, list_path, query_form};
use super::representation::{API_VERSION, BASE_PATH};
use super::{Route, Services, Success, form_body};
use teleapi_domain::number::{
    IncomingNumber, ListNumbersRequest, NumberChanges, number_position, number_position_sid,
};
use teleapi_domain::{Account, PhoneNumberSid, WebhookUrl};
use teleapi_ports::InsertError;
use teleapi_ports::retry::Retry;

/// The IncomingPhoneNumber resource with Twilio's field names. What this platform does not
/// carry (messaging, addresses, emergency calling) is there with Twilio's empty values.
pub fn number_resource(number: &IncomingNumber) -> Value {
    let voice = &number.voice;
    let url = |u: &Option<WebhookUrl>| u.as_ref().map(ToString::to_string);
    json!({
        "sid": number.sid,
        "account_sid": number.account_sid,
        "phone_number": number.phone_number,
        "friendly_name": number.friendly_name,
        "api_version": API_VERSION,
        "date_created": number.date_created.rfc2822(),
        "date_updated": number.date_updated.rfc2822(),
        "voice_url": url(&voice.url),
        "voice_method": voice.method.as_str(),
        "voice_fallback_url": url(&voice.fallback_url),
        "voice_fallback_method": voice.fallback_method.as_str(),
        "status_callback": url(&voice.status_callback),
        "status_callback_method": voice.status_callback_method.as_str(),
        "voice_caller_id_lookup": false,
        "voice_application_sid": null,
        "voice_receive_mode": "voice",
        "trunk_sid": null,
        "capabilities": {"voice": true, "sms": false, "mms": false, "fax": false},
        "beta": false,
        "origin": "hosted",
        "status": "in-use",
        "sms_url": null,
        "sms_method": "POST",
        "sms_fallback_url": null,
        "sms_fallback_method": "POST",
        "sms_application_sid": null,
        "address_sid": null,
        "address_requirements": "none",
        "identity_sid": null,
        "bundle_sid": null,
        "emergency_status": "Inactive",
        "emergency_address_sid": null,
        "emergency_address_status": "unregistered",
        "uri": format!(
            "{BASE_PATH}/Accounts/{}/IncomingPhoneNumbers/{}.json",
            number.account_sid, number.sid
        ),
        "subresource_uris": {},
    })
}

/// The number the path names, if it exists and belongs to `owner`; 404 otherwise, whichever
/// it is.
async fn owned_number(
    services: &Services,
    owner: &Account,
    route: &Route,
) -> Result<IncomingNumber, ApiError> {
    let raw = route.number.as_deref().unwrap_or_default();
    let not_found = || ApiError::NotFound(teleapi_domain::sid::shorten(raw));
    let sid: PhoneNumberSid = raw.parse().map_err(|_| not_found())?;
    services
        .numbers
        .number(&sid)
        .await?
        .filter(|n| n.account_sid == owner.sid)
        .ok_or_else(not_found)
}

pub async fn create_number(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let form = form_body(request, services.config.max_body_bytes)?;
    let number = IncomingNumber::parse_create(
        owner.sid.clone(),
        &form,
        services.config.address_policy,
        services.clock.now(),
    )?;
    match services.numbers.insert_number(&number).await {
        Ok(()) => {}
        Err(InsertError::AlreadyExists) => {
            return Err(ApiError::NumberTaken(number.phone_number));
        }
        Err(InsertError::Store(err)) => return Err(err.into()),
    }
    Ok(Success {
        status: StatusCode::CREATED,
        root: Some("IncomingPhoneNumber"),
        resource: number_resource(&number),
        headers: Vec::new(),
    })
}

pub async fn list_numbers(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let list = ListNumbersRequest::parse(&query_form(request)?)?;
    if let Some(token) = &list.paging.token {
        number_position_sid(&token.after).ok_or_else(bad_token)?;
    }
    let page = services
        .numbers
        .list_numbers(&owner.sid, &list.filter, &list.paging.request())
        .await?;
    let path = list_path(&owner.sid, None, "IncomingPhoneNumbers", route);
    let items = page.items.iter().map(number_resource).collect();
    let resource = envelope(
        "incoming_phone_numbers",
        items,
        &page,
        number_position,
        &list.paging,
        &path,
        &list.query,
    );
    Ok(Success::ok(None, resource))
}

pub async fn get_number(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let number = owned_number(services, &owner, route).await?;
    Ok(Success::ok(
        Some("IncomingPhoneNumber"),
        number_resource(&number),
    ))
}

pub async fn update_number(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let form = form_body(request, services.config.max_body_bytes)?;
    let changes = NumberChanges::parse_update(&form, services.config.address_policy)?;
    let mut retry = Retry::within(services.config.write_budget);
    loop {
        let number = owned_number(services, &owner, route).await?;
        let next = changes.applied_to(&number, services.clock.now());
        if changes.is_empty()
            || services
                .numbers
                .update_number(&next, number.version)
                .await?
        {
            let shown = if changes.is_empty() { &number } else { &next };
            return Ok(Success::ok(
                Some("IncomingPhoneNumber"),
                number_resource(shown),
            ));
        }
        // A concurrent change got there first: this one applies to what it wrote.
        if !retry.again().await {
            return Err(ApiError::Busy);
        }
    }
}

pub async fn delete_number(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let mut retry = Retry::within(services.config.write_budget);
    loop {
        let number = owned_number(services, &owner, route).await?;
        if services
            .numbers
            .delete_number(&number, number.version)
            .await?
        {
            return Ok(Success {
                status: StatusCode::NO_CONTENT,
                root: None,
                resource: Value::Null,
                headers: Vec::new(),
            });
        }
        // Changed since it was read (or deleted: the next read says 404).
        if !retry.again().await {
            return Err(ApiError::Busy);
        }
    }
}
