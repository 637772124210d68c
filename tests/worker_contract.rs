//! The worker contract: what every media worker built on the kit (`shared/worker`) does, seen
//! from its queues as the control plane sees it (docs/messages.md). Commands go on its queues;
//! its events are read off the events queue. Each case is a function of a [`Bench`]: a running
//! worker, the application's RCML server, and the far end's phones. The simulated worker runs
//! it ([`simulated`]: fake phones), and so does the SIP/RTP worker ([`sip`]: baresip phones and
//! SIPp on loopback): calls, busy and silent far ends, commands in order, redirects, draining;
//! digits for a `<Gather>`, a recording, a conference room, a media stream; `<Dial>`'s action,
//! `<Record>`, call queues.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use teleapi_adapters::memory::MemoryQueue;
use teleapi_domain::CallSid;
use teleapi_domain::wire::command::Command;
use teleapi_local::SimulatorConfig;
use teleapi_local::simulator::Simulator;
use teleapi_ports::{OutgoingMessage, Queue};
use teleapi_tests::sink::{Reply, Sink};
use teleapi_worker::Life;

/// How the far end behaves when a worker rings it.
enum Phone {
    Answers,
    Busy,
    NoAnswer,
}

/// A worker under test and its world.
struct Bench {
    /// Where commands go: the default queue (new calls), and each worker's own.
    commands: MemoryQueue,
    events: MemoryQueue,
    app: Sink,
    simulator: Simulator,
    worker: tokio::task::JoinHandle<()>,
    /// Events read so far, in order.
    seen: Vec<Value>,
    /// Real far ends, for a SIP/RTP worker.
    far_ends: Option<FarEnds>,
}

/// The SIP/RTP worker's far ends: a phone that answers, one that rings and never answers, and
/// SIPp answering 486.
struct FarEnds {
    answers: teleapi_tests::phone::Phone,
    rings: teleapi_tests::phone::Phone,
    busy: String,
    _sipp: tokio::process::Child,
    dir: std::path::PathBuf,
}

impl Drop for FarEnds {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.worker.abort();
    }
}

/// The simulated worker: fake phones, `--speed 0.01`, a ring of 20 ms.
async fn simulated() -> Bench {
    let commands = MemoryQueue::with_visibility("commands.fifo", Duration::from_secs(5));
    let events = commands.queue("events.fifo");
    let simulator = Simulator::new(
        Arc::new(commands.clone()),
        |n| format!("worker-{n}.fifo"),
        Arc::new(events.clone()),
        SimulatorConfig {
            ring: Duration::from_millis(20),
            speed: 0.01,
            heartbeat: Duration::from_millis(100),
            ..Default::default()
        },
    );
    let worker = tokio::spawn(simulator.clone().run());
    Bench {
        commands,
        events,
        app: Sink::start().await,
        simulator,
        worker,
        seen: Vec::new(),
        far_ends: None,
    }
}

/// The SIP/RTP worker, with real far ends on loopback; the kit's own timers at a tenth (a
/// dial's 30 s timeout is 3 s), the audio in real time.
async fn sip() -> Bench {
    use teleapi_tests::phone::{Phone as SipPhone, Settings, free_port, rtp_band, tone_file};
    let commands = MemoryQueue::with_visibility("commands.fifo", Duration::from_secs(5));
    let events = commands.queue("events.fifo");
    let dir = std::env::temp_dir().join(format!(
        "teleapi-contract-{}",
        &teleapi_domain::sid::random_hex32()[..12]
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let microphone = tone_file(&dir, 1_000.0, 120.0);
    let answers = SipPhone::start("answers", &dir, &microphone).await;
    let never = Settings {
        answers: false,
        ..Settings::default()
    };
    let rings = SipPhone::start_with("rings", &dir, &microphone, never).await;
    let busy_port = free_port();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/media/busy.xml");
    let sipp = tokio::process::Command::new("sipp")
        .args([
            "-sf",
            scenario,
            "-i",
            "127.0.0.1",
            "-p",
            &busy_port.to_string(),
        ])
        .args(["-m", "100", "-nostdin"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs (tests/run installs sip-tester)");
    let (low, high) = rtp_band();
    let options = teleapi_media::SipOptions::new(
        format!("127.0.0.1:{}", free_port()).parse().unwrap(),
        low..=high,
    );
    let recordings = dir.join("recordings");
    std::fs::create_dir_all(&recordings).unwrap();
    let store = Arc::new(teleapi_adapters::media::FileMedia::new(recordings));
    let (media, offered) = teleapi_media::start(&options, Some(store)).await.unwrap();
    let simulator = Simulator::on_media(
        Arc::new(commands.clone()),
        |n| format!("worker-{n}.fifo"),
        Arc::new(events.clone()),
        SimulatorConfig {
            speed: 0.1,
            heartbeat: Duration::from_millis(100),
            ..Default::default()
        },
        None,
        vec![teleapi_local::simulator::RealMedia {
            media: Arc::new(media.clone()),
            bridge_address: None,
        }],
    );
    // No number is configured: whatever calls in is refused.
    let nobody = Arc::new(teleapi_adapters::memory::MemoryStore::new());
    tokio::spawn(teleapi_media::answer_offers(
        offered,
        media,
        teleapi_media::Directory {
            numbers: nobody.clone(),
            accounts: nobody,
        },
        simulator.first(),
    ));
    let worker = tokio::spawn(simulator.clone().run());
    Bench {
        commands,
        events,
        app: Sink::start().await,
        simulator,
        worker,
        seen: Vec::new(),
        far_ends: Some(FarEnds {
            answers,
            rings,
            busy: format!("sip:busy@127.0.0.1:{busy_port}"),
            _sipp: sipp,
            dir,
        }),
    }
}

impl Bench {
    fn number(&self, phone: Phone) -> String {
        match (&self.far_ends, phone) {
            (None, Phone::Answers) => "+15557654321".into(),
            (None, Phone::Busy) => "+1555busy".into(),
            (None, Phone::NoAnswer) => "+1555noanswer".into(),
            (Some(far), Phone::Answers) => far.answers.uri(),
            (Some(far), Phone::Busy) => far.busy.clone(),
            (Some(far), Phone::NoAnswer) => far.rings.uri(),
        }
    }

    /// Sends a command of `call` to the default queue (`own`: the worker's own).
    async fn command(&self, call: &CallSid, kind: &str, seq: u64, parameters: Value, own: bool) {
        let body = json!({
            "version": 1, "type": kind, "call_sid": call, "seq": seq,
            "account_sid": "AC0123456789abcdef0123456789abcdef",
            "intent_sid": format!("MI{seq:032x}"), "parameters": parameters,
        });
        let command = Command::from_json(&body.to_string()).unwrap();
        let queue = own.then(|| self.simulator.first().queue_url().to_owned());
        self.commands
            .send(queue.as_deref(), &OutgoingMessage::command(&command))
            .await
            .unwrap();
    }

    /// A new call to `phone` that runs `rcml` once answered.
    async fn dial(&self, phone: Phone, rcml: &str) -> CallSid {
        let call = CallSid::generate();
        let parameters =
            json!({"from": "+15551230001", "to": self.number(phone), "rcml": rcml, "timeout": 30});
        self.command(&call, "dial", 1, parameters, false).await;
        call
    }

    /// The far end of `call` presses `keys`.
    async fn press(&self, call: &CallSid, keys: &str) {
        match &self.far_ends {
            None => assert!(
                self.simulator.press(call, keys),
                "the call is the simulator's"
            ),
            Some(far) => {
                far.answers.command("sndcode", keys).await;
            }
        }
    }

    /// A call to the far end that answers, held in progress (a ten-minute pause).
    async fn held_call(&mut self) -> CallSid {
        let hold = "<Response><Pause length=\"600\"/></Response>";
        let call = self.dial(Phone::Answers, hold).await;
        self.status(&call, "in-progress").await;
        call
    }

    /// Reads events until one satisfies `found`; fails after 20 s naming what it saw.
    async fn until(&mut self, what: &str, found: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(event) = self.seen.iter().find(|e| found(e)) {
                return event.clone();
            }
            assert!(Instant::now() < deadline, "no {what} in {:#?}", self.seen);
            for message in self
                .events
                .receive(None, 10, Duration::from_millis(100))
                .await
                .unwrap()
            {
                self.events.delete(None, &message.receipt).await.unwrap();
                self.seen.push(serde_json::from_str(&message.body).unwrap());
            }
        }
    }

    /// The call's events so far, as `type status-or-intent`.
    fn story(&self, call: &CallSid) -> Vec<String> {
        self.seen
            .iter()
            .filter(|e| e["call_sid"] == call.as_str())
            .map(|e| {
                let detail = e["status"].as_str().or(e["intent_sid"].as_str());
                format!("{} {}", e["type"].as_str().unwrap(), detail.unwrap_or(""))
                    .trim()
                    .to_owned()
            })
            .collect()
    }

    async fn status(&mut self, call: &CallSid, status: &str) {
        self.until(&format!("{call} {status}"), |e| {
            e["call_sid"] == call.as_str() && e["type"] == "call.status" && e["status"] == status
        })
        .await;
    }
}

fn intent(seq: u64) -> String {
    format!("MI{seq:032x}")
}

/// A worker announces itself with its own commands queue, and names itself and that queue on
/// every call it takes; a call it places runs its RCML once answered and completes at its end.
async fn a_call_is_placed_announced_and_run(mut b: Bench) {
    let heartbeat = b
        .until("a heartbeat", |e| e["type"] == "worker.heartbeat")
        .await;
    let queue = heartbeat["command_queue_url"].as_str().unwrap().to_owned();
    assert_eq!(heartbeat["state"], "active");
    let call = b
        .dial(
            Phone::Answers,
            "<Response><Say>Hello there</Say></Response>",
        )
        .await;
    b.status(&call, "completed").await;
    let initiated = b
        .until("call.initiated", |e| e["type"] == "call.initiated")
        .await;
    assert_eq!(initiated["command_queue_url"], queue.as_str());
    assert_eq!(initiated["worker_id"], heartbeat["worker_id"]);
    assert_eq!(
        b.story(&call),
        [
            "call.initiated".to_owned(),
            format!("command.applied {}", intent(1)),
            "call.status ringing".into(),
            "call.status in-progress".into(),
            "call.status completed".into(),
        ]
    );
}

/// The far end decides: busy, or no answer within the dial's timeout.
async fn the_far_end_is_busy_or_does_not_answer(mut b: Bench) {
    let busy = b.dial(Phone::Busy, "<Response/>").await;
    b.status(&busy, "busy").await;
    let silent = b.dial(Phone::NoAnswer, "<Response/>").await;
    b.status(&silent, "no-answer").await;
}

/// Commands of a call apply in `seq` order: an older one is `superseded`, the one applied last
/// delivered again is ignored, a call that ended refuses the rest (`call-ended`), and a call the
/// worker never had is refused on its own queue.
async fn commands_apply_in_order(mut b: Bench) {
    let call = b.held_call().await;
    b.command(&call, "mute", 3, json!({}), true).await;
    b.until("mute applied", |e| e["intent_sid"] == intent(3))
        .await;
    b.command(&call, "unmute", 2, json!({}), true).await;
    let older = b
        .until("older refused", |e| e["intent_sid"] == intent(2))
        .await;
    assert_eq!(
        (older["type"].as_str(), older["reason"].as_str()),
        (Some("command.rejected"), Some("superseded"))
    );
    // The one applied last, delivered again: ignored.
    b.command(&call, "mute", 3, json!({}), true).await;
    b.command(&call, "hangup", 4, json!({}), true).await;
    b.status(&call, "completed").await;
    b.command(&call, "mute", 5, json!({}), true).await;
    let late = b
        .until("late refused", |e| e["intent_sid"] == intent(5))
        .await;
    assert_eq!(late["reason"], "call-ended");
    let applied_3 = b
        .story(&call)
        .iter()
        .filter(|l| **l == format!("command.applied {}", intent(3)))
        .count();
    assert_eq!(applied_3, 1, "a redelivery is not applied again");
    let stranger = CallSid::generate();
    b.command(&stranger, "mute", 1, json!({}), true).await;
    let refused = b
        .until("a stranger's command refused", |e| {
            e["call_sid"] == stranger.as_str()
        })
        .await;
    assert_eq!(refused["reason"], "call-ended");
}

/// A redirect replaces the RCML running, mid-verb, with the call's parameters sent to the
/// application.
async fn a_redirect_runs_new_rcml_at_once(mut b: Bench) {
    b.app.always(
        "/next",
        Reply::rcml("<Response><Say>Transferred</Say><Hangup/></Response>"),
    );
    let call = b
        .dial(
            Phone::Answers,
            "<Response><Play loop=\"0\">music.mp3</Play></Response>",
        )
        .await;
    b.status(&call, "in-progress").await;
    let url = b.app.url("/next");
    b.command(
        &call,
        "redirect",
        2,
        json!({"url": url, "method": "POST"}),
        true,
    )
    .await;
    b.status(&call, "completed").await;
    let fetched = b.app.received_at("/next");
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].params["CallSid"], call.as_str());
    assert_eq!(fetched[0].params["CallStatus"], "in-progress");
    let logged = b
        .until("the fetch logged", |e| e["type"] == "http.request")
        .await;
    assert_eq!(logged["request"]["url"], url.as_str());
}

/// A worker that drains takes no new call from the shared queue, lets its calls end, says it is
/// draining, and then leaves.
async fn a_draining_worker_finishes_and_leaves(mut b: Bench) {
    let call = b.held_call().await;
    let worker = b.simulator.first();
    worker.drain();
    b.until("a draining heartbeat", |e| {
        e["type"] == "worker.heartbeat" && e["state"] == "draining"
    })
    .await;
    let refused = b.dial(Phone::Answers, "<Response/>").await;
    b.command(&call, "hangup", 2, json!({}), true).await;
    b.status(&call, "completed").await;
    b.until("worker.left", |e| e["type"] == "worker.left").await;
    assert_eq!(worker.life(), Life::Left);
    assert!(
        b.story(&refused).is_empty(),
        "a draining worker takes no new call"
    );
}

/// Keys the far end presses reach a `<Gather>`, whose action receives them as `Digits`, the
/// key that finished it as `FinishedOnKey`.
async fn digits_reach_a_gather(mut b: Bench) {
    b.app
        .always("/keys", Reply::rcml("<Response><Hangup/></Response>"));
    let rcml = format!(
        "<Response><Gather numDigits=\"5\" action=\"{}\" timeout=\"10\"><Pause length=\"30\"/>\
         </Gather></Response>",
        b.app.url("/keys")
    );
    let call = b.dial(Phone::Answers, &rcml).await;
    b.status(&call, "in-progress").await;
    if b.far_ends.is_some() {
        // A real far end's audio is flowing before it presses (the simulator's 30 s prompt
        // is 0.3 s at its speed: it presses at once).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    b.press(&call, "42#").await;
    b.status(&call, "completed").await;
    let fetched = b.app.received_at("/keys");
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].params["Digits"], "42");
    assert_eq!(fetched[0].params["FinishedOnKey"], "#");
}

/// A recording started and stopped by commands is reported started, then completed with its
/// media and a duration true to the time recorded.
async fn a_recording_is_started_and_stopped(mut b: Bench) {
    let call = b.held_call().await;
    let recording = teleapi_domain::RecordingSid::generate();
    let spec = json!({"recording": {
        "recording_sid": recording, "channels": "dual", "track": "both",
        "trim": "do-not-trim", "source": "StartCallRecordingAPI",
    }});
    b.command(&call, "recording.start", 2, spec, true).await;
    b.until("recording.started", |e| e["type"] == "recording.started")
        .await;
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let stop = json!({"recording_sid": recording, "recording_status": "stopped"});
    b.command(&call, "recording.update", 3, stop, true).await;
    let done = b
        .until("the recording's end", |e| {
            e["type"] == "recording.status" && e["status"] != "in-progress"
        })
        .await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["duration"], 2, "{done}");
    assert!(!done["media_url"].as_str().unwrap_or_default().is_empty());
    b.command(&call, "hangup", 4, json!({}), true).await;
    b.status(&call, "completed").await;
}

/// Two calls join a room: it is created, both join, it starts; when both hang up it ends,
/// after each has left.
async fn a_room_starts_and_ends(mut b: Bench) {
    let room = "<Response><Dial><Conference>standup</Conference></Dial></Response>";
    let (one, two) = (
        b.dial(Phone::Answers, room).await,
        b.dial(Phone::Answers, room).await,
    );
    for call in [&one, &two] {
        b.until("a participant", |e| {
            e["type"] == "participant.joined" && e["participant"]["call_sid"] == call.as_str()
        })
        .await;
    }
    let created = b
        .until("the room", |e| e["type"] == "conference.created")
        .await;
    assert_eq!(created["friendly_name"], "standup");
    b.until("the start", |e| e["type"] == "conference.started")
        .await;
    for (call, seq) in [(&one, 2), (&two, 2)] {
        b.command(call, "hangup", seq, json!({}), true).await;
    }
    let ended = b
        .until("the end", |e| e["type"] == "conference.ended")
        .await;
    assert_eq!(ended["reason"], "last-participant-left");
    let left = b
        .seen
        .iter()
        .filter(|e| e["type"] == "participant.left")
        .count();
    assert_eq!(left, 2);
}

/// A stream started by a command connects to the application's WebSocket, sends the call's
/// audio in 20 ms frames of μ-law, and stops when told.
async fn a_stream_carries_the_call(mut b: Bench) {
    let peer = teleapi_tests::ws::WsPeer::start().await;
    let call = b.held_call().await;
    let stream = teleapi_domain::StreamSid::generate();
    let spec = json!({"stream": {
        "stream_sid": stream, "url": peer.url("/media"), "track": "inbound_track",
        "parameters": {},
    }});
    b.command(&call, "stream.start", 2, spec, true).await;
    b.until("stream.started", |e| e["type"] == "stream.started")
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    b.command(&call, "stream.stop", 3, json!({"stream_sid": stream}), true)
        .await;
    b.until("stream.stopped", |e| e["type"] == "stream.stopped")
        .await;
    // The peer reads on a task of its own: its `stop` may still be on the way.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !peer.heard("/media")[0]
        .iter()
        .any(|h| h.message["event"] == "stop")
    {
        assert!(Instant::now() < deadline, "the peer never heard `stop`");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let heard = &peer.heard("/media")[0];
    let frames: Vec<&serde_json::Value> = heard
        .iter()
        .map(|h| &h.message)
        .filter(|m| m["event"] == "media")
        .collect();
    assert!(frames.len() >= 20, "{} frames in 600 ms", frames.len());
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(frames[0]["media"]["payload"].as_str().unwrap())
        .unwrap();
    assert_eq!(payload.len(), 160, "20 ms of μ-law");
    assert_eq!(heard.last().unwrap().message["event"], "stop");
    b.command(&call, "hangup", 4, json!({}), true).await;
    b.status(&call, "completed").await;
}

/// An RCML answer larger than a megabyte is not read: the fetch fails (`rcml.failed`, 11200)
/// and the call waits for the control plane.
async fn a_document_too_large_is_refused(mut b: Bench) {
    let huge = format!(
        "<Response><Say>{}</Say></Response>",
        "word ".repeat(300_000)
    );
    b.app.always("/huge", Reply::rcml(&huge));
    let rcml = format!(
        "<Response><Redirect>{}</Redirect></Response>",
        b.app.url("/huge")
    );
    let call = b.dial(Phone::Answers, &rcml).await;
    let failed = b
        .until("rcml.failed", |e| {
            e["call_sid"] == call.as_str() && e["type"] == "rcml.failed"
        })
        .await;
    assert_eq!(failed["error_code"], 11200, "{failed}");
    assert!(
        failed["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("larger than"),
        "{failed}"
    );
    b.command(&call, "hangup", 2, json!({}), true).await;
    b.status(&call, "completed").await;
}

/// `<Dial action>` hears how a dial of two legs that both failed ended: nobody answered
/// (`no-answer` over `busy`), with the unanswered leg's sid; the legs carry the `callerId`.
async fn a_dial_tells_its_action_how_it_ended(mut b: Bench) {
    b.app
        .always("/after", Reply::rcml("<Response><Hangup/></Response>"));
    let rcml = format!(
        "<Response><Dial action=\"{}\" timeout=\"10\" callerId=\"+15550009999\">\
         <Number>{}</Number><Number>{}</Number></Dial></Response>",
        b.app.url("/after"),
        b.number(Phone::NoAnswer),
        b.number(Phone::Busy),
    );
    let call = b.dial(Phone::Answers, &rcml).await;
    b.status(&call, "completed").await;
    let after = b.app.received_at("/after")[0].params.clone();
    assert_eq!(after["DialCallStatus"], "no-answer", "{after:?}");
    assert_eq!(after["DialBridged"], "false");
    let silent = b.number(Phone::NoAnswer);
    let unanswered = b
        .until("the unanswered leg", |e| {
            e["type"] == "call.initiated" && e["to"] == silent.as_str()
        })
        .await;
    assert_eq!(
        after["DialCallSid"],
        unanswered["call_sid"].as_str().unwrap()
    );
    assert_eq!(unanswered["from"], "+15550009999");
    assert_eq!(unanswered["parent_call_sid"], call.as_str());
}

/// `<Record>` beeps, records the caller until a key of `finishOnKey`, and asks its action
/// with the recording (a `RecordVerb` recording of the caller alone) and the key.
async fn a_message_is_recorded(mut b: Bench) {
    b.app
        .always("/saved", Reply::rcml("<Response><Hangup/></Response>"));
    let rcml = format!(
        "<Response><Record action=\"{}\" timeout=\"0\" finishOnKey=\"#\"/></Response>",
        b.app.url("/saved")
    );
    let call = b.dial(Phone::Answers, &rcml).await;
    b.status(&call, "in-progress").await;
    let started = b
        .until("recording.started", |e| e["type"] == "recording.started")
        .await;
    assert_eq!(started["recording"]["source"], "RecordVerb");
    assert_eq!(started["recording"]["track"], "inbound");
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    b.press(&call, "#").await;
    b.status(&call, "completed").await;
    let saved = b.app.received_at("/saved")[0].params.clone();
    assert_eq!(saved["Digits"], "#");
    assert_eq!(
        saved["RecordingSid"],
        started["recording"]["recording_sid"].as_str().unwrap()
    );
    let seconds: u64 = saved["RecordingDuration"].parse().unwrap();
    assert!((1..=3).contains(&seconds), "{saved:?}");
    assert!(
        saved["RecordingUrl"].ends_with(&format!("/Recordings/{}", saved["RecordingSid"])),
        "{saved:?}"
    );
    let done = b
        .until("the recording's end", |e| {
            e["type"] == "recording.status" && e["status"] == "completed"
        })
        .await;
    assert!(!done["media_url"].as_str().unwrap_or_default().is_empty());
}

/// Queues: an agent's `<Dial><Queue>` waits for a caller; a caller `<Enqueue>`d is taken at
/// once, hears the agent's `url` first, and is bridged; when the agent hangs up, the caller's
/// action hears `QueueResult=bridged` and the agent's dial action `completed`. A caller that
/// `<Leave>`s is told `leave`; an agent with nobody to take is told `no-answer`.
async fn a_queued_caller_meets_an_agent(mut b: Bench) {
    b.app.always(
        "/music",
        Reply::rcml("<Response><Pause length=\"30\"/></Response>"),
    );
    // Its `url` runs on the caller taken, and connects it at once.
    b.app.always("/whisper", Reply::rcml("<Response/>"));
    b.app
        .always("/left", Reply::rcml("<Response><Hangup/></Response>"));
    b.app
        .always("/done", Reply::rcml("<Response><Hangup/></Response>"));
    let (whisper, music) = (b.app.url("/whisper"), b.app.url("/music"));
    let agent_rcml = |action: String, timeout: u32| {
        format!(
            "<Response><Dial action=\"{}\" timeout=\"{timeout}\"><Queue url=\"{}\">support</Queue></Dial></Response>",
            action, whisper
        )
    };
    let caller_rcml = format!(
        "<Response><Enqueue action=\"{}\" waitUrl=\"{}\">support</Enqueue></Response>",
        b.app.url("/left"),
        music
    );
    let agent = b
        .dial(Phone::Answers, &agent_rcml(b.app.url("/done"), 600))
        .await;
    b.status(&agent, "in-progress").await;
    let caller = b.dial(Phone::Answers, &caller_rcml).await;
    b.status(&caller, "in-progress").await;
    let whispered = until_request(&b.app, "/whisper").await;
    assert_eq!(whispered["CallSid"], caller.as_str());
    assert_eq!(whispered["DequeingCallSid"], agent.as_str());
    assert!(whispered["QueueSid"].starts_with("QU"), "{whispered:?}");
    // Bridged; the agent hangs up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.command(&agent, "hangup", 2, json!({}), true).await;
    let left = until_request(&b.app, "/left").await;
    assert_eq!(left["QueueResult"], "bridged", "{left:?}");
    assert_eq!(left["QueueSid"], whispered["QueueSid"]);
    let done = until_request(&b.app, "/done").await;
    assert_eq!(done["DialCallStatus"], "completed", "{done:?}");
    assert_eq!(done["DialCallSid"], caller.as_str());
    b.status(&caller, "completed").await;
    // The caller's time in the queue was reported, numbered among its events: the API lists
    // it as a member meanwhile.
    let joined = b
        .until("call.enqueued", |e| {
            e["type"] == "call.enqueued" && e["call_sid"] == caller.as_str()
        })
        .await;
    assert_eq!(joined["queue_sid"], whispered["QueueSid"].as_str());
    assert_eq!(joined["queue"], "support");
    let taken = b
        .until("call.dequeued", |e| {
            e["type"] == "call.dequeued" && e["call_sid"] == caller.as_str()
        })
        .await;
    assert_eq!(taken["queue_sid"], joined["queue_sid"]);
    assert!(
        taken["seq"].as_u64() > joined["seq"].as_u64(),
        "{taken} after {joined}"
    );

    // A caller waits (its music asked with where it stands), then leaves.
    b.app
        .always("/leaving", Reply::rcml("<Response><Leave/></Response>"));
    let leaving = format!(
        "<Response><Enqueue action=\"{}\" waitUrl=\"{}\">support</Enqueue></Response>",
        b.app.url("/gone"),
        b.app.url("/leaving")
    );
    b.app
        .always("/gone", Reply::rcml("<Response><Hangup/></Response>"));
    let quitter = b.dial(Phone::Answers, &leaving).await;
    let music = until_request(&b.app, "/leaving").await;
    assert_eq!(music["QueuePosition"], "1", "{music:?}");
    assert_eq!(music["CurrentQueueSize"], "1");
    let gone = until_request(&b.app, "/gone").await;
    assert_eq!(gone["QueueResult"], "leave");
    b.status(&quitter, "completed").await;
    let story = b.story(&quitter);
    let at = |kind: &str| story.iter().position(|e| e == kind);
    assert!(
        at("call.enqueued") < at("call.dequeued") && at("call.dequeued").is_some(),
        "{story:?}"
    );

    // Nobody waits: the agent's dial gives up at its timeout.
    b.app
        .always("/nobody", Reply::rcml("<Response><Hangup/></Response>"));
    let lonely = b
        .dial(Phone::Answers, &agent_rcml(b.app.url("/nobody"), 2))
        .await;
    let nobody = until_request(&b.app, "/nobody").await;
    assert_eq!(nobody["DialCallStatus"], "no-answer", "{nobody:?}");
    b.status(&lonely, "completed").await;
}

/// `queue.bridge`: the control plane took a waiting caller for an agent on another worker. A
/// bridge naming another queue is refused (`not-waiting`); one whose agent's worker does not
/// answer (gone) puts the caller back in its queue, which it says (`call.enqueued` again) and
/// where its wait music goes on, and an agent of this worker then takes it as any caller.
async fn a_caller_whose_agent_is_gone_waits_again(mut b: Bench) {
    b.app.always(
        "/music",
        Reply::rcml("<Response><Pause length=\"30\"/></Response>"),
    );
    b.app
        .always("/done", Reply::rcml("<Response><Hangup/></Response>"));
    let caller_rcml = format!(
        "<Response><Enqueue waitUrl=\"{}\">support</Enqueue></Response>",
        b.app.url("/music")
    );
    let caller = b.dial(Phone::Answers, &caller_rcml).await;
    let joined = b
        .until("call.enqueued", |e| {
            e["type"] == "call.enqueued" && e["call_sid"] == caller.as_str()
        })
        .await;
    // A worker that is not there: nothing answers on the discard port; no such simulated
    // worker.
    let address = if b.far_ends.is_some() {
        "127.0.0.1:9"
    } else {
        "gone"
    };
    let bridge = |queue_sid: &Value| {
        json!({"bridge": {
            "queue_sid": queue_sid, "agent_call_sid": CallSid::generate(),
            "address": address, "token": "0123456789abcdef0123456789abcdef",
        }})
    };
    b.command(
        &caller,
        "queue.bridge",
        2,
        bridge(&json!("QU0123456789abcdef0123456789abcdef")),
        true,
    )
    .await;
    let refused = b
        .until("the other queue's bridge refused", |e| {
            e["type"] == "command.rejected" && e["intent_sid"] == intent(2)
        })
        .await;
    assert_eq!(refused["reason"], "not-waiting");
    b.command(
        &caller,
        "queue.bridge",
        3,
        bridge(&joined["queue_sid"]),
        true,
    )
    .await;
    b.until("the bridge applied", |e| {
        e["type"] == "command.applied" && e["intent_sid"] == intent(3)
    })
    .await;
    let again = b
        .until("call.enqueued again", |e| {
            e["type"] == "call.enqueued"
                && e["call_sid"] == caller.as_str()
                && e["seq"].as_u64() > joined["seq"].as_u64()
        })
        .await;
    assert_eq!(again["queue_sid"], joined["queue_sid"]);
    let story = b.story(&caller);
    let at = |kind: &str| story.iter().rposition(|e| e == kind);
    assert!(
        at("call.dequeued") < at("call.enqueued"),
        "taken, then back: {story:?}"
    );
    // Back in the queue: an agent here takes it.
    let agent_rcml = format!(
        "<Response><Dial action=\"{}\"><Queue>support</Queue></Dial></Response>",
        b.app.url("/done")
    );
    let agent = b.dial(Phone::Answers, &agent_rcml).await;
    b.status(&agent, "in-progress").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.command(&agent, "hangup", 2, json!({}), true).await;
    let done = until_request(&b.app, "/done").await;
    assert_eq!(done["DialCallStatus"], "completed", "{done:?}");
    assert_eq!(done["DialCallSid"], caller.as_str());
    b.status(&caller, "completed").await;
}

/// `<Dial record>`: the dial is recorded from the answer (both parties, a channel each); the
/// caller hangs up, and the action still hears how the dial ended, with the recording.
async fn a_dial_is_recorded(mut b: Bench) {
    b.app
        .always("/after", Reply::rcml("<Response><Hangup/></Response>"));
    let rcml = format!(
        "<Response><Dial record=\"record-from-answer-dual\" action=\"{}\"><Number>{}</Number></Dial></Response>",
        b.app.url("/after"),
        b.number(Phone::Answers)
    );
    let call = b.dial(Phone::Answers, &rcml).await;
    let started = b
        .until("recording.started", |e| e["type"] == "recording.started")
        .await;
    assert_eq!(started["call_sid"], call.as_str());
    assert_eq!(started["recording"]["source"], "DialVerb");
    assert_eq!(started["recording"]["channels"], "dual");
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    b.command(&call, "hangup", 2, json!({}), true).await;
    let after = until_request(&b.app, "/after").await;
    assert_eq!(after["DialCallStatus"], "completed", "{after:?}");
    assert_eq!(after["DialBridged"], "true");
    assert_eq!(after["CallStatus"], "completed", "the caller hung up");
    assert_eq!(
        after["RecordingSid"],
        started["recording"]["recording_sid"].as_str().unwrap()
    );
    let seconds: u64 = after["RecordingDuration"].parse().unwrap();
    assert!((1..=3).contains(&seconds), "{after:?}");
}

/// The first request the application received at `path`, once it has.
async fn until_request(app: &Sink, path: &str) -> std::collections::BTreeMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(first) = app.received_at(path).into_iter().next() {
            return first.params;
        }
        assert!(Instant::now() < deadline, "no request to {path}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The contract, run against the simulated worker.
mod simulator {
    macro_rules! simulated {
        ($($case:ident),* $(,)?) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::simulated().await).await;
                }
            )*
        };
    }

    simulated!(
        a_call_is_placed_announced_and_run,
        the_far_end_is_busy_or_does_not_answer,
        commands_apply_in_order,
        a_redirect_runs_new_rcml_at_once,
        a_draining_worker_finishes_and_leaves,
        digits_reach_a_gather,
        a_recording_is_started_and_stopped,
        a_room_starts_and_ends,
        a_stream_carries_the_call,
        a_document_too_large_is_refused,
        a_dial_tells_its_action_how_it_ended,
        a_message_is_recorded,
        a_queued_caller_meets_an_agent,
        a_caller_whose_agent_is_gone_waits_again,
        a_dial_is_recorded,
    );
}

/// The same contract, run against the SIP/RTP worker with real far ends.
mod sip {
    macro_rules! on_sip {
        ($($case:ident),* $(,)?) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::sip().await).await;
                }
            )*
        };
    }

    on_sip!(
        a_call_is_placed_announced_and_run,
        the_far_end_is_busy_or_does_not_answer,
        commands_apply_in_order,
        a_redirect_runs_new_rcml_at_once,
        a_draining_worker_finishes_and_leaves,
        digits_reach_a_gather,
        a_recording_is_started_and_stopped,
        a_room_starts_and_ends,
        a_stream_carries_the_call,
        a_document_too_large_is_refused,
        a_dial_tells_its_action_how_it_ended,
        a_message_is_recorded,
        a_queued_caller_meets_an_agent,
        a_caller_whose_agent_is_gone_waits_again,
        a_dial_is_recorded,
    );
}
