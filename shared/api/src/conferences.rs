//! The conference resources, Twilio-shaped: `GET …/Conferences`, `GET …/Conferences/{Sid}`,
//! `GET …/Conferences/{Sid}/Participants` and `GET …/Participants/{CallSid}`. What they show is
//! what the media worker that runs each room reported (docs/messages.md, "Conference events").

use lambda_http::Request;
use serde_json::{Value, json};

use super::error::ApiError;
use super::list::{bad_token, envelope, list_path, page_of, query_form, suffix};
use super::owned_conference;
use super::representation::{API_VERSION, BASE_PATH};
use super::{Route, Services, Success};
use teleapi_domain::Account;
use teleapi_domain::conference::{
    Conference, ConferenceStatus, ListConferencesRequest, ListParticipantsRequest, Participant,
    ParticipantStatus, conference_position, conference_position_sid, participant_position,
};

fn conference_path(conference: &Conference) -> String {
    format!(
        "{BASE_PATH}/Accounts/{}/Conferences/{}",
        conference.account_sid, conference.sid
    )
}

/// The Conference resource with Twilio's field names.
pub fn conference_resource(conference: &Conference) -> Value {
    let path = conference_path(conference);
    json!({
        "sid": conference.sid,
        "account_sid": conference.account_sid,
        "friendly_name": conference.friendly_name,
        "status": conference.status.as_str(),
        "region": "us1",
        "date_created": conference.date_created.rfc2822(),
        "date_updated": conference.date_updated.rfc2822(),
        "api_version": API_VERSION,
        "reason_conference_ended": conference.reason_ended.map(|r| r.as_str()),
        "call_sid_ending_conference": conference.call_sid_ending,
        "uri": format!("{path}.json"),
        "subresource_uris": {
            "participants": format!("{path}/Participants.json"),
        },
    })
}

/// The Participant resource with Twilio's field names.
pub fn participant_resource(participant: &Participant) -> Value {
    let state = &participant.state;
    json!({
        "account_sid": participant.account_sid,
        "call_sid": state.call_sid,
        "conference_sid": participant.conference_sid,
        "label": state.label,
        "muted": state.muted,
        "hold": state.hold,
        "coaching": state.coaching,
        "call_sid_to_coach": state.call_sid_to_coach,
        "start_conference_on_enter": state.start_conference_on_enter,
        "end_conference_on_exit": state.end_conference_on_exit,
        "status": participant.status.as_str(),
        "queue_time": null,
        "date_created": participant.date_created.rfc2822(),
        "date_updated": participant.date_updated.rfc2822(),
        "uri": format!(
            "{BASE_PATH}/Accounts/{}/Conferences/{}/Participants/{}.json",
            participant.account_sid, participant.conference_sid, state.call_sid
        ),
    })
}

/// The participant the path names: by its CallSid, or by its `Label` among the room's
/// participants (as Twilio allows). 404 if neither names one.
pub(super) async fn participant_in_path(
    services: &Services,
    owner: &Account,
    route: &Route,
) -> Result<teleapi_domain::CallSid, ApiError> {
    if let Ok(call_sid) = route.call_sid() {
        return Ok(call_sid);
    }
    let raw = route.call_sid.as_deref().unwrap_or_default();
    let label = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let conference = owned_conference(services, owner, route).await?;
    services
        .conferences
        .participants(&conference.sid)
        .await?
        .into_iter()
        .find(|p| p.state.label.as_deref() == Some(&*label))
        .map(|p| p.state.call_sid)
        .ok_or_else(|| ApiError::NotFound(teleapi_domain::sid::shorten(raw)))
}

pub async fn list_conferences(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let list = ListConferencesRequest::parse(&query_form(request)?)?;
    if let Some(token) = &list.paging.token {
        conference_position_sid(&token.after).ok_or_else(bad_token)?;
    }
    let page = services
        .conferences
        .list_conferences(&owner.sid, &list.filter, &list.paging.request())
        .await?;
    let path = list_path(&owner.sid, None, "Conferences", route);
    let items = page.items.iter().map(conference_resource).collect();
    let resource = envelope(
        "conferences",
        items,
        &page,
        conference_position,
        &list.paging,
        &path,
        &list.query,
    );
    Ok(Success::ok(None, resource))
}

pub async fn get_conference(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let conference = owned_conference(services, &owner, route).await?;
    Ok(Success::ok(
        Some("Conference"),
        conference_resource(&conference),
    ))
}

/// The participants in the room, in the order they joined, a page at a time (a room holds a
/// few hundred at most: the page is cut from the whole room). An ended room has none.
pub async fn list_participants(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let conference = owned_conference(services, &owner, route).await?;
    let list = ListParticipantsRequest::parse(&query_form(request)?)?;
    if let Some(token) = &list.paging.token
        && !token.after.contains('#')
    {
        return Err(bad_token());
    }
    let everyone = if conference.status == ConferenceStatus::Completed {
        Vec::new()
    } else {
        services.conferences.participants(&conference.sid).await?
    };
    let matching: Vec<Participant> = everyone
        .into_iter()
        .filter(|p| list.filter.matches(p))
        .collect();
    let page = page_of(matching, &list.paging.request(), participant_position);
    let path = format!(
        "{}/Participants{}",
        conference_path(&conference),
        suffix(route)
    );
    let items = page.items.iter().map(participant_resource).collect();
    let resource = envelope(
        "participants",
        items,
        &page,
        participant_position,
        &list.paging,
        &path,
        &list.query,
    );
    Ok(Success::ok(None, resource))
}

pub async fn get_participant(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let call_sid = participant_in_path(services, &owner, route).await?;
    let conference = owned_conference(services, &owner, route).await?;
    let participant = services
        .conferences
        .participant(&conference.sid, &call_sid)
        .await?
        .filter(|p| {
            p.status == ParticipantStatus::Connected
                && conference.status != ConferenceStatus::Completed
        })
        .ok_or_else(|| ApiError::NotFound(call_sid.to_string()))?;
    Ok(Success::ok(
        Some("Participant"),
        participant_resource(&participant),
    ))
}
