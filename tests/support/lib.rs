//! Test support: the backends the suites run on (in-memory, and DynamoDB/SQS on moto), a clock
//! the tests move, and request builders.

pub mod capacity;
pub mod instrumented;
pub mod moto;
pub mod phone;
pub mod runtime;
pub mod sink;
pub mod speech;
pub mod ws;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use base64::Engine;
use lambda_http::http::{HeaderValue, Method, header};
use lambda_http::{Body, Request};
use teleapi_adapters::dynamodb::{DynamoStore, TableNames, schema};
use teleapi_adapters::memory::{MemoryQueue, MemoryStore};
use teleapi_adapters::sqs::{SqsQueue, create_queue};
use teleapi_api::{ApiConfig, Services};
use teleapi_domain::sid::random_hex32;
use teleapi_domain::{Account, AccountSid, Call, CallStatus, Instructions, Timestamp, WebhookUrl};
use teleapi_ports::{
    AccountStore, CallLogStore, CallQueueStore, CallStore, Clock, ConferenceStore, KeyPool,
    NumberStore, Queue, ReceivedMessage, RecordingStore, WorkerStore,
};

/// A clock that stands still until a test moves it.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn starting_now() -> Arc<Self> {
        Self::starting_at(Timestamp::now())
    }

    pub fn starting_at(at: Timestamp) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(at.millis())))
    }

    pub fn advance(&self, by: Duration) {
        let millis = i64::try_from(by.as_millis()).expect("a test-sized duration");
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// One implementation of every port.
#[derive(Clone)]
pub struct Backend {
    pub name: &'static str,
    pub accounts: Arc<dyn AccountStore>,
    pub calls: Arc<dyn CallStore>,
    pub workers: Arc<dyn WorkerStore>,
    pub conferences: Arc<dyn ConferenceStore>,
    pub recordings: Arc<dyn RecordingStore>,
    pub call_log: Arc<dyn CallLogStore>,
    pub numbers: Arc<dyn NumberStore>,
    pub queues: Arc<dyn CallQueueStore>,
    pub key_pool: Arc<dyn KeyPool>,
    /// The default commands queue (FIFO).
    pub commands: Arc<dyn Queue>,
    /// The events queue (FIFO) and its dead-letter queue.
    pub events: Arc<dyn Queue>,
    pub event_dead_letters: Arc<dyn Queue>,
    /// The callbacks queue (standard) and its dead-letter queue.
    pub callbacks: Arc<dyn Queue>,
    pub callback_dead_letters: Arc<dyn Queue>,
    /// Raw clients, when the backend is AWS (for tests that look at items and queues directly).
    pub aws: Option<AwsParts>,
}

#[derive(Clone)]
pub struct AwsParts {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub tables: TableNames,
    pub commands_url: String,
    pub events_url: String,
    pub events_dlq_url: String,
    pub callbacks_url: String,
    pub callbacks_dlq_url: String,
}

impl AwsParts {
    /// The environment a deployed function would get for these tables and queues, pointed at
    /// moto.
    pub fn function_env(&self) -> Vec<(String, String)> {
        let t = &self.tables;
        [
            ("TELEAPI_ACCOUNTS_TABLE", t.accounts.as_str()),
            ("TELEAPI_CALLS_TABLE", t.calls.as_str()),
            ("TELEAPI_INTENTS_TABLE", t.intents.as_str()),
            ("TELEAPI_IDEMPOTENCY_TABLE", t.idempotency.as_str()),
            ("TELEAPI_WORKERS_TABLE", t.workers.as_str()),
            ("TELEAPI_CONFERENCES_TABLE", t.conferences.as_str()),
            ("TELEAPI_RECORDINGS_TABLE", t.recordings.as_str()),
            ("TELEAPI_CALL_LOG_TABLE", t.call_log.as_str()),
            ("TELEAPI_NUMBERS_TABLE", t.numbers.as_str()),
            ("TELEAPI_QUEUES_TABLE", t.queues.as_str()),
            ("TELEAPI_KEY_POOL_TABLE", t.key_pool.as_str()),
            ("TELEAPI_RECORDINGS_BUCKET", "teleapi-test-recordings"),
            ("TELEAPI_PUBLIC_URL", "http://127.0.0.1:8080"),
            ("TELEAPI_COMMANDS_QUEUE_URL", self.commands_url.as_str()),
            ("TELEAPI_CALLBACKS_QUEUE_URL", self.callbacks_url.as_str()),
            ("TELEAPI_CALLBACKS_DLQ_URL", self.callbacks_dlq_url.as_str()),
            ("TELEAPI_EVENTS_DLQ_URL", self.events_dlq_url.as_str()),
            ("TELEAPI_EVENTS_QUEUE_URL", self.events_url.as_str()),
            ("AWS_ENDPOINT_URL", moto::endpoint()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }
}

impl Backend {
    pub fn memory() -> Self {
        let store = MemoryStore::new();
        let queues = MemoryQueue::with_visibility("commands.fifo", Duration::from_secs(2));
        Self {
            name: "memory",
            accounts: Arc::new(store.clone()),
            workers: Arc::new(store.clone()),
            conferences: Arc::new(store.clone()),
            recordings: Arc::new(store.clone()),
            call_log: Arc::new(store.clone()),
            numbers: Arc::new(store.clone()),
            queues: Arc::new(store.clone()),
            key_pool: Arc::new(store.clone()),
            calls: Arc::new(store),
            commands: Arc::new(queues.queue("commands.fifo")),
            events: Arc::new(
                queues
                    .queue("events.fifo")
                    .with_redrive(3, "events-dlq.fifo"),
            ),
            event_dead_letters: Arc::new(queues.queue("events-dlq.fifo")),
            callbacks: Arc::new(queues.queue("callbacks").with_redrive(3, "callbacks-dlq")),
            callback_dead_letters: Arc::new(queues.queue("callbacks-dlq")),
            aws: None,
        }
    }

    /// Fresh tables and a fresh commands queue on the shared moto server.
    pub async fn moto() -> Self {
        Self::moto_at(moto::endpoint()).await
    }

    /// Fresh tables and queues on the shared moto server, reached through `endpoint` (moto's,
    /// or a proxy in front of it).
    pub async fn moto_at(endpoint: &str) -> Self {
        let config = moto::sdk_config_at(endpoint).await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);
        let prefix = format!("t{}", &random_hex32()[..12]);
        let tables = TableNames::with_prefix(&prefix);
        schema::create_tables(&dynamodb, &tables)
            .await
            .expect("tables are created on moto");
        let visibility = Duration::from_secs(2);
        let queue = |name: String, fifo: bool, redrive: Option<String>| {
            let sqs = sqs.clone();
            async move {
                let redrive = redrive.as_deref().map(|dlq| (dlq, 3));
                create_queue(&sqs, &name, fifo, visibility, redrive)
                    .await
                    .expect("queues are created on moto")
            }
        };
        let commands_url = queue(format!("{prefix}-commands"), true, None).await;
        let events_dlq = queue(format!("{prefix}-events-dlq"), true, None).await;
        let events_url = queue(format!("{prefix}-events"), true, Some(events_dlq.clone())).await;
        let callbacks_dlq = queue(format!("{prefix}-callbacks-dlq"), false, None).await;
        let callbacks_url = queue(
            format!("{prefix}-callbacks"),
            false,
            Some(callbacks_dlq.clone()),
        )
        .await;
        let sqs_queue = |url: &str| -> Arc<dyn Queue> { Arc::new(SqsQueue::new(sqs.clone(), url)) };
        let store = Arc::new(DynamoStore::new(dynamodb.clone(), tables.clone()));
        Self {
            name: "moto",
            accounts: store.clone(),
            workers: store.clone(),
            conferences: store.clone(),
            recordings: store.clone(),
            call_log: store.clone(),
            numbers: store.clone(),
            queues: store.clone(),
            key_pool: store.clone(),
            calls: store,
            commands: sqs_queue(&commands_url),
            events: sqs_queue(&events_url),
            event_dead_letters: sqs_queue(&events_dlq),
            callbacks: sqs_queue(&callbacks_url),
            callback_dead_letters: sqs_queue(&callbacks_dlq),
            aws: Some(AwsParts {
                dynamodb,
                sqs,
                tables,
                commands_url,
                events_url,
                events_dlq_url: events_dlq,
                callbacks_url,
                callbacks_dlq_url: callbacks_dlq,
            }),
        }
    }

    pub fn services(&self, clock: Arc<ManualClock>) -> Services {
        Services {
            accounts: self.accounts.clone(),
            calls: self.calls.clone(),
            conferences: self.conferences.clone(),
            recordings: self.recordings.clone(),
            numbers: self.numbers.clone(),
            queues: self.queues.clone(),
            call_log: self.call_log.clone(),
            media: Arc::new(teleapi_adapters::media::FileMedia::new(std::env::temp_dir())),
            commands: self.commands.clone(),
            clock,
            config: ApiConfig {
                write_budget: Duration::from_secs(30),
                ..ApiConfig::default()
            },
            account_cache: Default::default(),
            rate_limiter: None,
        }
    }

    /// The API authorizer's services on this backend, the shared usage keys named
    /// `{prefix}unassigned-accounts` and `{prefix}unauthenticated-requests`. It reads the account
    /// on every run, as deployed: it runs once per account every five minutes, long past the
    /// accounts' 10 s cache.
    pub fn authorizer_services(
        &self,
        clock: Arc<ManualClock>,
        prefix: &str,
    ) -> teleapi_api::authorizer::AuthorizerServices {
        teleapi_api::authorizer::AuthorizerServices {
            accounts: self.accounts.clone(),
            account_cache: Default::default(),
            clock,
            account_cache_ttl: Duration::ZERO,
            keys: teleapi_api::authorizer::UsageKeys {
                unauthenticated: format!("{prefix}unauthenticated-requests"),
                unassigned: format!("{prefix}unassigned-accounts"),
            },
            pool: self.key_pool.clone(),
            pool_size: Default::default(),
        }
    }

    /// The reconciler's services on this backend.
    pub fn reconciler_services(
        &self,
        clock: Arc<ManualClock>,
    ) -> teleapi_pipeline::reconcile::ReconcilerServices {
        teleapi_pipeline::reconcile::ReconcilerServices {
            accounts: self.accounts.clone(),
            calls: self.calls.clone(),
            workers: self.workers.clone(),
            commands: self.commands.clone(),
            callbacks: self.callbacks.clone(),
            call_log: self.call_log.clone(),
            recordings: self.recordings.clone(),
            conferences: self.conferences.clone(),
            events: self.events.clone(),
            clock,
            write_budget: Duration::from_secs(5),
            intent_retention: Duration::from_secs(3600),
        }
    }

    /// The call-events function's services on this backend.
    pub fn event_services(
        &self,
        clock: Arc<ManualClock>,
    ) -> teleapi_pipeline::call_events::EventServices {
        teleapi_pipeline::call_events::EventServices {
            accounts: self.accounts.clone(),
            account_cache: Default::default(),
            calls: self.calls.clone(),
            workers: self.workers.clone(),
            conferences: self.conferences.clone(),
            recordings: self.recordings.clone(),
            queues: self.queues.clone(),
            call_log: self.call_log.clone(),
            commands: self.commands.clone(),
            callbacks: self.callbacks.clone(),
            dead_letters: self.event_dead_letters.clone(),
            clock,
            config: teleapi_pipeline::call_events::EventConfig::default(),
        }
    }

    /// The callback function's services on this backend, calling applications through
    /// `webhooks`, retrying at once (no backoff wait) so that tests run fast.
    pub fn callback_services(
        &self,
        clock: Arc<ManualClock>,
        webhooks: Arc<dyn teleapi_ports::WebhookClient>,
    ) -> teleapi_pipeline::callbacks::CallbackServices {
        teleapi_pipeline::callbacks::CallbackServices {
            accounts: self.accounts.clone(),
            account_cache: Default::default(),
            calls: self.calls.clone(),
            call_log: self.call_log.clone(),
            commands: self.commands.clone(),
            callbacks: self.callbacks.clone(),
            dead_letters: self.callback_dead_letters.clone(),
            webhooks,
            clock,
            config: teleapi_pipeline::callbacks::CallbackConfig {
                retry_base: Duration::ZERO,
                ..teleapi_pipeline::callbacks::CallbackConfig::default()
            },
        }
    }

    /// A media worker's own commands queue, by URL (created on moto; any name in memory).
    pub async fn worker_queue(&self, name: &str) -> String {
        match &self.aws {
            Some(aws) => create_queue(
                &aws.sqs,
                &format!("{}-{name}", aws.tables.calls),
                true,
                Duration::from_secs(2),
                None,
            )
            .await
            .expect("the worker queue is created on moto"),
            None => format!("{name}.fifo"),
        }
    }

    /// Every message on `queue`, received and deleted, as text.
    pub async fn drain(queue: &dyn Queue) -> Vec<String> {
        let messages = Self::drain_messages(queue).await;
        messages.into_iter().map(|m| m.body).collect()
    }

    /// Every message on `queue`, received and deleted, in order.
    pub async fn drain_messages(queue: &dyn Queue) -> Vec<ReceivedMessage> {
        let mut out = Vec::new();
        loop {
            let batch = queue
                .receive(None, 10, Duration::from_millis(200))
                .await
                .expect("receive works");
            if batch.is_empty() {
                return out;
            }
            for message in batch {
                queue
                    .delete(None, &message.receipt)
                    .await
                    .expect("delete works");
                out.push(message);
            }
        }
    }

    /// `drain_commands`, counted by IntentSid: what the worker received of each intent.
    pub async fn commands_by_intent(&self) -> std::collections::BTreeMap<String, u64> {
        let mut out = std::collections::BTreeMap::new();
        for command in self.drain_commands().await {
            let intent = command["intent_sid"]
                .as_str()
                .expect("commands name their intent");
            *out.entry(intent.to_owned()).or_default() += 1;
        }
        out
    }

    /// The URL of the default commands queue, as a worker would name its own.
    pub fn commands_queue_url(&self) -> String {
        self.aws.as_ref().map_or_else(
            || "commands.fifo".to_owned(),
            |aws| aws.commands_url.clone(),
        )
    }

    /// Every message on the default commands queue, received and deleted, as JSON.
    pub async fn drain_commands(&self) -> Vec<serde_json::Value> {
        Self::drain(self.commands.as_ref())
            .await
            .iter()
            .map(|body| serde_json::from_str(body).expect("commands are JSON"))
            .collect()
    }
}

pub const BASE: &str = "/call/2012-04-24";

/// An account, stored.
pub async fn account(backend: &Backend, parent: Option<&Account>) -> Account {
    let account = Account::open("Test", parent.map(|p| p.sid.clone()), Timestamp::now());
    backend
        .accounts
        .insert_account(&account)
        .await
        .expect("account stored");
    account
}

/// An inbound call of `account` in `status`, created at `now`, not stored.
pub fn new_call(account: &AccountSid, status: CallStatus, now: Timestamp) -> Call {
    let instructions = Instructions {
        url: Some(WebhookUrl::parse("https://app.example.com/rcml", Default::default()).unwrap()),
        ..Instructions::default()
    };
    Call::inbound(
        account.clone(),
        "+15551230001".into(),
        "+15551230002".into(),
        instructions,
        status,
        now,
    )
}

/// An inbound call of `account` in `status`, stored.
pub async fn call(
    backend: &Backend,
    account: &AccountSid,
    status: CallStatus,
    now: Timestamp,
) -> Call {
    let call = new_call(account, status, now);
    backend.calls.insert_call(&call).await.expect("call stored");
    call
}

/// The API key the authorizer names for `account`'s requests (its answer's
/// `usageIdentifierKey`).
pub async fn usage_key(
    authorizer: &teleapi_api::authorizer::AuthorizerServices,
    account: &Account,
) -> String {
    let event = runtime::authorizer_event("/x", &basic_auth(account));
    let answer = teleapi_api::authorizer::authorize(authorizer, &event).await;
    answer["usageIdentifierKey"].as_str().unwrap().to_owned()
}

pub fn basic_auth(account: &Account) -> String {
    let pair = format!("{}:{}", account.sid, account.auth_token.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A GET request (path with its query string) as API Gateway would deliver it.
pub fn get_request(path_and_query: &str, auth: Option<&str>) -> Request {
    let mut request = Request::new(Body::Empty);
    *request.uri_mut() = path_and_query.parse().expect("a test path is a URI");
    if let Some(auth) = auth {
        request
            .headers_mut()
            .insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
    }
    request
}

/// A form POST (a modification or a creation) as API Gateway would deliver it.
pub fn post_request(path: &str, auth: Option<&str>, body: &str) -> Request {
    modify_request(path, auth, body)
}

/// A modification request as API Gateway would deliver it.
pub fn modify_request(path: &str, auth: Option<&str>, body: &str) -> Request {
    let mut request = Request::new(if body.is_empty() {
        Body::Empty
    } else {
        Body::Text(body.to_owned())
    });
    *request.method_mut() = Method::POST;
    *request.uri_mut() = path.parse().expect("a test path is a URI");
    let headers = request.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    if let Some(auth) = auth {
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
    }
    request
}

pub fn call_path(account: &AccountSid, call: &str) -> String {
    format!("{BASE}/Accounts/{account}/Calls/{call}.json")
}

/// A response's body as text.
pub fn body_text(response: &lambda_http::Response<Body>) -> String {
    match response.body() {
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    }
}

pub fn body_json(response: &lambda_http::Response<Body>) -> serde_json::Value {
    serde_json::from_str(&body_text(response)).unwrap_or(serde_json::Value::Null)
}

/// An account on a backend, with the services the API runs on and a clock the test moves.
pub struct World {
    pub backend: Backend,
    pub services: Services,
    pub clock: Arc<ManualClock>,
    pub account: Account,
}

impl World {
    pub async fn new(backend: Backend) -> Self {
        Self::with_clock(backend, ManualClock::starting_now()).await
    }

    /// A world whose clock starts at a chosen instant.
    pub async fn with_clock(backend: Backend, clock: Arc<ManualClock>) -> Self {
        let services = backend.services(clock.clone());
        let account = account(&backend, None).await;
        Self {
            backend,
            services,
            clock,
            account,
        }
    }

    pub fn auth(&self) -> String {
        basic_auth(&self.account)
    }

    /// An inbound call of this world's account, stored.
    pub async fn call(&self, status: CallStatus) -> Call {
        call(&self.backend, &self.account.sid, status, self.clock.now()).await
    }

    pub async fn send(&self, request: Request) -> lambda_http::Response<Body> {
        teleapi_api::handle(&self.services, request, None).await
    }

    /// A running conference of this world's account with `call` in it, as its worker reports
    /// them (created, joined, started) through the call-events function.
    pub async fn conference_with(&self, call: &Call) -> teleapi_domain::conference::Conference {
        let sid = teleapi_domain::ConferenceSid::generate();
        let events = self.backend.event_services(self.clock.clone());
        let at = self.clock.now().millis();
        for (seq, kind) in [
            serde_json::json!({"type": "conference.created", "account_sid": self.account.sid, "friendly_name": format!("room-{}", &sid.as_str()[2..8]), "command_queue_url": self.backend.commands_queue_url()}),
            serde_json::json!({"type": "participant.joined", "participant": {"call_sid": call.sid, "muted": false, "hold": false, "coaching": false, "start_conference_on_enter": true, "end_conference_on_exit": false}}),
            serde_json::json!({"type": "conference.started"}),
        ]
        .into_iter()
        .enumerate()
        {
            let mut event = serde_json::json!({"version": 1, "conference_sid": sid, "timestamp": at, "seq": seq + 1});
            event.as_object_mut().unwrap().extend(kind.as_object().unwrap().clone());
            teleapi_pipeline::call_events::handle_event(&events, &event.to_string())
                .await
                .expect("a conference event applies");
        }
        self.backend
            .conferences
            .conference(&sid)
            .await
            .unwrap()
            .expect("the conference is recorded")
    }

    pub async fn modify(&self, call: &Call, body: &str) -> lambda_http::Response<Body> {
        let path = call_path(&self.account.sid, call.sid.as_str());
        self.send(modify_request(&path, Some(&self.auth()), body))
            .await
    }

    /// `GET` of a path relative to this account (`/Calls.json?PageSize=2`), or of an absolute
    /// path as the API hands them out (`next_page_uri`).
    pub async fn get(&self, path: &str) -> lambda_http::Response<Body> {
        let path = if path.starts_with(BASE) {
            path.to_owned()
        } else {
            format!("{BASE}/Accounts/{}{path}", self.account.sid)
        };
        self.send(get_request(&path, Some(&self.auth()))).await
    }

    /// `DELETE` of a path relative to this account.
    pub async fn delete(&self, path: &str) -> lambda_http::Response<Body> {
        let path = format!("{BASE}/Accounts/{}{path}", self.account.sid);
        let mut request = get_request(&path, Some(&self.auth()));
        *request.method_mut() = Method::DELETE;
        self.send(request).await
    }

    /// `POST` of a form to a path relative to this account.
    pub async fn post(&self, path: &str, body: &str) -> lambda_http::Response<Body> {
        let path = format!("{BASE}/Accounts/{}{path}", self.account.sid);
        self.send(post_request(&path, Some(&self.auth()), body))
            .await
    }

    pub async fn stored(&self, call: &Call) -> Call {
        self.backend.calls.call(&call.sid).await.unwrap().unwrap()
    }
}

/// Asserts an error answer: status, code, a phrase of the message, and Twilio's error shape.
#[track_caller]
pub fn assert_error(
    response: &lambda_http::Response<Body>,
    status: u16,
    code: u64,
    mentions: &str,
) {
    let body = body_text(response);
    assert_eq!(response.status().as_u16(), status, "{body}");
    let json = body_json(response);
    assert_eq!(json["code"].as_u64(), Some(code), "{body}");
    assert!(
        body.contains(mentions),
        "{body} should mention {mentions:?}"
    );
    assert_eq!(json["status"].as_u64(), Some(u64::from(status)));
    assert!(
        json["more_info"]
            .as_str()
            .unwrap()
            .ends_with(&code.to_string())
    );
}

/// Runs each named `async fn case(fixture)` twice, as `memory::case` and `moto::case`: the
/// fixture is `$fixture(backend).await` with `backend` the memory twins or moto. With no fixture
/// named, it is a `World`.
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        $crate::on_both_backends!(with $crate::World::new; $($case),*);
    };
    (with $fixture:path; $($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($fixture($crate::Backend::memory()).await).await;
                }
            )*
        }
        mod moto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($fixture($crate::Backend::moto().await).await).await;
                }
            )*
        }
    };
}
