//! A Lambda Runtime API emulator on loopback: what the Lambda service offers a function's
//! `bootstrap` (`/runtime/invocation/next`, `…/response`, `…/error`, `/runtime/init/error`), so
//! that the real function binaries can be started and invoked in tests, as Lambda runs them.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response(Value),
    Error(Value),
}

#[derive(Default)]
struct Runtime {
    pending: VecDeque<(String, String)>,
    waiting: HashMap<String, oneshot::Sender<Outcome>>,
    init_errors: Vec<Value>,
    next_id: u64,
    /// When the function first asked for an event: its initialisation was over.
    first_poll: Option<std::time::Instant>,
}

#[derive(Clone, Default)]
struct Shared {
    runtime: Arc<Mutex<Runtime>>,
    arrived: Arc<Notify>,
    init_error: Arc<Notify>,
}

pub struct Emulator {
    /// `host:port`, what `AWS_LAMBDA_RUNTIME_API` holds.
    pub address: String,
    shared: Shared,
    _stop: oneshot::Sender<()>,
}

async fn next(State(shared): State<Shared>) -> Response {
    shared
        .runtime
        .lock()
        .unwrap()
        .first_poll
        .get_or_insert_with(std::time::Instant::now);
    loop {
        let arrived = shared.arrived.notified();
        if let Some((id, body)) = shared.runtime.lock().unwrap().pending.pop_front() {
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 30_000;
            return (
                StatusCode::OK,
                [
                    ("lambda-runtime-aws-request-id", id),
                    ("lambda-runtime-deadline-ms", deadline.to_string()),
                    (
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:us-east-1:123456789012:function:test".into(),
                    ),
                    (
                        "lambda-runtime-trace-id",
                        "Root=1-00000000-000000000000000000000000".into(),
                    ),
                    ("content-type", "application/json".into()),
                ],
                body,
            )
                .into_response();
        }
        arrived.await;
    }
}

fn finish(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match shared.runtime.lock().unwrap().waiting.remove(id) {
        Some(waiter) => {
            let _ = waiter.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

fn json(body: &Bytes) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

async fn response(State(shared): State<Shared>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    finish(&shared, &id, Outcome::Response(json(&body)))
}

async fn error(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    _headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    finish(&shared, &id, Outcome::Error(json(&body)))
}

async fn init_error(State(shared): State<Shared>, body: Bytes) -> StatusCode {
    shared.runtime.lock().unwrap().init_errors.push(json(&body));
    shared.init_error.notify_waiters();
    StatusCode::ACCEPTED
}

impl Emulator {
    pub async fn start() -> Self {
        let shared = Shared::default();
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Self {
            address,
            shared,
            _stop: stop,
        }
    }

    /// When the function first asked for an event (its initialisation over), if it has.
    pub fn first_poll(&self) -> Option<std::time::Instant> {
        self.shared.runtime.lock().unwrap().first_poll
    }

    /// Hands `event` to the function and waits (at most 30 s) for its answer.
    pub async fn invoke(&self, event: &Value) -> Outcome {
        let (done, outcome) = oneshot::channel();
        {
            let mut runtime = self.shared.runtime.lock().unwrap();
            runtime.next_id += 1;
            let id = format!("request-{}", runtime.next_id);
            runtime.waiting.insert(id.clone(), done);
            runtime.pending.push_back((id, event.to_string()));
        }
        self.shared.arrived.notify_waiters();
        tokio::time::timeout(Duration::from_secs(30), outcome)
            .await
            .expect("the function answered within 30 s")
            .expect("the function answered")
    }

    /// The first initialisation error reported, waiting up to 30 s for it.
    pub async fn init_error(&self) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let reported = self.shared.init_error.notified();
            if let Some(error) = self
                .shared
                .runtime
                .lock()
                .unwrap()
                .init_errors
                .first()
                .cloned()
            {
                return error;
            }
            tokio::time::timeout_at(deadline, reported)
                .await
                .expect("the function reported an initialisation error");
        }
    }
}

/// A function binary started against an emulator; killed when dropped.
pub struct Function(pub Child);

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Names the `.aws-sam/build` folder whose bootstraps the tests run (`tests/run` sets it after its
/// `sam build`).
const SAM_BUILD_ENV: &str = "TELEAPI_SAM_BUILD";

/// The function binary `name`. With `TELEAPI_SAM_BUILD` set, the `bootstrap` that `sam build`
/// packaged for it, found through the template SAM wrote there (the function whose
/// `Metadata.BuildProperties.Binary` is `name`); otherwise the bootstrap of the last
/// `cargo lambda build`, else the workspace's own build of it.
pub fn binary(name: &str) -> PathBuf {
    if let Some(build) = std::env::var_os(SAM_BUILD_ENV) {
        return sam_bootstrap(&PathBuf::from(build), name);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| root.join("target"), PathBuf::from);
    let bootstrap = target.join("lambda").join(name).join("bootstrap");
    if bootstrap.exists() {
        return bootstrap;
    }
    let plain = target.join("debug").join(name);
    assert!(
        plain.exists(),
        "no binary for {name}: run `tests/run` (it builds them) or `cargo build --bins`"
    );
    plain
}

/// The bootstrap that `sam build` put in `build` for the function built from binary `name`.
fn sam_bootstrap(build: &std::path::Path, name: &str) -> PathBuf {
    let path = build.join("template.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `sam build` first)", path.display()));
    let template: serde_norway::Value =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let function = template["Resources"]
        .as_mapping()
        .into_iter()
        .flat_map(|resources| resources.values())
        .find(|resource| resource["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("{}: no function built from {name}", path.display()));
    let code = function["Properties"]["CodeUri"]
        .as_str()
        .unwrap_or_else(|| panic!("{}: {name} has no CodeUri", path.display()));
    let bootstrap = build.join(code).join("bootstrap");
    assert!(bootstrap.exists(), "{}: missing", bootstrap.display());
    bootstrap
}

/// Starts function `name` as Lambda would: `AWS_LAMBDA_*` variables pointing at `emulator`, plus
/// `env`.
pub fn start(name: &str, emulator: &Emulator, env: &[(String, String)]) -> Function {
    start_logging(name, emulator, env, None)
}

/// `start`, with the function's log (standard output and error, as CloudWatch gets them)
/// written to `log`.
pub fn start_logging(
    name: &str,
    emulator: &Emulator,
    env: &[(String, String)],
    log: Option<std::fs::File>,
) -> Function {
    let (stdout, stderr) = match log {
        Some(file) => (
            Stdio::from(file.try_clone().expect("log file")),
            Stdio::from(file),
        ),
        None => (Stdio::null(), Stdio::null()),
    };
    let child = Command::new(binary(name))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &emulator.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("{name} starts: {e}"));
    Function(child)
}

/// An API Gateway REST API (proxy integration, payload 1.0) event, as the deployed API sends it:
/// its stage (`live`) in the request context, the authorizer's principal, the query string as
/// parameters.
pub fn api_event(method: &str, path: &str, query: &str, auth: &str, body: &str) -> Value {
    let mut single = serde_json::Map::new();
    let mut multi: serde_json::Map<String, Value> = serde_json::Map::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        single.insert(name.to_string(), json!(value));
        multi
            .entry(name.to_string())
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .unwrap()
            .push(json!(value));
    }
    let headers = json!({
        "Authorization": auth,
        "Content-Type": "application/x-www-form-urlencoded",
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
    });
    let multi_headers: serde_json::Map<String, Value> = headers
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    json!({
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": if single.is_empty() { Value::Null } else { Value::Object(single) },
        "multiValueQueryStringParameters": if multi.is_empty() { Value::Null } else { Value::Object(multi) },
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "stage": "live",
            "path": format!("/live{path}"),
            "resourcePath": path,
            "httpMethod": method,
            "requestId": "r-1",
            "protocol": "HTTP/1.1",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "requestTime": "24/Nov/2026:12:00:00 +0000",
            "requestTimeEpoch": 1_795_521_600_000_u64,
            "identity": { "sourceIp": "203.0.114.9", "userAgent": "test" },
            "authorizer": { "principalId": "test", "integrationLatency": 3 },
        },
        "body": body,
        "isBase64Encoded": false,
    })
}

/// A REQUEST authorizer event for a request carrying `auth` as its `Authorization` header.
pub fn authorizer_event(path: &str, auth: &str) -> Value {
    json!({
        "type": "REQUEST",
        "methodArn": format!("arn:aws:execute-api:us-east-1:123456789012:abc123/live/GET{path}"),
        "resource": path,
        "path": path,
        "httpMethod": "GET",
        "headers": { "Authorization": auth, "Host": "abc123.execute-api.us-east-1.amazonaws.com" },
        "multiValueHeaders": { "Authorization": [auth] },
        "queryStringParameters": {},
        "pathParameters": {},
        "stageVariables": {},
        "requestContext": { "accountId": "123456789012", "apiId": "abc123", "stage": "live", "path": format!("/live{path}"), "requestId": "r-1", "identity": { "sourceIp": "203.0.114.9" } },
    })
}
