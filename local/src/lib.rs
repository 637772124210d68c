//! `teleapi-local`: every function's logic in one process, on 127.0.0.1, with in-memory stores
//! and queues. The API routes are served by exactly the code the Lambda functions run
//! (`teleapi::api::handle`); the `/dev/…` routes exist only here, to try the API without AWS or
//! media workers.

mod dev;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lambda_http::Body;
use teleapi::adapters::http::HttpWebhooks;
use teleapi::adapters::memory::{MemoryQueue, MemoryStore};
use teleapi::api::error::ApiError;
use teleapi::api::representation::Format;
use teleapi::api::{self, ApiConfig, Services};
use teleapi::call_events::{self, EventConfig, EventServices};
use teleapi::callbacks::{CallbackConfig, CallbackServices};
use teleapi::consumer::poll_once;
use teleapi::domain::{Account, AccountSid, AddressPolicy, AuthToken, Timestamp};
use teleapi::ports::{AccountStore, Clock, SystemClock};
use tokio::net::TcpListener;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The name of the default commands queue in memory.
pub const COMMANDS_QUEUE: &str = "commands.fifo";

const USAGE: &str = "\
Usage: teleapi-local [--listen ADDR]

Runs the Calls API on this machine with in-memory stores and queues.

Options:
  --listen ADDR   address to serve on (default 127.0.0.1:8080; port 0 picks a free port)
  -h, --help      show this help

Environment:
  TELEAPI_DEV_ACCOUNT_SID, TELEAPI_DEV_AUTH_TOKEN   credentials of the dev account (both or
                                                   neither; generated when unset)
  RUST_LOG                                         log filter (default info)";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub listen: SocketAddr,
}

/// Why the command line did not give options to run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// `--help`: print the usage and succeed.
    Help,
    /// A mistake, described, followed by the usage.
    Invalid(String),
}

impl ArgsError {
    pub fn usage() -> &'static str {
        USAGE
    }
}

impl Options {
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Self, ArgsError> {
        let invalid = |message: String| ArgsError::Invalid(format!("{message}\n\n{USAGE}"));
        let mut listen = DEFAULT_LISTEN.to_owned();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--listen" => {
                    listen = args
                        .next()
                        .ok_or_else(|| invalid("--listen needs an address".into()))?;
                }
                "-h" | "--help" => return Err(ArgsError::Help),
                other => return Err(invalid(format!("unknown argument {other:?}"))),
            }
        }
        let listen = listen.parse().map_err(|_| {
            invalid(format!(
                "--listen: {listen:?} is not an address like 127.0.0.1:8080"
            ))
        })?;
        Ok(Self { listen })
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
    pub store: MemoryStore,
    /// The default commands queue (what media workers would read).
    pub commands: MemoryQueue,
    /// The events queue (what media workers would write).
    pub event_queue: MemoryQueue,
    pub dev_account: Account,
}

/// Queue names of the in-memory stack.
pub const EVENTS_QUEUE: &str = "events.fifo";
pub const EVENTS_DLQ: &str = "events-dlq.fifo";
pub const CALLBACKS_QUEUE: &str = "callbacks";
pub const CALLBACKS_DLQ: &str = "callbacks-dlq";
/// Receives before a message moves to its dead-letter queue, as in the deployed redrive policies.
pub const MAX_RECEIVES: u32 = 5;

/// The dev account's credentials from the environment, if set.
pub fn dev_credentials_from_env() -> Result<Option<(AccountSid, AuthToken)>, String> {
    let sid = std::env::var("TELEAPI_DEV_ACCOUNT_SID").ok();
    let token = std::env::var("TELEAPI_DEV_AUTH_TOKEN").ok();
    match (sid, token) {
        (None, None) => Ok(None),
        (Some(sid), Some(token)) if !token.is_empty() => {
            let sid = sid
                .parse()
                .map_err(|e| format!("TELEAPI_DEV_ACCOUNT_SID: {e}"))?;
            Ok(Some((sid, AuthToken::new(token))))
        }
        _ => Err("set both TELEAPI_DEV_ACCOUNT_SID and TELEAPI_DEV_AUTH_TOKEN, or neither".into()),
    }
}

impl Stack {
    /// In-memory stores and queues, a dev account, and the local address policy (webhooks on
    /// loopback allowed, so that an app on this machine can be called).
    pub async fn in_memory(dev: Option<(AccountSid, AuthToken)>) -> Self {
        let store = MemoryStore::new();
        let queues = MemoryQueue::new(COMMANDS_QUEUE);
        let commands = queues.queue(COMMANDS_QUEUE);
        let event_queue = queues
            .queue(EVENTS_QUEUE)
            .with_redrive(MAX_RECEIVES, EVENTS_DLQ);
        let callback_queue = queues
            .queue(CALLBACKS_QUEUE)
            .with_redrive(MAX_RECEIVES, CALLBACKS_DLQ);
        let mut dev_account = Account::open("Dev account", None, Timestamp::now());
        if let Some((sid, token)) = dev {
            dev_account.sid = sid;
            dev_account.auth_token = token;
        }
        store
            .insert_account(&dev_account)
            .await
            .expect("an empty store takes any account");
        let local = AddressPolicy {
            allow_loopback: true,
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let api = ApiConfig {
            address_policy: local,
            ..ApiConfig::default()
        };
        let events = EventServices {
            calls: Arc::new(store.clone()),
            commands: Arc::new(commands.clone()),
            callbacks: Arc::new(callback_queue.clone()),
            dead_letters: Arc::new(queues.queue(EVENTS_DLQ)),
            clock: clock.clone(),
            config: EventConfig::default(),
        };
        let callbacks = CallbackServices {
            accounts: Arc::new(store.clone()),
            calls: Arc::new(store.clone()),
            commands: Arc::new(commands.clone()),
            callbacks: Arc::new(callback_queue),
            dead_letters: Arc::new(queues.queue(CALLBACKS_DLQ)),
            webhooks: Arc::new(HttpWebhooks::new(local)),
            clock: clock.clone(),
            config: CallbackConfig::default(),
        };
        let services = Services {
            accounts: Arc::new(store.clone()),
            calls: Arc::new(store.clone()),
            commands: Arc::new(commands.clone()),
            clock,
            config: api,
        };
        Self {
            services,
            events,
            callbacks,
            store,
            commands,
            event_queue,
            dev_account,
        }
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/dev/Accounts", post(dev::create_account))
            .route("/dev/IncomingCalls", post(dev::create_incoming_call))
            .route("/dev/Commands", get(dev::list_commands))
            .route("/dev/Events", post(dev::post_event))
            .fallback(serve_api)
            .with_state(self)
    }
}

/// Hands a request to the same code the Lambda functions run.
async fn serve_api(State(stack): State<Stack>, request: Request) -> Response {
    let limit = stack.services.config.max_body_bytes;
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let format = Format::choose(parts.uri.path().contains(".json"), &parts.headers);
            return into_axum(api::respond_error(
                format,
                &ApiError::PayloadTooLarge { limit },
            ));
        }
    };
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        Body::Binary(bytes.to_vec())
    };
    let request = lambda_http::http::Request::from_parts(parts, body);
    into_axum(api::handle(&stack.services, request, None).await)
}

fn into_axum(response: lambda_http::Response<Body>) -> Response {
    let (parts, body) = response.into_parts();
    let body = match body {
        Body::Text(text) => axum::body::Body::from(text),
        Body::Binary(bytes) => axum::body::Body::from(bytes),
        _ => axum::body::Body::empty(),
    };
    Response::from_parts(parts, body).into_response()
}

/// Settles intents left pending, as the scheduled function does when deployed.
async fn reconcile_forever(services: Services) {
    let mut ticks = tokio::time::interval(Duration::from_secs(15));
    loop {
        ticks.tick().await;
        let now = services.clock.now();
        if let Err(err) = teleapi::reconcile::reconcile_pending(
            services.calls.as_ref(),
            services.commands.as_ref(),
            now,
        )
        .await
        {
            tracing::warn!(error = %err, "reconciler run failed");
        }
    }
}

/// Applies worker events as they arrive, as the call-events function does when deployed.
async fn apply_events_forever(events: EventServices, queue: MemoryQueue) {
    loop {
        let polled = poll_once(&queue, Duration::from_secs(1), |m| {
            let events = events.clone();
            async move { call_events::consume(&events, &m).await }
        })
        .await;
        if let Err(err) = polled {
            tracing::warn!(error = %err, "events queue unavailable");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Delivers callback jobs as they arrive, as the callback function does when deployed.
async fn deliver_callbacks_forever(callbacks: CallbackServices) {
    let queue = callbacks.callbacks.clone();
    loop {
        let polled = poll_once(queue.as_ref(), Duration::from_secs(1), |m| {
            let callbacks = callbacks.clone();
            async move { teleapi::callbacks::consume(&callbacks, &m).await }
        })
        .await;
        if let Err(err) = polled {
            tracing::warn!(error = %err, "callbacks queue unavailable");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Serves `stack` on `listener` until `shutdown` completes, with the event, callback and
/// reconciler loops running beside it.
pub async fn serve(
    listener: TcpListener,
    stack: Stack,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let loops = [
        tokio::spawn(reconcile_forever(stack.services.clone())),
        tokio::spawn(apply_events_forever(
            stack.events.clone(),
            stack.event_queue.clone(),
        )),
        tokio::spawn(deliver_callbacks_forever(stack.callbacks.clone())),
    ];
    let served = axum::serve(listener, stack.router())
        .with_graceful_shutdown(shutdown)
        .await;
    for task in loops {
        task.abort();
    }
    served
}

fn banner(address: SocketAddr, account: &Account) -> String {
    let base = format!("http://{address}");
    let (sid, token) = (&account.sid, account.auth_token.expose());
    format!(
        "teleapi-local listening on {base} (in-memory stores and queues)

Dev account
  AccountSid  {sid}
  AuthToken   {token}

Try it:
  # a live inbound call to play with (prints its CallSid)
  curl -s -X POST {base}/dev/IncomingCalls --data-urlencode From=+15551230001 --data-urlencode To=+15551230002 -d Url=http://127.0.0.1:9000/rcml
  # redirect it to new RCML
  curl -s -u {sid}:{token} {base}/call/2012-04-24/Accounts/{sid}/Calls/CALL_SID.json -d Url=http://127.0.0.1:9000/alice
  # the commands queued for media workers
  curl -s {base}/dev/Commands

Ctrl-C stops it."
    )
}

pub async fn run(options: Options) -> Result<(), String> {
    let dev = dev_credentials_from_env()?;
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let stack = Stack::in_memory(dev).await;
    println!("{}", banner(address, &stack.dev_account));
    let shutdown = async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM can be handled");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
    };
    serve(listener, stack, shutdown)
        .await
        .map_err(|e| e.to_string())
}
