//! The handler behind real API Gateway events, as `lambda_http` decodes them: HTTP API (payload
//! 2.0, with and without a named stage, plain and base64 bodies) and REST API (payload 1.0, whose
//! path `lambda_http` prefixes with the stage).

use base64::Engine;
use lambda_http::http::StatusCode;
use serde_json::json;
use teleapi_api::{self as api, Operation};
use teleapi_domain::{CallStatus, IntentStatus};
use teleapi_ports::Clock as _;
use teleapi_tests::{Backend, ManualClock, basic_auth, body_json, body_text};

/// An HTTP API (payload 2.0) POST on `stage`, its body base64-encoded if asked. (The deployed
/// API is a REST API; `lambda_http` takes both, and `cargo lambda watch` sends this one.)
fn http_api_event(path: &str, stage: &str, auth: &str, body: &str, base64_body: bool) -> String {
    let mut event = json!({
        "version": "2.0",
        "routeKey": format!("POST {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "authorization": auth,
            "content-type": "application/x-www-form-urlencoded",
            "host": "abc123.execute-api.us-east-1.amazonaws.com",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": { "method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.114.9", "userAgent": "test" },
            "requestId": "r-1",
            "routeKey": format!("POST {path}"),
            "stage": stage,
            "time": "24/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1_795_521_600_000_u64,
        },
        "body": body,
        "isBase64Encoded": false,
    });
    if base64_body {
        event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body));
        event["isBase64Encoded"] = json!(true);
    }
    event.to_string()
}

/// A REST API (payload 1.0) POST, as the deployed API sends it.
fn rest_api_event(path: &str, auth: &str, body: &str) -> String {
    json!({
        "resource": "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}",
        "path": path,
        "httpMethod": "POST",
        "headers": {
            "Authorization": auth,
            "Content-Type": "application/x-www-form-urlencoded",
            "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        },
        "multiValueHeaders": {
            "Authorization": [auth],
            "Content-Type": ["application/x-www-form-urlencoded"],
            "Host": ["abc123.execute-api.us-east-1.amazonaws.com"],
        },
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012",
            "resourceId": "r1",
            "stage": "Prod",
            "requestId": "r-2",
            "identity": {"sourceIp": "203.0.114.9"},
            "resourcePath": "/call/2012-04-24/Accounts/{AccountSid}/Calls/{CallSid}",
            "httpMethod": "POST",
            "apiId": "abc123",
        },
        "body": body,
        "isBase64Encoded": false,
    })
    .to_string()
}

#[tokio::test]
async fn http_api_and_rest_api_events_reach_the_handler() {
    let backend = Backend::memory();
    let clock = ManualClock::starting_now();
    let services = backend.services(clock.clone());
    let account = teleapi_tests::account(&backend, None).await;
    let auth = basic_auth(&account);
    let call =
        teleapi_tests::call(&backend, &account.sid, CallStatus::InProgress, clock.now()).await;
    let (ac, ca) = (&account.sid, &call.sid);

    let events = [
        http_api_event(
            &format!("/call/2012-04-24/Accounts/{ac}/Calls/{ca}.json"),
            "$default",
            &auth,
            "Mute=true",
            false,
        ),
        http_api_event(
            &format!("/v1/call/2012-04-24/Accounts/{ac}/Calls.json/{ca}"),
            "v1",
            &auth,
            "Mute=false",
            true,
        ),
        rest_api_event(
            &format!("/call/2012-04-24/Accounts/{ac}/Calls/{ca}"),
            &auth,
            "Url=https%3A%2F%2Fapp.example.com%2Fa",
        ),
    ];
    for (index, event) in events.iter().enumerate() {
        let request = lambda_http::request::from_str(event).expect("a valid API Gateway event");
        let response = api::handle(&services, request, Some(&[Operation::ModifyCall])).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "event {index}: {}",
            body_text(&response)
        );
        let seq = u64::try_from(index + 1).unwrap();
        let intent = backend
            .calls
            .intent(&teleapi_domain::Subject::Call(ca.clone()), seq)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(intent.status, IntentStatus::Pending, "event {index}");
    }
    let stored = backend.calls.call(ca).await.unwrap().unwrap();
    assert_eq!(stored.seq, 3);
    assert!(!stored.muted);
    assert_eq!(
        stored.instructions.url.unwrap().as_str(),
        "https://app.example.com/a"
    );

    // REST API answers XML unless asked otherwise; the last event had no .json and no Accept.
    let request = lambda_http::request::from_str(&rest_api_event(
        &format!("/call/2012-04-24/Accounts/{ac}/Calls/{ca}"),
        &auth,
        "Mute=perhaps",
    ))
    .unwrap();
    let response = api::handle(&services, request, Some(&[Operation::ModifyCall])).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(body_text(&response).contains("<Code>21200</Code>"));

    // A function answers only its own operation's routes.
    let request = lambda_http::request::from_str(&http_api_event(
        &format!("/call/2012-04-24/Accounts/{ac}/Conferences/{ca}.json"),
        "$default",
        &auth,
        "Mute=true",
        false,
    ))
    .unwrap();
    let response = api::handle(&services, request, Some(&[Operation::ModifyCall])).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(body_json(&response)["code"], 20404);
}
