//! What a path names, as the account asking may see it: the account acting (a parent may act
//! for its subaccounts), the call or the conference, each only if that account owns it (404
//! otherwise, whichever it is).

use lambda_http::Request;

use crate::error::ApiError;
use teleapi_domain::{Account, Call, CallSid};

use crate::auth;
use crate::routes::Route;
use crate::services::Services;

/// The caller (from the credentials) and the account the path names, which the caller must be
/// allowed to act for.
pub async fn accounts(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<(Account, Account), ApiError> {
    let caller = auth::authenticate(services, request.headers()).await?;
    // The caller's share, counted before anything is read or written for the request.
    if let Some(limiter) = &services.rate_limiter {
        limiter.admit(&caller, services.clock.now())?;
    }
    let owner = auth::authorize(services, caller.clone(), &route.account_sid).await?;
    Ok((caller, owner))
}

/// The call, if it exists and belongs to `owner`; 404 otherwise, whichever it is.
pub async fn owned_call(
    services: &Services,
    owner: &Account,
    sid: &CallSid,
) -> Result<Call, ApiError> {
    services
        .calls
        .call(sid)
        .await?
        .filter(|call| call.account_sid == owner.sid)
        .ok_or_else(|| ApiError::NotFound(sid.to_string()))
}

/// The conference, if it exists and belongs to `owner`; 404 otherwise, whichever it is.
pub async fn owned_conference(
    services: &Services,
    owner: &Account,
    route: &Route,
) -> Result<teleapi_domain::conference::Conference, ApiError> {
    let raw = route.conference_sid.as_deref().unwrap_or_default();
    let not_found = || ApiError::NotFound(teleapi_domain::sid::shorten(raw));
    let sid: teleapi_domain::ConferenceSid = raw.parse().map_err(|_| not_found())?;
    services
        .conferences
        .conference(&sid)
        .await?
        .filter(|c| c.account_sid == owner.sid)
        .ok_or_else(not_found)
}

/// The conference a path names, by sid or, as Twilio allows where participants are added, by
/// its friendly name.
pub enum InPath {
    /// A conference of `owner`'s (by sid: any; by name: the one of that name not completed).
    Running(Box<teleapi_domain::conference::Conference>),
    /// No conference of that name is running: the name, percent-decoded.
    NotRunning(String),
}

/// The longest friendly name a path may give.
const MAX_FRIENDLY_NAME: usize = 128;

/// The conference of the path; 404 for a sid that is not `owner`'s, or a name that is empty or
/// longer than 128 characters.
pub async fn conference_in_path(
    services: &Services,
    owner: &Account,
    route: &Route,
) -> Result<InPath, ApiError> {
    let raw = route.conference_sid.as_deref().unwrap_or_default();
    if raw.parse::<teleapi_domain::ConferenceSid>().is_ok() {
        return owned_conference(services, owner, route)
            .await
            .map(|conference| InPath::Running(Box::new(conference)));
    }
    let name = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned();
    if name.trim().is_empty() || name.chars().count() > MAX_FRIENDLY_NAME {
        return Err(ApiError::NotFound(teleapi_domain::sid::shorten(raw)));
    }
    let filter = teleapi_domain::conference::ConferenceFilter {
        friendly_name: Some(name.clone()),
        ..Default::default()
    };
    // Newest first: a name's running room, if it has one, is among its latest.
    let page = teleapi_domain::paging::PageRequest {
        size: 20,
        after: None,
        backward: false,
    };
    let running = services
        .conferences
        .list_conferences(&owner.sid, &filter, &page)
        .await?
        .items
        .into_iter()
        .find(|c| c.status != teleapi_domain::conference::ConferenceStatus::Completed);
    Ok(match running {
        Some(conference) => InPath::Running(Box::new(conference)),
        None => InPath::NotRunning(name),
    })
}

/// The call of the path, when it names one (it must be `owner`'s; 404 otherwise).
pub async fn call_in_path(
    services: &Services,
    owner: &Account,
    route: &Route,
) -> Result<Option<Call>, ApiError> {
    match route.call_sid {
        Some(_) => Ok(Some(owned_call(services, owner, &route.call_sid()?).await?)),
        None => Ok(None),
    }
}
