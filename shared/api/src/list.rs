//! The list operations, `GET …/Calls` and `GET …/Calls/{CallSid}/Modifications`, and Twilio's
//! list envelope around their pages (`page`, `page_size`, `uri`, `first_page_uri`,
//! `next_page_uri`, `previous_page_uri`).

use lambda_http::Request;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::representation::{BASE_PATH, call_resource, modification_resource};
use super::{Route, Services, Success};
use teleapi_domain::call::{ListCallsRequest, ListedCall, call_position_sid};
use teleapi_domain::paging::{
    Page, PageToken, Paging, intent_position, intent_position_seq, parse_paging_only,
};
use teleapi_domain::{AccountSid, CallSid, Form, InvalidParameter, ProblemKind, Subject};

pub(super) fn query_form(request: &Request) -> Result<Form, ApiError> {
    Form::parse(request.uri().query().unwrap_or_default().as_bytes())
        .map_err(|e| ApiError::MalformedBody(e.to_string()))
}

pub(super) fn bad_token() -> ApiError {
    ApiError::InvalidParameter(InvalidParameter::new(
        "PageToken",
        ProblemKind::Invalid,
        "PageToken is not one this API issued: follow next_page_uri or previous_page_uri".into(),
    ))
}

pub async fn list_calls(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let list = ListCallsRequest::parse(&query_form(request)?)?;
    if let Some(token) = &list.paging.token {
        call_position_sid(&token.after).ok_or_else(bad_token)?;
    }
    let page = services
        .calls
        .list_calls(
            &owner.sid,
            owner.listing_shards,
            &list.filter,
            &list.paging.request(),
        )
        .await?;
    let path = list_path(&owner.sid, None, "Calls", route);
    let resource = envelope(
        "calls",
        page.items
            .iter()
            .map(|call| call_resource(call, None))
            .collect(),
        &page,
        ListedCall::position,
        &list.paging,
        &path,
        &list.query,
    );
    Ok(Success::ok(None, resource))
}

pub async fn list_modifications(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let call = super::owned_call(services, &owner, &route.call_sid()?).await?;
    let path = list_path(&owner.sid, Some(&call.sid), "Modifications", route);
    intents_page(services, request, &Subject::Call(call.sid), &path).await
}

/// `GET …/Conferences/{ConferenceSid}/Modifications`: the conference's intents (its
/// participants' changes among them), in sequence.
pub async fn list_conference_modifications(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    let (_, owner) = super::accounts(services, route, request).await?;
    let conference = super::owned_conference(services, &owner, route).await?;
    let path = format!(
        "{BASE_PATH}/Accounts/{}/Conferences/{}/Modifications{}",
        owner.sid,
        conference.sid,
        suffix(route)
    );
    intents_page(
        services,
        request,
        &Subject::Conference(conference.sid),
        &path,
    )
    .await
}

async fn intents_page(
    services: &Services,
    request: &Request,
    subject: &Subject,
    path: &str,
) -> Result<Success, ApiError> {
    let paging = parse_paging_only(&query_form(request)?)?;
    if let Some(token) = &paging.token {
        intent_position_seq(&token.after).ok_or_else(bad_token)?;
    }
    let page = services
        .calls
        .list_intents(subject, &paging.request())
        .await?;
    let resource = envelope(
        "modifications",
        page.items.iter().map(modification_resource).collect(),
        &page,
        |intent| intent_position(intent.seq),
        &paging,
        path,
        &[],
    );
    Ok(Success::ok(None, resource))
}

/// URIs keep the format the client asked for through the path.
pub(super) fn suffix(route: &Route) -> &'static str {
    if route.path_says_json { ".json" } else { "" }
}

/// The path of the list `name` as the client asked for it: a call's (`…/Calls/{Sid}/{name}`)
/// when there is a call, the account's (`…/{name}`) otherwise.
pub(super) fn list_path(
    owner: &AccountSid,
    call: Option<&CallSid>,
    name: &str,
    route: &Route,
) -> String {
    let format = suffix(route);
    match call {
        Some(call) => format!("{BASE_PATH}/Accounts/{owner}/Calls/{call}/{name}{format}"),
        None => format!("{BASE_PATH}/Accounts/{owner}/{name}{format}"),
    }
}

/// Query components: everything but unreserved characters is escaped (`StartTime>` becomes
/// `StartTime%3E`).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn page_uri(
    path: &str,
    filters: &[(&str, String)],
    page_size: u32,
    token: Option<&PageToken>,
) -> String {
    let mut parts: Vec<String> = filters
        .iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                utf8_percent_encode(name, COMPONENT),
                utf8_percent_encode(value, COMPONENT)
            )
        })
        .collect();
    parts.push(format!("PageSize={page_size}"));
    if let Some(token) = token {
        parts.push(format!("Page={}", token.page));
        parts.push(format!("PageToken={}", token.encode()));
    }
    format!("{path}?{}", parts.join("&"))
}

/// Twilio's list envelope around one page. `next_page_uri` is null once the listing is known to
/// end; at an exact page boundary it may lead to one empty page first.
pub(super) fn envelope<T>(
    key: &str,
    items: Vec<Value>,
    page: &Page<T>,
    position: impl Fn(&T) -> String,
    paging: &Paging,
    path: &str,
    filters: &[(&str, String)],
) -> Value {
    let index = paging.page();
    let request = paging.request();
    let first = page
        .items
        .first()
        .map(&position)
        .or_else(|| request.after.clone());
    let last = page
        .items
        .last()
        .map(&position)
        .or_else(|| request.after.clone());
    let token = |page, after: Option<String>, backward| {
        after.map(|after| PageToken {
            page,
            after,
            backward,
        })
    };
    let (next, previous) = if request.backward {
        let previous = if index == 0 {
            None
        } else {
            token(index - 1, page.more.clone(), true)
        };
        (token(index + 1, last, false), previous)
    } else {
        let previous = if index == 0 {
            None
        } else {
            token(index - 1, first, true)
        };
        (token(index + 1, page.more.clone(), false), previous)
    };
    let uri = |token: Option<&PageToken>| page_uri(path, filters, paging.page_size, token);
    let count = items.len();
    let mut fields = Map::new();
    fields.insert(key.to_owned(), Value::Array(items));
    fields.insert("page".into(), json!(index));
    fields.insert("page_size".into(), json!(paging.page_size));
    fields.insert(
        "start".into(),
        json!(u64::from(index) * u64::from(paging.page_size)),
    );
    fields.insert(
        "end".into(),
        json!((u64::from(index) * u64::from(paging.page_size) + count as u64).saturating_sub(1)),
    );
    fields.insert("uri".into(), json!(uri(paging.token.as_ref())));
    fields.insert("first_page_uri".into(), json!(uri(None)));
    fields.insert(
        "next_page_uri".into(),
        json!(next.as_ref().map(|t| uri(Some(t)))),
    );
    fields.insert(
        "previous_page_uri".into(),
        json!(previous.as_ref().map(|t| uri(Some(t)))),
    );
    Value::Object(fields)
}

/// One page of `all` (in `position` order), after or before the request's position: for lists
/// read whole (a room's participants, a queue's members).
pub(super) fn page_of<T>(
    all: Vec<T>,
    request: &teleapi_domain::paging::PageRequest,
    position: impl Fn(&T) -> String,
) -> Page<T> {
    let size = request.size.max(1);
    let scanned = all.len();
    let (items, more) = match (&request.after, request.backward) {
        (None, _) => {
            let more = all.len() > size;
            let items: Vec<_> = all.into_iter().take(size).collect();
            let more = more.then(|| items.last().map(&position)).flatten();
            (items, more)
        }
        (Some(after), false) => {
            let rest: Vec<_> = all.into_iter().filter(|p| position(p) > *after).collect();
            let more = rest.len() > size;
            let items: Vec<_> = rest.into_iter().take(size).collect();
            let more = more.then(|| items.last().map(&position)).flatten();
            (items, more)
        }
        (Some(before), true) => {
            let earlier: Vec<_> = all.into_iter().filter(|p| position(p) < *before).collect();
            let skip = earlier.len().saturating_sub(size);
            let more = (skip > 0).then(|| position(&earlier[skip]));
            (earlier.into_iter().skip(skip).collect(), more)
        }
    };
    Page {
        items,
        more,
        scanned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_uris_escape_filter_names_and_values() {
        let uri = page_uri(
            "/call/2012-04-24/Accounts/AC1/Calls.json",
            &[
                ("StartTime>", "2026-11-24".into()),
                ("To", "+15551230002".into()),
            ],
            20,
            None,
        );
        assert_eq!(
            uri,
            "/call/2012-04-24/Accounts/AC1/Calls.json?StartTime%3E=2026-11-24&To=%2B15551230002&PageSize=20"
        );
    }
}
