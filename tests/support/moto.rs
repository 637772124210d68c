//! The moto server the AWS-backed tests talk to: the one `tests/run` started (its address in
//! `TELEAPI_TEST_AWS_ENDPOINT`), or else one this test process starts from the project's
//! virtualenv. A server started here reads its standard input until EOF, so it stops when this
//! process ends, however it ends.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use aws_config::{BehaviorVersion, Region};

pub const ENDPOINT_ENV: &str = "TELEAPI_TEST_AWS_ENDPOINT";

static ENDPOINT: OnceLock<String> = OnceLock::new();
/// Held for the life of the process: dropping its stdin would stop the server.
static SERVER: Mutex<Option<Child>> = Mutex::new(None);

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

fn start_server() -> String {
    let root = workspace_root();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "moto is not installed: run `tests/run` once (it creates .venv with moto), \
         or set {ENDPOINT_ENV} to a running moto server"
    );
    let mut child = Command::new(python)
        .arg(root.join("tests/support/moto_server.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("moto prints its port");
    let port: u16 = line
        .trim()
        .strip_prefix("port=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from moto: {line:?}"));
    *SERVER.lock().unwrap() = Some(child);
    format!("http://127.0.0.1:{port}")
}

pub fn endpoint() -> &'static str {
    ENDPOINT.get_or_init(|| std::env::var(ENDPOINT_ENV).unwrap_or_else(|_| start_server()))
}

/// SDK settings for moto: the functions' retries and timeouts, moto's endpoint, a fixed region,
/// dummy credentials.
pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_config_at(endpoint()).await
}

/// The same settings, for a proxy in front of moto.
pub async fn sdk_config_at(endpoint: &str) -> aws_config::SdkConfig {
    teleapi_runtime::config::sdk_settings(aws_config::defaults(BehaviorVersion::latest()))
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .load()
        .await
}

/// Makes the next `count` DynamoDB requests that mention `marker` (a table name) fail with
/// ThrottlingException; answers how many were throttled so far for it.
pub async fn throttle(marker: &str, count: u32) -> u64 {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/_teleapi/throttle", endpoint()))
        .json(&serde_json::json!({ "marker": marker, "count": count }))
        .send()
        .await
        .expect("moto answers")
        .json()
        .await
        .expect("moto's throttle answer is JSON");
    answer["throttled"].as_u64().expect("a count")
}
