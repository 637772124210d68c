//! Changing a live conference: `POST …/Conferences/{Sid}` (end it, announce to the room),
//! `POST …/Participants/{CallSid}` (mute, hold, coach, announce to one) and
//! `DELETE …/Participants/{CallSid}` (remove). The same pipeline as a call modification:
//! everything checked first; one conditional write (the conference with its next intent number,
//! the participant as it is to be, the intent, the Idempotency-Key); one command to the worker
//! that runs the room, in the conference's message group. A write that loses a race re-reads
//! and re-decides within the write budget.

use lambda_http::Request;
use lambda_http::http::StatusCode;
use serde_json::{Value, json};

use super::conferences::{conference_resource, participant_in_path, participant_resource};
use super::create_call::{NewCall, record_new_call};
use super::error::ApiError;
use super::intents::{self, INTENT_SID_HEADER};
use super::owned_conference;
use super::paths::{InPath, conference_in_path};
use super::{Route, Services, Success, form_body};
use teleapi_domain::call::plan_create;
use teleapi_domain::conference::{
    AddParticipant, ConferenceChangeRequest, ConferenceUpdate, ParticipantUpdate, PlanError,
    PlannedConference, plan,
};
use teleapi_domain::conference::{
    ConferenceStatus, Participant, ParticipantState, ParticipantStatus,
};
use teleapi_domain::intent::IntentCommand;
use teleapi_domain::{Account, CallSid, ConferenceSid, ConferenceStateError, IntentSid};
use teleapi_ports::retry::Retry;
use teleapi_ports::{ConferenceWrite, OutgoingMessage, RecordError};

pub async fn modify_conference(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (caller, owner) = super::accounts(services, route, request).await?;
    let form = form_body(request, services.config.max_body_bytes)?;
    let update = ConferenceUpdate::parse(&form, services.config.address_policy)?;
    let change = ConferenceChangeRequest::Conference(update);
    apply(services, route, request, &caller, &owner, change).await
}

pub async fn modify_participant(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (caller, owner) = super::accounts(services, route, request).await?;
    let form = form_body(request, services.config.max_body_bytes)?;
    let update = ParticipantUpdate::parse(&form, services.config.address_policy)?;
    let call_sid = participant_in_path(services, &owner, route).await?;
    let change = ConferenceChangeRequest::Participant(call_sid, update);
    apply(services, route, request, &caller, &owner, change).await
}

pub async fn remove_participant(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (caller, owner) = super::accounts(services, route, request).await?;
    // A DELETE takes no parameters.
    let form = form_body(request, services.config.max_body_bytes)?;
    teleapi_domain::params::Params::collect(&form, &[], &[])?;
    let call_sid = participant_in_path(services, &owner, route).await?;
    let change = ConferenceChangeRequest::Remove(call_sid);
    apply(services, route, request, &caller, &owner, change).await
}

/// `POST …/Conferences/{Sid}/Participants`: a new call, through create-call's own pipeline
/// (one conditional write of the call and its `dial` intent, one command to the room's worker),
/// whose RCML joins the room once it answers. 201 with the participant, `queued`; it is listed
/// once it has joined.
pub async fn add_participant(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (caller, owner) = super::accounts(services, route, request).await?;
    let form = form_body(request, services.config.max_body_bytes)?;
    // The path names the conference by its sid, or, as on Twilio, by its name: a room of that
    // name that is not running yet is created by this participant, with the sid answered now.
    let (conference, name) = match conference_in_path(services, &owner, route).await? {
        InPath::Running(conference) => {
            let name = conference.friendly_name.clone();
            (Some(*conference), name)
        }
        InPath::NotRunning(name) => (None, name),
    };
    if let Some(conference) = &conference
        && conference.status == ConferenceStatus::Completed
    {
        return Err(ConferenceStateError::Ended(conference.sid.to_string()).into());
    }
    let added = AddParticipant::parse(&form, &name, services.config.address_policy)?;
    if let Some(coached) = &added.call_sid_to_coach {
        let present = match &conference {
            Some(conference) => services
                .conferences
                .participant(&conference.sid, coached)
                .await?
                .is_some_and(|p| p.status == ParticipantStatus::Connected),
            None => false,
        };
        if !present {
            return Err(ApiError::InvalidParameter(teleapi_domain::params::invalid(
                "CallSidToCoach",
                format!("CallSidToCoach {coached} is not a participant of conference {name}"),
            )));
        }
    }
    let key = intents::idempotency_key(request.headers(), &caller)?;
    let fingerprint = format!(
        "add {} {}",
        conference
            .as_ref()
            .map_or(name.as_str(), |c| c.sid.as_str()),
        serde_json::to_string(&added.parameters()).expect("a string map serialises")
    );
    let root = Some("Participant");
    if let Some(answer) =
        intents::known_answer_as(services, key.as_ref(), &fingerprint, root).await?
    {
        return Ok(answer);
    }
    let now = services.clock.now();
    let mut planned = plan_create(
        &added.call,
        owner.sid.clone(),
        owner.listing_shards,
        CallSid::generate(),
        IntentSid::generate(),
        now,
        services.config.intent_retention,
    );
    let conference_sid = match &conference {
        Some(conference) => {
            // The call is placed by the worker that runs the room, which it joins.
            planned.call.command_queue = Some(conference.command_queue.clone());
            planned.intent.queue = Some(conference.command_queue.clone());
            conference.sid.clone()
        }
        None => {
            // Whichever worker takes the call creates the room, with this sid.
            let sid = ConferenceSid::generate();
            if let Some(IntentCommand::Call(command)) = &mut planned.intent.command {
                command.parameters.conference_sid = Some(sid.clone());
            }
            sid
        }
    };
    let participant = Participant {
        conference_sid,
        account_sid: owner.sid.clone(),
        state: ParticipantState {
            call_sid: planned.call.sid.clone(),
            label: added.label.clone(),
            muted: added.muted,
            hold: false,
            coaching: added.call_sid_to_coach.is_some(),
            call_sid_to_coach: added.call_sid_to_coach.clone(),
            start_conference_on_enter: added.start_conference_on_enter,
            end_conference_on_exit: added.end_conference_on_exit,
        },
        status: ParticipantStatus::Queued,
        event_seq: 0,
        date_created: now,
        date_updated: now,
        expires_at: None,
    };
    let mut resource = participant_resource(&participant);
    resource["intent_sid"] = json!(planned.intent.sid);
    let new = NewCall {
        key: key.as_ref(),
        fingerprint: &fingerprint,
        root,
        now,
    };
    record_new_call(services, &planned, resource, Vec::new(), new).await
}

/// What a change answers: the resource it changed, with the intent's sid (204 with none for a
/// removal).
fn answer(planned: &PlannedConference, change: &ConferenceChangeRequest) -> (StatusCode, Value) {
    let sid = &planned.intent.sid;
    let mut resource = match (change, &planned.participant) {
        (ConferenceChangeRequest::Remove(_), _) => {
            return (StatusCode::NO_CONTENT, json!({ "intent_sid": sid }));
        }
        (_, Some(participant)) => participant_resource(participant),
        (_, None) => conference_resource(&planned.conference),
    };
    resource["intent_sid"] = json!(sid);
    (StatusCode::OK, resource)
}

fn root(change: &ConferenceChangeRequest) -> Option<&'static str> {
    match change {
        ConferenceChangeRequest::Participant(..) => Some("Participant"),
        ConferenceChangeRequest::Remove(_) => None,
        ConferenceChangeRequest::Conference(_) => Some("Conference"),
    }
}

async fn apply(
    services: &Services,
    route: &Route,
    request: &Request,
    caller: &Account,
    owner: &Account,
    change: ConferenceChangeRequest,
) -> Result<Success, ApiError> {
    let key = intents::idempotency_key(request.headers(), caller)?;
    let (kind, target, parameters) = match &change {
        ConferenceChangeRequest::Participant(call, update) => {
            ("participant", call.to_string(), update.parameters())
        }
        ConferenceChangeRequest::Remove(call) => ("remove", call.to_string(), Default::default()),
        ConferenceChangeRequest::Conference(update) => {
            ("conference", String::new(), update.parameters())
        }
    };
    let fingerprint = format!(
        "{kind} {} {target} {}",
        route.conference_sid.as_deref().unwrap_or_default(),
        serde_json::to_string(&parameters).expect("a string map serialises")
    );
    let root = root(&change);
    if let Some(answer) =
        intents::known_answer_as(services, key.as_ref(), &fingerprint, root).await?
    {
        return Ok(answer);
    }

    let intent_sid = IntentSid::generate();
    let mut retry = Retry::within(services.config.write_budget);
    let (planned, status, resource) = loop {
        let now = services.clock.now();
        let conference = owned_conference(services, owner, route).await?;
        let participants = match &change {
            ConferenceChangeRequest::Conference(_) => Vec::new(),
            _ => services.conferences.participants(&conference.sid).await?,
        };
        let planned = plan(
            &conference,
            &participants,
            &change,
            intent_sid.clone(),
            now,
            services.config.intent_retention,
        )
        .map_err(|err| match err {
            PlanError::State(state) => ApiError::ConferenceState(state),
            PlanError::Invalid(invalid) => ApiError::InvalidParameter(invalid),
            PlanError::NoSuchParticipant(call) => ApiError::NotFound(call),
        })?;
        let (status, resource) = answer(&planned, &change);
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
        // The participant it names must still be in the room, unchanged by any worker event
        // since it was read; it is written as the worker last reported it: its new state is
        // the worker's to report (and the application's callbacks follow that report).
        let named = match &change {
            ConferenceChangeRequest::Participant(call, _)
            | ConferenceChangeRequest::Remove(call) => {
                participants.iter().find(|p| p.state.call_sid == *call)
            }
            ConferenceChangeRequest::Conference(_) => None,
        };
        let write = ConferenceWrite {
            conference: &planned.conference,
            expected_version: conference.version,
            participant: named.map(|p| (p, p.event_seq)),
            intent: &planned.intent,
            idempotency: record.as_ref(),
            now,
        };
        let written = services.conferences.write_conference_intent(write).await;
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

    // The command, in the conference's message group. If it cannot be sent, the intent stays
    // pending: the reconciler sends it again within two minutes, or fails it (docs/decisions.md).
    if let Some(command) = &planned.intent.command {
        let message = OutgoingMessage::intent_command(command);
        if let Err(err) = services
            .commands
            .send(planned.intent.queue.as_deref(), &message)
            .await
        {
            tracing::error!(intent_sid = %planned.intent.sid, error = %err, "conference command not sent; the reconciler will");
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
