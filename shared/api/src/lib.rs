//! The HTTP API: routing, authentication, representations, and one module per operation.
//!
//! Every function, and `teleapi-local`, hands its requests to [`handle`]; an operation reads as
//! parse -> act -> represent, and failures become responses in exactly one place
//! ([`error::ApiError`] and [`respond_error`]).

pub mod auth;
pub mod authorizer;
pub mod call_log;
pub mod conference_changes;
pub mod conferences;
pub mod create_call;
pub mod error;
pub mod get_call;
pub mod intents;
pub mod list;
pub mod modify_call;
pub mod numbers;
pub mod queues;
pub mod rate_limit;
pub mod recordings;
pub mod representation;
pub mod streams;

use std::time::Instant;

use lambda_http::{Body, Request, Response};

use error::ApiError;
use representation::Format;
mod answer;
mod paths;
mod routes;
mod services;
#[cfg(test)]
mod test_clock;

use answer::respond;
pub use answer::{Success, form_body, respond_error};
pub use paths::{accounts, call_in_path, owned_call, owned_conference};
pub use routes::{Operation, ROUTES, Route, route};
pub use services::{ApiConfig, Services};

/// Serves one request. `only` restricts the operations this process serves (a Lambda function
/// serves its own); anything else is answered 404, as if the route did not exist.
pub async fn handle(
    services: &Services,
    request: Request,
    only: Option<&[Operation]>,
) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let routed = route(&method, &path).and_then(|r| match only {
        Some(served) if !served.contains(&r.operation) => Err(ApiError::NotFound(path.clone())),
        _ => Ok(r),
    });
    let path_says_json = routed
        .as_ref()
        .map(|r| r.path_says_json)
        .unwrap_or(path.contains(".json"));
    let format = Format::choose(path_says_json, request.headers());
    let operation = routed.as_ref().ok().map(|r| r.operation.name());
    let result = match routed {
        // A recording's media is not a resource of JSON or XML.
        Ok(route) if route.operation == Operation::GetRecording && route.media.is_some() => {
            recordings::recording_media(services, &route, &request).await
        }
        Ok(route) => {
            let result = operate(services, &route, &request).await;
            if let Err(err) = &result {
                call_log::note_refusal(services, &route, &request, err).await;
            }
            result.map(|success| respond(format, success))
        }
        Err(err) => Err(err),
    };
    let response = result.unwrap_or_else(|err| respond_error(format, &err));
    tracing::info!(
        target: "teleapi::request",
        method = %method,
        path = %path,
        operation = %operation.unwrap_or("-"),
        status = response.status().as_u16(),
        intent_sid = %response.headers().get(intents::INTENT_SID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-"),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

/// Runs the operation `route` names.
async fn operate(
    services: &Services,
    route: &Route,
    request: &Request,
) -> Result<Success, ApiError> {
    match route.operation {
        Operation::CreateCall => create_call::create_call(services, route, request).await,
        Operation::ListCalls => list::list_calls(services, route, request).await,
        Operation::GetCall => get_call::get_call(services, route, request).await,
        Operation::ModifyCall => modify_call::modify_call(services, route, request).await,
        Operation::ListModifications => list::list_modifications(services, route, request).await,
        Operation::ListConferences => conferences::list_conferences(services, route, request).await,
        Operation::GetConference => conferences::get_conference(services, route, request).await,
        Operation::ListParticipants => {
            conferences::list_participants(services, route, request).await
        }
        Operation::GetParticipant => conferences::get_participant(services, route, request).await,
        Operation::ModifyConference => {
            conference_changes::modify_conference(services, route, request).await
        }
        Operation::ModifyParticipant => {
            conference_changes::modify_participant(services, route, request).await
        }
        Operation::RemoveParticipant => {
            conference_changes::remove_participant(services, route, request).await
        }
        Operation::ListConferenceModifications => {
            list::list_conference_modifications(services, route, request).await
        }
        Operation::AddParticipant => {
            conference_changes::add_participant(services, route, request).await
        }
        Operation::StartRecording => recordings::start_recording(services, route, request).await,
        Operation::UpdateRecording => recordings::update_recording(services, route, request).await,
        Operation::DeleteRecording => recordings::delete_recording(services, route, request).await,
        Operation::ListRecordings => recordings::list_recordings(services, route, request).await,
        Operation::GetRecording => recordings::get_recording(services, route, request).await,
        Operation::StartStream => streams::start_stream(services, route, request).await,
        Operation::StopStream => streams::stop_stream(services, route, request).await,
        Operation::ListCallEvents => call_log::list_call_events(services, route, request).await,
        Operation::ListNotifications => {
            call_log::list_notifications(services, route, request).await
        }
        Operation::GetNotification => call_log::get_notification(services, route, request).await,
        Operation::CreateNumber => numbers::create_number(services, route, request).await,
        Operation::ListNumbers => numbers::list_numbers(services, route, request).await,
        Operation::GetNumber => numbers::get_number(services, route, request).await,
        Operation::UpdateNumber => numbers::update_number(services, route, request).await,
        Operation::DeleteNumber => numbers::delete_number(services, route, request).await,
        Operation::CreateQueue => queues::create_queue(services, route, request).await,
        Operation::ListQueues => queues::list_queues(services, route, request).await,
        Operation::GetQueue => queues::get_queue(services, route, request).await,
        Operation::UpdateQueue => queues::update_queue(services, route, request).await,
        Operation::DeleteQueue => queues::delete_queue(services, route, request).await,
        Operation::ListMembers => queues::list_members(services, route, request).await,
        Operation::GetMember => queues::get_member(services, route, request).await,
        Operation::DequeueMember => queues::dequeue_member(services, route, request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::is_form_content_type;
    use lambda_http::http::{HeaderValue, Method as HttpMethod};

    const AC: &str = "AC0123456789abcdef0123456789abcdef";
    const CA: &str = "CA0123456789abcdef0123456789abcdef";

    #[test]
    fn routes_the_three_path_forms_to_modify_call() {
        for (path, json) in [
            (format!("/call/2012-04-24/Accounts/{AC}/Calls/{CA}"), false),
            (
                format!("/call/2012-04-24/Accounts/{AC}/Calls.json/{CA}"),
                true,
            ),
            (
                format!("/call/2012-04-24/Accounts/{AC}/Calls/{CA}.json"),
                true,
            ),
            (
                format!("/Prod/call/2012-04-24/Accounts/{AC}/Calls/{CA}"),
                false,
            ),
        ] {
            let route = route(&HttpMethod::POST, &path).unwrap();
            assert_eq!(route.operation, Operation::ModifyCall, "{path}");
            assert_eq!(route.account_sid, AC);
            assert_eq!(route.call_sid.as_deref(), Some(CA));
            assert_eq!(route.path_says_json, json, "{path}");
        }
    }

    /// Every route of the table reaches its operation through [`route`], in each path form, and
    /// every operation has a route.
    #[test]
    fn the_route_table_matches_the_router() {
        for (method, template, operation) in ROUTES {
            let method: HttpMethod = method.parse().unwrap();
            let path = template
                .replace("{AccountSid}", AC)
                .replace("{ConferenceSid}", "CF0123456789abcdef0123456789abcdef")
                .replace("{RecordingSid}", "RE0123456789abcdef0123456789abcdef")
                .replace("{StreamSid}", "MZ0123456789abcdef0123456789abcdef")
                .replace("{NotificationSid}", "NO0123456789abcdef0123456789abcdef")
                .replace("{PhoneNumberSid}", "PN0123456789abcdef0123456789abcdef")
                .replace("{CallSid}", CA);
            assert_eq!(
                route(&method, &path).unwrap().operation,
                operation,
                "{path}"
            );
            if [
                "{CallSid}",
                "{RecordingSid}",
                "{StreamSid}",
                "{NotificationSid}",
                "{PhoneNumberSid}",
            ]
            .iter()
            .any(|sid| template.ends_with(sid))
            {
                let path = format!("{path}.json");
                assert_eq!(
                    route(&method, &path).unwrap().operation,
                    operation,
                    "{path}"
                );
            }
        }
        for operation in Operation::ALL {
            assert!(
                ROUTES.iter().any(|(_, _, op)| *op == operation),
                "{operation:?}"
            );
            assert!(Operation::served_by(operation.function()).contains(&operation));
        }
    }

    #[test]
    fn routes_by_method_and_shape() {
        let base = format!("/call/2012-04-24/Accounts/{AC}");
        for (method, path, operation, call, json) in [
            (
                HttpMethod::GET,
                format!("{base}/Calls"),
                Operation::ListCalls,
                None,
                false,
            ),
            (
                HttpMethod::GET,
                format!("{base}/Calls.json"),
                Operation::ListCalls,
                None,
                true,
            ),
            (
                HttpMethod::POST,
                format!("{base}/Calls.json"),
                Operation::CreateCall,
                None,
                true,
            ),
            (
                HttpMethod::GET,
                format!("{base}/Calls/{CA}"),
                Operation::GetCall,
                Some(CA),
                false,
            ),
            (
                HttpMethod::GET,
                format!("{base}/Calls.json/{CA}"),
                Operation::GetCall,
                Some(CA),
                true,
            ),
            (
                HttpMethod::GET,
                format!("{base}/Calls/{CA}/Modifications"),
                Operation::ListModifications,
                Some(CA),
                false,
            ),
            (
                HttpMethod::GET,
                format!("{base}/Calls/{CA}/Modifications.json"),
                Operation::ListModifications,
                Some(CA),
                true,
            ),
            (
                HttpMethod::GET,
                format!("{base}/Calls.json/{CA}/Modifications"),
                Operation::ListModifications,
                Some(CA),
                true,
            ),
        ] {
            let route = route(&method, &path).unwrap();
            assert_eq!(route.operation, operation, "{path}");
            assert_eq!(route.call_sid.as_deref(), call, "{path}");
            assert_eq!(route.path_says_json, json, "{path}");
        }
        assert!(
            route(
                &HttpMethod::GET,
                &format!("{base}/Calls/{CA}.json/Modifications")
            )
            .is_err()
        );
    }

    #[test]
    fn other_paths_and_methods_are_refused() {
        for path in [
            "/".to_owned(),
            format!("/call/2010-04-01/Accounts/{AC}/Calls/{CA}"),
            format!("/call/2012-04-24/Accounts/{AC}/Calls/{CA}/"),
            format!("/call/2012-04-24/Accounts/{AC}/Calls//"),
            format!("/a/b/call/2012-04-24/Accounts/{AC}/Calls/{CA}"),
            format!("/call/2012-04-24/Accounts//Calls/{CA}"),
            format!("/call/2012-04-24/Accounts/{AC}/Conferences/{CA}/Recordings"),
            format!("/call/2012-04-24/Accounts/{AC}/Conferences.json/{CA}"),
            format!("/call/2012-04-24/Accounts/{AC}/Conferences/{CA}.json/Participants"),
        ] {
            assert!(
                matches!(route(&HttpMethod::POST, &path), Err(ApiError::NotFound(_))),
                "{path}"
            );
        }
        let path = format!("/call/2012-04-24/Accounts/{AC}/Calls/{CA}");
        assert!(matches!(
            route(&HttpMethod::DELETE, &path),
            Err(ApiError::MethodNotAllowed { allow: "GET, POST" })
        ));
        assert!(matches!(
            route(&HttpMethod::POST, &format!("{path}/Modifications")),
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        ));
    }

    #[test]
    fn form_content_types() {
        for (value, ok) in [
            ("application/x-www-form-urlencoded", true),
            ("Application/X-WWW-Form-Urlencoded; charset=UTF-8", true),
            ("application/x-www-form-urlencoded; charset=\"utf-8\"", true),
            ("application/x-www-form-urlencoded; charset=latin1", false),
            ("application/json", false),
            ("multipart/form-data; boundary=x", false),
            ("", false),
        ] {
            assert_eq!(
                is_form_content_type(&HeaderValue::from_static(value)),
                ok,
                "{value}"
            );
        }
    }
}
