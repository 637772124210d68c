//! The conference resources through the real handler, on the memory twins and on moto: what a
//! worker reports (conference events, through the call-events function) is what the API shows,
//! in Twilio's shapes.

use std::time::Duration;

use serde_json::{Value, json};
use teleapi_domain::conference::Conference;
use teleapi_domain::{Call, CallStatus};
use teleapi_ports::Clock as _;
use teleapi_tests::{World, assert_error, basic_auth, body_json, body_text, get_request};

/// Applies one conference event of `conference`, as its worker would report it.
async fn report(world: &World, conference: &Conference, seq: u64, kind: Value) {
    let mut event = json!({"version": 1, "conference_sid": conference.sid, "timestamp": world.clock.now().millis(), "seq": seq});
    event
        .as_object_mut()
        .unwrap()
        .extend(kind.as_object().unwrap().clone());
    let events = world.backend.event_services(world.clock.clone());
    teleapi_pipeline::call_events::handle_event(&events, &event.to_string())
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
    // Addressed by its Label, as Twilio allows.
    let by_label = get(
        &world,
        &format!("/Conferences/{sid}/Participants/agent.json"),
    )
    .await;
    assert_eq!(by_label, one);
    assert_error(
        &world
            .get(&format!("/Conferences/{sid}/Participants/nobody.json"))
            .await,
        404,
        20404,
        "nobody",
    );
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

/// POSTs `body` to a path of this world's account.
async fn post(world: &World, path: &str, body: &str) -> lambda_http::Response<lambda_http::Body> {
    let path = format!("/call/2012-04-24/Accounts/{}{path}", world.account.sid);
    world
        .send(teleapi_tests::post_request(
            &path,
            Some(&world.auth()),
            body,
        ))
        .await
}

async fn delete(world: &World, path: &str) -> lambda_http::Response<lambda_http::Body> {
    world.delete(path).await
}

/// A room of two (caller, agent), as reported.
async fn room_of_two(world: &World) -> (Conference, Call, Call) {
    let caller = world.call(CallStatus::InProgress).await;
    let agent = world.call(CallStatus::InProgress).await;
    let room = world.conference_with(&caller).await;
    report(world, &room, 4, joined(&agent, false, "agent")).await;
    (room, caller, agent)
}

/// Every bad request is refused before anything is written or sent, naming what is wrong.
async fn bad_changes_are_refused_before_anything_is_written(world: World) {
    let (room, caller, agent) = room_of_two(&world).await;
    let sid = room.sid.as_str();
    let participant = format!("/Conferences/{sid}/Participants/{}.json", agent.sid);
    let stranger = teleapi_domain::CallSid::generate();
    #[rustfmt::skip]
    let cases: Vec<(String, String, u16, u64, &str)> = vec![
        (participant.clone(), "".into(), 400, 21200, "changes nothing"),
        (participant.clone(), "Muted=sometimes".into(), 400, 21200, "Muted"),
        (participant.clone(), "Label=boss".into(), 400, 20001, "Label"),
        (participant.clone(), "Hold=false&HoldUrl=https%3A%2F%2Fa.example%2Fm".into(), 400, 21200, "HoldUrl"),
        (participant.clone(), "HoldMethod=GET".into(), 400, 21200, "HoldMethod"),
        (participant.clone(), "AnnounceUrl=http%3A%2F%2F127.0.0.1%2Fa".into(), 400, 21205, "AnnounceUrl"),
        (participant.clone(), "Coaching=true".into(), 400, 21200, "CallSidToCoach"),
        (participant.clone(), format!("Coaching=false&CallSidToCoach={}", caller.sid), 400, 21200, "CallSidToCoach"),
        (participant.clone(), format!("Coaching=true&CallSidToCoach={}", agent.sid), 400, 21200, "not another participant"),
        (participant.clone(), format!("Coaching=true&CallSidToCoach={stranger}"), 400, 21200, "not another participant"),
        (participant.clone(), format!("CallSidToCoach={}", caller.sid), 400, 21200, "Coaching=true"),
        // Never a participant: 404, as its GET answers (Twilio's answer for both).
        (format!("/Conferences/{sid}/Participants/{stranger}.json"), "Muted=true".into(), 404, 20404, stranger.as_str()),
        (format!("/Conferences/{sid}.json"), "".into(), 400, 21200, "changes nothing"),
        (format!("/Conferences/{sid}.json"), "Status=in-progress".into(), 400, 21200, "Status"),
        (format!("/Conferences/{sid}.json"), "Status=completed&AnnounceUrl=https%3A%2F%2Fa.example%2Fa".into(), 400, 21200, "Status"),
        ("/Conferences/CF00000000000000000000000000000000.json".into(), "Status=completed".into(), 404, 20404, "CF0000"),
        (format!("/Conferences/{sid}/Participants.json"), "To=client%3Abob".into(), 400, 21200, "From"),
        (format!("/Conferences/{sid}/Participants.json"), "From=%2B15551230001&To=5551230002".into(), 400, 21211, "E.164"),
        (format!("/Conferences/{sid}/Participants.json"), "From=%2B15551230001&To=client%3Abob&Beep=loud".into(), 400, 21200, "Beep"),
        (format!("/Conferences/{sid}/Participants.json"), format!("From=%2B15551230001&To=client%3Abob&Label={}", "x".repeat(129)), 400, 21200, "Label"),
        (format!("/Conferences/{sid}/Participants.json"), "From=%2B15551230001&To=client%3Abob&Coaching=true".into(), 400, 21200, "CallSidToCoach"),
        (format!("/Conferences/{sid}/Participants.json"), format!("From=%2B15551230001&To=client%3Abob&CallSidToCoach={}", caller.sid), 400, 21200, "Coaching=true"),
        (format!("/Conferences/{sid}/Participants.json"), format!("From=%2B15551230001&To=client%3Abob&Coaching=true&CallSidToCoach={stranger}"), 400, 21200, "not a participant"),
        (format!("/Conferences/{sid}/Participants.json"), "From=%2B15551230001&To=client%3Abob&Url=https%3A%2F%2Fa.example%2Fx".into(), 400, 20001, "Url"),
    ];
    for (path, body, status, code, mentions) in cases {
        assert_error(&post(&world, &path, &body).await, status, code, mentions);
    }
    let removal = delete(
        &world,
        &format!("/Conferences/{sid}/Participants/{stranger}.json"),
    )
    .await;
    assert_error(&removal, 404, 20404, stranger.as_str());
    let stored = world
        .backend
        .conferences
        .conference(&room.sid)
        .await
        .unwrap();
    assert_eq!(stored.as_ref(), Some(&room), "nothing written");
    let calls = get(&world, "/Calls.json").await;
    assert_eq!(
        calls["calls"].as_array().unwrap().len(),
        2,
        "no call created"
    );
    assert!(
        world.backend.drain_commands().await.is_empty(),
        "nothing sent"
    );
    let list = get(&world, &format!("/Conferences/{sid}/Modifications.json")).await;
    assert!(list["modifications"].as_array().unwrap().is_empty());
}

/// A change is an intent of the conference and one command in the conference's group, to the
/// room's worker; the worker's outcome settles it; a retry with the same Idempotency-Key
/// answers the first answer and sends nothing.
async fn a_change_is_an_intent_and_a_command_and_a_key_makes_it_once(world: World) {
    let (room, caller, agent) = room_of_two(&world).await;
    let sid = room.sid.as_str();
    let path = format!(
        "/call/2012-04-24/Accounts/{}/Conferences/{sid}/Participants/{}.json",
        world.account.sid, agent.sid
    );
    let keyed = || {
        let mut request = teleapi_tests::post_request(&path, Some(&world.auth()), "Muted=true");
        request
            .headers_mut()
            .insert("idempotency-key", "mute-agent-1".parse().unwrap());
        request
    };
    let first = world.send(keyed()).await;
    assert_eq!(first.status(), 200, "{}", body_text(&first));
    let answer = body_json(&first);
    assert_eq!(
        (answer["muted"].clone(), answer["call_sid"].clone()),
        (json!(true), json!(agent.sid))
    );
    let again = world.send(keyed()).await;
    assert_eq!(body_json(&again), answer);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let sent = world
        .backend
        .commands
        .receive(None, 10, Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(sent.len(), 1, "one command for both");
    world
        .backend
        .commands
        .delete(None, &sent[0].receipt)
        .await
        .unwrap();
    let command: Value = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(command["type"], "participant.update");
    assert_eq!(command["conference_sid"], sid);
    assert_eq!(command["seq"], 1);
    assert_eq!(
        command["parameters"],
        json!({"call_sid": agent.sid, "muted": true})
    );
    assert_eq!(
        sent[0].group.as_deref(),
        Some(sid),
        "ordered per conference"
    );
    // The worker applies it; the intent says so.
    report(
        &world,
        &room,
        5,
        json!({"type": "conference.command.applied", "intent_sid": answer["intent_sid"], "seq": 1}),
    )
    .await;
    let list = get(&world, &format!("/Conferences/{sid}/Modifications.json")).await;
    let intent = &list["modifications"][0];
    assert_eq!(
        (intent["status"].as_str(), intent["action"].as_str()),
        (Some("applied"), Some("participant-update"))
    );
    assert_eq!(intent["parameters"], json!({"Muted": "true"}));
    // The same key with other parameters: 422.
    let mut other = teleapi_tests::post_request(&path, Some(&world.auth()), "Muted=false");
    other
        .headers_mut()
        .insert("idempotency-key", "mute-agent-1".parse().unwrap());
    assert_error(&world.send(other).await, 422, 422, "different parameters");
    // By Label too.
    let unmute = post(
        &world,
        &format!("/Conferences/{sid}/Participants/agent.json"),
        "Muted=false",
    )
    .await;
    assert_eq!(body_json(&unmute)["call_sid"], agent.sid.as_str());
    world.backend.drain_commands().await;
    // A removal answers 204, no body, once for a repeated key.
    let keyed_delete = || {
        let path = format!(
            "/call/2012-04-24/Accounts/{}/Conferences/{sid}/Participants/{}.json",
            world.account.sid, caller.sid
        );
        let mut request = get_request(&path, Some(&world.auth()));
        *request.method_mut() = lambda_http::http::Method::DELETE;
        request
            .headers_mut()
            .insert("idempotency-key", "remove-caller-1".parse().unwrap());
        request
    };
    let removal = world.send(keyed_delete()).await;
    assert_eq!(removal.status(), 204);
    assert!(body_text(&removal).is_empty());
    let again = world.send(keyed_delete()).await;
    assert_eq!(again.status(), 204);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(
        again.headers()["teleapi-intent-sid"],
        removal.headers()["teleapi-intent-sid"]
    );
    // The end answers the conference.
    let end = post(&world, &format!("/Conferences/{sid}"), "Status=completed").await;
    assert_eq!(end.status(), 200);
    let xml = body_text(&end);
    assert!(
        xml.contains("<Conference><Sid>") && xml.contains("<IntentSid>MI"),
        "{xml}"
    );
    let types: Vec<String> = world
        .backend
        .drain_commands()
        .await
        .iter()
        .map(|m| m["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["participant.remove", "conference.end"]);
    // Once the worker reports the end, nothing more: changes and additions answer 409.
    report(
        &world,
        &room,
        6,
        json!({"type": "conference.ended", "reason": "conference-ended-via-api"}),
    )
    .await;
    for (path, body) in [
        (
            format!("/Conferences/{sid}/Participants.json"),
            "From=%2B15551230001&To=client%3Abob",
        ),
        (
            format!("/Conferences/{sid}/Participants/{}.json", agent.sid),
            "Muted=false",
        ),
        (format!("/Conferences/{sid}.json"), "Status=completed"),
    ] {
        assert_error(&post(&world, &path, body).await, 409, 21220, "has ended");
    }
}

/// Concurrent changes of one participant are each an intent, numbered without gaps or repeats.
async fn concurrent_changes_keep_a_gap_free_sequence(world: World) {
    let (room, _, agent) = room_of_two(&world).await;
    let path = format!("/Conferences/{}/Participants/{}.json", room.sid, agent.sid);
    let world = std::sync::Arc::new(world);
    let changes = (0..12).map(|i| {
        let world = world.clone();
        let path = path.clone();
        tokio::spawn(async move {
            let body = if i % 2 == 0 {
                "Muted=true"
            } else {
                "Hold=true"
            };
            let answer = post(&world, &path, body).await;
            assert_eq!(answer.status(), 200, "{}", body_text(&answer));
        })
    });
    for change in changes {
        change.await.unwrap();
    }
    let list = get(
        &world,
        &format!("/Conferences/{}/Modifications.json?PageSize=50", room.sid),
    )
    .await;
    let seqs: Vec<u64> = list["modifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
    let stored = world
        .backend
        .conferences
        .conference(&room.sid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.seq, 12);
    let agent = world
        .backend
        .conferences
        .participant(&room.sid, &agent.sid)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !agent.state.muted && !agent.state.hold,
        "stored as the worker reports it, and it has reported nothing yet"
    );
    assert_eq!(world.backend.drain_commands().await.len(), 12);
}

teleapi_tests::on_both_backends!(
    bad_changes_are_refused_before_anything_is_written,
    a_change_is_an_intent_and_a_command_and_a_key_makes_it_once,
    concurrent_changes_keep_a_gap_free_sequence,
    a_conference_and_its_participants_as_reported,
    conferences_are_listed_and_filtered,
    bad_conference_requests_are_refused,
);
