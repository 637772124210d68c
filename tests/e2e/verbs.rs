//! The verbs a voice developer reaches for after the first ones (issue 27), end to end over
//! HTTP on the simulated worker: `<Dial>`'s outcome and attributes, `<Record>`, answering-machine
//! detection, call queues and their API.

use super::{Local, encode, eventually, leg_to, status_is};
use serde_json::Value;
use teleapi_tests::sink::Reply;

impl Local {
    /// The simulated far end of `call` presses `digits`; the answer's status.
    async fn press(&self, call: &str, digits: &str) -> u16 {
        self.client
            .post(format!("{}/dev/Calls/{call}/Digits", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("Digits={}", encode(digits)))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The DTMF the simulated phone of `call` was sent.
    async fn digits_sent(&self, call: &str) -> String {
        self.get(&format!("{}/dev/Calls/{call}/Digits", self.base))
            .await["sent"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The first request the application received at `path`, once it has.
    /// A call created through the API from +15551230001 to `to`, running the app's `path`.
    async fn call_to(&self, to: &str, path: &str) -> String {
        self.create(&format!(
            "From=%2B15551230001&To={}&Url={}",
            encode(to),
            self.app(path)
        ))
        .await
    }

    async fn delete(&self, url: &str) -> (u16, Value) {
        let response = self
            .client
            .delete(url)
            .basic_auth(&self.sid, Some(super::TOKEN))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Asserts that two different workers run the calls `a` and `b`.
    async fn on_two_workers(&self, a: &str, b: &str) {
        let worker = |call| async move {
            let found = self.worker_of(call).await;
            found.unwrap_or_else(|| panic!("no worker runs {call}"))["id"].clone()
        };
        assert_ne!(
            worker(a).await,
            worker(b).await,
            "{a} and {b} on two workers"
        );
    }

    async fn fetched(&self, path: &str) -> std::collections::BTreeMap<String, String> {
        eventually(&format!("a request to {path}"), || async {
            self.fetches(path).first().map(|r| r.params.clone())
        })
        .await
    }
}

/// `<Dial action>` hears how the dial ended: busy; then two numbers rung at once, the one that
/// answers screened by its `url`, sent its `sendDigits`, connected until the `timeLimit`, the
/// other canceled; the dialled legs carry the `callerId`.
async fn a_dial_tells_its_action_how_it_ended(local: Local) {
    let app = &local.app;
    app.always(
        "/dialer",
        Reply::rcml(
            "<Response><Dial action=\"/busy\" timeout=\"5\"><Number>+1555busy</Number></Dial>\
             <Say>never said: the action's answer runs instead</Say></Response>",
        ),
    );
    app.always(
        "/busy",
        Reply::rcml(
            "<Response><Dial action=\"/after\" callerId=\"+15550009999\" timeLimit=\"20\">\
             <Number>+1555noanswer</Number>\
             <Number sendDigits=\"12w3\" url=\"/whisper\" method=\"GET\">+15557654321</Number>\
             </Dial></Response>",
        ),
    );
    app.always(
        "/whisper",
        Reply::rcml("<Response><Say>A call for you</Say></Response>"),
    );
    app.always("/after", Reply::rcml("<Response><Hangup/></Response>"));
    let call = local.call_to("+15551112222", "/dialer").await;
    let busy = local.fetched("/busy").await;
    assert_eq!(busy["DialCallStatus"], "busy", "{busy:?}");
    assert_eq!(busy["DialBridged"], "false");
    assert!(!busy.contains_key("DialCallDuration"));
    // The worker's events reach the stores after it asked the action.
    let busy_leg = eventually("the busy leg's record", || async {
        let leg = local.call(&busy["DialCallSid"]).await;
        (leg["status"] == "busy").then_some(leg)
    })
    .await;
    assert_eq!(busy_leg["to"], "+1555busy");

    let whisper = local.fetched("/whisper").await;
    assert_eq!(whisper["ParentCallSid"], call);
    assert_eq!(whisper["From"], "+15550009999", "callerId");
    let after = local.fetched("/after").await;
    assert_eq!(after["DialCallStatus"], "completed", "{after:?}");
    assert_eq!(after["DialBridged"], "true");
    let connected = whisper["CallSid"].clone();
    assert_eq!(after["DialCallSid"], connected);
    assert!(after["DialCallDuration"].parse::<u64>().is_ok());
    eventually("the call to end", || status_is(&local, &call, "completed")).await;
    let unanswered = eventually("the unanswered leg to be canceled", || async {
        let legs = local.legs(&call).await;
        leg_to(&legs, "+1555noanswer")
            .filter(|l| l["status"] == "canceled")
            .cloned()
    })
    .await;
    assert_eq!(unanswered["status"], "canceled", "{unanswered}");
    assert_eq!(unanswered["from"], "+15550009999");
    assert_eq!(local.call(&connected).await["status"], "completed");
    assert_eq!(local.digits_sent(&connected).await, "123");
}

/// `hangupOnStar`: the caller presses `*` and the dialled party is hung up; the caller goes on
/// (to the action). `answerOnBridge`: an inbound caller is not answered while the dial rings;
/// nobody answered, so the action is requested with the caller still ringing.
async fn a_caller_hangs_up_the_dialled_party_or_waits_unanswered(local: Local) {
    let app = &local.app;
    app.always(
        "/star",
        Reply::rcml(
            "<Response><Dial hangupOnStar=\"true\" action=\"/starred\"><Number>+15557654321</Number></Dial></Response>",
        ),
    );
    app.always(
        "/starred",
        Reply::rcml("<Response><Say>Back with you</Say></Response>"),
    );
    let call = local.call_to("+15551112222", "/star").await;
    let callee = eventually("the dialled party to answer", || async {
        let legs = local.legs(&call).await;
        let leg = legs.first().filter(|l| l["status"] == "in-progress")?;
        Some(leg["sid"].as_str()?.to_owned())
    })
    .await;
    assert_eq!(local.press(&call, "*").await, 204);
    let starred = local.fetched("/starred").await;
    assert_eq!(starred["DialCallStatus"], "completed");
    assert_eq!(starred["DialCallSid"], callee);
    eventually("the dialled party to be hung up", || {
        status_is(&local, &callee, "completed")
    })
    .await;
    eventually("the caller to finish", || {
        status_is(&local, &call, "completed")
    })
    .await;

    app.always(
        "/bridge",
        Reply::rcml(
            "<Response><Dial answerOnBridge=\"true\" timeout=\"30\" action=\"/nobody\"><Number>+1555noanswer</Number></Dial></Response>",
        ),
    );
    app.always(
        "/nobody",
        Reply::rcml("<Response><Say>Nobody is here</Say></Response>"),
    );
    let inbound = local.incoming("/bridge").await;
    eventually("the dialled leg to ring", || async {
        let legs = local.legs(&inbound).await;
        legs.first()
            .filter(|l| l["status"] == "ringing")
            .map(|_| ())
    })
    .await;
    assert_eq!(
        local.call(&inbound).await["status"],
        "ringing",
        "not answered while the dial rings"
    );
    let nobody = local.fetched("/nobody").await;
    assert_eq!(nobody["DialCallStatus"], "no-answer");
    assert_eq!(nobody["CallStatus"], "ringing");
    eventually("the caller to be answered and finish", || {
        status_is(&local, &inbound, "completed")
    })
    .await;
    let answered: Value = local.call(&inbound).await;
    assert!(answered["start_time"].is_string(), "{answered}");
}

/// Forward, else voicemail: the dial is not answered, its action answers `<Record>`, which
/// beeps and records the caller until `#`; the action hears of the recording, which the API
/// serves. A caller who hangs up mid-message is recorded too (`Digits=hangup`); a caller who
/// says nothing leaves no message (`absent`: no action, the document goes on).
async fn forward_else_voicemail(local: Local) {
    let app = &local.app;
    app.always(
        "/forward",
        Reply::rcml(
            "<Response><Dial timeout=\"20\" action=\"/voicemail\"><Number>+1555noanswer</Number></Dial></Response>",
        ),
    );
    app.always(
        "/voicemail",
        Reply::rcml(&format!(
            "<Response><Say>Leave a message</Say><Record action=\"/saved\" timeout=\"0\" finishOnKey=\"#\" recordingStatusCallback=\"{}\"/></Response>",
            app.url("/recorded")
        )),
    );
    app.always("/saved", Reply::rcml("<Response><Hangup/></Response>"));
    let call = local.call_to("+15551112222", "/forward").await;
    let voicemail = local.fetched("/voicemail").await;
    assert_eq!(voicemail["DialCallStatus"], "no-answer");
    eventually("the recording to start", || async {
        let list = local
            .get(&format!("{}.json", local.recordings_of(&call)))
            .await;
        (list["recordings"].as_array()?.len() == 1).then_some(())
    })
    .await;
    // Recordings are as long as the time they took (the simulator's audio is wall-clock).
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    assert_eq!(local.press(&call, "#").await, 204);
    let saved = local.fetched("/saved").await;
    assert_eq!(saved["Digits"], "#");
    assert!(
        saved["RecordingDuration"].parse::<u64>().unwrap() >= 1,
        "{saved:?}"
    );
    let url = &saved["RecordingUrl"];
    assert!(
        url.starts_with(&local.base),
        "absolute, under the API: {url}"
    );
    let recording = eventually("the recording to complete", || async {
        let recording = local.get(&format!("{url}.json")).await;
        (recording["status"] == "completed").then_some(recording)
    })
    .await;
    assert_eq!(recording["source"], "RecordVerb");
    assert_eq!(recording["call_sid"], call.as_str());
    assert_eq!(recording["channels"], 1);
    let told = local.fetched("/recorded").await;
    assert_eq!(told["RecordingSid"], saved["RecordingSid"]);
    eventually("the call to end", || status_is(&local, &call, "completed")).await;

    // The caller hangs up mid-message.
    let hangs_up = local.call_to("+15551113333", "/voicemail").await;
    eventually("the call to be answered", || {
        status_is(&local, &hangs_up, "in-progress")
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    local.modify(&hangs_up, "Status=completed").await;
    let last = eventually("the second message", || async {
        let saved = local.fetches("/saved");
        (saved.len() == 2).then(|| saved[1].params.clone())
    })
    .await;
    assert_eq!(last["Digits"], "hangup");
    assert_eq!(last["CallSid"], hangs_up);

    // Nobody speaks: no message, the document goes on.
    app.always(
        "/silence",
        Reply::rcml(
            "<Response><Record action=\"/never\" timeout=\"1\" playBeep=\"false\"/><Say>Goodbye</Say></Response>",
        ),
    );
    let silent = local.call_to("client:silent-sam", "/silence").await;
    eventually("the silent call to end", || {
        status_is(&local, &silent, "completed")
    })
    .await;
    assert!(local.fetches("/never").is_empty());
}

/// Answering-machine detection on the simulator's phones (a number with `machine` in it
/// greets for 4 s, `silent` never speaks, anyone else says hello): synchronous, the RCML is
/// fetched once decided, with `AnsweredBy`; asynchronous, at once, and the outcome goes to
/// `AsyncAmdStatusCallback`; the call keeps `answered_by`.
async fn machine_detection(local: Local) {
    let app = &local.app;
    app.always("/amd", Reply::rcml("<Response><Hangup/></Response>"));
    let create = |to: &str, extra: &str| {
        format!(
            "From=%2B15551230001&To={}&Url={}&{extra}",
            encode(to),
            local.app("/amd")
        )
    };
    let machine = local
        .create(&create("client:machine-max", "MachineDetection=Enable"))
        .await;
    let person = local
        .create(&create("client:pat", "MachineDetection=DetectMessageEnd"))
        .await;
    let nobody = local
        .create(&create("client:silent-sam", "MachineDetection=Enable"))
        .await;
    for (call, answer) in [
        (&machine, "machine_start"),
        (&person, "human"),
        (&nobody, "unknown"),
    ] {
        let fetched = eventually(&format!("{call}'s RCML"), || async {
            local
                .fetches("/amd")
                .into_iter()
                .find(|r| r.params["CallSid"] == *call)
        })
        .await;
        assert_eq!(fetched.params["AnsweredBy"], answer, "{call}");
        let stored = eventually("answered_by stored", || async {
            let call = local.call(call).await;
            (call["answered_by"] == answer).then_some(call)
        })
        .await;
        assert_eq!(stored["answered_by"], answer);
    }

    // Asynchronous: the call's RCML runs (a pause) while the detection listens.
    app.always(
        "/held",
        Reply::rcml("<Response><Pause length=\"60\"/></Response>"),
    );
    let status = app.url("/amd-status");
    let asynchronous = local
        .create(&format!(
            "From=%2B15551230001&To=client%3Amachine-mia&Url={}&{}",
            local.app("/held"),
            format_args!(
                "MachineDetection=DetectMessageEnd&AsyncAmd=true&AsyncAmdStatusCallback={}",
                encode(&status)
            )
        ))
        .await;
    let told = local.fetched("/amd-status").await;
    assert_eq!(told["CallSid"], asynchronous);
    assert_eq!(told["AnsweredBy"], "machine_end_silence");
    assert!(told["MachineDetectionDuration"].parse::<u64>().unwrap() > 0);
    let first = &local.fetches("/held")[0];
    assert!(
        !first.params.contains_key("AnsweredBy"),
        "asynchronous: fetched at the answer, before the outcome"
    );
    local.modify(&asynchronous, "Status=completed").await;

    for (body, mentions) in [
        ("MachineDetection=Sometimes", "MachineDetection"),
        ("AsyncAmd=true", "MachineDetection=Enable"),
        (
            "MachineDetection=Enable&MachineDetectionTimeout=2",
            "MachineDetectionTimeout",
        ),
        (
            "MachineDetection=Enable&AsyncAmdStatusCallback=https%3A%2F%2Fa.example%2Famd",
            "AsyncAmd=true",
        ),
    ] {
        let (code, refused) = local
            .post(
                &format!("{}.json", local.calls()),
                &create("client:pat", body),
            )
            .await;
        assert_eq!(code, 400, "{body}: {refused}");
        assert!(
            refused["message"].as_str().unwrap().contains(mentions),
            "{body}: {refused}"
        );
    }
}

/// Participants added by the conference's name, as Twilio allows: the first creates the room
/// (its sid answered at once) with the `WaitUrl` its participants hear and the
/// `ConferenceStatusCallback` it tells, its call showing the `CallerId`; the second joins the
/// same room by name and starts it. A name too long is 404, like an unknown sid.
async fn participants_by_conference_name(local: Local) {
    let app = &local.app;
    app.always(
        "/wait",
        Reply::rcml("<Response><Play loop=\"0\">music.mp3</Play></Response>"),
    );
    let room = format!("{}/Room%20A/Participants.json", local.conferences());
    let first = format!(
        "From=%2B15551230001&To=client%3Aann&CallerId=%2B15550001111&EarlyMedia=false\
         &StartConferenceOnEnter=false&WaitUrl={}&WaitMethod=GET\
         &ConferenceStatusCallback={}&ConferenceStatusCallbackEvent=start%20join",
        local.app("/wait"),
        encode(&app.url("/room-events"))
    );
    let (status, ann) = local.post(&room, &first).await;
    assert_eq!(status, 201, "{ann}");
    let conference = ann["conference_sid"].as_str().unwrap().to_owned();
    assert!(conference.starts_with("CF"), "{ann}");
    let ann_call = ann["call_sid"].as_str().unwrap().to_owned();
    let waited = local.fetched("/wait").await;
    assert_eq!(waited["CallSid"], ann_call);
    let created = eventually("the room, as named", || async {
        let got = local
            .get(&format!("{}/{conference}.json", local.conferences()))
            .await;
        (got["friendly_name"] == "Room A").then_some(got)
    })
    .await;
    assert_eq!(created["sid"], conference.as_str());
    assert_eq!(
        local.call(&ann_call).await["from"],
        "+15550001111",
        "CallerId"
    );

    let (status, bob) = local
        .post(&room, "From=%2B15551230001&To=client%3Abob")
        .await;
    assert_eq!(status, 201, "{bob}");
    assert_eq!(bob["conference_sid"], conference.as_str(), "the same room");
    let events = eventually("the room to start", || async {
        let events = app.values_at("/room-events", "StatusCallbackEvent");
        events
            .iter()
            .any(|e| e == "conference-start")
            .then_some(events)
    })
    .await;
    assert!(events.iter().any(|e| e == "participant-join"), "{events:?}");
    let long = format!(
        "{}/{}/Participants.json",
        local.conferences(),
        "x".repeat(129)
    );
    let (status, _) = local
        .post(&long, "From=%2B15551230001&To=client%3Abob")
        .await;
    assert_eq!(status, 404);
    let (status, refused) = local
        .post(
            &room,
            "From=%2B15551230001&To=client%3Abob&ConferenceStatusCallbackEvent=join",
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    local
        .post(
            &format!("{}/{conference}.json", local.conferences()),
            "Status=completed",
        )
        .await;
}

/// A call queue on the simulated worker, through the API: the agent's `<Dial><Queue>` takes
/// the waiting caller; the agent presses `*` (`hangupOnStar`), which ends its side only: the
/// caller, still in progress, goes on with its `<Enqueue>`'s action (`QueueResult=bridged`).
async fn a_queue_on_one_worker(local: Local) {
    let app = &local.app;
    app.always(
        "/enqueue",
        Reply::rcml("<Response><Enqueue action=\"/after-queue\">support</Enqueue></Response>"),
    );
    app.always(
        "/after-queue",
        Reply::rcml("<Response><Say>Thank you</Say><Hangup/></Response>"),
    );
    app.always(
        "/agent",
        Reply::rcml(
            "<Response><Dial hangupOnStar=\"true\" action=\"/agent-after\"><Queue>support</Queue></Dial></Response>",
        ),
    );
    app.always(
        "/agent-after",
        Reply::rcml("<Response><Hangup/></Response>"),
    );
    let caller = local.call_to("+15551112222", "/enqueue").await;
    eventually("the caller to wait", || {
        status_is(&local, &caller, "in-progress")
    })
    .await;
    let agent = local.call_to("client:agent", "/agent").await;
    eventually("the agent to answer", || {
        status_is(&local, &agent, "in-progress")
    })
    .await;
    // Taken at once; bridged.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(local.press(&agent, "*").await, 204);
    let after = local.fetched("/agent-after").await;
    assert_eq!(after["DialCallStatus"], "completed", "{after:?}");
    assert_eq!(after["DialCallSid"], caller);
    let queue = local.fetched("/after-queue").await;
    assert_eq!(queue["QueueResult"], "bridged", "{queue:?}");
    assert_eq!(
        queue["CallStatus"], "in-progress",
        "the caller was not hung up"
    );
    assert!(queue["QueueSid"].starts_with("QU"));
    eventually("the caller to finish", || {
        status_is(&local, &caller, "completed")
    })
    .await;
}

/// The Queues and Members API over a queue the simulated worker runs: a queue made through the
/// API holds what its `MaxSize` says (the fourth caller hears `queue-full`); the API lists the
/// callers in order, refuses to delete a queue they wait in, dequeues the front twice at once
/// (two callers, one each) and then a named one (each runs the `Url` given, its `<Enqueue>`
/// action unasked); an empty queue has no front and can be deleted.
async fn the_queues_and_members_api(local: Local) {
    let app = &local.app;
    app.always(
        "/enqueue",
        Reply::rcml(
            "<Response><Enqueue action=\"/after-queue\" waitUrl=\"/wait\">support</Enqueue></Response>",
        ),
    );
    app.always(
        "/wait",
        Reply::rcml("<Response><Pause length=\"30\"/></Response>"),
    );
    app.always(
        "/after-queue",
        Reply::rcml("<Response><Hangup/></Response>"),
    );
    app.always(
        "/agent-ready",
        Reply::rcml("<Response><Pause length=\"30\"/></Response>"),
    );
    let queues = format!(
        "{}/call/2012-04-24/Accounts/{}/Queues",
        local.base, local.sid
    );

    let (status, queue) = local
        .post(&format!("{queues}.json"), "FriendlyName=support&MaxSize=3")
        .await;
    assert_eq!(status, 201, "{queue}");
    let sid = queue["sid"].as_str().unwrap().to_owned();
    assert_eq!(
        (queue["max_size"].as_u64(), queue["current_size"].as_u64()),
        (Some(3), Some(0))
    );
    let (status, taken) = local
        .post(&format!("{queues}.json"), "FriendlyName=support")
        .await;
    assert_eq!(
        (status, taken["code"].as_u64()),
        (409, Some(409)),
        "{taken}"
    );
    let (status, renamed) = local
        .post(&format!("{queues}/{sid}.json"), "FriendlyName=sales")
        .await;
    assert_eq!(
        (status, renamed["code"].as_u64()),
        (400, Some(21200)),
        "{renamed}"
    );

    let mut callers = Vec::new();
    for n in 0..3 {
        let caller = local.call_to(&format!("+1555111222{n}"), "/enqueue").await;
        // One after the other, so that their order is known.
        eventually("the caller to wait", || async {
            let members = local.get(&format!("{queues}/{sid}/Members.json")).await;
            (members["queue_members"].as_array()?.len() == n + 1).then_some(())
        })
        .await;
        callers.push(caller);
    }
    let full = local.call_to("+15551112229", "/enqueue").await;
    let heard = eventually("the third caller refused", || async {
        local
            .fetches("/after-queue")
            .into_iter()
            .find(|r| r.params.get("CallSid") == Some(&full))
    })
    .await;
    assert_eq!(
        heard.params["QueueResult"], "queue-full",
        "{:?}",
        heard.params
    );

    let members = local.get(&format!("{queues}/{sid}/Members.json")).await;
    let listed: Vec<(&str, u64)> = members["queue_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["call_sid"].as_str().unwrap(),
                m["position"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (callers[0].as_str(), 1),
            (callers[1].as_str(), 2),
            (callers[2].as_str(), 3)
        ]
    );
    let second = local
        .get(&format!("{queues}/{sid}/Members/{}.json", callers[1]))
        .await;
    assert_eq!(second["position"], 2, "{second}");
    let read = local.get(&format!("{queues}/{sid}.json")).await;
    assert_eq!(read["current_size"], 3, "{read}");
    let list = local.get(&format!("{queues}.json")).await;
    assert_eq!(list["queues"][0]["sid"], sid.as_str(), "{list}");
    let (status, busy) = local.delete(&format!("{queues}/{sid}.json")).await;
    assert_eq!((status, busy["code"].as_u64()), (409, Some(409)), "{busy}");

    // Two requests for the front at once take the two callers who waited longest, one each;
    // they run the agent's RCML, and their action is not asked.
    let ready = format!("Url={}", local.app("/agent-ready"));
    let front = format!("{queues}/{sid}/Members/Front.json");
    let ((one, first), (two, second)) =
        tokio::join!(local.post(&front, &ready), local.post(&front, &ready));
    assert_eq!((one, two), (200, 200), "{first} {second}");
    let mut taken = [
        first["call_sid"].as_str().unwrap(),
        second["call_sid"].as_str().unwrap(),
    ];
    taken.sort_unstable();
    let mut longest = [callers[0].as_str(), callers[1].as_str()];
    longest.sort_unstable();
    assert_eq!(taken, longest);
    for caller in &callers[..2] {
        eventually("a dequeued caller to run the Url", || async {
            local
                .fetches("/agent-ready")
                .into_iter()
                .find(|r| r.params.get("CallSid") == Some(caller))
        })
        .await;
    }
    eventually("the third caller at the front", || async {
        let members = local.get(&format!("{queues}/{sid}/Members.json")).await;
        let first = members["queue_members"].as_array()?.first()?.clone();
        (members["queue_members"].as_array()?.len() == 1
            && first["call_sid"] == callers[2].as_str()
            && first["position"] == 1)
            .then_some(())
    })
    .await;
    // A named dequeue, with an Idempotency-Key: its retry answers the same, though the caller
    // has left the queue since.
    let named_dequeue = || async {
        let response = local
            .client
            .post(format!("{queues}/{sid}/Members/{}.json", callers[2]))
            .basic_auth(&local.sid, Some(super::TOKEN))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("idempotency-key", "dequeue-third")
            .body(ready.clone())
            .send()
            .await
            .unwrap();
        let replayed = response.headers().contains_key("idempotent-replayed");
        (
            response.status().as_u16(),
            replayed,
            response.json::<Value>().await.unwrap(),
        )
    };
    let (status, replayed, named) = named_dequeue().await;
    assert_eq!(
        (status, replayed, named["call_sid"].as_str()),
        (200, false, Some(callers[2].as_str())),
        "{named}"
    );
    eventually("the queue empty", || async {
        let read = local.get(&format!("{queues}/{sid}.json")).await;
        (read["current_size"] == 0).then_some(())
    })
    .await;
    let (status, replayed, again) = named_dequeue().await;
    assert_eq!((status, replayed), (200, true), "{again}");
    assert_eq!(again, named);
    let (status, nobody) = local
        .post(&format!("{queues}/{sid}/Members/Front.json"), &ready)
        .await;
    assert_eq!(
        (status, nobody["code"].as_u64()),
        (404, Some(20404)),
        "{nobody}"
    );
    assert!(
        local
            .fetches("/after-queue")
            .iter()
            .all(|r| r.params.get("CallSid") == Some(&full)),
        "a dequeued caller's action is not asked"
    );
    for call in &callers {
        local.modify(call, "Status=completed").await;
    }
    let (status, _) = local.delete(&format!("{queues}/{sid}.json")).await;
    assert_eq!(status, 204);
    let (status, gone) = local.delete(&format!("{queues}/{sid}.json")).await;
    assert_eq!((status, gone["code"].as_u64()), (404, Some(20404)));
}

/// Callers and agents of one queue on two simulated workers: they meet over a bridge between
/// the workers (the control plane takes the caller for the agent, `queue.bridge`), whichever
/// came first. A caller who waits first is taken by an agent who arrives on the other worker:
/// it hears the `<Queue url>` (told the agent's CallSid), is connected, and goes on with its
/// action (`bridged`) when the agent hangs up, whose action names the caller. An agent who
/// waits first takes a caller who joins on the other worker (the agent says again that it
/// waits); when that caller hangs up, the agent's dial ends and its action is told. A queue's
/// `MaxSize` counts the callers of both workers.
async fn callers_and_agents_on_two_workers(backing: teleapi_local::Backing) {
    let local = Local::start_with(backing, |options| options.simulator.workers = 2).await;
    let app = &local.app;
    app.always(
        "/enqueue",
        Reply::rcml("<Response><Enqueue action=\"/after-queue\">support</Enqueue></Response>"),
    );
    app.always(
        "/after-queue",
        Reply::rcml("<Response><Say>Thank you</Say><Pause length=\"600\"/></Response>"),
    );
    // Agent `n`'s document; a long timeout: an agent who comes first waits (12 s at the
    // tests' speed).
    for n in 1..=2 {
        app.always(
            &format!("/agent{n}"),
            Reply::rcml(&format!(
                "<Response><Dial timeout=\"600\" action=\"/agent-after{n}\"><Queue url=\"/whisper{n}\">support</Queue></Dial><Say>Next</Say><Pause length=\"600\"/></Response>"
            )),
        );
        app.always(
            &format!("/whisper{n}"),
            Reply::rcml("<Response><Say>An agent is here</Say></Response>"),
        );
        app.always(&format!("/agent-after{n}"), Reply::rcml("<Response/>"));
    }

    // New calls go to the workers in turn: the caller to one, the agent to the other.
    let caller = local.incoming("/enqueue").await;
    let queues = format!(
        "{}/call/2012-04-24/Accounts/{}/Queues",
        local.base, local.sid
    );
    eventually("the caller to wait", || async {
        let list = local.get(&format!("{queues}.json")).await;
        let queue = list["queues"].as_array()?.first()?.clone();
        (queue["current_size"] == 1).then_some(())
    })
    .await;
    let agent = local.incoming("/agent1").await;
    local.on_two_workers(&caller, &agent).await;
    let whisper = local.fetched("/whisper1").await;
    assert_eq!(whisper["CallSid"], caller, "{whisper:?}");
    assert_eq!(whisper["DequeingCallSid"], agent, "{whisper:?}");
    assert!(whisper["QueueSid"].starts_with("QU"), "{whisper:?}");
    let bridged = local
        .modifications(&caller)
        .await
        .into_iter()
        .find(|m| m["action"] == "queue-bridge");
    let bridged = bridged.expect("the caller's queue-bridge intent");
    assert_eq!(bridged["status"], "applied", "{bridged}");
    // Connected: the queue is empty; the agent hangs up; the caller goes on.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    local.modify(&agent, "Status=completed").await;
    let after = local.fetched("/after-queue").await;
    assert_eq!(after["QueueResult"], "bridged", "{after:?}");
    assert_eq!(after["CallStatus"], "in-progress", "{after:?}");
    let dial = local.fetched("/agent-after1").await;
    assert_eq!(dial["DialCallStatus"], "completed", "{dial:?}");
    assert_eq!(dial["DialCallSid"], caller, "{dial:?}");
    local.modify(&caller, "Status=completed").await;

    // The other way round: the agent waits first, on one worker; a caller joins on the other.
    let agent = local.incoming("/agent2").await;
    eventually("the agent to wait", || {
        status_is(&local, &agent, "in-progress")
    })
    .await;
    let caller = local.incoming("/enqueue").await;
    local.on_two_workers(&caller, &agent).await;
    let whisper = local.fetched("/whisper2").await;
    assert_eq!(whisper["DequeingCallSid"], agent, "{whisper:?}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    local.modify(&caller, "Status=completed").await;
    let dial = local.fetched("/agent-after2").await;
    assert_eq!(dial["DialCallStatus"], "completed", "{dial:?}");
    assert_eq!(dial["DialCallSid"], caller, "{dial:?}");
    // Its action's document is empty: the agent's call ends.
    eventually("the agent's call to end", || {
        status_is(&local, &agent, "completed")
    })
    .await;

    // `MaxSize` counts the callers of every worker: one waits on one worker; the next, on the
    // other, hears `queue-full`.
    let (status, small) = local
        .post(&format!("{queues}.json"), "FriendlyName=small&MaxSize=1")
        .await;
    assert_eq!(status, 201, "{small}");
    app.always(
        "/small",
        Reply::rcml("<Response><Enqueue action=\"/after-small\">small</Enqueue></Response>"),
    );
    app.always("/after-small", Reply::rcml("<Response/>"));
    let first = local.incoming("/small").await;
    let members = format!("{queues}/{}/Members.json", small["sid"].as_str().unwrap());
    eventually("the first caller listed", || async {
        let listed = local.get(&members).await;
        (listed["queue_members"].as_array()?.len() == 1).then_some(())
    })
    .await;
    let second = local.incoming("/small").await;
    local.on_two_workers(&first, &second).await;
    let full = local.fetched("/after-small").await;
    assert_eq!(full["CallSid"], second, "{full:?}");
    assert_eq!(full["QueueResult"], "queue-full", "{full:?}");
    local.modify(&first, "Status=completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_and_agents_on_two_workers_in_memory() {
    callers_and_agents_on_two_workers(teleapi_local::Backing::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_and_agents_on_two_workers_on_moto() {
    callers_and_agents_on_two_workers(super::on_moto()).await;
}

on_both_backends!(
    a_dial_tells_its_action_how_it_ended,
    a_caller_hangs_up_the_dialled_party_or_waits_unanswered,
    forward_else_voicemail,
    machine_detection,
    participants_by_conference_name,
    a_queue_on_one_worker,
    the_queues_and_members_api,
);
