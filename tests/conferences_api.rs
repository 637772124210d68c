//! The conference resources through the real handler, on the memory twins and on moto: what a
//! worker reports (conference events, through the call-events function) is what the API shows,
//! in Twilio's shapes.

use std::time::Duration;

use serde_json::{Value, json};
use teleapi::domain::conference::Conference;
use teleapi::domain::{Call, CallStatus};
use teleapi::ports::Clock as _;
use teleapi_tests::{World, assert_error, basic_auth, body_json, body_text, get_request};

/// Applies one conference event of `conference`, as its worker would report it.
async fn report(world: &World, conference: &Conference, seq: u64, kind: Value) {
    let mut event = json!({"version": 1, "conference_sid": conference.sid, "timestamp": world.clock.now().millis(), "seq": seq});
    event
        .as_object_mut()
        .unwrap()
        .extend(kind.as_object().unwrap().clone());
    let events = world.backend.event_services(world.clock.clone());
    teleapi::call_events::handle_event(&events, &event.to_string())
        .await
        .unwrap();
}

fn joined(call: &Call, muted: bool, label: &str) -> Value {
    json!({"type": "participant.joined", "participant": {"call_sid": call.sid, "label": label, "muted": muted, "hold": false, "coaching": false, "start_conference_on_enter": true, "end_conference_on_exit": false}})
}

async fn get(world: &World, path: &str) -> Value {
    let answer = world.get(path).await;
    assert_eq!(answer.status(), 200, "{path}: {}", body_text(&answer));
    body_json(&answer)
}

async fn a_conference_and_its_participants_as_reported(world: World) {
    let caller = world.call(CallStatus::InProgress).await;
    let agent = world.call(CallStatus::InProgress).await;
    let room = world.conference_with(&caller).await;
    world.clock.advance(Duration::from_secs(1));
    report(&world, &room, 4, joined(&agent, true, "agent")).await;

    let sid = room.sid.as_str();
    let conference = get(&world, &format!("/Conferences/{sid}.json")).await;
    assert_eq!(conference["sid"], sid);
    assert_eq!(conference["status"], "in-progress");
    assert_eq!(conference["friendly_name"], room.friendly_name.as_str());
    assert_eq!(conference["account_sid"], world.account.sid.as_str());
    assert_eq!(
        conference["subresource_uris"]["participants"],
        format!(
            "/call/2012-04-24/Accounts/{}/Conferences/{sid}/Participants.json",
            world.account.sid
        )
    );

    let list = get(&world, &format!("/Conferences/{sid}/Participants.json")).await;
    let participants = list["participants"].as_array().unwrap();
    let calls: Vec<&str> = participants
        .iter()
        .map(|p| p["call_sid"].as_str().unwrap())
        .collect();
    assert_eq!(
        calls,
        [caller.sid.as_str(), agent.sid.as_str()],
        "in joining order"
    );
    assert_eq!(participants[1]["muted"], true);
    assert_eq!(participants[1]["label"], "agent");
    assert_eq!(participants[1]["status"], "connected");
    assert_eq!(participants[1]["conference_sid"], sid);

    let muted = get(
        &world,
        &format!("/Conferences/{sid}/Participants.json?Muted=true"),
    )
    .await;
    assert_eq!(muted["participants"].as_array().unwrap().len(), 1);
    assert_eq!(muted["participants"][0]["call_sid"], agent.sid.as_str());
    let first = get(
        &world,
        &format!("/Conferences/{sid}/Participants.json?PageSize=1"),
    )
    .await;
    assert_eq!(first["participants"][0]["call_sid"], caller.sid.as_str());
    let next = first["next_page_uri"].as_str().unwrap();
    let second = get(&world, next).await;
    assert_eq!(second["participants"][0]["call_sid"], agent.sid.as_str());
    let back = get(&world, second["previous_page_uri"].as_str().unwrap()).await;
    assert_eq!(back["participants"][0]["call_sid"], caller.sid.as_str());

    let one = get(
        &world,
        &format!("/Conferences/{sid}/Participants/{}.json", agent.sid),
    )
    .await;
    assert_eq!(one["call_sid"], agent.sid.as_str());
    let xml = world
        .get(&format!("/Conferences/{sid}/Participants/{}", agent.sid))
        .await;
    let xml = body_text(&xml);
    assert!(xml.contains("<Participant><AccountSid>"), "{xml}");
    assert!(xml.contains("<Muted>true</Muted>"), "{xml}");

    // The agent is unmuted, then leaves: no longer listed, and 404.
    report(&world, &room, 5, json!({"type": "participant.updated", "participant": {"call_sid": agent.sid, "label": "agent", "muted": false, "hold": false, "coaching": false, "start_conference_on_enter": true, "end_conference_on_exit": false}})).await;
    let one = get(
        &world,
        &format!("/Conferences/{sid}/Participants/{}.json", agent.sid),
    )
    .await;
    assert_eq!(one["muted"], false);
    report(
        &world,
        &room,
        6,
        json!({"type": "participant.left", "call_sid": agent.sid}),
    )
    .await;
    let path = format!("/Conferences/{sid}/Participants/{}.json", agent.sid);
    assert_error(&world.get(&path).await, 404, 20404, agent.sid.as_str());
    let list = get(&world, &format!("/Conferences/{sid}/Participants.json")).await;
    assert_eq!(list["participants"].as_array().unwrap().len(), 1);

    // Ended: completed, with its reason, and nobody left in it.
    report(
        &world,
        &room,
        7,
        json!({"type": "participant.left", "call_sid": caller.sid}),
    )
    .await;
    report(&world, &room, 8, json!({"type": "conference.ended", "reason": "last-participant-left", "call_sid_ending": caller.sid})).await;
    let conference = get(&world, &format!("/Conferences/{sid}.json")).await;
    assert_eq!(conference["status"], "completed");
    assert_eq!(
        conference["reason_conference_ended"],
        "last-participant-left"
    );
    assert_eq!(
        conference["call_sid_ending_conference"],
        caller.sid.as_str()
    );
    let list = get(&world, &format!("/Conferences/{sid}/Participants.json")).await;
    assert!(list["participants"].as_array().unwrap().is_empty());
}

async fn conferences_are_listed_and_filtered(world: World) {
    let mut rooms = Vec::new();
    for _ in 0..3 {
        let call = world.call(CallStatus::InProgress).await;
        rooms.push(world.conference_with(&call).await);
        world.clock.advance(Duration::from_secs(1));
    }
    report(
        &world,
        &rooms[0],
        4,
        json!({"type": "conference.ended", "reason": "conference-ended-via-api"}),
    )
    .await;
    let sids = |list: &Value| -> Vec<String> {
        list["conferences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sid"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = get(&world, "/Conferences.json").await;
    let expected: Vec<String> = rooms.iter().rev().map(|r| r.sid.to_string()).collect();
    assert_eq!(sids(&all), expected, "newest first");
    let live = get(&world, "/Conferences.json?Status=in-progress").await;
    assert_eq!(sids(&live), expected[..2]);
    let named = format!("/Conferences.json?FriendlyName={}", rooms[1].friendly_name);
    assert_eq!(sids(&get(&world, &named).await), [rooms[1].sid.to_string()]);
    let page = get(&world, "/Conferences.json?PageSize=2").await;
    assert_eq!(sids(&page), expected[..2]);
    let rest = get(&world, page["next_page_uri"].as_str().unwrap()).await;
    assert_eq!(sids(&rest), expected[2..]);
    let xml = body_text(&world.get("/Conferences?PageSize=1").await);
    assert_eq!(xml.matches("<FriendlyName>").count(), 1, "{xml}");
}

async fn bad_conference_requests_are_refused(world: World) {
    let call = world.call(CallStatus::InProgress).await;
    let room = world.conference_with(&call).await;
    let sid = room.sid.as_str();
    for (path, status, code, mentions) in [
        (
            "/Conferences.json?Status=over".to_owned(),
            400,
            21200,
            "Status",
        ),
        (
            "/Conferences.json?DateCreated=yesterday".to_owned(),
            400,
            21200,
            "DateCreated",
        ),
        (
            "/Conferences.json?DateCreated=2026-11-24&DateCreated%3E=2026-11-24".to_owned(),
            400,
            21200,
            "not both",
        ),
        (
            "/Conferences.json?Color=red".to_owned(),
            400,
            20001,
            "Color",
        ),
        (
            format!("/Conferences/{sid}/Participants.json?Muted=maybe"),
            400,
            21200,
            "Muted",
        ),
        (
            "/Conferences/CF00000000000000000000000000000000.json".to_owned(),
            404,
            20404,
            "CF0000",
        ),
        (
            "/Conferences/not-a-sid.json".to_owned(),
            404,
            20404,
            "not-a-sid",
        ),
        (
            format!("/Conferences/{sid}/Participants/CA00000000000000000000000000000000.json"),
            404,
            20404,
            "CA0000",
        ),
    ] {
        assert_error(&world.get(&path).await, status, code, mentions);
    }
    // Another account's conference is not found, even with valid credentials of that account.
    let other = teleapi_tests::account(&world.backend, None).await;
    let path = format!(
        "/call/2012-04-24/Accounts/{}/Conferences/{sid}.json",
        other.sid
    );
    let answer = world
        .send(get_request(&path, Some(&basic_auth(&other))))
        .await;
    assert_error(&answer, 404, 20404, sid);
}

teleapi_tests::on_both_backends!(
    a_conference_and_its_participants_as_reported,
    conferences_are_listed_and_filtered,
    bad_conference_requests_are_refused,
);
