//! The `teleapi-media` program as it is deployed, on DynamoDB, SQS and S3 (moto): it refuses to
//! start without its settings, saying which; with them it creates its own commands queue,
//! announces itself with heartbeats naming that queue, and on SIGTERM drains and says
//! `worker.left` before it exits. Its recordings are kept in the recordings bucket.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use teleapi_tests::Backend;
use teleapi_tests::phone::{free_port, rtp_band};

/// Kills the program if the test fails before it stops.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn refuses_to_start_without_its_settings() {
    let output = Command::new(env!("CARGO_BIN_EXE_teleapi-media"))
        .env_clear()
        .output()
        .expect("teleapi-media runs");
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("TELEAPI_SIP_ALLOW is not set"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announces_itself_and_drains_on_sigterm() {
    let backend = Backend::moto().await;
    let aws = backend.aws.clone().expect("moto");
    let name = format!("test-{}", &teleapi_domain::sid::random_hex32()[..8]);
    let (low, high) = rtp_band();
    let child = Command::new(env!("CARGO_BIN_EXE_teleapi-media"))
        .envs(aws.function_env())
        .env("TELEAPI_SIP_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("TELEAPI_RTP_PORTS", format!("{low}-{high}"))
        .env("TELEAPI_SIP_ALLOW", "127.0.0.1/32")
        .env("TELEAPI_WORKER_NAME", &name)
        .env("TELEAPI_WORKER_QUEUE_PREFIX", "teleapi-test-worker-")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("teleapi-media starts");
    let mut running = Running(child);
    let own_queue = format!("teleapi-test-worker-{name}.fifo");

    let heartbeat = until(&backend, "a heartbeat", |event| {
        event["type"] == "worker.heartbeat"
    })
    .await;
    let queue_url = heartbeat["command_queue_url"].as_str().unwrap().to_owned();
    assert!(queue_url.ends_with(&own_queue), "{heartbeat}");
    assert_eq!(heartbeat["state"], "active");
    assert!(heartbeat["worker_id"].as_str().unwrap().starts_with(&name));
    let found = aws
        .sqs
        .get_queue_url()
        .queue_name(&own_queue)
        .send()
        .await
        .expect("its own queue exists");
    assert_eq!(found.queue_url(), Some(queue_url.as_str()));

    let pid = running.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    until(&backend, "worker.left", |event| {
        event["type"] == "worker.left"
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "it did not exit after leaving");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first event on the events queue that `check` takes, within 20 s.
async fn until(
    backend: &Backend,
    what: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for body in Backend::drain(backend.events.as_ref()).await {
            let event: serde_json::Value = serde_json::from_str(&body).unwrap();
            if check(&event) {
                return event;
            }
        }
        assert!(Instant::now() < deadline, "no {what} within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A recording of a leg, stopped, is kept in the bucket as the API reads it: the WAV (its
/// channels and length what was captured) and the MP3 beside it, under the account's prefix.
#[tokio::test]
async fn a_recording_is_kept_in_the_bucket() {
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    use teleapi_domain::recording::{
        RecordingChannels, RecordingSource, RecordingSpec, RecordingTrack, Trim,
    };
    use teleapi_media::capture::{Capture, Recording};
    use teleapi_worker::RecordingMedia;

    let endpoint = teleapi_tests::moto::endpoint();
    let bucket = format!("recordings-{}", &teleapi_domain::sid::random_hex32()[..12]);
    let http = reqwest::Client::new();
    let created = http
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let store = teleapi_adapters::media::S3Media::new(
        bucket.clone(),
        "us-east-1".into(),
        Some(endpoint.to_owned()),
        SharedCredentialsProvider::new(Credentials::new("test", "test", None, None, "test")),
    );
    let account = teleapi_domain::AccountSid::generate();
    let spec = RecordingSpec {
        recording_sid: teleapi_domain::RecordingSid::generate(),
        channels: RecordingChannels::Dual,
        track: RecordingTrack::Both,
        trim: Trim::DoNotTrim,
        source: RecordingSource::StartCallRecordingApi,
        status_callback: None,
    };
    let capture = std::sync::Arc::new(std::sync::Mutex::new(Capture::default()));
    for _ in 0..50 {
        capture.lock().unwrap().took(&[1_000; 160], &[-1_000; 160]);
    }
    let recording = Box::new(Recording {
        capture,
        spec: spec.clone(),
        account_sid: Some(account.clone()),
        store: Some(std::sync::Arc::new(store.clone())),
    });
    let recorded = recording.finish().await.unwrap();
    let key = format!("{account}/{}", spec.recording_sid);
    assert_eq!(recorded.url, format!("s3://{bucket}/{key}.wav"));
    assert_eq!(recorded.samples, 8_000, "one second");
    for (extension, starts) in [("wav", &b"RIFF"[..]), ("mp3", &b""[..])] {
        let url = store
            .presign("GET", &format!("{key}.{extension}"))
            .await
            .unwrap();
        let got = http.get(&url).send().await.unwrap();
        assert_eq!(got.status(), 200, "{extension}");
        let bytes = got.bytes().await.unwrap();
        assert!(
            bytes.starts_with(starts) && bytes.len() > 1_000,
            "{extension}"
        );
        if extension == "wav" {
            let reader = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
            assert_eq!((reader.spec().channels, reader.duration()), (2, 8_000));
        }
    }
}
