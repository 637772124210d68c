//! Call queues, Twilio-shaped: `…/Queues` (create, list), `…/Queues/{QU}` (fetch, update,
//! delete), `…/Queues/{QU}/Members` (list) and `…/Members/{CallSid|Front}` (fetch; `POST` with
//! `Url` dequeues: a redirect of that call, on the same pipeline as every change of a call).
//! A queue's callers are the calls that wait in it, read from the calls' `queue` index
//! (docs/data-model.md, "queues").

use futures_util::{StreamExt, TryStreamExt};
use lambda_http::Request;
use lambda_http::http::StatusCode;
use serde_json::{Value, json};

use super::error::ApiError;
use super::intents::{self, CallChange};
use super::list::{bad_token, envelope, list_path, page_of, query_form, suffix};
use super::representation::BASE_PATH;
use super::{Route, Services, Success, form_body};
use teleapi_domain::call::{parse_dequeue, plan};
use teleapi_domain::paging::parse_paging_only;
use teleapi_domain::queue::{
    CallQueue, FRONT, Line, Member, QueueChanges, member_position, queue_position,
    queue_position_sid,
};
use teleapi_domain::{Account, CallSid, IntentSid, QueueSid};
use teleapi_ports::InsertError;
use teleapi_ports::retry::Retry;

fn queue_path(queue: &CallQueue) -> String {
    format!(
        "{BASE_PATH}/Accounts/{}/Queues/{}",
        queue.account_sid, queue.sid
    )
}

/// The Queue resource with Twilio's field names; its size and mean wait as `line` has them.
pub fn queue_resource(queue: &CallQueue, line: &Line) -> Value {
    let path = queue_path(queue);
    json!({
        "sid": queue.sid,
        "account_sid": queue.account_sid,
        "friendly_name": queue.friendly_name,
        "max_size": queue.max_size,
        "current_size": line.current_size(),
        "average_wait_time": line.average_wait_time(),
        "date_created": queue.date_created.rfc2822(),
        "date_updated": queue.date_updated.rfc2822(),
        "uri": format!("{path}.json"),
        "subresource_uris": {"members": format!("{path}/Members.json")},
    })
}

/// The Member resource: where the caller stands (1 is the front) and how long it has waited.
pub fn member_resource(owner: &Account, member: &Member, position: usize, line: &Line) -> Value {
    json!({
        "call_sid": member.call_sid,
        "queue_sid": member.queue_sid,
        "date_enqueued": member.date_enqueued.rfc2822(),
        "position": position,
        "wait_time": line.wait_time(member),
        "uri": format!(
            "{BASE_PATH}/Accounts/{}/Queues/{}/Members/{}.json",
            owner.sid, member.queue_sid, member.call_sid
        ),
    })
}

/// The queue the path names, if it exists and is `owner`'s; 404 otherwise, whichever it is.
async fn owned_queue(
    services: &Services,
    owner: &Account,
    route: &Route,
) -> Result<CallQueue, ApiError> {
    let raw = route.queue.as_deref().unwrap_or_default();
    let not_found = || ApiError::NotFound(teleapi_domain::sid::shorten(raw));
    let sid: QueueSid = raw.parse().map_err(|_| not_found())?;
    services
        .queues
        .call_queue(&sid)
        .await?
        .filter(|q| q.account_sid == owner.sid)
        .ok_or_else(not_found)
}

/// Who waits in `queue` now, oldest first.
async fn line_of(services: &Services, queue: &QueueSid) -> Result<Line, ApiError> {
    let members = services.queues.members(queue).await?;
    Ok(Line::new(members, services.clock.now()))
}

pub async fn create_queue(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let form = form_body(request, services.config.max_body_bytes)?;
    let queue = CallQueue::parse_create(owner.sid.clone(), &form, services.clock.now())?;
    match services.queues.insert_call_queue(&queue).await {
        Ok(()) => {}
        Err(InsertError::AlreadyExists) => {
            return Err(ApiError::QueueConflict(format!(
                "The account already has a queue named '{}': {}",
                teleapi_domain::sid::shorten(&queue.friendly_name),
                queue.sid
            )));
        }
        Err(InsertError::Store(err)) => return Err(err.into()),
    }
    // Callers may already wait in it (a queue deleted while one joined it).
    let line = line_of(services, &queue.sid).await?;
    Ok(Success {
        status: StatusCode::CREATED,
        root: Some("Queue"),
        resource: queue_resource(&queue, &line),
        headers: Vec::new(),
    })
}

pub async fn list_queues(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let paging = parse_paging_only(&query_form(request)?)?;
    if let Some(token) = &paging.token {
        queue_position_sid(&token.after).ok_or_else(bad_token)?;
    }
    let page = services
        .queues
        .list_call_queues(&owner.sid, &paging.request())
        .await?;
    // Each queue's callers: one index query a queue, 16 at a time (a page may hold 1,000).
    let sids: Vec<QueueSid> = page.items.iter().map(|q| q.sid.clone()).collect();
    let lines: Vec<Line> = futures_util::stream::iter(sids)
        .map(|sid| async move { line_of(services, &sid).await })
        .buffered(16)
        .try_collect()
        .await?;
    let items = page
        .items
        .iter()
        .zip(&lines)
        .map(|(queue, line)| queue_resource(queue, line))
        .collect();
    let path = list_path(&owner.sid, None, "Queues", route);
    let resource = envelope("queues", items, &page, queue_position, &paging, &path, &[]);
    Ok(Success::ok(None, resource))
}

pub async fn get_queue(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let queue = owned_queue(services, &owner, route).await?;
    let line = line_of(services, &queue.sid).await?;
    Ok(Success::ok(Some("Queue"), queue_resource(&queue, &line)))
}

pub async fn update_queue(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let form = form_body(request, services.config.max_body_bytes)?;
    let changes = QueueChanges::parse_update(&form)?;
    let mut retry = Retry::within(services.config.write_budget);
    loop {
        let queue = owned_queue(services, &owner, route).await?;
        let shown = match changes.applied_to(&queue, services.clock.now())? {
            None => Some(queue),
            Some(next) => services
                .queues
                .update_call_queue(&next, queue.version)
                .await?
                .then_some(next),
        };
        if let Some(shown) = shown {
            let line = line_of(services, &shown.sid).await?;
            return Ok(Success::ok(Some("Queue"), queue_resource(&shown, &line)));
        }
        // A concurrent change got there first: this one applies to what it wrote.
        if !retry.again().await {
            return Err(ApiError::Busy);
        }
    }
}

/// Deletes an empty queue; one that callers wait in is 409 (they would wait in a queue the
/// application can no longer see).
pub async fn delete_queue(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let mut retry = Retry::within(services.config.write_budget);
    loop {
        let queue = owned_queue(services, &owner, route).await?;
        let waiting = line_of(services, &queue.sid).await?.current_size();
        if waiting > 0 {
            return Err(ApiError::QueueConflict(format!(
                "The queue {} has {waiting} caller{} waiting: dequeue {} before deleting it",
                queue.sid,
                if waiting == 1 { "" } else { "s" },
                if waiting == 1 { "it" } else { "them" },
            )));
        }
        if services
            .queues
            .delete_call_queue(&queue.sid, queue.version)
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

pub async fn list_members(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let queue = owned_queue(services, &owner, route).await?;
    let paging = parse_paging_only(&query_form(request)?)?;
    if let Some(token) = &paging.token
        && !token.after.contains('#')
    {
        return Err(bad_token());
    }
    let line = line_of(services, &queue.sid).await?;
    let numbered: Vec<(usize, Member)> = line.members.iter().cloned().enumerate().collect();
    let page = page_of(numbered, &paging.request(), |(_, m)| member_position(m));
    let items = page
        .items
        .iter()
        .map(|(at, member)| member_resource(&owner, member, at + 1, &line))
        .collect();
    let path = format!("{}/Members{}", queue_path(&queue), suffix(route));
    let resource = envelope(
        "queue_members",
        items,
        &page,
        |(_, m)| member_position(m),
        &paging,
        &path,
        &[],
    );
    Ok(Success::ok(None, resource))
}

/// The member the path names (a CallSid, or `Front`), where it stands in `line`.
fn member_in_path<'l>(route: &Route, line: &'l Line) -> Result<(usize, &'l Member), ApiError> {
    let raw = route.call_sid.as_deref().unwrap_or_default();
    let not_found = || ApiError::NotFound(teleapi_domain::sid::shorten(raw));
    if raw == FRONT {
        return line.members.first().map(|m| (1, m)).ok_or_else(not_found);
    }
    let call: CallSid = raw.parse().map_err(|_| not_found())?;
    line.find(&call).ok_or_else(not_found)
}

pub async fn get_member(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let queue = owned_queue(services, &owner, route).await?;
    let line = line_of(services, &queue.sid).await?;
    let (position, member) = member_in_path(route, &line)?;
    Ok(Success::ok(
        Some("QueueMember"),
        member_resource(&owner, member, position, &line),
    ))
}

/// `POST …/Members/{CallSid|Front}` with `Url`: the caller leaves the queue and runs that RCML.
/// It is a redirect of its call (one conditional write of the call and its intent, one command
/// to its worker), written only if the call still waits in this queue; `Front` takes the first
/// caller that still does, so two requests at once dequeue two callers, never one twice.
pub async fn dequeue_member(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (caller, owner) = super::accounts(services, route, request).await?;
    let queue = owned_queue(services, &owner, route).await?;
    let form = form_body(request, services.config.max_body_bytes)?;
    let redirect = parse_dequeue(&form, services.config.address_policy)?;
    let key = intents::idempotency_key(request.headers(), &caller)?;
    let named = route.call_sid.as_deref().unwrap_or_default();
    let fingerprint = format!(
        "dequeue {} {named} {}",
        queue.sid,
        serde_json::to_string(&redirect.parameters()).expect("a string map serialises")
    );
    // A retry with the key answers as the first request did, though that caller has left.
    if let Some(answer) =
        intents::known_answer_as(services, key.as_ref(), &fingerprint, Some("QueueMember")).await?
    {
        return Ok(answer);
    }
    let line = line_of(services, &queue.sid).await?;
    let candidates: Vec<(usize, &Member)> = if named == FRONT {
        line.members
            .iter()
            .enumerate()
            .map(|(at, m)| (at + 1, m))
            .collect()
    } else {
        vec![member_in_path(route, &line)?]
    };
    for (position, member) in candidates {
        let change = CallChange {
            call_sid: &member.call_sid,
            owner: &owner,
            key: key.as_ref(),
            fingerprint: &fingerprint,
            root: Some("QueueMember"),
            status: StatusCode::OK,
        };
        let dequeued = intents::change_call(services, change, |before, now| {
            if !before.waits_in(&queue.sid) {
                // Taken, gone or ended since the index listed it.
                return Err(ApiError::NotFound(member.call_sid.to_string()));
            }
            let retention = services.config.intent_retention;
            let intent_sid = IntentSid::generate();
            let mut planned = plan(before, &redirect, intent_sid, now, retention)?;
            planned.call.queue = None;
            let resource = member_resource(&owner, member, position, &line);
            Ok((planned, resource))
        })
        .await;
        match dequeued {
            Err(ApiError::NotFound(_)) if named == FRONT => continue,
            answer => return answer,
        }
    }
    Err(ApiError::NotFound(teleapi_domain::sid::shorten(named)))
}
