//! `teleapi-local`: every function's logic in one process, on 127.0.0.1, with in-memory stores
//! and queues. The API routes are served by exactly the code the Lambda functions run
//! (`teleapi_api::handle`); the `/dev/…` routes exist only here, to try the API without AWS or
//! media workers.

pub mod admin;
pub mod console;
mod dev;
pub mod simulator;
pub mod stack;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lambda_http::Body;
use teleapi_api as api;
use teleapi_api::error::ApiError;
use teleapi_api::representation::Format;
use teleapi_domain::{AccountSid, AuthToken, RateLimit};
use teleapi_pipeline::call_events::{self, EventServices};
use teleapi_pipeline::callbacks::CallbackServices;
use teleapi_pipeline::consumer::poll_once;
use teleapi_ports::Queue;
use teleapi_runtime::telemetry::LogFormat;
use tokio::net::TcpListener;

pub use simulator::SimulatorConfig;
pub use stack::{Backing, Stack, StackOptions};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_PREFIX: &str = "teleapi-local";

const USAGE: &str = "\
Usage: teleapi-local [--listen ADDR] [--aws-endpoint URL | --aws] [--prefix NAME]
                     [--speed FACTOR] [--ring-ms MS] [--no-simulator] [--retention TIME]
                     [--rate-limit RATE[/BURST]] [--recordings-dir DIR] [--log-format FORMAT]
                     [--workers N] [--lease TIME]
                     [--sip ADDR [--rtp-ports LOW-HIGH] [--public-addr IP]
                      [--sip-allow NETWORKS] [--sip-rate N] [--trunk HOST[:PORT]]]

Runs the whole Calls API on this machine: the API routes, the event and callback loops, the
intent reconciler and a simulated media worker. In-memory stores and queues unless told
otherwise.

Options:
  --listen ADDR       address to serve on (default 127.0.0.1:8080; port 0 picks a free port)
  --aws-endpoint URL  use DynamoDB and SQS at URL (an emulator such as moto), creating the
                      tables and queues if missing
  --aws               use DynamoDB and SQS as the standard AWS environment configures them
  --prefix NAME       prefix of table and queue names with --aws/--aws-endpoint
                      (default teleapi-local; TELEAPI_*_TABLE variables override table names)
  --speed FACTOR      scale every simulated duration (Say, Pause, ring timeouts); default 1
  --ring-ms MS        how long simulated phones ring before answering; default 1500
  --no-simulator      no simulated media worker: commands stay on the commands queue
  --workers N         how many simulated media workers run, each with its own id, commands
                      queue and heartbeats (default 1); GET /dev/Workers lists them
  --lease TIME        how long a worker's heartbeat holds it: 90s, 2m (default 30s, as
                      deployed); workers heartbeat every third of it, and the reconciler
                      sweeps at least every half of it
  --sip ADDR          run the SIP/RTP media worker instead of the simulated one: SIP on UDP
                      at ADDR (127.0.0.1:5060), calls on real phones and trunks; with
                      --workers N, N of them, on ADDR's port and the N-1 after it, sharing
                      out --rtp-ports
  --rtp-ports LOW-HIGH
                      the UDP ports of the calls' audio, two a leg (default 30000-30999)
  --public-addr IP    the address written in SDP and Contact, behind NAT (default: --sip's)
  --sip-allow NETWORKS
                      who may send SIP, as CIDR ranges: 10.0.0.0/8,192.0.2.7 (default
                      loopback only); anyone else is not answered
  --sip-rate N        SIP datagrams a second one source address may send, twice as many at
                      once (default 200); beyond, they are dropped unanswered. A trunk sends
                      about 5 a call: give it 5 x its calls a second
  --trunk HOST[:PORT] where calls to numbers go (sip:+15551230000@HOST); without it, a call
                      to a number fails and only sip: URIs are called
  --retention TIME    how long intents, Idempotency-Keys and queued messages are kept (their
                      TTL): 90s, 10m, 2h, 1d; default 1d (deployed: 30 days for intents)
  --rate-limit RATE[/BURST]
                      API requests a second an account without a limit of its own may make, and
                      at once (default 100/200, as deployed; BURST defaults to twice RATE);
                      beyond it, 429
  --recordings-dir DIR
                      where the simulated worker writes recordings (WAV files), which the API
                      serves (default: teleapi-local-recordings in the system's temp folder)
  --log-format FORMAT text (a line per record, for a person) or json (an object per line, as
                      the functions log); default text when standard error is a terminal,
                      json when it is a pipe or a file
  -h, --help          show this help

Environment:
  TELEAPI_DEV_ACCOUNT_SID, TELEAPI_DEV_AUTH_TOKEN   credentials of the dev account (both or
                                                   neither; generated when unset)
  RUST_LOG                                         log filter (default info; debug adds the
                                                   workers' heartbeats)";

#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    pub backing: Backing,
    pub simulator: SimulatorConfig,
    pub retention: Duration,
    pub rate_limit: RateLimit,
    /// `--log-format`; `None`: chosen by where standard error goes.
    pub log_format: Option<LogFormat>,
    /// `--lease`: how long a worker's heartbeat holds it.
    pub lease: Duration,
    /// `--sip` and its options: the SIP/RTP worker in place of the simulated one.
    pub sip: Option<teleapi_media::SipOptions>,
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
        let mut endpoint: Option<String> = None;
        let mut aws = false;
        let mut prefix = DEFAULT_PREFIX.to_owned();
        let mut simulator = SimulatorConfig::default();
        let mut retention = stack::DEFAULT_RETENTION;
        let mut rate_limit = RateLimit::DEFAULT;
        let mut log_format = None;
        let mut lease = teleapi_domain::worker::LEASE;
        let mut sip: Option<SocketAddr> = None;
        let mut rtp_ports = None;
        let mut public_ip = None;
        let mut sip_allow = None;
        let mut trunk = None;
        let mut sip_rate = None;
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .ok_or_else(|| invalid(format!("{name} needs a value")))
            };
            match arg.as_str() {
                "--listen" => listen = value("--listen")?,
                "--aws-endpoint" => endpoint = Some(value("--aws-endpoint")?),
                "--aws" => aws = true,
                "--prefix" => prefix = value("--prefix")?,
                "--speed" => {
                    let raw = value("--speed")?;
                    simulator.speed = raw
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
                        .ok_or_else(|| {
                            invalid(format!("--speed: {raw:?} is not a factor like 0.1"))
                        })?;
                }
                "--ring-ms" => {
                    let raw = value("--ring-ms")?;
                    let ms: u64 = raw.parse().map_err(|_| {
                        invalid(format!(
                            "--ring-ms: {raw:?} is not a number of milliseconds"
                        ))
                    })?;
                    simulator.ring = Duration::from_millis(ms);
                }
                "--no-simulator" => simulator.enabled = false,
                "--workers" => {
                    let raw = value("--workers")?;
                    simulator.workers = raw
                        .parse()
                        .ok()
                        .filter(|n| (1..=64).contains(n))
                        .ok_or_else(|| {
                            invalid(format!("--workers: {raw:?} is not a number from 1 to 64"))
                        })?;
                }
                "--lease" => {
                    let raw = value("--lease")?;
                    lease = parse_duration(&raw)
                        .filter(|d| *d >= Duration::from_secs(3))
                        .ok_or_else(|| {
                            invalid(format!(
                                "--lease: {raw:?} is not a time of 3s or more, like 90s"
                            ))
                        })?;
                }
                "--sip" => {
                    let raw = value("--sip")?;
                    sip = Some(raw.parse().map_err(|_| {
                        invalid(format!(
                            "--sip: {raw:?} is not an address like 127.0.0.1:5060"
                        ))
                    })?);
                }
                "--rtp-ports" => {
                    let raw = value("--rtp-ports")?;
                    rtp_ports = Some(
                        teleapi_media::parse_port_range(&raw)
                            .map_err(|why| invalid(format!("--rtp-ports: {why}")))?,
                    );
                }
                "--public-addr" => {
                    let raw = value("--public-addr")?;
                    public_ip = Some(raw.parse().map_err(|_| {
                        invalid(format!("--public-addr: {raw:?} is not an IP address"))
                    })?);
                }
                "--sip-allow" => {
                    let raw = value("--sip-allow")?;
                    sip_allow = Some(
                        raw.parse()
                            .map_err(|why| invalid(format!("--sip-allow: {why}")))?,
                    );
                }
                "--trunk" => trunk = Some(value("--trunk")?),
                "--sip-rate" => {
                    let raw = value("--sip-rate")?;
                    sip_rate = Some(
                        teleapi_media::parse_sip_rate(&raw)
                            .map_err(|why| invalid(format!("--sip-rate: {why}")))?,
                    );
                }
                "--recordings-dir" => simulator.recordings_dir = value("--recordings-dir")?.into(),
                "--rate-limit" => {
                    let raw = value("--rate-limit")?;
                    rate_limit = parse_local_rate_limit(&raw)
                        .map_err(|why| invalid(format!("--rate-limit {raw:?}: {why}")))?;
                }
                "--retention" => {
                    let raw = value("--retention")?;
                    retention = parse_duration(&raw).ok_or_else(|| {
                        invalid(format!(
                            "--retention: {raw:?} is not a time like 90s, 10m, 2h or 1d"
                        ))
                    })?;
                }
                "--log-format" => {
                    let raw = value("--log-format")?;
                    log_format = Some(
                        raw.parse()
                            .map_err(|why| invalid(format!("--log-format: {why}")))?,
                    );
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
        let backing = match (endpoint, aws) {
            (Some(_), true) => {
                return Err(invalid("give --aws-endpoint or --aws, not both".into()));
            }
            (Some(endpoint), false) => Backing::Aws {
                endpoint: Some(endpoint),
                prefix,
            },
            (None, true) => Backing::Aws {
                endpoint: None,
                prefix,
            },
            (None, false) => Backing::Memory,
        };
        let sip = match sip {
            Some(address) => {
                if !simulator.enabled {
                    return Err(invalid(
                        "--sip runs SIP/RTP workers: not with --no-simulator".into(),
                    ));
                }
                let mut options =
                    teleapi_media::SipOptions::new(address, rtp_ports.unwrap_or(30_000..=30_999));
                options.public_ip = public_ip;
                options.trunk = trunk;
                if let Some(allowed) = sip_allow {
                    options.allowed = allowed;
                }
                if let Some(rate) = sip_rate {
                    options.rate = rate;
                }
                options.check().map_err(invalid)?;
                // Every worker's share of the ports is there to be had.
                let of = u16::try_from(simulator.workers.max(1)).unwrap_or(u16::MAX);
                for n in 0..of {
                    options.for_worker(n, of).map_err(invalid)?;
                }
                Some(options)
            }
            None if rtp_ports.is_some()
                || public_ip.is_some()
                || sip_allow.is_some()
                || sip_rate.is_some()
                || trunk.is_some() =>
            {
                return Err(invalid(
                    "--rtp-ports, --public-addr, --sip-allow, --sip-rate and --trunk need --sip"
                        .into(),
                ));
            }
            None => None,
        };
        Ok(Self {
            listen,
            backing,
            simulator,
            retention,
            rate_limit,
            log_format,
            lease,
            sip,
        })
    }
}

/// `RATE` or `RATE/BURST` for an account (bounded as API Gateway bounds a usage plan); the
/// burst defaults to twice the rate, at most the largest burst.
pub fn parse_rate_limit(raw: &str) -> Result<RateLimit, String> {
    let (rate, burst) = rate_and_burst(raw)?;
    RateLimit::new(
        rate,
        burst.unwrap_or(rate.saturating_mul(2).min(RateLimit::MAX_BURST)),
    )
}

/// `--rate-limit`: the same, unbounded above (a local stack has no API Gateway to fit, and a
/// benchmark may want a limit that never bites but is still counted).
fn parse_local_rate_limit(raw: &str) -> Result<RateLimit, String> {
    let (rate, burst) = rate_and_burst(raw)?;
    let burst = burst.unwrap_or(rate.saturating_mul(2));
    if rate == 0 || burst == 0 {
        return Err("a rate and a burst are at least 1".into());
    }
    Ok(RateLimit {
        per_second: rate,
        burst,
    })
}

fn rate_and_burst(raw: &str) -> Result<(u32, Option<u32>), String> {
    let number = |part: &str| {
        part.parse::<u32>()
            .map_err(|_| format!("{part:?} is not a whole number"))
    };
    Ok(match raw.split_once('/') {
        Some((rate, burst)) => (number(rate)?, Some(number(burst)?)),
        None => (number(raw)?, None),
    })
}

/// `90s`, `10m`, `2h`, `1d` (or plain seconds): a positive whole number of a unit.
fn parse_duration(raw: &str) -> Option<Duration> {
    let (number, unit) = match raw.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => raw.split_at(at),
        None => (raw, "s"),
    };
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        _ => return None,
    };
    let number: u64 = number.parse().ok().filter(|n| *n > 0)?;
    number.checked_mul(seconds).map(Duration::from_secs)
}

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

/// The HTTP routes: the API, served by the code the Lambda functions run, and the dev routes.
pub fn router(stack: Stack) -> Router {
    Router::new()
        .route("/", get(console::index))
        .route("/console/console.js", get(console::script))
        .route("/console/console.css", get(console::style))
        .route("/dev/console/config", get(console::config))
        .route("/dev/feed", get(console::feed))
        .route("/dev/sink", get(console::sink).post(console::sink))
        .route("/dev/Accounts", post(dev::create_account))
        .route("/dev/IncomingCalls", post(dev::create_incoming_call))
        .route("/dev/Events", post(dev::post_event))
        .route("/dev/Workers", get(dev::list_workers))
        .route("/dev/Workers/{id}", post(dev::change_worker))
        .route(
            "/dev/Calls/{call}/Digits",
            get(dev::call_digits).post(dev::press_digits),
        )
        .route(
            "/dev/rcml/{name}",
            get(dev::sample_rcml).post(dev::sample_rcml),
        )
        .fallback(serve_api)
        .with_state(Arc::new(stack))
}

/// Hands a request to the same code the Lambda functions run.
async fn serve_api(State(stack): State<Arc<Stack>>, request: Request) -> Response {
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
    let mut request = lambda_http::http::Request::from_parts(parts, body);
    // As API Gateway says how it was reached; here, plain HTTP.
    request.headers_mut().insert(
        "x-forwarded-proto",
        lambda_http::http::HeaderValue::from_static("http"),
    );
    // On a task of its own, as a Lambda invocation runs to its end whatever the client does: a
    // client that hangs up must not cancel a request between its write and its send.
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let feed = stack.feed.clone();
    // Boxed: the task then holds a pointer, not the handler's whole state, which tokio would
    // copy into the task, and again as the task finishes and its output is read.
    let handled = tokio::spawn(Box::pin(async move {
        api::handle(&stack.services, request, None).await
    }));
    match handled.await {
        Ok(response) => {
            feed.api_request(&method, &path);
            into_axum(response)
        }
        Err(err) => {
            tracing::error!(error = %err, "request handler failed");
            into_axum(api::respond_error(Format::Json, &ApiError::Internal))
        }
    }
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

/// Settles intents left pending or unreported and ends the calls of workers whose lease ran
/// out, as the scheduled function does when deployed: the leases swept every `reconcile_every`
/// (15 s by default, half a shorter lease), the pending intents settled at most every 15 s
/// (none is due sooner than its 60 s grace). A short lease must not make the whole run, a
/// Query of every `pending` partition, a busy loop on the stores.
async fn reconcile_forever(stack: Stack) {
    let services = teleapi_pipeline::reconcile::ReconcilerServices {
        accounts: stack.accounts.clone(),
        calls: stack.calls.clone(),
        workers: stack.events.workers.clone(),
        commands: stack.commands.clone(),
        callbacks: stack.events.callbacks.clone(),
        call_log: stack.events.call_log.clone(),
        recordings: stack.events.recordings.clone(),
        conferences: stack.events.conferences.clone(),
        events: stack.event_queue.clone(),
        clock: stack.services.clock.clone(),
        write_budget: stack.events.config.write_budget,
        intent_retention: stack.events.config.intent_retention,
    };
    let pending_every = StackOptions::default()
        .reconcile_every
        .max(stack.reconcile_every);
    let mut ticks = tokio::time::interval(stack.reconcile_every);
    let mut pending_due = tokio::time::Instant::now();
    loop {
        ticks.tick().await;
        let run = if tokio::time::Instant::now() >= pending_due {
            pending_due = tokio::time::Instant::now() + pending_every;
            teleapi_pipeline::reconcile::run_once(&services)
                .await
                .map(|_| ())
        } else {
            teleapi_pipeline::reconcile::sweep_leases(&services)
                .await
                .map(|_| ())
        };
        if let Err(err) = run {
            tracing::warn!(error = %err, "reconciler run failed");
        }
    }
}

/// Applies worker events as they arrive, as the call-events function does when deployed, and
/// tells the console.
async fn apply_events_forever(
    events: EventServices,
    queue: std::sync::Arc<dyn Queue>,
    feed: console::Feed,
) {
    loop {
        let polled = poll_once(queue.as_ref(), Duration::from_secs(1), |m| {
            let (events, feed) = (events.clone(), feed.clone());
            async move {
                call_events::consume(&events, &m).await?;
                feed.event_applied(&m.body);
                Ok::<(), call_events::EventError>(())
            }
        })
        .await;
        if let Err(err) = polled {
            tracing::warn!(error = %err, "events queue unavailable");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Delivers callback jobs as they arrive, as the callback function does when deployed, and
/// tells the console.
async fn deliver_callbacks_forever(callbacks: CallbackServices, feed: console::Feed) {
    let queue = callbacks.callbacks.clone();
    loop {
        let polled = poll_once(queue.as_ref(), Duration::from_secs(1), |m| {
            let (callbacks, feed) = (callbacks.clone(), feed.clone());
            async move {
                teleapi_pipeline::callbacks::consume(&callbacks, &m).await?;
                feed.callback_run(&m.body);
                Ok::<(), teleapi_pipeline::callbacks::JobError>(())
            }
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
        tokio::spawn(reconcile_forever(stack.clone())),
        tokio::spawn(apply_events_forever(
            stack.events.clone(),
            stack.event_queue.clone(),
            stack.feed.clone(),
        )),
        tokio::spawn(deliver_callbacks_forever(
            stack.callbacks.clone(),
            stack.feed.clone(),
        )),
    ];
    let simulator = stack
        .simulator
        .enabled()
        .then(|| tokio::spawn(stack.simulator.clone().run()));
    let served = axum::serve(listener, router(stack))
        .with_graceful_shutdown(shutdown)
        .await;
    for task in loops.into_iter().chain(simulator) {
        task.abort();
    }
    served
}

fn banner(address: SocketAddr, stack: &Stack) -> String {
    let base = format!("http://{address}");
    let account = &stack.dev_account;
    let (sid, token) = (&account.sid, account.auth_token.expose());
    let calls = format!("{base}/call/2012-04-24/Accounts/{sid}/Calls");
    format!(
        "teleapi-local listening on {base} ({})

Console: {base}/ (the calls live, and what happened to each)

Dev account
  AccountSid  {sid}
  AuthToken   {token}

Try a transfer (sample RCML is served under {base}/dev/rcml/):
  # a call comes in; its RCML dials Bob (note the \"sid\" it prints)
  curl -s -X POST {base}/dev/IncomingCalls --data-urlencode From=+15551230001 --data-urlencode To=+15551230002 -d Url={base}/dev/rcml/call-bob
  # transfer it to Alice: Bob's leg hangs up, the caller is connected to Alice
  curl -s -u {sid}:{token} {calls}/CALL_SID.json -d Url={base}/dev/rcml/call-alice
  # the calls, legs included, and what happened to the transfer request
  curl -s -u {sid}:{token} {calls}.json
  curl -s -u {sid}:{token} {calls}/CALL_SID/Modifications.json

{}
Ctrl-C stops it.",
        stack.description,
        environment(stack)
    )
}

/// With DynamoDB and SQS, how a function can share them (for `cargo lambda watch`).
fn environment(stack: &Stack) -> String {
    if stack.function_env.is_empty() {
        return String::new();
    }
    let exports: Vec<String> = stack
        .function_env
        .iter()
        .map(|(name, value)| format!("  export {name}={value}"))
        .collect();
    format!(
        "\nA function run on its own (cargo lambda watch) shares these tables and queues with:\n{}\n",
        exports.join("\n")
    )
}

/// Prints `text` on standard output for whoever reads it. A server must not die because nobody
/// does: a closed or broken stdout (`teleapi-local | head -1`, a harness that read the first
/// line and dropped the pipe) is noted once on stderr and otherwise ignored, where `println!`
/// would panic.
pub fn announce(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        tracing::warn!(error = %err, "standard output is closed; the banner was not shown");
    }
}

pub async fn run(options: Options) -> Result<(), String> {
    let dev = dev_credentials_from_env()?;
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let mut simulator = options.simulator;
    simulator.heartbeat = options.lease / 3;
    let stack = Stack::build(StackOptions {
        backing: options.backing,
        dev,
        simulator,
        retention: options.retention,
        rate_limit: options.rate_limit,
        public_url: format!("http://{address}"),
        worker_lease: options.lease,
        // The sweep at least every half lease (every 15 s with the deployed 30 s).
        reconcile_every: (options.lease / 2).min(StackOptions::default().reconcile_every),
        sip: options.sip,
    })
    .await?;
    announce(&banner(address, &stack));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, ArgsError> {
        Options::parse(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn rate_limits_take_a_rate_and_a_burst() {
        assert_eq!(parse(&[]).unwrap().rate_limit, RateLimit::DEFAULT);
        let limit = |raw: &str| parse(&["--rate-limit", raw]).map(|o| o.rate_limit);
        assert_eq!(limit("50/60").unwrap(), RateLimit::new(50, 60).unwrap());
        assert_eq!(limit("50").unwrap(), RateLimit::new(50, 100).unwrap());
        assert_eq!(
            limit("1000000").unwrap(),
            RateLimit {
                per_second: 1_000_000,
                burst: 2_000_000
            },
            "a local stack is not bounded by API Gateway's quotas"
        );
        assert_eq!(
            parse_rate_limit("10000").unwrap(),
            RateLimit::new(10_000, 5_000).unwrap()
        );
        assert!(parse_rate_limit("20000").is_err(), "an account's limit is");
        for raw in ["0", "fast", "10/0", "10/x", "-5"] {
            assert!(matches!(limit(raw), Err(ArgsError::Invalid(_))), "{raw}");
        }
    }

    #[test]
    fn the_sip_worker_and_its_options() {
        assert!(
            parse(&[]).unwrap().sip.is_none(),
            "the simulator by default"
        );
        let options = parse(&["--sip", "127.0.0.1:5060", "--rtp-ports", "40000-40099"])
            .unwrap()
            .sip
            .unwrap();
        assert_eq!(options.sip, "127.0.0.1:5060".parse().unwrap());
        assert_eq!(options.rtp_ports, 40_000..=40_099);
        assert!(options.allowed.contains("127.0.0.1".parse().unwrap()));
        assert!(!options.allowed.contains("192.0.2.1".parse().unwrap()));
        let options = parse(&[
            "--sip",
            "0.0.0.0:5060",
            "--public-addr",
            "203.0.113.9",
            "--sip-allow",
            "192.0.2.0/24",
            "--trunk",
            "gw.example.com:5080",
            "--sip-rate",
            "1000",
        ])
        .unwrap()
        .sip
        .unwrap();
        assert_eq!(options.rate, 1000.0);
        assert_eq!(options.rtp_ports, 30_000..=30_999);
        assert_eq!(options.public_ip, Some("203.0.113.9".parse().unwrap()));
        assert!(options.allowed.contains("192.0.2.1".parse().unwrap()));
        assert_eq!(options.trunk.as_deref(), Some("gw.example.com:5080"));
        // Several SIP workers: on consecutive ports, the RTP ports shared out (the stack's).
        let two = parse(&["--sip", "127.0.0.1:5060", "--workers", "2"]).unwrap();
        assert_eq!(two.simulator.workers, 2);
        assert!(two.sip.is_some());
        for args in [
            &["--sip", "nowhere"][..],
            &["--sip", "127.0.0.1:5060", "--rtp-ports", "100-200"],
            &["--sip", "127.0.0.1:5060", "--no-simulator"],
            &[
                "--sip",
                "127.0.0.1:5060",
                "--workers",
                "2",
                "--rtp-ports",
                "30000-30002",
            ],
            &["--rtp-ports", "30000-30999"],
            &["--sip", "127.0.0.1:5060", "--sip-allow", "10.0.0.0/40"],
            &["--sip", "0.0.0.0:5060"],
            &["--sip", "127.0.0.1:5060", "--sip-rate", "0"],
            &["--sip-rate", "500"],
        ] {
            assert!(
                matches!(parse(args), Err(ArgsError::Invalid(_))),
                "{args:?}"
            );
        }
    }

    #[test]
    fn the_log_format_is_text_or_json_or_left_to_the_terminal() {
        assert_eq!(parse(&[]).unwrap().log_format, None);
        let format = |raw: &str| parse(&["--log-format", raw]).map(|o| o.log_format);
        assert_eq!(format("text").unwrap(), Some(LogFormat::Text));
        assert_eq!(format("json").unwrap(), Some(LogFormat::Json));
        assert!(matches!(format("pretty"), Err(ArgsError::Invalid(_))));
    }

    #[test]
    fn workers_and_their_lease() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.simulator.workers, 1);
        assert_eq!(options.lease, Duration::from_secs(30));
        let options = parse(&["--workers", "3", "--lease", "6s"]).unwrap();
        assert_eq!(options.simulator.workers, 3);
        assert_eq!(options.lease, Duration::from_secs(6));
        for args in [["--workers", "0"], ["--workers", "many"], ["--lease", "1s"]] {
            assert!(
                matches!(parse(&args), Err(ArgsError::Invalid(_))),
                "{args:?}"
            );
        }
    }

    #[test]
    fn retention_takes_a_time_with_its_unit() {
        assert_eq!(parse(&[]).unwrap().retention, stack::DEFAULT_RETENTION);
        for (raw, seconds) in [
            ("90s", 90),
            ("10m", 600),
            ("2h", 7200),
            ("1d", 86400),
            ("45", 45),
        ] {
            let options = parse(&["--retention", raw]).unwrap();
            assert_eq!(options.retention, Duration::from_secs(seconds), "{raw}");
        }
        for raw in ["0s", "-1m", "1w", "m", "1.5h", "99999999999999999999d"] {
            assert!(
                matches!(parse(&["--retention", raw]), Err(ArgsError::Invalid(_))),
                "{raw}"
            );
        }
    }
}
