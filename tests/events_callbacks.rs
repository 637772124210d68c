//! Media worker events and the callback function, on the memory twins and on moto: events move
//! calls and settle intents; StatusCallbacks are signed, numbered, retried and dead-lettered;
//! fallbacks turn into `execute` commands or failed calls; the SSRF guard refuses every private
//! address class.

use std::sync::Arc;
use std::time::Duration;

use lambda_http::http::StatusCode;
use serde_json::{Value, json};
use teleapi_adapters::http::{HostResolver, HttpWebhooks};
use teleapi_domain::call_log::{LogLevel, Notification, RequestEntry, RequestKind};
use teleapi_domain::conference::{
    ConferenceCallback, ConferenceCallbackEvent, ConferenceStatus, EndReason, ParticipantState,
};
use teleapi_domain::paging::PageRequest;
use teleapi_domain::recording::{
    RecordingCallback, RecordingCallbackEvent, RecordingChannels, RecordingSource, RecordingSpec,
    RecordingStatus, RecordingTrack, Trim,
};
use teleapi_domain::stream::{StreamCallback, StreamSpec, StreamStatus, StreamTrack, StreamUrl};
use teleapi_domain::wire::callback::{CallbackJob, signature};
use teleapi_domain::wire::conference::{ConferenceEvent, ConferenceEventKind};
use teleapi_domain::wire::event::{Event, EventKind};
use teleapi_domain::{
    AddressPolicy, CallSid, CallStatus, ConferenceSid, Direction, IntentStatus, Method,
    RecordingSid, StreamSid, Timestamp, WebhookUrl,
};
use teleapi_pipeline::call_events::{EventServices, Handled, consume, handle_event};
use teleapi_pipeline::callbacks::{CallbackServices, JobOutcome, run_job};
use teleapi_pipeline::consumer::poll_once;
use teleapi_ports::{Clock as _, DeliveryError, OutgoingMessage, WebhookClient, WebhookRequest};
use teleapi_tests::sink::{Reply, Sink, independent_signature};
use teleapi_tests::{Backend, World, body_json};

struct Pipeline {
    world: World,
    events: EventServices,
    callbacks: CallbackServices,
    sink: Sink,
}

const LOCAL: AddressPolicy = AddressPolicy {
    allow_loopback: true,
};

/// A page that holds a call's whole log in these tests.
const A_CALLS_LOG: PageRequest = PageRequest {
    size: 100,
    after: None,
    backward: false,
};

impl Pipeline {
    async fn new(backend: Backend) -> Self {
        let mut world = World::new(backend).await;
        world.services.config.address_policy = LOCAL;
        let events = world.backend.event_services(world.clock.clone());
        let callbacks = world
            .backend
            .callback_services(world.clock.clone(), Arc::new(HttpWebhooks::new(LOCAL)));
        Self {
            world,
            events,
            callbacks,
            sink: Sink::start().await,
        }
    }

    fn event(&self, call_sid: &CallSid, kind: EventKind) -> String {
        Event {
            version: 1,
            call_sid: call_sid.clone(),
            timestamp: self.world.clock.now().millis(),
            kind,
        }
        .to_json()
    }

    async fn apply(&self, call_sid: &CallSid, kind: EventKind) -> Handled {
        handle_event(&self.events, &self.event(call_sid, kind))
            .await
            .unwrap()
    }

    async fn status(
        &self,
        call_sid: &CallSid,
        seq: u64,
        status: CallStatus,
        duration: Option<u64>,
    ) -> Handled {
        let kind = EventKind::CallStatus {
            seq,
            status,
            start_time: None,
            end_time: None,
            duration,
        };
        self.apply(call_sid, kind).await
    }

    /// The call's request log, newest first.
    async fn requests(&self, call: &CallSid) -> Vec<RequestEntry> {
        let log = &self.world.backend.call_log;
        log.requests(call, &A_CALLS_LOG).await.unwrap().items
    }

    /// The call's notifications, newest first.
    async fn notifications(&self, call: &CallSid) -> Vec<Notification> {
        let account = &self.world.account.sid;
        let log = &self.world.backend.call_log;
        log.notifications(account, Some(call), &Default::default(), &A_CALLS_LOG)
            .await
            .unwrap()
            .items
    }

    /// Applies what the control plane reported on the events queue in a worker's place: each
    /// event's group (its call or room) and type, in order.
    async fn apply_reported(&self) -> Vec<(String, String)> {
        let mut reported = Vec::new();
        for message in Backend::drain_messages(self.world.backend.events.as_ref()).await {
            let handled = handle_event(&self.events, &message.body).await.unwrap();
            assert!(matches!(handled, Handled::Applied { .. }), "{handled:?}");
            let event: Value = serde_json::from_str(&message.body).unwrap();
            let group = message.group.unwrap_or_default();
            reported.push((group, event["type"].as_str().unwrap().to_owned()));
        }
        reported
    }

    /// `recording` failed in its worker's place (16105), and `stream`, the call's one stream,
    /// stopped.
    async fn media_failed(&self, call: &CallSid, recording: &RecordingSid, stream: &StreamSid) {
        let backend = &self.world.backend;
        let failed = backend
            .recordings
            .recording(recording)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (failed.status, failed.error_code),
            (RecordingStatus::Failed, Some(16_105))
        );
        let call = backend.calls.call(call).await.unwrap().unwrap();
        let streams: Vec<_> = call
            .streams
            .iter()
            .map(|s| (&s.spec.stream_sid, s.status))
            .collect();
        assert_eq!(streams, [(stream, StreamStatus::Stopped)]);
    }

    /// Runs every job on the callbacks queue, retries included, until it is empty.
    async fn deliver_all(&self) -> Vec<JobOutcome> {
        self.deliver_each(1).await
    }

    /// `deliver_all`, running each job `times` times (a job delivered more than once); the
    /// outcomes of every run.
    async fn deliver_each(&self, times: usize) -> Vec<JobOutcome> {
        let mut outcomes = Vec::new();
        for _ in 0..50 {
            let batch = self
                .callbacks
                .callbacks
                .receive(None, 10, Duration::from_millis(300))
                .await
                .unwrap();
            if batch.is_empty() {
                return outcomes;
            }
            for message in batch {
                for _ in 0..times {
                    outcomes.push(run_job(&self.callbacks, &message.body).await.unwrap());
                }
                self.callbacks
                    .callbacks
                    .delete(None, &message.receipt)
                    .await
                    .unwrap();
            }
        }
        panic!("the callbacks queue never emptied");
    }

    /// A call created through the API, reporting to the sink.
    async fn outgoing_call(&self, extra: &str) -> CallSid {
        let body = format!(
            "From=%2B15551230001&To=client%3Abob&Url=https%3A%2F%2Fapp.example.com%2Fbob{extra}"
        );
        let response = self.world.post("/Calls.json", &body).await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "{}",
            teleapi_tests::body_text(&response)
        );
        body_json(&response)["sid"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn encoded(&self, path: &str) -> String {
        percent_encoding::utf8_percent_encode(
            &self.sink.url(path),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string()
    }
}

/// A `worker.heartbeat` of worker `id`, sent at `at` (ms), in `state`.
fn heartbeat(id: &teleapi_domain::sid::WorkerId, at: i64, state: &str) -> String {
    format!(
        r#"{{"version":1,"type":"worker.heartbeat","worker_id":"{id}","timestamp":{at},"command_queue_url":"https://sqs.example/teleapi-worker-7.fifo","capacity":500,"calls":1,"state":"{state}"}}"#
    )
}

fn initiated(seq: u64, world: &World, queue: &str) -> EventKind {
    initiated_by(seq, world, queue, None)
}

fn initiated_by(
    seq: u64,
    world: &World,
    queue: &str,
    worker_id: Option<teleapi_domain::sid::WorkerId>,
) -> EventKind {
    EventKind::CallInitiated {
        seq,
        account_sid: world.account.sid.clone(),
        direction: Direction::OutboundApi,
        from: "+15551230001".into(),
        to: "client:bob".into(),
        parent_call_sid: None,
        command_queue_url: queue.into(),
        worker_id,
        url: None,
        method: None,
        fallback_url: None,
        fallback_method: None,
        status_callback: None,
        status_callback_method: None,
    }
}

async fn status_callbacks_are_signed_and_numbered(p: Pipeline) {
    let callback = p.encoded("/status");
    let sid = p
        .outgoing_call(&format!(
            "&StatusCallback={callback}&StatusCallbackEvent=initiated+ringing+answered+completed"
        ))
        .await;
    p.world.backend.drain_commands().await;
    assert!(matches!(
        p.apply(&sid, initiated(1, &p.world, "worker-1")).await,
        Handled::Applied { callback: true, .. }
    ));
    p.status(&sid, 2, CallStatus::Ringing, None).await;
    p.world.clock.advance(Duration::from_secs(5));
    p.status(&sid, 3, CallStatus::InProgress, None).await;
    p.world.clock.advance(Duration::from_secs(42));
    p.status(&sid, 4, CallStatus::Completed, Some(42)).await;
    let outcomes = p.deliver_all().await;
    assert_eq!(outcomes, vec![JobOutcome::Delivered; 4]);

    let mut received = p.sink.received_at("/status");
    received.sort_by_key(|r| r.params["SequenceNumber"].parse::<u64>().unwrap());
    let statuses: Vec<&str> = received
        .iter()
        .map(|r| r.params["CallStatus"].as_str())
        .collect();
    assert_eq!(
        statuses,
        ["initiated", "ringing", "in-progress", "completed"]
    );
    let token = p.world.account.auth_token.expose();
    for (n, request) in received.iter().enumerate() {
        let params = &request.params;
        assert_eq!(request.method, "POST");
        assert_eq!(params["SequenceNumber"], n.to_string());
        assert_eq!(params["CallSid"], sid.as_str());
        assert_eq!(params["AccountSid"], p.world.account.sid.as_str());
        assert_eq!(params["From"], "+15551230001");
        assert_eq!(params["To"], "client:bob");
        assert_eq!(params["Direction"], "outbound-api");
        assert_eq!(params["ApiVersion"], "2012-04-24");
        assert_eq!(params["CallbackSource"], "call-progress-events");
        assert!(
            params["Timestamp"].ends_with("+0000"),
            "{}",
            params["Timestamp"]
        );
        assert_eq!(params.contains_key("CallDuration"), n == 3);
        let url = p.sink.url("/status");
        let header = request.header("x-teleapi-signature").unwrap();
        assert_eq!(header, independent_signature(token, &url, params));
        assert_eq!(header, signature(token, &url, Method::Post, params));
        assert_eq!(
            request.header("i-teleapi-idempotency-token").unwrap(),
            format!("{sid}-e{}", n + 1)
        );
    }
    assert_eq!(received[3].params["CallDuration"], "42");

    let call = body_json(&p.world.get(&format!("/Calls/{sid}.json")).await);
    assert_eq!(call["status"], "completed");
    assert_eq!(call["duration"], "42");
    let stored = p.world.backend.calls.call(&sid).await.unwrap().unwrap();
    assert_eq!(stored.command_queue.as_deref(), Some("worker-1"));
}

async fn get_callbacks_carry_their_parameters_in_the_query(p: Pipeline) {
    let callback = p.encoded("/status?tenant=7");
    let sid = p
        .outgoing_call(&format!(
            "&StatusCallback={callback}&StatusCallbackMethod=GET"
        ))
        .await;
    p.status(&sid, 1, CallStatus::Busy, None).await;
    assert_eq!(p.deliver_all().await, [JobOutcome::Delivered]);
    let request = &p.sink.received_at("/status")[0];
    assert_eq!(request.method, "GET");
    assert!(request.body.is_empty());
    assert_eq!(request.params["tenant"], "7");
    assert_eq!(request.params["CallStatus"], "busy");
    let full = format!(
        "{}?{}",
        p.sink.url("/status"),
        request.query.as_deref().unwrap()
    );
    let token = p.world.account.auth_token.expose();
    assert_eq!(
        request.header("x-teleapi-signature").unwrap(),
        independent_signature(token, &full, &Default::default())
    );
}

async fn a_failing_callback_is_retried_then_dead_lettered(p: Pipeline) {
    p.sink
        .script("/flaky", vec![Reply::status(500), Reply::status(503)]);
    let sid = p
        .outgoing_call(&format!("&StatusCallback={}", p.encoded("/flaky")))
        .await;
    p.status(&sid, 1, CallStatus::NoAnswer, None).await;
    let outcomes = p.deliver_all().await;
    assert!(
        matches!(outcomes[0], JobOutcome::Retrying { attempts: 1, .. }),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[1], JobOutcome::Retrying { attempts: 2, .. }),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[2], JobOutcome::Delivered);
    let tokens: Vec<String> = p
        .sink
        .received_at("/flaky")
        .iter()
        .map(|r| r.header("i-teleapi-idempotency-token").unwrap().to_owned())
        .collect();
    assert_eq!(tokens.len(), 3);
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "one token across retries: {tokens:?}"
    );
    // Each try is an entry of the call's log, with its attempt and its answer (this clock
    // stands still: by attempt).
    let mut tries: Vec<(u32, Option<u16>, bool)> = p
        .requests(&sid)
        .await
        .iter()
        .map(|e| (e.request.attempt, e.response.status_code, e.request.signed))
        .collect();
    tries.sort();
    assert_eq!(
        tries,
        [
            (1, Some(500), true),
            (2, Some(503), true),
            (3, Some(200), true)
        ]
    );
    assert!(
        p.notifications(&sid).await.is_empty(),
        "delivered in the end"
    );

    // Out of tries: the job goes to the dead-letter queue with its history. The fragment
    // (#rc) is never sent.
    p.sink.script("/down", vec![Reply::status(500); 5]);
    let sid = p
        .outgoing_call(&format!("&StatusCallback={}", p.encoded("/down#rc=2")))
        .await;
    p.status(&sid, 1, CallStatus::Failed, None).await;
    let outcomes = p.deliver_all().await;
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert!(matches!(outcomes[2], JobOutcome::DeadLettered(_)));
    assert_eq!(p.sink.received_at("/down").len(), 3);
    assert!(
        p.sink
            .received_at("/down")
            .iter()
            .all(|r| r.query.is_none())
    );
    let dead = Backend::drain(p.callbacks.dead_letters.as_ref()).await;
    assert_eq!(dead.len(), 1);
    let job = CallbackJob::from_json(&dead[0]).unwrap();
    assert_eq!(job.attempts, 3);
    let history: Vec<&str> = job.history.iter().map(|h| h.outcome.as_str()).collect();
    assert_eq!(history, ["500", "500", "500"]);
    // Given up: a warning of the call (15003), naming the request.
    let given_up = p.notifications(&sid).await;
    assert_eq!(given_up.len(), 1, "{given_up:#?}");
    assert_eq!(
        (given_up[0].level, given_up[0].error_code),
        (LogLevel::Warning, 15003)
    );
    assert_eq!(
        given_up[0].request_url.as_deref(),
        Some(p.sink.url("/down").as_str())
    );
    assert!(given_up[0].request_variables.contains("CallStatus=failed"));

    // A 4xx is not retried unless the URL asks for it (#rp=4xx).
    let sid = p
        .outgoing_call(&format!("&StatusCallback={}", p.encoded("/gone")))
        .await;
    p.sink.script("/gone", vec![Reply::status(404); 3]);
    p.status(&sid, 1, CallStatus::Failed, None).await;
    assert!(matches!(
        p.deliver_all().await[..],
        [JobOutcome::DeadLettered(_)]
    ));
}

async fn timeouts_and_unreachable_applications(p: Pipeline) {
    p.sink
        .script("/slow", vec![Reply::slow(Duration::from_secs(2)); 2]);
    let sid = p
        .outgoing_call(&format!(
            "&StatusCallback={}",
            p.encoded("/slow#rt=200&tt=300&rc=1")
        ))
        .await;
    p.status(&sid, 1, CallStatus::Failed, None).await;
    let outcomes = p.deliver_all().await;
    assert!(
        matches!(
            outcomes[..],
            [JobOutcome::Retrying { .. }, JobOutcome::DeadLettered(_)]
        ),
        "{outcomes:?}"
    );
    let job = CallbackJob::from_json(&Backend::drain(p.callbacks.dead_letters.as_ref()).await[0])
        .unwrap();
    assert!(
        job.history.iter().all(|h| h.outcome == "read timeout"),
        "{:?}",
        job.history
    );

    // Nobody listening: a connection error, retried as the policy says, then given up.
    let closed = "http%3A%2F%2F127.0.0.1%3A9%2Fcb%23rc%3D1";
    let sid = p.outgoing_call(&format!("&StatusCallback={closed}")).await;
    p.status(&sid, 1, CallStatus::Failed, None).await;
    let outcomes = p.deliver_all().await;
    assert!(
        matches!(
            outcomes[..],
            [JobOutcome::Retrying { .. }, JobOutcome::DeadLettered(_)]
        ),
        "{outcomes:?}"
    );
}

async fn a_fallback_answer_becomes_an_execute_command(p: Pipeline) {
    let call = p.world.call(CallStatus::InProgress).await;
    let modified = p
        .world
        .modify(&call, &format!("FallbackUrl={}", p.encoded("/fallback")))
        .await;
    assert_eq!(modified.status(), StatusCode::OK);
    let rcml = "<Response><Say>Sorry, we are having trouble.</Say></Response>";
    p.sink.script("/fallback", vec![Reply::rcml(rcml)]);
    let failed = EventKind::RcmlFailed {
        seq: 1,
        url: "https://app.example.com/rcml".into(),
        error_code: 11200,
        detail: "HTTP 500 from the application".into(),
    };
    assert_eq!(
        p.apply(&call.sid, failed.clone()).await,
        Handled::Applied {
            callback: true,
            intent: false
        }
    );
    assert_eq!(p.deliver_all().await, [JobOutcome::Delivered]);
    let request = &p.sink.received_at("/fallback")[0];
    assert_eq!(request.params["ErrorCode"], "11200");
    assert_eq!(request.params["ErrorUrl"], "https://app.example.com/rcml");
    assert_eq!(request.params["CallStatus"], "in-progress");
    assert_eq!(request.params["CallSid"], call.sid.as_str());

    let commands = p.world.backend.drain_commands().await;
    let execute = commands
        .iter()
        .find(|c| c["type"] == "execute")
        .expect("an execute command");
    assert_eq!(execute["parameters"]["rcml"], rcml);
    assert_eq!(execute["call_sid"], call.sid.as_str());
    let stored = p.world.stored(&call).await;
    assert_eq!(execute["seq"], stored.seq);
    let intent = p
        .world
        .backend
        .calls
        .intent(&teleapi_domain::Subject::Call(call.sid.clone()), stored.seq)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(intent.action.as_str(), "execute");
    assert!(intent.parameters["Source"].contains("/fallback"));

    // The same event again changes nothing and asks for nothing.
    assert!(matches!(
        p.apply(&call.sid, failed).await,
        Handled::Ignored(_)
    ));
    assert!(p.deliver_all().await.is_empty());
}

async fn a_failed_fallback_or_none_fails_the_call(p: Pipeline) {
    // No FallbackUrl: the call is hung up as failed, with the error recorded.
    let bare = p.world.call(CallStatus::InProgress).await;
    let failed = |seq| EventKind::RcmlFailed {
        seq,
        url: "https://app.example.com/rcml".into(),
        error_code: 12100,
        detail: "document parse failure".into(),
    };
    assert_eq!(
        p.apply(&bare.sid, failed(1)).await,
        Handled::Applied {
            callback: false,
            intent: true
        }
    );
    let stored = p.world.stored(&bare).await;
    assert_eq!(stored.status, CallStatus::Failed);
    let intent = p
        .world
        .backend
        .calls
        .intent(&teleapi_domain::Subject::Call(bare.sid.clone()), stored.seq)
        .await
        .unwrap()
        .unwrap();
    assert!(
        intent.reason.as_deref().unwrap().contains("12100"),
        "{:?}",
        intent.reason
    );
    let commands = p.world.backend.drain_commands().await;
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0]["type"], "hangup");
    assert_eq!(commands[0]["parameters"]["status"], "failed");
    let notices = p.notifications(&bare.sid).await;
    assert_eq!(notices.len(), 1, "{notices:#?}");
    assert_eq!(
        (notices[0].level, notices[0].error_code),
        (LogLevel::Error, 12100)
    );
    // A redelivered event is ignored, and notes nothing more.
    p.apply(&bare.sid, failed(1)).await;
    assert_eq!(p.notifications(&bare.sid).await, notices);

    // A FallbackUrl that fails after its tries: the call fails too.
    for (path, replies) in [
        ("/broken", vec![Reply::status(500)]),
        ("/not-rcml", vec![Reply::rcml("<html>oops</html>")]),
    ] {
        let call = p.world.call(CallStatus::InProgress).await;
        p.world
            .modify(
                &call,
                &format!("FallbackUrl={}", p.encoded(&format!("{path}#rc=0"))),
            )
            .await;
        p.world.backend.drain_commands().await;
        p.sink.script(path, replies);
        p.apply(&call.sid, failed(1)).await;
        p.deliver_all().await;
        let stored = p.world.stored(&call).await;
        assert_eq!(stored.status, CallStatus::Failed, "{path}");
        let intent = p
            .world
            .backend
            .calls
            .intent(&teleapi_domain::Subject::Call(call.sid.clone()), stored.seq)
            .await
            .unwrap()
            .unwrap();
        assert!(
            intent.reason.as_deref().unwrap().contains("FallbackUrl"),
            "{path}: {:?}",
            intent.reason
        );
        let commands = p.world.backend.drain_commands().await;
        assert_eq!(
            commands.iter().filter(|c| c["type"] == "hangup").count(),
            1,
            "{path}"
        );
        // The RCML's failure, which the fallback was asked to rescue (a warning), and the
        // fallback's, which ended the call (an error); this clock stands still, so in no
        // particular order.
        let mut notices: Vec<(LogLevel, u32)> = p
            .notifications(&call.sid)
            .await
            .iter()
            .map(|n| (n.level, n.error_code))
            .collect();
        notices.sort_by_key(|(level, _)| level.code());
        let fallback_code = if path == "/broken" { 11200 } else { 12100 };
        assert_eq!(
            notices,
            [(LogLevel::Error, fallback_code), (LogLevel::Warning, 12100)],
            "{path}"
        );
        let kinds: Vec<RequestKind> = p
            .requests(&call.sid)
            .await
            .iter()
            .map(|e| e.request.kind)
            .collect();
        assert_eq!(kinds, [RequestKind::Fallback], "{path}");
    }
    Backend::drain(p.callbacks.dead_letters.as_ref()).await;
}

async fn duplicate_stale_and_illegal_events_change_nothing(p: Pipeline) {
    let sid = p
        .outgoing_call(&format!("&StatusCallback={}", p.encoded("/status")))
        .await;
    assert!(matches!(
        p.status(&sid, 2, CallStatus::InProgress, None).await,
        Handled::Applied { .. }
    ));
    assert!(
        matches!(
            p.status(&sid, 1, CallStatus::Ringing, None).await,
            Handled::Ignored(_)
        ),
        "older"
    );
    assert!(
        matches!(
            p.status(&sid, 2, CallStatus::InProgress, None).await,
            Handled::Ignored(_)
        ),
        "again"
    );
    assert!(matches!(
        p.status(&sid, 3, CallStatus::Completed, Some(10)).await,
        Handled::Applied { callback: true, .. }
    ));
    assert!(
        matches!(
            p.status(&sid, 3, CallStatus::Completed, Some(10)).await,
            Handled::Ignored(_)
        ),
        "duplicate"
    );
    assert!(
        matches!(
            p.status(&sid, 4, CallStatus::InProgress, None).await,
            Handled::Ignored(_)
        ),
        "illegal"
    );
    assert!(
        matches!(
            p.status(&sid, 5, CallStatus::Busy, None).await,
            Handled::Ignored(_)
        ),
        "already ended"
    );
    assert_eq!(
        p.deliver_all().await,
        [JobOutcome::Delivered],
        "one completed callback"
    );
    let call = p.world.backend.calls.call(&sid).await.unwrap().unwrap();
    assert_eq!(
        (call.status, call.duration, call.event_seq),
        (CallStatus::Completed, Some(10), 3)
    );

    // An event for a call nobody knows, other than call.initiated, is ignored.
    assert!(matches!(
        p.status(&CallSid::generate(), 1, CallStatus::Ringing, None)
            .await,
        Handled::Ignored(_)
    ));
}

async fn a_hangup_request_is_confirmed_by_the_worker(p: Pipeline) {
    let call = p.world.call(CallStatus::InProgress).await;
    p.world
        .modify(&call, &format!("StatusCallback={}", p.encoded("/status")))
        .await;
    p.world.clock.advance(Duration::from_secs(30));
    let hung_up = p.world.modify(&call, "Status=completed").await;
    assert_eq!(body_json(&hung_up)["status"], "completed");
    // The worker reports the end with its own figures: they win, and the callback goes out.
    assert!(matches!(
        p.status(&call.sid, 1, CallStatus::Completed, Some(31))
            .await,
        Handled::Applied { callback: true, .. }
    ));
    assert_eq!(p.deliver_all().await, [JobOutcome::Delivered]);
    assert_eq!(
        p.sink.received_at("/status")[0].params["CallDuration"],
        "31"
    );
}

async fn command_events_settle_intents(p: Pipeline) {
    let call = p.world.call(CallStatus::InProgress).await;
    let first = body_json(
        &p.world
            .modify(&call, "Url=https%3A%2F%2Fapp.example.com%2Fa")
            .await,
    );
    let second = body_json(&p.world.modify(&call, "Mute=true").await);
    let intent_sid = |v: &Value| v["intent_sid"].as_str().unwrap().parse().unwrap();
    let applied = EventKind::CommandApplied {
        intent_sid: intent_sid(&first),
        seq: 1,
    };
    assert_eq!(
        p.apply(&call.sid, applied.clone()).await,
        Handled::Settled(true)
    );
    assert_eq!(
        p.apply(&call.sid, applied).await,
        Handled::Settled(false),
        "duplicate"
    );
    let wrong = EventKind::CommandApplied {
        intent_sid: intent_sid(&first),
        seq: 2,
    };
    assert_eq!(
        p.apply(&call.sid, wrong).await,
        Handled::Settled(false),
        "not that intent"
    );
    let rejected = EventKind::CommandRejected {
        intent_sid: intent_sid(&second),
        seq: 2,
        reason: "superseded".into(),
    };
    assert_eq!(p.apply(&call.sid, rejected).await, Handled::Settled(true));
    let list = body_json(
        &p.world
            .get(&format!("/Calls/{}/Modifications.json", call.sid))
            .await,
    );
    assert_eq!(list["modifications"][0]["status"], "applied");
    assert_eq!(list["modifications"][1]["status"], "rejected");
    assert_eq!(list["modifications"][1]["outcome"], "superseded");
    let stored = p
        .world
        .backend
        .calls
        .intent(&teleapi_domain::Subject::Call(call.sid.clone()), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, IntentStatus::Applied);
}

async fn an_unknown_inbound_call_is_created_on_initiated(p: Pipeline) {
    let sid = CallSid::generate();
    let worker = p.world.backend.worker_queue("worker-9").await;
    let kind = EventKind::CallInitiated {
        seq: 1,
        account_sid: p.world.account.sid.clone(),
        direction: Direction::Inbound,
        from: "+15557654321".into(),
        to: "+15551230002".into(),
        parent_call_sid: None,
        command_queue_url: worker.clone(),
        worker_id: None,
        url: Some(teleapi_domain::WebhookUrl::parse("https://app.example.com/bob", LOCAL).unwrap()),
        method: Some(Method::Get),
        fallback_url: None,
        fallback_method: None,
        status_callback: None,
        status_callback_method: None,
    };
    assert!(matches!(
        p.apply(&sid, kind.clone()).await,
        Handled::Applied { .. }
    ));
    assert!(
        matches!(p.apply(&sid, kind).await, Handled::Ignored(_)),
        "duplicate"
    );
    let call = body_json(&p.world.get(&format!("/Calls/{sid}.json")).await);
    assert_eq!(call["direction"], "inbound");
    assert_eq!(call["from"], "+15557654321");
    assert_eq!(call["status"], "queued");
    p.status(&sid, 2, CallStatus::Ringing, None).await;
    p.status(&sid, 3, CallStatus::InProgress, None).await;
    // Modifications of the call now go to its worker's queue.
    let call = p.world.backend.calls.call(&sid).await.unwrap().unwrap();
    assert_eq!(call.command_queue.as_deref(), Some(worker.as_str()));
    assert_eq!(
        p.world.modify(&call, "Mute=true").await.status(),
        StatusCode::OK
    );
    assert!(
        p.world.backend.drain_commands().await.is_empty(),
        "not on the default queue"
    );
}

/// Heartbeats announce a worker and renew its lease, in the worker's order; once it has left,
/// nothing of it comes back. A malformed worker event is dead-lettered like any poison event.
async fn worker_heartbeats_renew_a_lease_until_the_worker_leaves(p: Pipeline) {
    use teleapi_domain::sid::WorkerId;
    use teleapi_domain::worker::{LEASE, WorkerStatus};
    let id = WorkerId::try_from(format!("w-{}", &CallSid::generate().as_str()[2..14])).unwrap();
    let heartbeat = |at: i64, state: &str| heartbeat(&id, at, state);
    let apply = |body: String| {
        let events = p.events.clone();
        async move { handle_event(&events, &body).await.unwrap() }
    };
    assert!(matches!(
        apply(heartbeat(1_000, "active")).await,
        Handled::Applied { .. }
    ));
    let first = p.world.backend.workers.worker(&id).await.unwrap().unwrap();
    assert_eq!(first.status, WorkerStatus::Active);
    assert_eq!(first.lease_expires_at, p.world.clock.now().plus(LEASE));

    p.world.clock.advance(Duration::from_secs(10));
    assert!(matches!(
        apply(heartbeat(11_000, "draining")).await,
        Handled::Applied { .. }
    ));
    assert!(matches!(
        apply(heartbeat(11_000, "active")).await,
        Handled::Ignored(_)
    ));
    assert!(matches!(
        apply(heartbeat(5_000, "active")).await,
        Handled::Ignored(_)
    ));
    let renewed = p.world.backend.workers.worker(&id).await.unwrap().unwrap();
    assert_eq!(renewed.status, WorkerStatus::Draining);
    assert_eq!(renewed.lease_expires_at, p.world.clock.now().plus(LEASE));

    let left =
        format!(r#"{{"version":1,"type":"worker.left","worker_id":"{id}","timestamp":12000}}"#);
    assert!(matches!(apply(left).await, Handled::Applied { .. }));
    assert!(matches!(
        apply(heartbeat(13_000, "active")).await,
        Handled::Ignored(_)
    ));
    let gone = p.world.backend.workers.worker(&id).await.unwrap().unwrap();
    assert_eq!(gone.status, WorkerStatus::Left);

    let bad = r#"{"version":1,"type":"worker.heartbeat","worker_id":"not valid"}"#.to_owned();
    let message = teleapi_pipeline::consumer::BatchMessage {
        id: "m1".into(),
        group: Some("not valid".into()),
        body: bad.clone(),
    };
    consume(&p.events, &message).await.unwrap();
    let dead = Backend::drain(p.world.backend.event_dead_letters.as_ref()).await;
    assert_eq!(dead, [bad]);
}

/// A worker that stops heartbeating: once its lease has run out, the reconciler ends its calls
/// (answered: completed, with their duration; unanswered: failed), sends their completed
/// StatusCallbacks, fails their unsettled intents naming the worker, and marks it expired. What
/// the worker says afterwards changes nothing.
async fn a_dead_workers_calls_end_with_their_callbacks(p: Pipeline) {
    use teleapi_domain::sid::WorkerId;
    use teleapi_domain::worker::{LEASE, WorkerStatus};
    use teleapi_pipeline::reconcile::sweep_leases;
    let id = WorkerId::try_from(format!("w-{}", &CallSid::generate().as_str()[2..14])).unwrap();
    let heartbeat = |at: i64| heartbeat(&id, at, "active");
    handle_event(&p.events, &heartbeat(1_000)).await.unwrap();
    let callback = p.encoded("/status");
    let recorded = p.encoded("/recording");
    let answered = p
        .outgoing_call(&format!(
            "&StatusCallback={callback}&Record=true&RecordingStatusCallback={recorded}"
        ))
        .await;
    let ringing = p
        .outgoing_call(&format!("&StatusCallback={callback}"))
        .await;
    // The workers' own queue: here the backend's commands queue, so that sends succeed.
    let queue = p
        .world
        .backend
        .aws
        .as_ref()
        .map_or("commands.fifo", |a| &a.commands_url);
    for sid in [&answered, &ringing] {
        let owned = initiated_by(1, &p.world, queue, Some(id.clone()));
        p.apply(sid, owned).await;
        p.status(sid, 2, CallStatus::Ringing, None).await;
    }
    p.status(&answered, 3, CallStatus::InProgress, None).await;
    // The answered call records (Record=true) and streams to a bot.
    let loopback = AddressPolicy {
        allow_loopback: true,
    };
    let recording_sid = p
        .world
        .backend
        .calls
        .call(&answered)
        .await
        .unwrap()
        .unwrap()
        .recording
        .unwrap();
    let recording = RecordingSpec {
        recording_sid: recording_sid.clone(),
        channels: RecordingChannels::Mono,
        track: RecordingTrack::Both,
        trim: Trim::DoNotTrim,
        source: RecordingSource::OutboundApi,
        status_callback: Some(RecordingCallback {
            url: WebhookUrl::parse(&p.sink.url("/recording"), loopback).unwrap(),
            method: Method::Post,
            events: vec![RecordingCallbackEvent::Completed],
        }),
    };
    let account_sid = p.world.account.sid.clone();
    let started = EventKind::RecordingStarted {
        seq: 1,
        account_sid,
        recording,
        start_time: p.world.clock.now().millis(),
    };
    p.apply(&answered, started).await;
    let stream = StreamSpec {
        stream_sid: StreamSid::generate(),
        name: Some("bot".into()),
        url: StreamUrl::parse("wss://bot.example.com", AddressPolicy::default()).unwrap(),
        track: StreamTrack::Inbound,
        parameters: Default::default(),
        status_callback: Some(StreamCallback {
            url: WebhookUrl::parse(&p.sink.url("/stream"), loopback).unwrap(),
            method: Method::Post,
        }),
    };
    let stream_sid = stream.stream_sid.clone();
    p.apply(&answered, EventKind::StreamStarted { seq: 1, stream })
        .await;
    // ... and is in a room of the same worker, which tells the application who leaves and when
    // it ends.
    let room = ConferenceSid::generate();
    let joined = ParticipantState::new(answered.clone());
    let status_callback = ConferenceCallback {
        url: WebhookUrl::parse(&p.sink.url("/conference"), loopback).unwrap(),
        method: Method::Post,
        events: vec![ConferenceCallbackEvent::Leave, ConferenceCallbackEvent::End],
    };
    for kind in [
        ConferenceEventKind::Created {
            seq: 1,
            account_sid: p.world.account.sid.clone(),
            friendly_name: "support".into(),
            command_queue_url: queue.to_owned(),
            worker_id: Some(id.clone()),
            status_callback: Some(status_callback),
        },
        ConferenceEventKind::ParticipantJoined {
            seq: 2,
            participant: joined,
        },
        ConferenceEventKind::Started { seq: 3 },
    ] {
        let event = ConferenceEvent {
            version: 1,
            conference_sid: room.clone(),
            timestamp: 1_000,
            kind,
        };
        let handled = handle_event(&p.events, &event.to_json()).await.unwrap();
        assert!(matches!(handled, Handled::Applied { .. }), "{handled:?}");
    }
    // Bob's leg, which the answered call dialled, held by another (live) worker.
    let other = WorkerId::try_from(format!("{id}-other")).unwrap();
    let bob = CallSid::generate();
    let leg = match initiated_by(1, &p.world, queue, Some(other)) {
        EventKind::CallInitiated {
            seq,
            account_sid,
            from,
            to,
            command_queue_url,
            worker_id,
            ..
        } => EventKind::CallInitiated {
            seq,
            account_sid,
            direction: Direction::OutboundDial,
            from,
            to,
            parent_call_sid: Some(answered.clone()),
            command_queue_url,
            worker_id,
            url: None,
            method: None,
            fallback_url: None,
            fallback_method: None,
            status_callback: None,
            status_callback_method: None,
        },
        _ => unreachable!(),
    };
    p.apply(&bob, leg).await;
    p.status(&bob, 2, CallStatus::InProgress, None).await;
    p.world.backend.drain_commands().await;

    let services = p.world.backend.reconciler_services(p.world.clock.clone());
    // Alive: nothing happens.
    p.world.clock.advance(Duration::from_secs(20));
    assert_eq!(sweep_leases(&services).await.unwrap(), Default::default());
    // Its last heartbeat was 30 s ago and more: its calls end.
    p.world.clock.advance(LEASE - Duration::from_secs(19));
    // A modification after the lease ran out, before the sweep: accepted, and failed by the
    // sweep with the worker's name (docs/decisions.md, "Media workers").
    let stored = p
        .world
        .backend
        .calls
        .call(&answered)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.world.modify(&stored, "Mute=true").await.status(), 200);
    p.world.backend.drain_commands().await;
    let swept = sweep_leases(&services).await.unwrap();
    // Each call's dial (never reported here) and the mute; Bob's leg is hung up through its
    // own worker.
    assert_eq!(
        (
            swept.workers,
            swept.calls,
            swept.intents,
            swept.legs,
            swept.rooms
        ),
        (1, 2, 3, 1, 1)
    );
    let commands = p.world.backend.drain_commands().await;
    assert_eq!(commands.len(), 1);
    assert_eq!(
        (&commands[0]["type"], &commands[0]["call_sid"]),
        (&json!("hangup"), &json!(bob.as_str()))
    );
    let hangup = p
        .world
        .backend
        .calls
        .intent(&teleapi_domain::Subject::Call(bob.clone()), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hangup.status, IntentStatus::Pending);
    assert!(hangup.reason.unwrap().contains(id.as_str()));
    assert_eq!(
        sweep_leases(&services).await.unwrap(),
        Default::default(),
        "once"
    );

    let worker = p.world.backend.workers.worker(&id).await.unwrap().unwrap();
    assert_eq!(worker.status, WorkerStatus::Expired);
    let ended = p
        .world
        .backend
        .calls
        .call(&answered)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.status, CallStatus::Completed);
    assert!(ended.end_reported);
    assert_eq!(
        ended.duration,
        Some(0),
        "ended when the worker was last heard of"
    );
    let lost = p.world.backend.calls.call(&ringing).await.unwrap().unwrap();
    assert_eq!((lost.status, lost.duration), (CallStatus::Failed, None));
    let intent = p
        .world
        .backend
        .calls
        .intent(&teleapi_domain::Subject::Call(answered.clone()), 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(intent.status, IntentStatus::Failed);
    assert!(intent.reason.unwrap().contains(id.as_str()));
    // Each call says why it ended, once (Bob's leg is ended by its own worker).
    for sid in [&answered, &ringing] {
        let notices = p.notifications(sid).await;
        assert_eq!(notices.len(), 1, "{notices:#?}");
        assert_eq!(
            (notices[0].level, notices[0].error_code),
            (LogLevel::Error, 15000)
        );
        assert!(notices[0].message.contains(id.as_str()), "{notices:#?}");
    }
    assert!(p.notifications(&bob).await.is_empty());
    assert!(
        p.world
            .backend
            .calls
            .live_calls(&id, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Its recording and its stream are reported failed in the worker's place, on the events
    // queue, and applied as any worker's report.
    // So is its room: the call leaves it, and it ends.
    let reported = p.apply_reported().await;
    let of = |group: &str| -> Vec<&str> {
        let mut types: Vec<&str> = reported
            .iter()
            .filter(|(g, _)| g == group)
            .map(|(_, t)| t.as_str())
            .collect();
        types.sort();
        types
    };
    assert_eq!(of(answered.as_str()), ["recording.status", "stream.failed"]);
    assert_eq!(of(room.as_str()), ["conference.ended", "participant.left"]);
    assert_eq!(reported.len(), 4);
    let ended_room = p
        .world
        .backend
        .conferences
        .conference(&room)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            ended_room.status,
            ended_room.reason_ended,
            ended_room.call_sid_ending.as_ref()
        ),
        (
            ConferenceStatus::Completed,
            Some(EndReason::LastParticipantLeft),
            Some(&answered)
        )
    );
    assert!(
        p.world
            .backend
            .conferences
            .participants(&room)
            .await
            .unwrap()
            .is_empty()
    );
    p.media_failed(&answered, &recording_sid, &stream_sid).await;

    let outcomes = p.deliver_all().await;
    assert_eq!(outcomes, vec![JobOutcome::Delivered; 7]);
    let mut told = p.sink.values_at("/conference", "StatusCallbackEvent");
    told.sort();
    assert_eq!(told, ["conference-end", "participant-leave"]);
    let recording_callbacks = p.sink.received_at("/recording");
    assert_eq!(recording_callbacks.len(), 1);
    assert_eq!(recording_callbacks[0].params["RecordingStatus"], "failed");
    assert_eq!(recording_callbacks[0].params["ErrorCode"], "16105");
    assert_eq!(
        p.sink.values_at("/stream", "StreamEvent"),
        ["stream-started", "stream-error"]
    );
    let error = &p.sink.received_at("/stream")[1].params["StreamError"];
    assert!(error.contains(id.as_str()), "{error}");
    let mut statuses = p.sink.values_at("/status", "CallStatus");
    statuses.sort();
    assert_eq!(statuses, ["completed", "failed"]);

    // The worker comes back: nothing is reopened.
    assert!(matches!(
        handle_event(&p.events, &heartbeat(90_000)).await.unwrap(),
        Handled::Ignored(_)
    ));
    assert!(matches!(
        p.status(&answered, 4, CallStatus::InProgress, None).await,
        Handled::Ignored(_)
    ));
    assert!(matches!(
        p.status(&answered, 5, CallStatus::Completed, Some(99))
            .await,
        Handled::Ignored(_)
    ));
    let after = p
        .world
        .backend
        .calls
        .call(&answered)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (after.status, after.duration),
        (CallStatus::Completed, Some(0))
    );
    let refused = p.world.modify(&after, "Mute=false").await;
    assert_eq!(refused.status(), 409, "an ended call takes no command");
    assert!(p.world.backend.drain_commands().await.is_empty());
}

/// A call created through the API that no worker takes: its dial is sent again after a minute,
/// failed at five, and the call ends `failed` with its callback. One a worker took stays.
async fn a_call_no_worker_takes_fails_with_its_callback(p: Pipeline) {
    let callback = p.encoded("/status");
    let untaken = p
        .outgoing_call(&format!("&StatusCallback={callback}"))
        .await;
    let taken = p
        .outgoing_call(&format!("&StatusCallback={callback}"))
        .await;
    p.apply(&taken, initiated(1, &p.world, "worker-1")).await;
    p.world.backend.drain_commands().await;
    let reconcile = || async {
        let services = p.world.backend.reconciler_services(p.world.clock.clone());
        teleapi_pipeline::reconcile::reconcile_pending(&services, p.world.clock.now())
            .await
            .unwrap()
    };
    p.world.clock.advance(Duration::from_secs(61));
    assert_eq!(reconcile().await.resent, 2);
    p.world.clock.advance(Duration::from_secs(240));
    let report = reconcile().await;
    assert_eq!((report.unreported, report.untaken), (2, 1));
    assert_eq!(reconcile().await, Default::default());

    let ended = p.world.backend.calls.call(&untaken).await.unwrap().unwrap();
    assert_eq!(
        (ended.status, ended.end_reported),
        (CallStatus::Failed, true)
    );
    assert_eq!(ended.end_time, Some(p.world.clock.now()));
    let dial = p
        .world
        .backend
        .calls
        .intent(&teleapi_domain::Subject::Call(untaken.clone()), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dial.status, IntentStatus::Failed);
    let still = p.world.backend.calls.call(&taken).await.unwrap().unwrap();
    assert_eq!(still.status, CallStatus::Queued, "a worker has it");
    let notices = p.notifications(&untaken).await;
    assert_eq!(notices.len(), 1, "{notices:#?}");
    assert_eq!(
        (notices[0].level, notices[0].error_code),
        (LogLevel::Error, 15002)
    );
    assert!(notices[0].message.contains("No media worker"));
    assert!(p.notifications(&taken).await.is_empty());

    assert_eq!(p.deliver_all().await, vec![JobOutcome::Delivered]);
    let received = p.sink.received_at("/status");
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].params["CallSid"], untaken.as_str());
    assert_eq!(received[0].params["CallStatus"], "failed");
}

async fn one_bad_message_does_not_hold_back_the_batch(p: Pipeline) {
    let a = p.world.call(CallStatus::InProgress).await;
    let b = p.world.call(CallStatus::Ringing).await;
    let queue = p.world.backend.events.clone();
    let send = |group: &str, body: String| {
        let queue = queue.clone();
        let message = OutgoingMessage::fifo(group, teleapi_domain::sid::random_hex32(), body);
        async move { queue.send(None, &message).await.unwrap() }
    };
    let completed = EventKind::CallStatus {
        seq: 1,
        status: CallStatus::Completed,
        start_time: None,
        end_time: None,
        duration: Some(3),
    };
    send(a.sid.as_str(), p.event(&a.sid, completed)).await;
    send("CAbogus", "{not an event".into()).await;
    let answered = EventKind::CallStatus {
        seq: 1,
        status: CallStatus::InProgress,
        start_time: None,
        end_time: None,
        duration: None,
    };
    send(b.sid.as_str(), p.event(&b.sid, answered)).await;
    let mut handled = 0;
    for _ in 0..5 {
        handled += poll_once(queue.as_ref(), Duration::from_millis(300), |m| {
            let events = p.events.clone();
            async move { consume(&events, &m).await }
        })
        .await
        .unwrap();
        if handled >= 3 {
            break;
        }
    }
    assert_eq!(handled, 3);
    assert_eq!(p.world.stored(&a).await.status, CallStatus::Completed);
    assert_eq!(p.world.stored(&b).await.status, CallStatus::InProgress);
    let dead = Backend::drain(p.world.backend.event_dead_letters.as_ref()).await;
    assert_eq!(dead, ["{not an event"]);
    assert!(
        queue
            .receive(None, 10, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty(),
        "nothing left behind"
    );
}

/// What a run of the same events leaves, for one call: its state, its intents, and the callbacks
/// its application received (status and sequence number, in order).
type Outcome = (
    (CallStatus, u64, u64, u64, bool, Option<u64>),
    Vec<(u64, IntentStatus)>,
    Vec<(String, String)>,
);

/// Three calls go through their whole life, their events interleaved; with `copies == 2` every
/// event is delivered twice on the spot and once more at the end (a late redelivery), and every
/// callback job twice. The outcome, per call.
async fn run_lifecycles(p: &Pipeline, copies: usize) -> Vec<Outcome> {
    let mut calls = Vec::new();
    for i in 0..3 {
        let callback = p.encoded(&format!("/life-{copies}-{i}"));
        let sid = p
            .outgoing_call(&format!(
                "&StatusCallback={callback}&StatusCallbackEvent=initiated%20ringing%20answered%20completed"
            ))
            .await;
        let dial = p
            .world
            .backend
            .calls
            .intent(&teleapi_domain::Subject::Call(sid.clone()), 1)
            .await
            .unwrap()
            .unwrap();
        calls.push((sid, dial.sid));
    }
    let lifecycle = |dial: &teleapi_domain::IntentSid| {
        let status = |seq, status, duration| EventKind::CallStatus {
            seq,
            status,
            start_time: None,
            end_time: None,
            duration,
        };
        vec![
            initiated(1, &p.world, "https://sqs.example/worker-1.fifo"),
            status(2, CallStatus::Ringing, None),
            EventKind::CommandApplied {
                intent_sid: dial.clone(),
                seq: 1,
            },
            status(3, CallStatus::InProgress, None),
            status(4, CallStatus::Completed, Some(7)),
        ]
    };
    let events: Vec<Vec<EventKind>> = calls.iter().map(|(_, dial)| lifecycle(dial)).collect();
    // Interleaved: every call's first event, then every call's second, and so on.
    let rounds = events[0].len();
    for (step, call) in (0..rounds).flat_map(|step| (0..calls.len()).map(move |c| (step, c))) {
        for _ in 0..copies {
            p.apply(&calls[call].0, events[call][step].clone()).await;
        }
    }
    if copies > 1 {
        for (call, (sid, _)) in calls.iter().enumerate() {
            for event in &events[call] {
                p.apply(sid, event.clone()).await;
            }
        }
    }
    // Callback jobs, each run `copies` times; every run of a job carries the same token.
    p.deliver_each(copies).await;
    let mut outcomes = Vec::new();
    for (i, (sid, _)) in calls.iter().enumerate() {
        let call = p.world.backend.calls.call(sid).await.unwrap().unwrap();
        let mut intents = Vec::new();
        for seq in 1..=call.seq {
            let intent = p
                .world
                .backend
                .calls
                .intent(&teleapi_domain::Subject::Call(sid.clone()), seq)
                .await
                .unwrap()
                .unwrap();
            intents.push((seq, intent.status));
        }
        let received = p.sink.received_at(&format!("/life-{copies}-{i}"));
        let mut tokens: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        let mut callbacks = Vec::new();
        for request in &received {
            let number = request.params["SequenceNumber"].clone();
            let token = request
                .header(teleapi_pipeline::callbacks::IDEMPOTENCY_HEADER)
                .expect("every callback carries its idempotency token")
                .to_owned();
            if tokens.entry(number.clone()).or_default().insert(token) {
                callbacks.push((request.params["CallStatus"].clone(), number));
            }
        }
        assert!(
            tokens.values().all(|t| t.len() == 1),
            "one token per callback, the same on every delivery: {tokens:?}"
        );
        assert_eq!(
            received.len(),
            callbacks.len() * copies,
            "each job delivered {copies} times"
        );
        callbacks.sort_by_key(|(_, n)| n.parse::<u64>().unwrap());
        outcomes.push((
            (
                call.status,
                call.seq,
                call.event_seq,
                call.callback_seq,
                call.end_reported,
                call.duration,
            ),
            intents,
            callbacks,
        ));
    }
    outcomes
}

/// At-least-once delivery changes nothing: events twice, late and interleaved across calls, and
/// callback jobs twice, leave the same calls, intents and callbacks as single delivery.
async fn every_message_twice_comes_out_as_once(p: Pipeline) {
    let once = run_lifecycles(&p, 1).await;
    let twice = run_lifecycles(&p, 2).await;
    assert_eq!(once, twice);
    let (state, _, callbacks) = &once[0];
    assert_eq!(state.0, CallStatus::Completed);
    assert_eq!(
        callbacks
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>(),
        ["initiated", "ringing", "in-progress", "completed"]
    );
}

/// A recording and a stream started through the API whose commands no worker ever reads: when
/// their intents fail, unreported, the recording and the stream are reported failed in the
/// worker's place, with their callbacks, and the call may record again.
async fn media_no_worker_starts_fails_with_its_intent(p: Pipeline) {
    let call = p.world.call(CallStatus::InProgress).await;
    let path = |what: &str| format!("/Calls/{}/{what}.json", call.sid);
    let body = format!("RecordingStatusCallback={}", p.encoded("/recording"));
    let started = p.world.post(&path("Recordings"), &body).await;
    assert_eq!(
        started.status(),
        StatusCode::CREATED,
        "{}",
        body_json(&started)
    );
    let recording_sid: RecordingSid = body_json(&started)["sid"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = format!(
        "Url=wss%3A%2F%2Fbot.example.com&StatusCallback={}",
        p.encoded("/stream")
    );
    let streamed = p.world.post(&path("Streams"), &body).await;
    assert_eq!(
        streamed.status(),
        StatusCode::CREATED,
        "{}",
        body_json(&streamed)
    );
    let stream_sid: StreamSid = body_json(&streamed)["sid"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        p.world.backend.drain_commands().await.len(),
        2,
        "never read"
    );

    let services = p.world.backend.reconciler_services(p.world.clock.clone());
    let reconcile =
        || teleapi_pipeline::reconcile::reconcile_pending(&services, p.world.clock.now());
    p.world.clock.advance(Duration::from_secs(61));
    assert_eq!(reconcile().await.unwrap().resent, 2);
    p.world.backend.drain_commands().await;
    assert!(p.apply_reported().await.is_empty(), "not before they fail");
    p.world.clock.advance(Duration::from_secs(240));
    assert_eq!(reconcile().await.unwrap().unreported, 2);
    let mut reported = p.apply_reported().await;
    reported.sort();
    let group = call.sid.to_string();
    assert_eq!(
        reported,
        [
            (group.clone(), "recording.status".to_owned()),
            (group, "stream.failed".to_owned())
        ]
    );

    p.media_failed(&call.sid, &recording_sid, &stream_sid).await;
    assert_eq!(p.deliver_all().await, vec![JobOutcome::Delivered; 2]);
    assert_eq!(
        p.sink.received_at("/recording")[0].params["RecordingStatus"],
        "failed"
    );
    let error = &p.sink.received_at("/stream")[0].params["StreamError"];
    assert!(error.contains("No media worker reported"), "{error}");

    // Nothing holds the call's one active recording any more.
    let again = p.world.post(&path("Recordings"), "").await;
    assert_eq!(again.status(), StatusCode::CREATED, "{}", body_json(&again));
}

teleapi_tests::on_both_backends!(
    with super::Pipeline::new;
    every_message_twice_comes_out_as_once,
    status_callbacks_are_signed_and_numbered,
    get_callbacks_carry_their_parameters_in_the_query,
    a_failing_callback_is_retried_then_dead_lettered,
    timeouts_and_unreachable_applications,
    a_fallback_answer_becomes_an_execute_command,
    a_failed_fallback_or_none_fails_the_call,
    duplicate_stale_and_illegal_events_change_nothing,
    a_hangup_request_is_confirmed_by_the_worker,
    command_events_settle_intents,
    an_unknown_inbound_call_is_created_on_initiated,
    one_bad_message_does_not_hold_back_the_batch,
    worker_heartbeats_renew_a_lease_until_the_worker_leaves,
    a_dead_workers_calls_end_with_their_callbacks,
    a_call_no_worker_takes_fails_with_its_callback,
    media_no_worker_starts_fails_with_its_intent,
);

/// A resolver that answers every name with fixed addresses: DNS as an attacker would run it.
struct FixedResolver(Vec<std::net::IpAddr>);

#[async_trait::async_trait]
impl HostResolver for FixedResolver {
    async fn lookup(&self, _host: &str) -> std::io::Result<Vec<std::net::IpAddr>> {
        Ok(self.0.clone())
    }
}

fn request(url: &str) -> WebhookRequest {
    WebhookRequest {
        method: Method::Post,
        url: url.to_owned(),
        headers: Vec::new(),
        body: Some("a=1".into()),
        delivery: teleapi_domain::wire::callback::Delivery::default(),
    }
}

#[tokio::test]
async fn every_private_address_class_is_refused() {
    let classes = [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "100.64.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "fc00::1",
        "fd00:ec2::254",
        "fe80::1",
        "ff02::1",
        "::",
        "::ffff:10.0.0.1",
    ];
    for ip in classes {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        // By name: the resolver's answer is checked before anything connects.
        let client = HttpWebhooks::with_resolver(
            AddressPolicy::default(),
            Arc::new(FixedResolver(vec![ip])),
        );
        let answer = client
            .send(&request("http://app.example.test:8080/cb"))
            .await;
        assert!(
            matches!(answer, Err(DeliveryError::Refused(_))),
            "{ip}: {answer:?}"
        );
        // As a literal in the URL.
        let literal = match ip {
            std::net::IpAddr::V4(v4) => format!("http://{v4}/cb"),
            std::net::IpAddr::V6(v6) => format!("http://[{v6}]/cb"),
        };
        let answer = client.send(&request(&literal)).await;
        assert!(
            matches!(answer, Err(DeliveryError::Refused(_))),
            "{literal}: {answer:?}"
        );
    }
    // A name with only some private answers connects to the public ones only: here the one
    // allowed address is the test sink, so reaching it proves the private answer was dropped.
    let sink = Sink::start().await;
    let port = sink.base.rsplit(':').next().unwrap().to_owned();
    let mixed = HttpWebhooks::with_resolver(
        LOCAL,
        Arc::new(FixedResolver(vec![
            "10.9.9.9".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
        ])),
    );
    let answer = mixed
        .send(&request(&format!("http://mixed.test:{port}/ok")))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn redirects_to_private_addresses_are_refused() {
    let sink = Sink::start().await;
    let client = HttpWebhooks::with_resolver(
        LOCAL,
        Arc::new(FixedResolver(vec!["192.168.1.1".parse().unwrap()])),
    );
    for target in [
        "http://10.0.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00::1]:22/x",
        "http://internal.test/x",
    ] {
        sink.script("/hop", vec![Reply::redirect(target)]);
        let answer = client.send(&request(&sink.url("/hop"))).await;
        assert!(
            matches!(answer, Err(DeliveryError::Refused(_))),
            "{target}: {answer:?}"
        );
    }
    // A redirect to another scheme is not followed at all: the 302 is the answer, not a 2xx.
    sink.script("/hop", vec![Reply::redirect("file:///etc/passwd")]);
    let answer = client.send(&request(&sink.url("/hop"))).await.unwrap();
    assert_eq!(answer.status, 302);
    sink.script("/hop", vec![Reply::redirect(&sink.url("/landed"))]);
    let answer = client.send(&request(&sink.url("/hop"))).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(sink.received_at("/landed").len(), 1);
}

#[test]
fn signatures_match_an_independent_implementation() {
    let mut params = std::collections::BTreeMap::new();
    params.insert("CallSid".to_owned(), "CA1234567890ABCDE".to_owned());
    params.insert("Caller".to_owned(), "+14158675310".to_owned());
    params.insert("Digits".to_owned(), "1234".to_owned());
    params.insert("From".to_owned(), "+14158675310".to_owned());
    params.insert("To".to_owned(), "+18005551212".to_owned());
    params.insert("Ünïcode".to_owned(), "välue & more=yes".to_owned());
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    assert_eq!(
        signature("12345", url, Method::Post, &params),
        independent_signature("12345", url, &params)
    );
    assert_eq!(
        signature("12345", url, Method::Get, &params),
        independent_signature("12345", url, &Default::default())
    );
    let _ = Timestamp::now();
}
