//! Drives each operation the capacity model prices, once, on the memory twins (counting port
//! calls) and on moto behind the metering proxy (billing DynamoDB and SQS requests), from the
//! same fixtures. Every variable input is fixed (URLs, numbers, page sizes), so that item sizes,
//! and with them the model, come out the same on every run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use teleapi_domain::worker::HEARTBEAT_INTERVAL;
use teleapi_domain::{Call, CallSid, CallStatus, Timestamp};
use teleapi_ports::{Clock, DeliveryError, WebhookClient, WebhookRequest, WebhookResponse};

use super::meter::{Billed, Meter};
use crate::instrumented::Counter;
use crate::{Backend, World};

/// What one operation did.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub name: &'static str,
    /// Which function does it, and how it is invoked (`api`, `queue`, `schedule`).
    pub function: &'static str,
    pub invoked_by: Invocation,
    /// Port calls on the memory twins, by operation.
    pub ports: BTreeMap<&'static str, u64>,
    /// AWS requests on moto, as billed.
    pub billed: Vec<Billed>,
    /// Requests made to applications.
    pub http_requests: u64,
    /// S3 requests to the recordings bucket, by action (`PutObject`, `GetObject`,
    /// `DeleteObject`), counted at the media store's port.
    pub s3: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Invocation {
    /// One Lambda invocation per request, through API Gateway.
    #[default]
    Api,
    /// A message of a queue, handled in batches by an event source mapping.
    Queue,
    /// A scheduled run.
    Schedule,
    /// More work of a scheduled run, within the same invocation.
    WithinSchedule,
    /// A media worker's own request (it reads numbers itself): no Lambda, no queue.
    Worker,
    /// The API's authorizer, invoked by API Gateway within a request (no request of its own).
    Authorizer,
}

/// The recordings' media store, counting its requests as S3 requests.
struct CountingMedia {
    inner: Arc<dyn teleapi_ports::MediaStore>,
    counts: Arc<std::sync::Mutex<BTreeMap<&'static str, u64>>>,
}

impl CountingMedia {
    fn count(&self, action: &'static str) {
        *self.counts.lock().unwrap().entry(action).or_default() += 1;
    }
}

#[async_trait]
impl teleapi_ports::MediaStore for CountingMedia {
    async fn fetch(
        &self,
        location: &str,
    ) -> Result<Option<teleapi_ports::Media>, teleapi_ports::StoreError> {
        self.count("GetObject");
        self.inner.fetch(location).await
    }

    async fn delete(&self, location: &str) -> Result<(), teleapi_ports::StoreError> {
        self.count("DeleteObject");
        self.inner.delete(location).await
    }

    async fn put(
        &self,
        key: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, teleapi_ports::StoreError> {
        self.count("PutObject");
        self.inner.put(key, content_type, bytes).await
    }
}

/// A webhook client that answers every request 204 and counts them.
#[derive(Default)]
struct CountingApp(AtomicU64);

#[async_trait]
impl WebhookClient for CountingApp {
    async fn send(&self, _: &WebhookRequest) -> Result<WebhookResponse, DeliveryError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(WebhookResponse {
            status: 204,
            content_type: None,
            body: String::new(),
        })
    }
}

enum Probe {
    Memory(Arc<Counter>),
    Moto(Meter),
}

impl Probe {
    fn reset(&self) {
        match self {
            Probe::Memory(counter) => counter.reset(),
            Probe::Moto(meter) => {
                meter.take();
            }
        }
    }
}

/// Fixed inputs: every URL and number the items carry.
const URL: &str = "https%3A%2F%2Fapp.example.com%2Frcml%2Fwelcome";
const STATUS_CALLBACK: &str = "https%3A%2F%2Fapp.example.com%2Fcallbacks%2Fstatus";
const CREATE: &str = "From=%2B15551230001&To=%2B15551230002";
/// The media worker the calls run on.
const WORKER: &str = "capacity-worker-1";

struct Run {
    world: World,
    /// The media worker's own commands queue, which the calls it reports on name.
    worker: String,
    probe: Probe,
    app: Arc<CountingApp>,
    out: Vec<Measured>,
    event_seq: u64,
    /// The recordings bucket's requests since `begin`.
    s3: Arc<std::sync::Mutex<BTreeMap<&'static str, u64>>>,
}

impl Run {
    fn begin(&mut self) {
        self.probe.reset();
        self.app.0.store(0, Ordering::SeqCst);
        self.s3.lock().unwrap().clear();
    }

    fn end(&mut self, name: &'static str, function: &'static str, invoked_by: Invocation) {
        let mut measured = Measured {
            name,
            function,
            invoked_by,
            http_requests: self.app.0.load(Ordering::SeqCst),
            s3: std::mem::take(&mut *self.s3.lock().unwrap()),
            ..Measured::default()
        };
        match &self.probe {
            Probe::Memory(counter) => measured.ports = counter.counts(),
            Probe::Moto(meter) => measured.billed = meter.take(),
        }
        self.out.push(measured);
    }

    async fn event(&mut self, call: &CallSid, kind: serde_json::Value) {
        self.event_seq += 1;
        let event = json!({"version": 1, "call_sid": call, "timestamp": self.world.clock.now().millis(), "seq": self.event_seq});
        self.apply(event, kind).await;
    }

    /// A conference event of `room`, numbered `seq`, as its worker reports it.
    async fn conference_event(
        &mut self,
        room: &teleapi_domain::ConferenceSid,
        seq: u64,
        kind: serde_json::Value,
    ) {
        let event = json!({"version": 1, "conference_sid": room, "timestamp": self.world.clock.now().millis(), "seq": seq});
        self.apply(event, kind).await;
    }

    /// `header` and `kind` merged into one event, applied by the call-events function.
    async fn apply(&self, mut event: serde_json::Value, kind: serde_json::Value) {
        for (k, v) in kind.as_object().unwrap() {
            event[k] = v.clone();
        }
        let services = self.world.backend.event_services(self.world.clock.clone());
        teleapi_pipeline::call_events::handle_event(&services, &event.to_string())
            .await
            .unwrap();
    }

    /// The worker's heartbeat, at the clock's time.
    async fn heartbeat(&mut self) {
        let event = json!({"version": 1, "type": "worker.heartbeat", "worker_id": WORKER, "timestamp": self.world.clock.now().millis(), "command_queue_url": self.worker, "capacity": 500, "calls": 120, "state": "active"});
        let services = self.world.backend.event_services(self.world.clock.clone());
        teleapi_pipeline::call_events::handle_event(&services, &event.to_string())
            .await
            .unwrap();
    }

    async fn stored(&self, sid: &CallSid) -> Call {
        self.world.backend.calls.call(sid).await.unwrap().unwrap()
    }
}

/// Calls of `account` already on the books, for the list pages (not measured): newest first,
/// they take the account's listing partitions in turn, as calls spread over them on average,
/// so that a page reads the same on every run.
async fn fill_account(
    backend: &Backend,
    account: &teleapi_domain::Account,
    count: u64,
    now: Timestamp,
) {
    for i in 0..count {
        let at = now.minus(Duration::from_secs(3600 + i));
        let shard = u8::try_from(i % u64::from(account.listing_shards)).unwrap();
        let call = loop {
            let call = crate::new_call(&account.sid, CallStatus::Completed, at)
                .listed_in(account.listing_shards);
            if call.listing_shard == shard {
                break call;
            }
        };
        backend.calls.insert_call(&call).await.unwrap();
    }
}

/// A call of the world's account, in progress on the worker (not measured).
async fn call_in_progress(run: &mut Run) -> CallSid {
    let call = CallSid::generate();
    run.event(&call, json!({"type": "call.initiated", "account_sid": run.world.account.sid, "direction": "outbound-api", "from": "+15551230001", "to": "+15551230004", "command_queue_url": run.worker, "worker_id": WORKER})).await;
    run.event(&call, json!({"type": "call.status", "status": "in-progress", "start_time": run.world.clock.now().millis()})).await;
    call
}

/// Recordings: the application starts one on a call in progress; the worker reports it
/// started, keeps its media in the bucket (WAV and MP3) and reports it completed (+ its
/// RecordingStatusCallback); the application reads it, lists the call's, fetches its audio
/// and deletes it. Media streams: the application starts one; the worker reports it started
/// and stopped (+ its StatusCallback).
async fn recordings_and_streams(run: &mut Run) {
    let call = call_in_progress(run).await;
    let recordings = format!("/Calls/{call}/Recordings.json");
    run.begin();
    let started = run
        .world
        .post(
            &recordings,
            &format!("RecordingStatusCallback={STATUS_CALLBACK}&RecordingStatusCallbackEvent=in-progress%20completed"),
        )
        .await;
    assert_eq!(started.status(), 201, "{}", crate::body_text(&started));
    run.end("start a recording", "modify-call", Invocation::Api);
    let recording = crate::body_json(&started)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let account = run.world.account.sid.clone();
    run.begin();
    run.event(&call, json!({"type": "recording.started", "account_sid": account, "recording": {"recording_sid": recording, "channels": "mono", "track": "both", "trim": "do-not-trim", "source": "StartCallRecordingAPI"}, "start_time": run.world.clock.now().millis()})).await;
    run.end(
        "event: recording.started (+ RecordingStatusCallback job)",
        "call-events",
        Invocation::Queue,
    );
    run.begin();
    let media = run.world.services.media.clone();
    let wav = media
        .put(
            &format!("{account}/{recording}.wav"),
            "audio/wav",
            vec![0; 44 + 16_000],
        )
        .await
        .unwrap();
    media
        .put(
            &format!("{account}/{recording}.mp3"),
            "audio/mpeg",
            vec![0; 4_000],
        )
        .await
        .unwrap();
    run.end(
        "a recording's media kept by the media worker (WAV and MP3, 1 s each)",
        "media worker",
        Invocation::Worker,
    );
    run.begin();
    run.event(&call, json!({"type": "recording.status", "recording_sid": recording, "status": "completed", "duration": 1, "media_url": wav})).await;
    run.end(
        "event: recording.status completed (+ RecordingStatusCallback job)",
        "call-events",
        Invocation::Queue,
    );
    let path = format!("/Calls/{call}/Recordings/{recording}.json");
    run.begin();
    assert_eq!(run.world.get(&path).await.status(), 200);
    run.end("fetch a recording", "get-call", Invocation::Api);
    run.begin();
    let page = run.world.get(&recordings).await;
    assert_eq!(
        crate::body_json(&page)["recordings"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    run.end(
        "list page: a call's recordings (1)",
        "list-calls",
        Invocation::Api,
    );
    run.begin();
    let audio = run.world.get(&format!("/Recordings/{recording}.wav")).await;
    assert_eq!(audio.status(), 200, "{}", crate::body_text(&audio));
    run.end(
        "fetch a recording's audio (WAV)",
        "get-call",
        Invocation::Api,
    );
    run.begin();
    let deleted = run
        .world
        .delete(&format!("/Recordings/{recording}.json"))
        .await;
    assert_eq!(deleted.status(), 204, "{}", crate::body_text(&deleted));
    run.end(
        "delete a recording (and its media)",
        "modify-call",
        Invocation::Api,
    );

    run.begin();
    let stream = run
        .world
        .post(
            &format!("/Calls/{call}/Streams.json"),
            &format!("Url=wss%3A%2F%2Fbot.example.com%2Fmedia&StatusCallback={STATUS_CALLBACK}"),
        )
        .await;
    assert_eq!(stream.status(), 201, "{}", crate::body_text(&stream));
    run.end("start a media stream", "modify-call", Invocation::Api);
    let stream = crate::body_json(&stream)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    run.begin();
    run.event(&call, json!({"type": "stream.started", "stream": {"stream_sid": stream, "url": "wss://bot.example.com/media", "track": "inbound_track"}})).await;
    run.end(
        "event: stream.started (+ StatusCallback job)",
        "call-events",
        Invocation::Queue,
    );
    run.begin();
    run.event(
        &call,
        json!({"type": "stream.stopped", "stream_sid": stream}),
    )
    .await;
    run.end(
        "event: stream.stopped (+ StatusCallback job)",
        "call-events",
        Invocation::Queue,
    );
    Backend::drain(run.world.backend.callbacks.as_ref()).await;
}

/// What can never be applied is kept aside: an event that is no event, a callback job that is
/// no job. (The commands' dead-letter queue is filled by SQS itself, after five receives.)
async fn dead_letters(run: &mut Run) {
    let services = run.world.backend.event_services(run.world.clock.clone());
    let poison = teleapi_pipeline::consumer::BatchMessage {
        id: "poison-1".into(),
        body: "{\"version\": 1, \"type\": \"call.exploded\"}".into(),
        group: Some("CA0123456789abcdef0123456789abcdef".into()),
    };
    run.begin();
    teleapi_pipeline::call_events::consume(&services, &poison)
        .await
        .unwrap();
    run.end(
        "a poison event dead-lettered",
        "call-events",
        Invocation::Queue,
    );
    let services = run
        .world
        .backend
        .callback_services(run.world.clock.clone(), run.app.clone());
    run.begin();
    teleapi_pipeline::callbacks::run_job(&services, "not a job")
        .await
        .unwrap();
    run.end(
        "an unreadable callback job dead-lettered",
        "callback",
        Invocation::Queue,
    );
}

/// Where the capacity runs' clocks start: a fixed instant, so that every timestamp in every
/// item has the same size on every run.
const START: Timestamp = Timestamp::from_millis(1_796_224_896_123);

async fn drive(backend: Backend, probe: Probe) -> Vec<Measured> {
    let worker = match &backend.aws {
        Some(aws) => {
            let prefix = aws.tables.calls.trim_end_matches("-calls");
            teleapi_adapters::sqs::create_queue(
                &aws.sqs,
                &format!("{prefix}-worker"),
                true,
                Duration::from_secs(2),
                None,
            )
            .await
            .unwrap()
        }
        None => "worker.fifo".to_owned(),
    };
    let mut world = World::with_clock(backend, crate::ManualClock::starting_at(START)).await;
    let s3 = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    world.services.media = Arc::new(CountingMedia {
        inner: world.services.media.clone(),
        counts: s3.clone(),
    });
    let mut run = Run {
        world,
        worker,
        probe,
        app: Arc::new(CountingApp::default()),
        out: Vec::new(),
        event_seq: 0,
        s3,
    };
    let now = run.world.clock.now();
    fill_account(&run.world.backend, &run.world.account, 60, now).await;
    let busy = {
        let mut account = crate::account(&run.world.backend, None).await;
        account.listing_shards = 16;
        run.world
            .backend
            .accounts
            .update_account(&account)
            .await
            .unwrap();
        fill_account(&run.world.backend, &account, 120, now).await;
        account
    };
    // ---- the media worker: its first heartbeat records it, later ones renew its lease
    run.heartbeat().await;
    run.world.clock.advance(HEARTBEAT_INTERVAL);
    run.begin();
    run.heartbeat().await;
    run.end(
        "event: worker.heartbeat (lease renewed)",
        "call-events",
        Invocation::Queue,
    );

    // Warm the account caches: the model's figures are for a busy account, read once per
    // sandbox every 10 s.
    assert_eq!(run.world.get("/Calls.json?PageSize=1").await.status(), 200);

    // ---- a call created through the API, and its life
    run.begin();
    let created = run
        .world
        .post(
            "/Calls.json",
            &format!("{CREATE}&Url={URL}&StatusCallback={STATUS_CALLBACK}"),
        )
        .await;
    assert_eq!(created.status(), 201, "{}", crate::body_text(&created));
    run.end("create a call", "create-call", Invocation::Api);
    let sid: CallSid = crate::body_json(&created)["sid"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let dial = run.stored(&sid).await.seq;
    let dial_intent = run
        .world
        .backend
        .calls
        .intent(&sid.clone().into(), dial)
        .await
        .unwrap()
        .unwrap();
    Backend::drain(run.world.backend.commands.as_ref()).await;

    // A worker's first event for a call it did not create: the call is new (call-events reads
    // the account for its listing partitions, once per sandbox every 10 s: warmed here).
    let warm = CallSid::generate();
    run.event(&warm, json!({"type": "call.initiated", "account_sid": run.world.account.sid, "direction": "inbound", "from": "+15551230003", "to": "+15551230002", "command_queue_url": run.worker, "worker_id": WORKER, "url": "https://app.example.com/rcml/welcome"})).await;
    let inbound = CallSid::generate();
    run.begin();
    run.event(&inbound, json!({"type": "call.initiated", "account_sid": run.world.account.sid, "direction": "inbound", "from": "+15551230003", "to": "+15551230002", "command_queue_url": run.worker, "worker_id": WORKER, "url": "https://app.example.com/rcml/welcome"})).await;
    run.end(
        "event: call.initiated (a new call)",
        "call-events",
        Invocation::Queue,
    );

    run.begin();
    run.event(&sid, json!({"type": "call.initiated", "account_sid": run.world.account.sid, "direction": "outbound-api", "from": "+15551230001", "to": "+15551230002", "command_queue_url": run.worker, "worker_id": WORKER})).await;
    run.end(
        "event: call.initiated (an API call)",
        "call-events",
        Invocation::Queue,
    );

    run.begin();
    run.event(
        &sid,
        json!({"type": "command.applied", "intent_sid": dial_intent.sid, "seq": dial}),
    )
    .await;
    run.end("event: command.applied", "call-events", Invocation::Queue);

    run.begin();
    run.event(&sid, json!({"type": "call.status", "status": "ringing"}))
        .await;
    run.end(
        "event: call.status ringing",
        "call-events",
        Invocation::Queue,
    );

    let answered = run.world.clock.now().millis();
    run.begin();
    run.event(
        &sid,
        json!({"type": "call.status", "status": "in-progress", "start_time": answered}),
    )
    .await;
    run.end(
        "event: call.status in-progress",
        "call-events",
        Invocation::Queue,
    );

    // The worker's fetch of the call's RCML, for the call's request log (docs/data-model.md,
    // "call_log"): what a call's first document costs, and each redirect's.
    run.begin();
    run.event(
        &sid,
        json!({
            "type": "http.request",
            "account_sid": run.world.account.sid,
            "request": {
                "kind": "rcml",
                "url": "https://app.example.com/rcml/welcome",
                "method": "POST",
                "parameters": {
                    "AccountSid": run.world.account.sid, "ApiVersion": "2012-04-24",
                    "CallSid": sid, "CallStatus": "in-progress", "Direction": "outbound-api",
                    "From": "+15551230001", "To": "+15551230002",
                },
                "signed": true,
                "attempt": 1,
            },
            "response": {
                "status_code": 200,
                "content_type": "application/xml",
                "duration_ms": 85,
                "body": "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>Connecting you to Bob</Say><Dial><Client>bob</Client></Dial></Response>",
            },
        }),
    )
    .await;
    run.end(
        "event: http.request (an RCML fetch, logged)",
        "call-events",
        Invocation::Queue,
    );

    // ---- modifications
    let call = run.stored(&sid).await;
    run.begin();
    let answer = run.world.modify(&call, &format!("Url={URL}")).await;
    assert_eq!(answer.status(), 200, "{}", crate::body_text(&answer));
    run.end("modify: redirect (Url)", "modify-call", Invocation::Api);
    let redirect = run.stored(&sid).await;
    let redirect_intent = run
        .world
        .backend
        .calls
        .intent(&sid.clone().into(), redirect.seq)
        .await
        .unwrap()
        .unwrap();

    run.begin();
    let path = crate::call_path(&run.world.account.sid, sid.as_str());
    let mut request = crate::modify_request(&path, Some(&run.world.auth()), "Mute=true");
    request.headers_mut().insert(
        "idempotency-key",
        "0f8fad5b-d9cb-469f-a165-70867728950e".parse().unwrap(),
    );
    let answer = run.world.send(request).await;
    assert_eq!(answer.status(), 200, "{}", crate::body_text(&answer));
    run.end(
        "modify: mute, with an Idempotency-Key",
        "modify-call",
        Invocation::Api,
    );

    run.begin();
    run.event(&sid, json!({"type": "command.rejected", "intent_sid": redirect_intent.sid, "seq": redirect.seq, "reason": "superseded"})).await;
    run.end("event: command.rejected", "call-events", Invocation::Queue);

    run.begin();
    let answer = run.world.get(&format!("/Calls/{sid}.json")).await;
    assert_eq!(answer.status(), 200);
    run.end("get a call", "get-call", Invocation::Api);

    run.begin();
    let answer = run
        .world
        .get(&format!("/Calls/{sid}/Modifications.json"))
        .await;
    assert_eq!(answer.status(), 200);
    run.end("list a call's modifications", "get-call", Invocation::Api);

    // The inbound call answered, then hung up by the application.
    run.event(
        &inbound,
        json!({"type": "call.status", "status": "in-progress", "start_time": answered}),
    )
    .await;
    let call = run.stored(&inbound).await;
    run.begin();
    let answer = run.world.modify(&call, "Status=completed").await;
    assert_eq!(answer.status(), 200, "{}", crate::body_text(&answer));
    run.end(
        "modify: hang up (Status=completed)",
        "modify-call",
        Invocation::Api,
    );
    Backend::drain(run.world.backend.commands.as_ref()).await;

    // The API's call ends on the worker's report.

    run.begin();
    run.event(&sid, json!({"type": "call.status", "status": "completed", "start_time": answered, "end_time": answered + 42_000, "duration": 42})).await;
    run.end(
        "event: call.status completed (+ StatusCallback job)",
        "call-events",
        Invocation::Queue,
    );

    let job = Backend::drain(run.world.backend.callbacks.as_ref())
        .await
        .remove(0);
    let services = run
        .world
        .backend
        .callback_services(run.world.clock.clone(), run.app.clone());
    // The callback function's account cache, warmed as a busy account's is.
    teleapi_pipeline::callbacks::run_job(&services, &job)
        .await
        .unwrap();
    run.begin();
    let outcome = teleapi_pipeline::callbacks::run_job(&services, &job)
        .await
        .unwrap();
    assert_eq!(outcome, teleapi_pipeline::callbacks::JobOutcome::Delivered);
    run.end(
        "callback: StatusCallback delivered",
        "callback",
        Invocation::Queue,
    );

    // ---- a call whose RCML fails: its fallback
    let failing = CallSid::generate();
    run.event(&failing, json!({"type": "call.initiated", "account_sid": run.world.account.sid, "direction": "inbound", "from": "+15551230003", "to": "+15551230002", "command_queue_url": run.worker, "worker_id": WORKER, "url": "https://app.example.com/rcml/welcome"})).await;
    run.begin();
    run.event(&failing, json!({"type": "rcml.failed", "url": "https://app.example.com/rcml/welcome", "error_code": 11200, "detail": "HTTP 500"})).await;
    run.end(
        "event: rcml.failed (no fallback: the call fails)",
        "call-events",
        Invocation::Queue,
    );
    Backend::drain(run.world.backend.commands.as_ref()).await;
    Backend::drain(run.world.backend.callbacks.as_ref()).await;

    // ---- a conference: reported by its worker, a participant changed through the API, read
    let room = teleapi_domain::ConferenceSid::generate();
    let (first, second) = (CallSid::generate(), CallSid::generate());
    let joined = |call: &CallSid| json!({"type": "participant.joined", "participant": {"call_sid": call, "label": "agent", "muted": false, "hold": false, "coaching": false, "start_conference_on_enter": true, "end_conference_on_exit": false}});
    run.begin();
    run.conference_event(&room, 1, json!({"type": "conference.created", "account_sid": run.world.account.sid, "friendly_name": "support", "command_queue_url": run.worker, "worker_id": WORKER, "status_callback": {"url": "https://app.example.com/callbacks/conference", "method": "POST", "events": ["start", "end", "join", "leave", "mute", "hold"]}})).await;
    run.end(
        "event: conference.created",
        "call-events",
        Invocation::Queue,
    );
    run.begin();
    run.conference_event(&room, 2, joined(&first)).await;
    run.end(
        "event: participant.joined (+ StatusCallback job)",
        "call-events",
        Invocation::Queue,
    );
    run.begin();
    run.conference_event(&room, 3, json!({"type": "conference.started"}))
        .await;
    run.end(
        "event: conference.started (+ StatusCallback job)",
        "call-events",
        Invocation::Queue,
    );
    run.conference_event(&room, 4, joined(&second)).await;
    Backend::drain(run.world.backend.callbacks.as_ref()).await;
    let participant = format!(
        "/call/2012-04-24/Accounts/{}/Conferences/{room}/Participants/{first}.json",
        run.world.account.sid
    );
    run.begin();
    let answer = run
        .world
        .send(crate::post_request(
            &participant,
            Some(&run.world.auth()),
            "Muted=true",
        ))
        .await;
    assert_eq!(answer.status(), 200, "{}", crate::body_text(&answer));
    run.end(
        "change a participant: Muted",
        "modify-call",
        Invocation::Api,
    );
    let intent_sid = crate::body_json(&answer)["intent_sid"].clone();
    Backend::drain(run.world.backend.commands.as_ref()).await;
    run.begin();
    run.conference_event(
        &room,
        5,
        json!({"type": "conference.command.applied", "intent_sid": intent_sid, "seq": 1}),
    )
    .await;
    run.end(
        "event: conference.command.applied",
        "call-events",
        Invocation::Queue,
    );
    run.begin();
    run.conference_event(&room, 6, json!({"type": "participant.updated", "participant": {"call_sid": first, "label": "agent", "muted": true, "hold": false, "coaching": false, "start_conference_on_enter": true, "end_conference_on_exit": false}})).await;
    run.end(
        "event: participant.updated (+ StatusCallback job)",
        "call-events",
        Invocation::Queue,
    );
    Backend::drain(run.world.backend.callbacks.as_ref()).await;
    run.begin();
    let answer = run
        .world
        .get(&format!("/Conferences/{room}/Participants.json"))
        .await;
    assert_eq!(answer.status(), 200);
    run.end(
        "list a conference's participants (2)",
        "get-call",
        Invocation::Api,
    );
    run.begin();
    let answer = run.world.get("/Conferences.json?Status=in-progress").await;
    assert_eq!(answer.status(), 200);
    run.end("list page: conferences", "list-calls", Invocation::Api);
    // A participant added by the room's name: the running room found through the account's
    // listing, then create-call's write and command.
    run.begin();
    let answer = run
        .world
        .send(crate::post_request(
            &format!(
                "/call/2012-04-24/Accounts/{}/Conferences/support/Participants.json",
                run.world.account.sid
            ),
            Some(&run.world.auth()),
            "From=%2B15551230001&To=%2B15551230009",
        ))
        .await;
    assert_eq!(answer.status(), 201, "{}", crate::body_text(&answer));
    run.end(
        "add a participant by the conference's name",
        "create-call",
        Invocation::Api,
    );
    Backend::drain(run.world.backend.commands.as_ref()).await;

    // ---- answering-machine detection's outcome, asynchronous: the call keeps it, and the
    // AsyncAmdStatusCallback is a job
    let detected = CallSid::generate();
    run.event(&detected, json!({"type": "call.initiated", "account_sid": run.world.account.sid, "direction": "outbound-api", "from": "+15551230001", "to": "+15551230004", "command_queue_url": run.worker, "worker_id": WORKER})).await;
    run.begin();
    run.event(&detected, json!({"type": "call.answered_by", "answered_by": "machine_start", "machine_detection_duration": 2600, "callback": {"url": "https://app.example.com/amd", "method": "POST"}})).await;
    run.end(
        "event: call.answered_by (+ AsyncAmdStatusCallback job)",
        "call-events",
        Invocation::Queue,
    );
    Backend::drain(run.world.backend.callbacks.as_ref()).await;

    // ---- call queues: the application makes one; a caller joins and waits (its worker reads
    // the queue's MaxSize, its event marks the call); the application reads the queue and its
    // members and dequeues the front caller (a redirect of its call), which leaves.
    run.begin();
    let made = run
        .world
        .post("/Queues.json", "FriendlyName=support&MaxSize=20")
        .await;
    assert_eq!(made.status(), 201, "{}", crate::body_text(&made));
    run.end("create a queue", "modify-call", Invocation::Api);
    let queue = teleapi_domain::QueueSid::named(&run.world.account.sid, "support");
    run.begin();
    let sizes = run.world.backend.queues.call_queue(&queue).await.unwrap();
    assert_eq!(sizes.map(|q| q.max_size), Some(20));
    let listed = run.world.backend.queues.members(&queue).await.unwrap();
    assert!(listed.is_empty());
    run.end(
        "a queue's MaxSize (cached 10 s) and who waits in it, read by the media worker a caller joins",
        "media worker",
        Invocation::Worker,
    );
    let waiting = call_in_progress(&mut run).await;
    run.begin();
    run.event(
        &waiting,
        json!({"type": "call.enqueued", "queue_sid": queue, "queue": "support"}),
    )
    .await;
    run.end("event: call.enqueued", "call-events", Invocation::Queue);
    let queue_path = format!("/Queues/{queue}.json");
    run.begin();
    let read = run.world.get(&queue_path).await;
    assert_eq!(crate::body_json(&read)["current_size"], 1);
    run.end("fetch a queue (1 caller)", "get-call", Invocation::Api);
    run.begin();
    let page = run.world.get("/Queues.json").await;
    assert_eq!(
        crate::body_json(&page)["queues"].as_array().unwrap().len(),
        1
    );
    run.end("list page: 1 queue", "list-calls", Invocation::Api);
    run.begin();
    let members = run
        .world
        .get(&format!("/Queues/{queue}/Members.json"))
        .await;
    assert_eq!(
        crate::body_json(&members)["queue_members"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    run.end("list a queue's members (1)", "get-call", Invocation::Api);
    run.begin();
    let dequeued = run
        .world
        .post(
            &format!("/Queues/{queue}/Members/Front.json"),
            &format!("Url={URL}"),
        )
        .await;
    assert_eq!(dequeued.status(), 200, "{}", crate::body_text(&dequeued));
    run.end(
        "dequeue the front caller (a redirect)",
        "modify-call",
        Invocation::Api,
    );
    Backend::drain(run.world.backend.commands.as_ref()).await;
    run.begin();
    run.event(
        &waiting,
        json!({"type": "call.dequeued", "queue_sid": queue}),
    )
    .await;
    run.end("event: call.dequeued", "call-events", Invocation::Queue);
    // An agent waits on a worker with no caller of the queue there; a caller waits on another:
    // the agent's report takes it (a conditional write of the caller and its intent, the
    // `queue.bridge` command to its worker).
    let (agent, other) = (
        call_in_progress(&mut run).await,
        call_in_progress(&mut run).await,
    );
    run.event(
        &other,
        json!({"type": "call.enqueued", "queue_sid": queue, "queue": "support"}),
    )
    .await;
    run.begin();
    run.event(
        &agent,
        json!({"type": "queue.agent_waiting", "queue_sid": queue, "address": "10.0.3.17:5060", "token": "5d0c8e2f1a3b4c6d7e8f90a1b2c3d4e5"}),
    )
    .await;
    run.end(
        "event: queue.agent_waiting (a caller on another worker taken)",
        "call-events",
        Invocation::Queue,
    );
    let taken = run.world.backend.calls.call(&other).await.unwrap().unwrap();
    assert_eq!(taken.queue, None, "the caller was taken for the agent");

    recordings_and_streams(&mut run).await;
    dead_letters(&mut run).await;

    // ---- reading
    run.begin();
    let answer = run.world.get("/Calls.json?PageSize=50").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        crate::body_json(&answer)["calls"].as_array().unwrap().len(),
        50
    );
    run.end(
        "list page: 50 calls, 1 listing partition",
        "list-calls",
        Invocation::Api,
    );

    let busy_page = format!(
        "/call/2012-04-24/Accounts/{}/Calls.json?PageSize=50",
        busy.sid
    );
    let auth = crate::basic_auth(&busy);
    assert_eq!(
        run.world
            .send(crate::get_request(&busy_page, Some(&auth)))
            .await
            .status(),
        200
    );
    run.begin();
    let answer = run
        .world
        .send(crate::get_request(&busy_page, Some(&auth)))
        .await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        crate::body_json(&answer)["calls"].as_array().unwrap().len(),
        50
    );
    run.end(
        "list page: 50 calls, 16 listing partitions",
        "list-calls",
        Invocation::Api,
    );

    // ---- phone numbers: an account configures them; an inbound call looks its number up
    let numbers = "/IncomingPhoneNumbers.json";
    for n in 0..3 {
        let body = format!("PhoneNumber=%2B1555765000{n}&VoiceUrl={URL}");
        assert_eq!(run.world.post(numbers, &body).await.status(), 201);
    }
    run.begin();
    let created = run
        .world
        .post(
            numbers,
            &format!("PhoneNumber=%2B15557650009&VoiceUrl={URL}&StatusCallback={STATUS_CALLBACK}"),
        )
        .await;
    assert_eq!(created.status(), 201, "{}", crate::body_text(&created));
    run.end("create a number", "modify-call", Invocation::Api);
    let number = crate::body_json(&created)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/IncomingPhoneNumbers/{number}.json");
    run.begin();
    assert_eq!(run.world.get(&path).await.status(), 200);
    run.end("fetch a number", "get-call", Invocation::Api);
    run.begin();
    assert_eq!(
        run.world
            .post(&path, "FriendlyName=Front+desk")
            .await
            .status(),
        200
    );
    run.end("update a number", "modify-call", Invocation::Api);
    run.begin();
    let page = run.world.get(numbers).await;
    assert_eq!(
        crate::body_json(&page)["incoming_phone_numbers"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    run.end("list page: 4 numbers", "list-calls", Invocation::Api);
    run.begin();
    let called = run
        .world
        .backend
        .numbers
        .number_called("+15557650009")
        .await
        .unwrap();
    assert!(called.is_some());
    run.end(
        "an inbound call's number, looked up by the media worker",
        "media worker",
        Invocation::Worker,
    );
    run.begin();
    let path = format!("{}/Accounts/{}{path}", crate::BASE, run.world.account.sid);
    let mut delete = crate::get_request(&path, Some(&run.world.auth()));
    *delete.method_mut() = lambda_http::http::Method::DELETE;
    assert_eq!(run.world.send(delete).await.status(), 204);
    run.end("delete a number", "modify-call", Invocation::Api);

    // ---- the authorizer: an account's run every five minutes, which renews its loan of a key
    // of the pool (the pool's size is read once a minute per sandbox: warmed by another account)
    for n in 0..4 {
        run.world
            .backend
            .key_pool
            .add_key(&format!("capacity-pool-{n}"), None)
            .await
            .unwrap();
    }
    let authorizer = run
        .world
        .backend
        .authorizer_services(run.world.clock.clone(), "capacity-");
    let authorize = |account| crate::usage_key(&authorizer, account);
    assert!(authorize(&busy).await.starts_with("capacity-pool-"));
    run.begin();
    let account = run.world.account.clone();
    assert!(authorize(&account).await.starts_with("capacity-pool-"));
    run.end(
        "authorizer: an active account borrows a key of the pool (each 300 s)",
        "authorize-account",
        Invocation::Authorizer,
    );

    // ---- the reconciler: a run each minute, and two more lease sweeps within it
    let services = run
        .world
        .backend
        .reconciler_services(run.world.clock.clone());
    run.begin();
    let (reconciled, swept) = teleapi_pipeline::reconcile::run_once(&services)
        .await
        .unwrap();
    assert_eq!((reconciled, swept), Default::default());
    run.end(
        "reconciler run (nothing pending, no lease expired)",
        "reconcile-intents",
        Invocation::Schedule,
    );
    run.begin();
    teleapi_pipeline::reconcile::sweep_leases(&services)
        .await
        .unwrap();
    run.end(
        "reconciler: a further lease sweep (none expired)",
        "reconcile-intents",
        Invocation::WithinSchedule,
    );
    run.out
}

/// Every operation, measured on the memory twins and on moto (through `meter`): the two runs
/// zipped, port counts from the first and bills from the second.
pub async fn measure(meter: &Meter) -> Vec<Measured> {
    let counter = Arc::new(Counter::default());
    let memory = drive(
        Backend::memory().instrumented(counter.clone()),
        Probe::Memory(counter),
    )
    .await;
    let backend = Backend::moto_at(meter.endpoint()).await;
    let prefix = backend
        .aws
        .as_ref()
        .unwrap()
        .tables
        .calls
        .trim_end_matches("-calls")
        .to_owned();
    meter.set_prefix(&prefix);
    let moto = drive(backend, Probe::Moto(meter.clone())).await;
    assert_eq!(memory.len(), moto.len());
    memory
        .into_iter()
        .zip(moto)
        .map(|(memory, moto)| {
            assert_eq!(memory.name, moto.name);
            Measured {
                billed: moto.billed,
                ..memory
            }
        })
        .collect()
}
