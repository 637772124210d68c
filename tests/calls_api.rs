//! Creating, fetching and listing calls, and listing a call's modifications, through the real
//! handler on the memory twins and on moto; and the seed's conference scenario.

use std::time::Duration;

use lambda_http::http::{HeaderValue, StatusCode, header};
use serde_json::Value;
use teleapi_domain::{CallSid, CallStatus, IntentStatus};
use teleapi_ports::Clock as _;
use teleapi_tests::{
    World, assert_error, basic_auth, body_json, body_text, get_request, post_request,
};

const CREATE: &str =
    "From=%2B15551230001&To=client%3Abob&Url=https%3A%2F%2Fapp.example.com%2Fconference%2Froom-1";

fn json(response: &lambda_http::Response<lambda_http::Body>) -> Value {
    body_json(response)
}

/// (body, status, code, phrase)
#[rustfmt::skip]
const CREATE_VALIDATION: &[(&str, u16, u64, &str)] = &[
    ("To=client%3Abob&Url=https%3A%2F%2Fa.example%2Fx", 400, 21200, "From is required"),
    ("From=%2B15551230001&Url=https%3A%2F%2Fa.example%2Fx", 400, 21200, "To is required"),
    ("From=%2B15551230001&To=client%3Abob", 400, 21200, "Url or Twiml is required"),
    ("From=%2B15551230001&To=5551230002&Url=https%3A%2F%2Fa.example%2Fx", 400, 21211, "E.164"),
    ("From=%2B15551230001&To=sip%3Anohost&Url=https%3A%2F%2Fa.example%2Fx", 400, 21211, "sip: URI"),
    ("From=alice&To=client%3Abob&Url=https%3A%2F%2Fa.example%2Fx", 400, 21212, "E.164"),
    ("From=%2B15551230001&To=client%3Abob&Url=https%3A%2F%2Fa.example%2Fx&Twiml=%3CResponse%2F%3E", 400, 21200, "not both"),
    ("From=%2B15551230001&To=client%3Abob&Url=ftp%3A%2F%2Fa.example%2Fx", 400, 21205, "http or https"),
    ("From=%2B15551230001&To=client%3Abob&Url=https%3A%2F%2Fa.example%2Fx&Timeout=601", 400, 21200, "from 1 to 600"),
    ("From=%2B15551230001&To=client%3Abob&Url=https%3A%2F%2Fa.example%2Fx&StatusCallbackEvent=hangup", 400, 21626, "not one of"),
    ("From=%2B15551230001&To=client%3Abob&Url=https%3A%2F%2Fa.example%2Fx&Mute=true", 400, 20001, "Unknown parameter 'Mute'"),
];

async fn creating_a_call(world: World) {
    for (body, status, code, phrase) in CREATE_VALIDATION {
        assert_error(
            &world.post("/Calls.json", body).await,
            *status,
            *code,
            phrase,
        );
    }
    assert!(
        world.backend.drain_commands().await.is_empty(),
        "nothing sent for bad requests"
    );

    let response = world.post("/Calls.json", &format!("{CREATE}&StatusCallback=https%3A%2F%2Fapp.example.com%2Fcb&StatusCallbackEvent=ringing+answered&Timeout=30")).await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        body_text(&response)
    );
    let call = json(&response);
    let sid = call["sid"].as_str().unwrap();
    assert!(
        sid.len() == 34
            && sid.starts_with("CA")
            && sid[2..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(call["status"], "queued");
    assert_eq!(call["direction"], "outbound-api");
    assert_eq!(call["from"], "+15551230001");
    assert_eq!(call["to"], "client:bob");
    assert_eq!(call["start_time"], Value::Null);
    assert_eq!(
        response.headers()[header::LOCATION],
        call["uri"].as_str().unwrap()
    );
    assert_eq!(
        call["intent_sid"],
        response.headers()["teleapi-intent-sid"].to_str().unwrap()
    );

    let stored = world
        .backend
        .calls
        .call(&sid.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.instructions.status_callback.unwrap().as_str(),
        "https://app.example.com/cb"
    );
    assert_eq!(stored.instructions.status_callback_events.iter().count(), 2);
    let intent = world
        .backend
        .calls
        .intent(&teleapi_domain::Subject::Call(stored.sid.clone()), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(intent.action.as_str(), "dial");
    assert_eq!(intent.status, IntentStatus::Pending);

    let received = world
        .backend
        .commands
        .receive(None, 10, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].group.as_deref(), Some(sid), "group = CallSid");
    let command: Value = serde_json::from_str(&received[0].body).unwrap();
    assert_eq!(command["type"], "dial");
    assert_eq!(command["seq"], 1);
    assert_eq!(command["parameters"]["to"], "client:bob");
    assert_eq!(command["parameters"]["from"], "+15551230001");
    assert_eq!(
        command["parameters"]["url"],
        "https://app.example.com/conference/room-1"
    );
    assert_eq!(command["parameters"]["timeout"], 30);

    // Every kind of destination.
    for to in [
        "%2B15557654321",
        "sip%3Adave%40pbx.example.com%3A5060",
        "client%3Acarol",
    ] {
        let body = format!(
            "From=%2B15551230001&To={to}&Twiml=%3CResponse%3E%3CSay%3EHi%3C%2FSay%3E%3C%2FResponse%3E"
        );
        assert_eq!(
            world.post("/Calls", &body).await.status(),
            StatusCode::CREATED,
            "{to}"
        );
    }
}

async fn creating_a_call_is_idempotent(world: World) {
    let keyed = |key: &'static str, body: &str| {
        let path = format!("/call/2012-04-24/Accounts/{}/Calls.json", world.account.sid);
        let mut request = post_request(&path, Some(&world.auth()), body);
        request
            .headers_mut()
            .insert("Idempotency-Key", HeaderValue::from_static(key));
        request
    };
    let first = world.send(keyed("create-1", CREATE)).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let again = world
        .send(keyed(
            "create-1",
            &format!("{CREATE}&Timeout=60&Method=POST"),
        ))
        .await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(json(&again), json(&first));
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let other = world
        .send(keyed("create-1", &CREATE.replace("bob", "alice")))
        .await;
    assert_error(&other, 422, 422, "different parameters");
    assert_eq!(
        world.backend.drain_commands().await.len(),
        1,
        "one call placed"
    );
    let list = json(&world.get("/Calls.json").await);
    assert_eq!(list["calls"].as_array().unwrap().len(), 1);
}

async fn fetching_a_call(world: World) {
    let call = world.call(CallStatus::InProgress).await;
    let (ac, ca) = (&world.account.sid, &call.sid);
    for (path, json_expected) in [
        (format!("/Calls/{ca}.json"), true),
        (format!("/Calls.json/{ca}"), true),
        (format!("/Calls/{ca}"), false),
    ] {
        let response = world.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        if json_expected {
            let body = json(&response);
            assert_eq!(body["sid"], ca.as_str());
            assert_eq!(body["status"], "in-progress");
            assert_eq!(
                body["subresource_uris"]["modifications"],
                format!("/call/2012-04-24/Accounts/{ac}/Calls/{ca}/Modifications.json")
            );
            assert!(body.get("intent_sid").is_none());
        } else {
            let text = body_text(&response);
            assert!(text.contains(&format!("<Call><Sid>{ca}</Sid>")), "{text}");
            assert!(text.contains("<SubresourceUris><Modifications>"), "{text}");
        }
    }
    let other = teleapi_tests::account(&world.backend, None).await;
    let foreign = teleapi_tests::call(
        &world.backend,
        &other.sid,
        CallStatus::InProgress,
        world.clock.now(),
    )
    .await;
    for sid in [
        foreign.sid.to_string(),
        CallSid::generate().to_string(),
        "CAxyz".into(),
    ] {
        assert_error(
            &world.get(&format!("/Calls/{sid}.json")).await,
            404,
            20404,
            "not found",
        );
    }
    let path = format!("/call/2012-04-24/Accounts/{ac}/Calls/{ca}.json");
    assert_error(
        &world.send(get_request(&path, None)).await,
        401,
        20003,
        "Authenticate",
    );
    let path = format!(
        "/call/2012-04-24/Accounts/{}/Calls/{}.json",
        other.sid, foreign.sid
    );
    assert_error(
        &world.send(get_request(&path, Some(&world.auth()))).await,
        403,
        20003,
        "may not act for",
    );
}

async fn listing_calls_page_by_page(world: World) {
    let mut created = Vec::new();
    for i in 0..7u64 {
        world.clock.advance(Duration::from_secs(1));
        let mut call = teleapi_tests::new_call(
            &world.account.sid,
            CallStatus::InProgress,
            world.clock.now(),
        );
        if i % 2 == 0 {
            call.to = "client:bob".into();
        }
        world.backend.calls.insert_call(&call).await.unwrap();
        created.push((call.sid.to_string(), i % 2 == 0));
    }
    created.reverse();
    let other = teleapi_tests::account(&world.backend, None).await;
    teleapi_tests::call(
        &world.backend,
        &other.sid,
        CallStatus::InProgress,
        world.clock.now(),
    )
    .await;

    let mut seen = Vec::new();
    let mut uri = "/Calls.json?PageSize=3".to_owned();
    let mut pages = Vec::new();
    for _ in 0..10 {
        let response = world.get(&uri).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            body_text(&response)
        );
        let page = json(&response);
        assert_eq!(page["page_size"], 3);
        assert_eq!(page["page"], pages.len());
        for call in page["calls"].as_array().unwrap() {
            seen.push(call["sid"].as_str().unwrap().to_owned());
        }
        pages.push(page.clone());
        match page["next_page_uri"].as_str() {
            Some(next) => uri = next.to_owned(),
            None => break,
        }
    }
    let all: Vec<String> = created.iter().map(|(sid, _)| sid.clone()).collect();
    assert_eq!(seen, all, "every call of the account, newest first, once");
    let first = &pages[0];
    assert_eq!(first["previous_page_uri"], Value::Null);
    let ac = &world.account.sid;
    assert_eq!(
        first["first_page_uri"],
        format!("/call/2012-04-24/Accounts/{ac}/Calls.json?PageSize=3")
    );
    assert_eq!(first["uri"], first["first_page_uri"]);

    // Back from the second page to the first.
    let previous = pages[1]["previous_page_uri"].as_str().unwrap();
    let back = json(&world.get(previous).await);
    assert_eq!(back["page"], 0);
    assert_eq!(back["calls"], first["calls"]);

    // Filters travel in the page URIs.
    let response = world.get("/Calls.json?To=client%3Abob&PageSize=2").await;
    let page = json(&response);
    let next = page["next_page_uri"].as_str().unwrap();
    assert!(next.contains("To=client%3Abob"), "{next}");
    let mut bob: Vec<String> = page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sid"].as_str().unwrap().to_owned())
        .collect();
    let rest = json(&world.get(next).await);
    bob.extend(
        rest["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sid"].as_str().unwrap().to_owned()),
    );
    let expected: Vec<String> = created
        .iter()
        .filter(|(_, b)| *b)
        .map(|(s, _)| s.clone())
        .collect();
    assert_eq!(bob, expected);

    let xml = body_text(&world.get("/Calls?PageSize=2").await);
    assert!(
        xml.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><TeleapiResponse><Calls><Call><Sid>"
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<PageSize>2</PageSize>") && xml.contains("<NextPageUri>/call/"),
        "{xml}"
    );

    for (query, parameter) in [
        ("PageSize=0", "PageSize"),
        ("PageSize=1001", "PageSize"),
        ("PageToken=abc", "PageToken"),
        ("Status=done", "Status"),
        ("StartTime%3E=tomorrow", "StartTime>"),
        ("Foo=1", "Foo"),
    ] {
        let response = world.get(&format!("/Calls.json?{query}")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(
            body_text(&response).contains(parameter),
            "{query}: {}",
            body_text(&response)
        );
    }
    // A token naming a position of the wrong shape is refused, not passed to the store.
    let forged = teleapi_domain::paging::PageToken {
        page: 1,
        after: "x#y".into(),
        backward: false,
    }
    .encode();
    assert_eq!(
        world
            .get(&format!("/Calls.json?PageToken={forged}&Page=1"))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
}

async fn listing_calls_by_status_and_start_time(world: World) {
    let start = world.clock.now();
    let ringing = world.call(CallStatus::Ringing).await;
    world.clock.advance(Duration::from_secs(3600));
    let later = world.call(CallStatus::InProgress).await;
    let sids = |response: &lambda_http::Response<lambda_http::Body>| -> Vec<String> {
        json(response)["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        sids(&world.get("/Calls.json?Status=ringing").await),
        [ringing.sid.to_string()]
    );
    assert_eq!(
        sids(&world.get("/Calls.json?Status=In-Progress").await),
        [later.sid.to_string()]
    );
    let after = teleapi_domain::Timestamp::from_millis(start.millis() + 1000);
    let query = format!("/Calls.json?StartTime%3E={}", rfc3339(after));
    assert_eq!(sids(&world.get(&query).await), [later.sid.to_string()]);
    let query = format!("/Calls.json?StartTime%3C={}", rfc3339(after));
    assert!(
        sids(&world.get(&query).await).is_empty(),
        "the ringing call has not started"
    );
}

fn rfc3339(t: teleapi_domain::Timestamp) -> String {
    let secs = t.epoch_seconds();
    let dt = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    dt.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn listing_a_calls_modifications(world: World) {
    let call = world.call(CallStatus::InProgress).await;
    for body in [
        "Url=https%3A%2F%2Fapp.example.com%2Fa",
        "Mute=true",
        "Status=canceled",
        "StatusCallback=https%3A%2F%2Fapp.example.com%2Fcb",
    ] {
        assert_eq!(
            world.modify(&call, body).await.status(),
            StatusCode::OK,
            "{body}"
        );
    }
    let page = json(
        &world
            .get(&format!(
                "/Calls/{}/Modifications.json?PageSize=3",
                call.sid
            ))
            .await,
    );
    let items = page["modifications"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(
        items
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(items[0]["action"], "redirect");
    assert_eq!(items[0]["parameters"]["Url"], "https://app.example.com/a");
    assert_eq!(items[0]["status"], "pending");
    assert_eq!(items[0]["call_sid"], call.sid.as_str());
    assert!(items[0]["sid"].as_str().unwrap().starts_with("MI"));
    assert_eq!(items[1]["action"], "mute");
    assert_eq!(items[2]["action"], "hangup");
    assert_eq!(items[2]["status"], "no-effect");
    assert!(
        items[2]["outcome"]
            .as_str()
            .unwrap()
            .contains("already in progress")
    );
    let next = json(&world.get(page["next_page_uri"].as_str().unwrap()).await);
    let rest = next["modifications"].as_array().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["action"], "update");
    assert_eq!(rest[0]["status"], "applied");

    let xml = body_text(
        &world
            .get(&format!("/Calls/{}/Modifications", call.sid))
            .await,
    );
    assert!(
        xml.contains("<Modifications><Modification><Sid>MI"),
        "{xml}"
    );

    let other = teleapi_tests::account(&world.backend, None).await;
    let foreign = teleapi_tests::call(
        &world.backend,
        &other.sid,
        CallStatus::InProgress,
        world.clock.now(),
    )
    .await;
    assert_error(
        &world
            .get(&format!("/Calls/{}/Modifications.json", foreign.sid))
            .await,
        404,
        20404,
        "not found",
    );
}

/// The seed's transfer to a conference: the incoming call is redirected to the conference's
/// RCML, then outgoing calls invite Bob, other clients, a SIP endpoint and a number into it.
async fn transfer_to_conference(world: World) {
    let conference = "https://app.example.com/conference/room-1";
    let incoming = world.call(CallStatus::InProgress).await;
    let redirected = world
        .modify(&incoming, &format!("Url={conference}&Method=POST"))
        .await;
    assert_eq!(
        redirected.status(),
        StatusCode::OK,
        "{}",
        body_text(&redirected)
    );

    let mut invited = Vec::new();
    for to in [
        "client:bob",
        "client:carol",
        "sip:dave@pbx.example.com",
        "+15557654321",
    ] {
        let body = format!(
            "From={}&To={}&Url={}",
            encode(&incoming.from),
            encode(to),
            encode(conference)
        );
        let response = world.post("/Calls.json", &body).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{to}: {}",
            body_text(&response)
        );
        let call = json(&response);
        assert_eq!(call["from"], incoming.from.as_str());
        assert_eq!(call["to"], to);
        invited.push((call["sid"].as_str().unwrap().to_owned(), to));
    }

    // Every call is recorded, newest first.
    let listed = json(&world.get("/Calls.json").await);
    let listed: Vec<&str> = listed["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sid"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 5);
    assert!(listed.contains(&incoming.sid.as_str()));
    for (sid, _) in &invited {
        assert!(listed.contains(&sid.as_str()));
        let call = json(&world.get(&format!("/Calls/{sid}.json")).await);
        assert_eq!(call["status"], "queued");
        let modifications = json(&world.get(&format!("/Calls/{sid}/Modifications.json")).await);
        assert_eq!(modifications["modifications"][0]["action"], "dial");
    }
    assert_eq!(
        json(&world.get(&format!("/Calls/{}.json", incoming.sid)).await)["subresource_uris"]["modifications"],
        format!(
            "/call/2012-04-24/Accounts/{}/Calls/{}/Modifications.json",
            world.account.sid, incoming.sid
        )
    );

    // And every command is on the queue: the redirect in the incoming call's group, a dial in
    // each new call's group, all pointing at the conference.
    let mut commands = Vec::new();
    for _ in 0..20 {
        for m in world
            .backend
            .commands
            .receive(None, 10, Duration::from_millis(300))
            .await
            .unwrap()
        {
            world
                .backend
                .commands
                .delete(None, &m.receipt)
                .await
                .unwrap();
            commands.push((
                m.group.unwrap(),
                serde_json::from_str::<Value>(&m.body).unwrap(),
            ));
        }
        if commands.len() >= 5 {
            break;
        }
    }
    assert_eq!(commands.len(), 5);
    let redirect = commands
        .iter()
        .find(|(g, _)| *g == incoming.sid.as_str())
        .unwrap();
    assert_eq!(redirect.1["type"], "redirect");
    assert_eq!(redirect.1["parameters"]["url"], conference);
    for (sid, to) in &invited {
        let dial = &commands.iter().find(|(g, _)| g == sid).unwrap().1;
        assert_eq!(dial["type"], "dial");
        assert_eq!(dial["call_sid"], sid.as_str());
        assert_eq!(dial["parameters"]["to"], *to);
        assert_eq!(dial["parameters"]["from"], incoming.from.as_str());
        assert_eq!(dial["parameters"]["url"], conference);
    }
}

fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn a_parent_lists_and_creates_for_its_subaccount(world: World) {
    let child = teleapi_tests::account(&world.backend, Some(&world.account)).await;
    let path = format!("/call/2012-04-24/Accounts/{}/Calls.json", child.sid);
    let created = world
        .send(post_request(
            &path,
            Some(&basic_auth(&world.account)),
            CREATE,
        ))
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(json(&created)["account_sid"], child.sid.as_str());
    let listed = json(
        &world
            .send(get_request(&path, Some(&basic_auth(&world.account))))
            .await,
    );
    assert_eq!(listed["calls"].as_array().unwrap().len(), 1);
    // The parent's own listing does not include its subaccount's calls.
    assert!(
        json(&world.get("/Calls.json").await)["calls"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let mine = format!("/call/2012-04-24/Accounts/{}/Calls.json", world.account.sid);
    assert_error(
        &world
            .send(get_request(&mine, Some(&basic_auth(&child))))
            .await,
        403,
        20003,
        "may not act for",
    );
    let mut wrong_method = get_request(&path, Some(&basic_auth(&world.account)));
    *wrong_method.method_mut() = lambda_http::http::Method::PUT;
    let response = world.send(wrong_method).await;
    assert_error(&response, 405, 405, "GET, POST");
    assert_eq!(response.headers()[header::ALLOW], "GET, POST");
}

teleapi_tests::on_both_backends!(
    creating_a_call,
    creating_a_call_is_idempotent,
    fetching_a_call,
    listing_calls_page_by_page,
    listing_calls_by_status_and_start_time,
    listing_a_calls_modifications,
    transfer_to_conference,
    a_parent_lists_and_creates_for_its_subaccount,
);
