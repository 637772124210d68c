//! The system's parts, wired once: in memory (the default), or on DynamoDB and SQS at an
//! endpoint (an emulator such as moto, or AWS itself), creating tables and queues if missing.

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region};
use teleapi_adapters::dynamodb::{DynamoStore, TableNames, schema};
use teleapi_adapters::http::HttpWebhooks;
use teleapi_adapters::media::FileMedia;
use teleapi_adapters::memory::{MemoryQueue, MemoryStore};
use teleapi_adapters::sqs::{SqsQueue, create_queue};
use teleapi_api::rate_limit::RateLimiter;
use teleapi_api::{ApiConfig, Services};
use teleapi_domain::{Account, AccountSid, AddressPolicy, AuthToken, RateLimit, Timestamp};
use teleapi_pipeline::call_events::{EventConfig, EventServices};
use teleapi_pipeline::callbacks::{CallbackConfig, CallbackServices};
use teleapi_ports::{
    AccountStore, CallLogStore, CallQueueStore, CallStore, Clock, ConferenceStore, InsertError,
    MediaStore, NumberStore, Queue, RecordingStore, SystemClock, WorkerStore,
};

use crate::simulator::{Simulator, SimulatorConfig};

/// Receives before a message moves to its dead-letter queue, as in the deployed redrive policies.
pub const MAX_RECEIVES: u32 = 5;

/// Where the stores and queues live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    Memory,
    /// DynamoDB and SQS through the standard AWS configuration, at this endpoint if given.
    Aws {
        endpoint: Option<String>,
        /// Prefix of the table and queue names.
        prefix: String,
    },
}

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub backing: Backing,
    pub dev: Option<(AccountSid, AuthToken)>,
    pub simulator: SimulatorConfig,
    /// How long intents, idempotency records and queued messages are kept (their TTL, and the
    /// memory queues' retention): a local stack keeps a bounded history however long it runs.
    pub retention: Duration,
    /// The request rate limit of accounts without one of their own, enforced in process as API
    /// Gateway's usage plans enforce it when deployed.
    pub rate_limit: RateLimit,
    /// How long a worker's heartbeat holds it, and how often the reconciler runs (30 s and
    /// 15 s; shorter in tests of a worker's death).
    pub worker_lease: Duration,
    pub reconcile_every: Duration,
    /// Where the API is reached (`http://127.0.0.1:8080`), for the absolute URLs of callbacks
    /// (`RecordingUrl`).
    pub public_url: String,
    /// The SIP/RTP worker's options, to run it in place of the simulated worker.
    pub sip: Option<teleapi_media::SipOptions>,
}

/// A local stack's default retention: a day of history is plenty to look at.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            backing: Backing::Memory,
            dev: None,
            simulator: SimulatorConfig::default(),
            retention: DEFAULT_RETENTION,
            rate_limit: RateLimit::DEFAULT,
            worker_lease: teleapi_domain::worker::LEASE,
            reconcile_every: Duration::from_secs(15),
            public_url: format!("http://{}", crate::DEFAULT_LISTEN),
            sip: None,
        }
    }
}

/// The running system's parts, shared by every request and loop.
#[derive(Clone)]
pub struct Stack {
    /// The API functions' services.
    pub services: Services,
    /// The call-events function's services.
    pub events: EventServices,
    /// The callback function's services.
    pub callbacks: CallbackServices,
    /// The accounts and calls, for the dev routes.
    pub accounts: Arc<dyn AccountStore>,
    pub calls: Arc<dyn CallStore>,
    /// The default commands queue (what the simulated media worker reads).
    pub commands: Arc<dyn Queue>,
    /// The events queue (what media workers write).
    pub event_queue: Arc<dyn Queue>,
    pub simulator: Simulator,
    pub dev_account: Account,
    /// What the banner says the stores are.
    pub description: String,
    /// With DynamoDB and SQS: the environment a function needs to share them (for
    /// `cargo lambda watch`).
    pub function_env: Vec<(String, String)>,
    /// How often the reconciler runs.
    pub reconcile_every: Duration,
    /// What the console is told (`GET /dev/feed`).
    pub feed: crate::console::Feed,
}

/// The queues of a stack.
struct Queues {
    commands: Arc<dyn Queue>,
    /// Each simulated worker's own commands queue, in `commands`.
    worker_urls: Vec<String>,
    /// Queue URLs by environment variable, for functions sharing these queues.
    urls: Vec<(String, String)>,
    events: Arc<dyn Queue>,
    events_dlq: Arc<dyn Queue>,
    callbacks: Arc<dyn Queue>,
    callbacks_dlq: Arc<dyn Queue>,
}

fn memory_queues(retention: Duration, workers: usize) -> Queues {
    let queues = MemoryQueue::new("commands.fifo").with_retention(retention);
    Queues {
        commands: Arc::new(queues.queue("commands.fifo")),
        worker_urls: (1..=workers).map(|n| format!("worker-{n}.fifo")).collect(),
        events: Arc::new(
            queues
                .queue("events.fifo")
                .with_redrive(MAX_RECEIVES, "events-dlq.fifo"),
        ),
        events_dlq: Arc::new(queues.queue("events-dlq.fifo")),
        callbacks: Arc::new(
            queues
                .queue("callbacks")
                .with_redrive(MAX_RECEIVES, "callbacks-dlq"),
        ),
        callbacks_dlq: Arc::new(queues.queue("callbacks-dlq")),
        urls: Vec::new(),
    }
}

async fn sqs_queues(
    sqs: &aws_sdk_sqs::Client,
    prefix: &str,
    workers: usize,
) -> Result<Queues, String> {
    let visibility = Duration::from_secs(30);
    let create = |name: String, fifo: bool, dlq: Option<String>| {
        let sqs = sqs.clone();
        async move {
            create_queue(
                &sqs,
                &name,
                fifo,
                visibility,
                dlq.as_deref().map(|d| (d, MAX_RECEIVES)),
            )
            .await
            .map_err(|e| format!("creating queue {name}: {e}"))
        }
    };
    let queue = |url: &str| -> Arc<dyn Queue> { Arc::new(SqsQueue::new(sqs.clone(), url)) };
    let commands_url = create(format!("{prefix}-commands"), true, None).await?;
    let mut worker_urls = Vec::new();
    for n in 1..=workers {
        worker_urls.push(create(format!("{prefix}-worker-{n}"), true, None).await?);
    }
    let events_dlq = create(format!("{prefix}-events-dlq"), true, None).await?;
    let events = create(format!("{prefix}-events"), true, Some(events_dlq.clone())).await?;
    let callbacks_dlq = create(format!("{prefix}-callbacks-dlq"), false, None).await?;
    let callbacks = create(
        format!("{prefix}-callbacks"),
        false,
        Some(callbacks_dlq.clone()),
    )
    .await?;
    let urls = [
        ("TELEAPI_COMMANDS_QUEUE_URL", &commands_url),
        ("TELEAPI_EVENTS_QUEUE_URL", &events),
        ("TELEAPI_EVENTS_DLQ_URL", &events_dlq),
        ("TELEAPI_CALLBACKS_QUEUE_URL", &callbacks),
        ("TELEAPI_CALLBACKS_DLQ_URL", &callbacks_dlq),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.clone()))
    .collect();
    Ok(Queues {
        urls,
        worker_urls,
        commands: queue(&commands_url),
        events: queue(&events),
        events_dlq: queue(&events_dlq),
        callbacks: queue(&callbacks),
        callbacks_dlq: queue(&callbacks_dlq),
    })
}

/// SDK settings for an explicit endpoint: the standard environment, with a region and dummy
/// credentials filled in when it has none (emulators accept any).
async fn aws_config(endpoint: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(teleapi_runtime::config::https_client());
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
        if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
            loader = loader.region(Region::new("us-east-1"));
        }
        if std::env::var("AWS_ACCESS_KEY_ID").is_err() {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "teleapi-local",
                "teleapi-local",
                None,
                None,
                "teleapi-local",
            ));
        }
    }
    loader.load().await
}

/// Every store port, on one backing.
trait Stores:
    AccountStore
    + CallStore
    + WorkerStore
    + ConferenceStore
    + RecordingStore
    + CallLogStore
    + NumberStore
    + CallQueueStore
{
}

impl<
    T: AccountStore
        + CallStore
        + WorkerStore
        + ConferenceStore
        + RecordingStore
        + CallLogStore
        + NumberStore
        + CallQueueStore,
> Stores for T
{
}

impl Stack {
    /// The stack, with the local address policy (webhooks on loopback allowed, so that an app
    /// on this machine can be called).
    pub async fn build(mut options: StackOptions) -> Result<Self, String> {
        let mut function_env = Vec::new();
        let workers = options.simulator.workers.max(1);
        let (store, queues, description): (Arc<dyn Stores>, Queues, String) = match &options.backing
        {
            Backing::Memory => {
                let store = MemoryStore::new();
                (
                    Arc::new(store),
                    memory_queues(options.retention, workers),
                    "in-memory stores and queues".into(),
                )
            }
            Backing::Aws { endpoint, prefix } => {
                let config = aws_config(endpoint.as_deref()).await;
                let dynamodb = aws_sdk_dynamodb::Client::new(&config);
                let sqs = aws_sdk_sqs::Client::new(&config);
                let tables =
                    TableNames::from_env().unwrap_or_else(|_| TableNames::with_prefix(prefix));
                schema::create_tables(&dynamodb, &tables)
                    .await
                    .map_err(|e| format!("creating tables: {e}"))?;
                for (name, value) in tables.env() {
                    function_env.push((name.to_owned(), value.to_owned()));
                }
                // Functions run beside this process reach its API here; recordings' media are
                // this process's files, which functions do not serve (the bucket is named for
                // their configuration only).
                function_env.push((
                    "TELEAPI_RECORDINGS_BUCKET".into(),
                    format!("{prefix}-recordings"),
                ));
                function_env.push(("TELEAPI_PUBLIC_URL".into(), options.public_url.clone()));
                if let Some(endpoint) = endpoint {
                    function_env.push(("AWS_ENDPOINT_URL".into(), endpoint.clone()));
                    // What this process filled in for the emulator, if the environment had not.
                    for (name, fallback) in [
                        ("AWS_REGION", "us-east-1"),
                        ("AWS_ACCESS_KEY_ID", "teleapi-local"),
                        ("AWS_SECRET_ACCESS_KEY", "teleapi-local"),
                    ] {
                        if std::env::var(name).is_err() {
                            function_env.push((name.into(), fallback.into()));
                        }
                    }
                }
                function_env.push(("TELEAPI_ALLOW_LOOPBACK_WEBHOOKS".into(), "true".into()));
                let store = Arc::new(DynamoStore::new(dynamodb, tables));
                let where_ = endpoint.as_deref().unwrap_or("the AWS environment");
                (
                    store,
                    sqs_queues(&sqs, prefix, workers).await?,
                    format!("DynamoDB and SQS at {where_}, names prefixed {prefix}"),
                )
            }
        };
        let accounts: Arc<dyn AccountStore> = store.clone();
        let calls: Arc<dyn CallStore> = store.clone();
        let workers: Arc<dyn WorkerStore> = store.clone();
        let conferences: Arc<dyn ConferenceStore> = store.clone();
        let call_log: Arc<dyn CallLogStore> = store.clone();
        let numbers: Arc<dyn NumberStore> = store.clone();
        let call_queues: Arc<dyn CallQueueStore> = store.clone();
        let recordings: Arc<dyn RecordingStore> = store;
        let recordings_dir = options.simulator.recordings_dir.clone();
        std::fs::create_dir_all(&recordings_dir)
            .map_err(|e| format!("creating {}: {e}", recordings_dir.display()))?;
        let recordings_dir = std::fs::canonicalize(&recordings_dir)
            .map_err(|e| format!("{}: {e}", recordings_dir.display()))?;
        options.simulator.recordings_dir = recordings_dir.clone();
        let media: Arc<dyn MediaStore> = Arc::new(FileMedia::new(recordings_dir));

        let mut dev_account = Account::open("Dev account", None, Timestamp::now());
        if let Some((sid, token)) = options.dev.clone() {
            dev_account.sid = sid;
            dev_account.auth_token = token;
        }
        match accounts.insert_account(&dev_account).await {
            Ok(()) => {}
            Err(InsertError::AlreadyExists) => {
                let stored = accounts
                    .account(&dev_account.sid)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("the dev account vanished")?;
                if !stored.auth_token.matches(dev_account.auth_token.expose()) {
                    return Err(format!(
                        "account {} already exists with another AuthToken",
                        dev_account.sid
                    ));
                }
                dev_account = stored;
            }
            Err(err) => return Err(format!("storing the dev account: {err}")),
        }

        let local = AddressPolicy {
            allow_loopback: true,
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let events = EventServices {
            accounts: accounts.clone(),
            account_cache: Default::default(),
            calls: calls.clone(),
            workers,
            conferences: conferences.clone(),
            recordings: recordings.clone(),
            queues: call_queues.clone(),
            call_log: call_log.clone(),
            commands: queues.commands.clone(),
            callbacks: queues.callbacks.clone(),
            dead_letters: queues.events_dlq.clone(),
            clock: clock.clone(),
            config: EventConfig {
                intent_retention: options.retention,
                worker_lease: options.worker_lease,
                public_url: options.public_url.clone(),
                ..EventConfig::default()
            },
        };
        let callbacks = CallbackServices {
            accounts: accounts.clone(),
            account_cache: Default::default(),
            calls: calls.clone(),
            call_log: call_log.clone(),
            commands: queues.commands.clone(),
            callbacks: queues.callbacks.clone(),
            dead_letters: queues.callbacks_dlq.clone(),
            webhooks: Arc::new(HttpWebhooks::new(local)),
            clock: clock.clone(),
            config: CallbackConfig {
                intent_retention: options.retention,
                ..CallbackConfig::default()
            },
        };
        let services = Services {
            accounts: accounts.clone(),
            calls: calls.clone(),
            conferences,
            recordings,
            numbers: numbers.clone(),
            queues: call_queues.clone(),
            call_log,
            media: media.clone(),
            commands: queues.commands.clone(),
            clock,
            config: ApiConfig {
                address_policy: local,
                intent_retention: options.retention,
                idempotency_lifetime: options
                    .retention
                    .min(ApiConfig::default().idempotency_lifetime),
                ..ApiConfig::default()
            },
            account_cache: Default::default(),
            rate_limiter: Some(Arc::new(RateLimiter::new(options.rate_limit))),
        };
        function_env.extend(queues.urls.iter().cloned());
        let worker_urls = queues.worker_urls.clone();
        // `--sip`: the workers' legs are real phones (a SIP/RTP worker each, on consecutive
        // ports, sharing out the RTP ports), and calls to the accounts' numbers are offered to
        // the worker they reach.
        let workers = options.simulator.workers.max(1);
        let mut sip = Vec::new();
        if let Some(first) = &options.sip {
            let of = u16::try_from(workers).map_err(|_| "too many workers".to_owned())?;
            for n in 0..of {
                let mine = first.for_worker(n, of)?;
                // Its recordings go where the API serves them from.
                sip.push(teleapi_media::start(&mine, Some(media.clone())).await?);
            }
        }
        let real = sip
            .iter()
            .map(|(media, _)| crate::simulator::RealMedia {
                media: Arc::new(media.clone()),
                // With others, it reaches their agents, and they its.
                bridge_address: (workers > 1).then(|| media.address()),
            })
            .collect();
        let description = match &options.sip {
            Some(first) if workers > 1 => format!(
                "{description}; {workers} SIP/RTP workers: SIP on udp {} and the {} ports after it, RTP on ports {}-{} shared out",
                first.sip,
                workers - 1,
                first.rtp_ports.start(),
                first.rtp_ports.end()
            ),
            Some(sip) => format!(
                "{description}; SIP/RTP worker: SIP on udp {}, RTP on ports {}-{}",
                sip.sip,
                sip.rtp_ports.start(),
                sip.rtp_ports.end()
            ),
            None => description,
        };
        options.simulator.public_url = options.public_url.clone();
        let simulator = Simulator::on_media(
            queues.commands.clone(),
            |n| worker_urls[n - 1].clone(),
            queues.events.clone(),
            options.simulator,
            Some(teleapi_worker::Stores {
                accounts: accounts.clone(),
                queues: call_queues.clone(),
            }),
            real,
        );
        for ((media, offered), worker) in sip.into_iter().zip(simulator.workers()) {
            let directory = teleapi_media::Directory {
                numbers: numbers.clone(),
                accounts: accounts.clone(),
            };
            tokio::spawn(teleapi_media::answer_offers(
                offered,
                media,
                directory,
                worker.handle,
            ));
        }
        Ok(Self {
            services,
            events,
            callbacks,
            accounts,
            calls,
            commands: queues.commands,
            event_queue: queues.events,
            simulator,
            dev_account,
            description,
            function_env,
            feed: crate::console::Feed::default(),
            reconcile_every: options.reconcile_every,
        })
    }

    /// In memory, with the default simulator: what the tests of the HTTP surface use.
    pub async fn in_memory(dev: Option<(AccountSid, AuthToken)>) -> Self {
        Self::build(StackOptions {
            dev,
            ..StackOptions::default()
        })
        .await
        .expect("an in-memory stack always builds")
    }
}
