//! Calls on real phones: teleapi-local with the SIP/RTP worker (`--sip`) in place of the
//! simulated one, Debian's baresip phones on loopback, each playing a tone of its own as its
//! microphone, and what each phone heard checked by frequency analysis: who heard whom, and
//! when. The API, the pipeline and the worker kit are the same as in every other suite.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use teleapi_domain::AuthToken;
use teleapi_local::{Backing, SimulatorConfig, Stack, StackOptions};
use teleapi_media::SipOptions;
use teleapi_tests::phone::{
    Phone, Settings, free_port, rms, rtp_band, tone, tone_file, tone_level,
};
use teleapi_tests::sink::{Reply, Sink};
use tokio::net::TcpListener;

pub(crate) const TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// The tones the phones play (Hz): far enough apart to tell, inside the telephone band.
pub(crate) const ALICE: f64 = 1_000.0;
pub(crate) const BOB: f64 = 2_000.0;
pub(crate) const CAROL: f64 = 600.0;

/// Real phones are heavy (three baresip processes and their audio a test): two tests run them at
/// a time, so that the rest of the suite, running beside them on two cores, keeps its pace.
static PHONES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

pub(crate) struct Media {
    _turn: tokio::sync::SemaphorePermit<'static>,
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) sid: String,
    pub(crate) app: Sink,
    pub(crate) dir: PathBuf,
    simulator: teleapi_local::simulator::Simulator,
    sip: std::net::SocketAddr,
    rtp: (u16, u16),
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Drop for Media {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl Media {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(options: impl FnOnce(&mut StackOptions)) -> Self {
        let turn = PHONES
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let sid = teleapi_domain::AccountSid::generate();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let dir = std::env::temp_dir().join(format!(
            "teleapi-sip-{}",
            &teleapi_domain::sid::random_hex32()[..12]
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (low, high) = rtp_band();
        let sip_address: std::net::SocketAddr =
            format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let sip = SipOptions::new(sip_address, low..=high);
        let mut chosen = StackOptions {
            backing: Backing::Memory,
            dev: Some((sid.clone(), AuthToken::new(TOKEN))),
            simulator: SimulatorConfig {
                recordings_dir: dir.join("recordings"),
                ..Default::default()
            },
            public_url: base.clone(),
            sip: Some(sip),
            ..Default::default()
        };
        options(&mut chosen);
        let stack = Stack::build(chosen)
            .await
            .expect("the stack starts with the SIP/RTP worker");
        let simulator = stack.simulator.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(teleapi_local::serve(listener, stack, async {
            let _ = stopped.await;
        }));
        Self {
            _turn: turn,
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            sid: sid.to_string(),
            app: Sink::start().await,
            dir,
            simulator,
            sip: sip_address,
            rtp: (low, high),
            _stop: stop,
        }
    }

    /// Where the worker hears SIP.
    pub(crate) fn sip(&self) -> std::net::SocketAddr {
        self.sip
    }

    /// Where worker `n` (from 0) of several hears SIP (`--workers`): the `n`th port after the
    /// first's.
    pub(crate) fn sip_of(&self, n: u16) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.sip.ip(), self.sip.port() + n)
    }

    pub(crate) async fn phone(&self, name: &str, hz: f64) -> Phone {
        let microphone = tone_file(&self.dir, hz, 120.0);
        Phone::start(name, &self.dir, &microphone).await
    }

    pub(crate) fn calls(&self) -> String {
        format!("{}/call/2012-04-24/Accounts/{}/Calls", self.base, self.sid)
    }

    pub(crate) async fn post(&self, url: &str, body: &str) -> (u16, Value) {
        let response = self
            .client
            .post(url)
            .basic_auth(&self.sid, Some(TOKEN))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn get(&self, url: &str) -> Value {
        self.client
            .get(url)
            .basic_auth(&self.sid, Some(TOKEN))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Calls `to` with the RCML the app serves at `path`; the call's sid.
    pub(crate) async fn call(&self, to: &str, path: &str) -> String {
        let body = format!(
            "To={}&From=%2B15551230001&Url={}",
            encode(to),
            encode(&self.app.url(path))
        );
        let (status, call) = self.post(&format!("{}.json", self.calls()), &body).await;
        assert_eq!(status, 201, "{call}");
        call["sid"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn modify(&self, call: &str, body: &str) {
        let (status, answer) = self
            .post(&format!("{}/{call}.json", self.calls()), body)
            .await;
        assert!(status < 300, "{status}: {answer}");
    }

    pub(crate) async fn status(&self, call: &str) -> String {
        let call = self.get(&format!("{}/{call}.json", self.calls())).await;
        call["status"].as_str().unwrap_or_default().to_owned()
    }

    /// The legs `call` dialled.
    pub(crate) async fn legs(&self, call: &str) -> Vec<Value> {
        let page = self
            .get(&format!("{}.json?ParentCallSid={call}", self.calls()))
            .await;
        page["calls"].as_array().cloned().unwrap_or_default()
    }

    /// Gives the account `number` (E.164), whose calls run the RCML the app serves at `path`;
    /// `more` adds form fields (`&StatusCallback=…`).
    pub(crate) async fn number(&self, number: &str, path: &str, more: &str) {
        let numbers = format!(
            "{}/call/2012-04-24/Accounts/{}/IncomingPhoneNumbers.json",
            self.base, self.sid
        );
        let body = format!(
            "PhoneNumber={}&VoiceUrl={}{more}",
            encode(number),
            encode(&self.app.url(path))
        );
        let (status, answer) = self.post(&numbers, &body).await;
        assert_eq!(status, 201, "{answer}");
    }

    /// The latest call to `number`, as the API lists it (`null` if there is none).
    pub(crate) async fn latest_call_to(&self, number: &str) -> Value {
        let page = self
            .get(&format!("{}.json?To={}", self.calls(), encode(number)))
            .await;
        page["calls"][0].clone()
    }

    /// Waits for the latest call to `number` to reach `status`.
    pub(crate) async fn until_call_to(&self, number: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let call = self.latest_call_to(number).await;
            if call["status"] == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the call to {number} is {call}, not {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Alice's phone (1 kHz) is called, and her RCML dials Bob's (2 kHz); once Bob's leg is in
    /// progress, both phones and Alice's call.
    pub(crate) async fn alice_calls_bob(&self) -> (Phone, Phone, String) {
        let (alice, bob) = (
            self.phone("alice", ALICE).await,
            self.phone("bob", BOB).await,
        );
        self.app.always("/bob", Reply::rcml(&dial(&bob.uri())));
        let call = self.call(&alice.uri(), "/bob").await;
        self.until_leg(&call, &bob.uri(), "in-progress").await;
        (alice, bob, call)
    }

    /// Waits for `call` to reach `status`.
    pub(crate) async fn until_status(&self, call: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = self.status(call).await;
            if now == status {
                return;
            }
            assert!(Instant::now() < deadline, "{call} is {now}, not {status}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the leg of `call` to `to` to reach `status`; its sid.
    pub(crate) async fn until_leg(&self, call: &str, to: &str, status: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let legs = self.legs(call).await;
            if let Some(leg) = legs.iter().find(|l| l["to"] == to && l["status"] == status) {
                return leg["sid"].as_str().unwrap().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no leg to {to} is {status}: {legs:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Seconds of `heard` in which `hz` is the sound (100 ms windows, loud enough and mostly
/// that tone).
/// Asserts that `listener` heard `talker` (whose tone is `hz`) for two seconds at least.
pub(crate) fn assert_heard(listener: (&str, &[i16]), talker: (&str, f64)) {
    let seconds = seconds_of(listener.1, talker.1);
    assert!(
        seconds >= 2.0,
        "{} heard {} for {seconds} s",
        listener.0,
        talker.0
    );
}

pub(crate) fn seconds_of(heard: &[i16], hz: f64) -> f64 {
    heard
        .chunks(800)
        .filter(|w| rms(w) > 1_000.0 && tone_level(w, hz) > 0.6)
        .count() as f64
        / 10.0
}

/// Seconds of `heard` that are sound (speech, music), not silence.
fn seconds_of_sound(heard: &[i16]) -> f64 {
    heard.chunks(800).filter(|w| rms(w) > 300.0).count() as f64 / 10.0
}

/// Spans of at least `min` seconds of silence in `heard`, after the first sound.
fn silences(heard: &[i16], min: f64) -> usize {
    let windows: Vec<bool> = heard.chunks(800).map(|w| rms(w) > 300.0).collect();
    let first = windows.iter().position(|s| *s).unwrap_or(windows.len());
    let mut spans = 0;
    let mut run = 0;
    for sound in &windows[first..] {
        if *sound {
            if run as f64 / 10.0 >= min {
                spans += 1;
            }
            run = 0;
        } else {
            run += 1;
        }
    }
    spans
}

/// The share of 20 ms frames that are silent between the first and the last sound of `heard`:
/// audio lost on the way.
fn lost_frames(heard: &[i16]) -> f64 {
    let sound: Vec<bool> = heard.chunks(160).map(|f| rms(f) > 300.0).collect();
    let (Some(first), Some(last)) = (
        sound.iter().position(|s| *s),
        sound.iter().rposition(|s| *s),
    ) else {
        return 1.0;
    };
    let span = &sound[first..=last];
    span.iter().filter(|s| !**s).count() as f64 / span.len() as f64
}

pub(crate) fn dial(uri: &str) -> String {
    format!("<Response><Dial timeout=\"10\"><Sip>{uri}</Sip></Dial></Response>")
}

/// The seed scenario on real audio: Alice (1 kHz) is called and her RCML dials Bob (2 kHz);
/// Bob hears Alice and Alice hears Bob. The app redirects Alice's call to RCML that dials Carol
/// (600 Hz): Bob's leg ends, Carol hears Alice, Alice hears Carol. `Status=completed` ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_is_heard_on_real_phones() {
    let media = Media::start().await;
    let (alice, bob, carol) = (
        media.phone("alice", ALICE).await,
        media.phone("bob", BOB).await,
        media.phone("carol", CAROL).await,
    );
    media.app.always("/bob", Reply::rcml(&dial(&bob.uri())));
    media.app.always("/carol", Reply::rcml(&dial(&carol.uri())));

    let call = media.call(&alice.uri(), "/bob").await;
    media.until_status(&call, "in-progress").await;
    let bob_leg = media.until_leg(&call, &bob.uri(), "in-progress").await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    media
        .modify(&call, &format!("Url={}", encode(&media.app.url("/carol"))))
        .await;
    media.until_status(&bob_leg, "completed").await;
    media.until_leg(&call, &carol.uri(), "in-progress").await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    media.modify(&call, "Status=completed").await;
    media.until_status(&call, "completed").await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (alice, bob, carol) = (alice.stop().await, bob.stop().await, carol.stop().await);
    let heard = |what: &[i16], hz| seconds_of(what, hz);
    assert!(
        heard(&bob, ALICE) >= 2.0,
        "Bob heard Alice for {} s",
        heard(&bob, ALICE)
    );
    assert!(heard(&bob, CAROL) == 0.0, "Bob never hears Carol");
    assert!(
        heard(&carol, ALICE) >= 2.0,
        "Carol heard Alice for {} s",
        heard(&carol, ALICE)
    );
    assert!(heard(&carol, BOB) == 0.0, "Carol never hears Bob");
    assert!(
        heard(&alice, BOB) >= 2.0,
        "Alice heard Bob for {} s",
        heard(&alice, BOB)
    );
    assert!(
        heard(&alice, CAROL) >= 2.0,
        "Alice heard Carol for {} s",
        heard(&alice, CAROL)
    );
}

/// The seed scenario from the other end: Carol's phone (600 Hz) calls a number of the
/// account, whose RCML (fetched with Twilio's parameters) dials Bob; Bob hears Carol. The app
/// redirects the inbound call to RCML that dials Alice: Bob's leg ends, Alice hears Carol and
/// Carol hears Alice. `Status=completed` ends it, and the number's StatusCallback is told. A
/// call to a number nobody configured is refused (SIP 404) and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_a_number_runs_its_rcml() {
    let media = Media::start().await;
    let (alice, bob, carol) = (
        media.phone("alice", ALICE).await,
        media.phone("bob", BOB).await,
        media.phone("carol", CAROL).await,
    );
    media.app.always("/bob", Reply::rcml(&dial(&bob.uri())));
    media.app.always("/alice", Reply::rcml(&dial(&alice.uri())));
    media.app.always("/ended", Reply::status(204));
    let ended = format!("&StatusCallback={}", encode(&media.app.url("/ended")));
    media.number("+15557650000", "/bob", &ended).await;

    // Nobody's number: refused, nothing created, nothing fetched.
    carol
        .dial(&format!("sip:+15550000000@{}", media.sip()))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls = media.get(&format!("{}.json", media.calls())).await;
    assert_eq!(calls["calls"], serde_json::json!([]), "{calls}");

    carol
        .dial(&format!("sip:+15557650000@{}", media.sip()))
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while media.app.received_at("/bob").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the number's VoiceUrl was never fetched"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fetched = &media.app.received_at("/bob")[0];
    let param = |name: &str| fetched.params.get(name).cloned().unwrap_or_default();
    assert_eq!(param("To"), "+15557650000");
    assert_eq!(param("Direction"), "inbound");
    assert_eq!(param("AccountSid"), media.sid);
    assert!(
        param("From").starts_with("sip:carol@127.0.0.1"),
        "{}",
        param("From")
    );
    let call = param("CallSid");
    media.until_status(&call, "in-progress").await;
    let bob_leg = media.until_leg(&call, &bob.uri(), "in-progress").await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    media
        .modify(&call, &format!("Url={}", encode(&media.app.url("/alice"))))
        .await;
    media.until_status(&bob_leg, "completed").await;
    media.until_leg(&call, &alice.uri(), "in-progress").await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    media.modify(&call, "Status=completed").await;
    media.until_status(&call, "completed").await;
    let resource = media.get(&format!("{}/{call}.json", media.calls())).await;
    assert_eq!(resource["direction"], "inbound");
    assert_eq!(resource["to"], "+15557650000");
    let deadline = Instant::now() + Duration::from_secs(20);
    while media.app.values_at("/ended", "CallStatus") != ["completed"] {
        assert!(
            Instant::now() < deadline,
            "the number's StatusCallback was never told"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (alice, bob, carol) = (alice.stop().await, bob.stop().await, carol.stop().await);
    let heard = |what: &[i16], hz| seconds_of(what, hz);
    assert!(
        heard(&bob, CAROL) >= 2.0,
        "Bob heard Carol for {} s",
        heard(&bob, CAROL)
    );
    assert!(
        heard(&alice, CAROL) >= 2.0,
        "Alice heard Carol for {} s",
        heard(&alice, CAROL)
    );
    assert!(heard(&alice, BOB) == 0.0, "Alice never hears Bob");
    assert!(
        heard(&carol, BOB) >= 2.0,
        "Carol heard Bob for {} s",
        heard(&carol, BOB)
    );
    assert!(
        heard(&carol, ALICE) >= 2.0,
        "Carol heard Alice for {} s",
        heard(&carol, ALICE)
    );
}

/// `<Reject reason="busy">` answers a call to a number 486 without answering it (the call is
/// `busy`, the phone never connected); `<Redirect>` moves a call to another document, whose
/// `<Say>` the caller hears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_and_redirect_on_a_real_phone() {
    let media = Media::start().await;
    let carol = media.phone("carol", CAROL).await;
    media.app.always(
        "/reject",
        Reply::rcml("<Response><Reject reason=\"busy\"/></Response>"),
    );
    media.app.always(
        "/first",
        Reply::rcml(&format!(
            "<Response><Redirect>{}</Redirect><Say>Never said</Say></Response>",
            media.app.url("/second")
        )),
    );
    media.app.always(
        "/second",
        Reply::rcml("<Response><Say>You have been redirected to the second document.</Say><Hangup/></Response>"),
    );
    media.number("+15557650001", "/reject", "").await;
    media.number("+15557650002", "/first", "").await;

    carol
        .dial(&format!("sip:+15557650001@{}", media.sip()))
        .await;
    media.until_call_to("+15557650001", "busy").await;
    assert!(
        carol.log().contains("486"),
        "the phone was answered 486: {}",
        carol.log()
    );
    assert!(!carol.log().contains("Call established"), "{}", carol.log());

    carol
        .dial(&format!("sip:+15557650002@{}", media.sip()))
        .await;
    media.until_call_to("+15557650002", "completed").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heard = carol.stop().await;
    assert_eq!(media.app.received_at("/second").len(), 1, "redirected once");
    assert!(
        seconds_of_sound(&heard) >= 1.5,
        "the second document's <Say> was heard for {} s",
        seconds_of_sound(&heard)
    );
}

/// Numbers go through the configured trunk (`--trunk`): `POST …/Calls` to a number, and
/// `<Dial><Number>`, reach the trunk's phone as `sip:+1555…@trunk`, and each side hears the
/// other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_are_called_through_the_trunk() {
    let carrier_dir = std::env::temp_dir().join(format!(
        "teleapi-trunk-{}",
        &teleapi_domain::sid::random_hex32()[..12]
    ));
    std::fs::create_dir_all(&carrier_dir).unwrap();
    let microphone = tone_file(&carrier_dir, BOB, 120.0);
    // The trunk: a phone that answers the number it is sent.
    let carrier = Phone::start("+15551230002", &carrier_dir, &microphone).await;
    let trunk = format!("127.0.0.1:{}", carrier.sip_port);
    let media = Media::start_with(|options| {
        options.sip.as_mut().unwrap().trunk = Some(trunk.clone());
    })
    .await;
    let alice = media.phone("alice", ALICE).await;

    media.app.always(
        "/hello",
        Reply::rcml("<Response><Pause length=\"2\"/><Hangup/></Response>"),
    );
    let direct = media.call("+15551230002", "/hello").await;
    media.until_status(&direct, "completed").await;
    assert!(
        carrier.log().contains("Call established"),
        "{}",
        carrier.log()
    );

    media.app.always(
        "/number",
        Reply::rcml(
            "<Response><Dial timeout=\"10\"><Number>+15551230002</Number></Dial></Response>",
        ),
    );
    let call = media.call(&alice.uri(), "/number").await;
    media.until_leg(&call, "+15551230002", "in-progress").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    media.modify(&call, "Status=completed").await;
    media.until_status(&call, "completed").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (alice, carrier) = (alice.stop().await, carrier.stop().await);
    let _ = std::fs::remove_dir_all(&carrier_dir);
    assert!(
        seconds_of(&alice, BOB) >= 2.0,
        "Alice heard the trunk for {} s",
        seconds_of(&alice, BOB)
    );
    assert!(
        seconds_of(&carrier, ALICE) >= 2.0,
        "the trunk heard Alice for {} s",
        seconds_of(&carrier, ALICE)
    );
}

/// `<Play>` (a WAV at 16 kHz, resampled) and `<Say>` (espeak-ng) are heard by the phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_are_heard() {
    let media = Media::start().await;
    let alice = media.phone("alice", ALICE).await;
    // 1.5 kHz for two seconds, at 16 kHz.
    let wav = media.dir.join("prompt.wav");
    let samples: Vec<i16> = (0..32_000)
        .map(|i| {
            ((2.0 * std::f64::consts::PI * 1_500.0 * f64::from(i) / 16_000.0).sin() * 8_000.0)
                as i16
        })
        .collect();
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(&wav, spec).unwrap();
        for s in &samples {
            writer.write_sample(*s).unwrap();
        }
        writer.finalize().unwrap();
    }
    media.app.always(
        "/prompt.wav",
        Reply::file("audio/wav", std::fs::read(&wav).unwrap()),
    );
    let rcml = format!(
        "<Response><Play>{}</Play><Pause length=\"1\"/><Say>Hello from the platform, this is a test of speech.</Say><Hangup/></Response>",
        media.app.url("/prompt.wav")
    );
    media.app.always("/prompts", Reply::rcml(&rcml));
    let call = media.call(&alice.uri(), "/prompts").await;
    media.until_status(&call, "completed").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heard = alice.stop().await;
    let played = seconds_of(&heard, 1_500.0);
    assert!(
        (1.6..=2.2).contains(&played),
        "the 2 s file was heard for {played} s"
    );
    let spoken = seconds_of_sound(&heard) - played;
    assert!(spoken >= 1.0, "speech was heard for {spoken} s");
    assert!(silences(&heard, 0.8) >= 1, "the pause was heard");
}

/// `<Play>` of an MP3 (8 kHz mono, 32 kbit/s, as recordings are made) is heard whole, twice;
/// the file is fetched once, its `Cache-Control: max-age` letting the second play come from the
/// worker's cache. A file with no caching rules is fetched for each play.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mp3_is_heard_and_cached_as_http_allows() {
    let media = Media::start().await;
    let alice = media.phone("alice", ALICE).await;
    let wav = media.dir.join("tone.wav");
    teleapi_worker::audio::write_recording(&wav, 1, &tone(1_500.0, 1.5)).unwrap();
    let mp3 = std::fs::read(wav.with_extension("mp3")).unwrap();
    media.app.always(
        "/cached.mp3",
        Reply::cached_file("audio/mpeg", mp3.clone(), "max-age=60"),
    );
    media
        .app
        .always("/fresh.mp3", Reply::file("audio/mpeg", mp3));
    let (cached, fresh) = (media.app.url("/cached.mp3"), media.app.url("/fresh.mp3"));
    let rcml = format!(
        "<Response><Play>{cached}</Play><Pause length=\"1\"/><Play>{cached}</Play><Play>{fresh}</Play><Play>{fresh}</Play><Hangup/></Response>"
    );
    media.app.always("/mp3", Reply::rcml(&rcml));
    let call = media.call(&alice.uri(), "/mp3").await;
    media.until_status(&call, "completed").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heard = alice.stop().await;
    let played = seconds_of(&heard, 1_500.0);
    assert!(
        (5.2..=6.3).contains(&played),
        "four plays of 1.5 s were heard for {played} s"
    );
    assert_eq!(
        media.app.received_at("/cached.mp3").len(),
        1,
        "fresh for 60 s"
    );
    assert_eq!(
        media.app.received_at("/fresh.mp3").len(),
        2,
        "no rules, no reuse"
    );
}

/// `Mute=true` stops Alice's audio reaching Bob, and `Mute=false` brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_and_unmute_are_heard() {
    let media = Media::start().await;
    let (alice, bob, call) = media.alice_calls_bob().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    media.modify(&call, "Mute=true").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    media.modify(&call, "Mute=false").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    media.modify(&call, "Status=completed").await;
    media.until_status(&call, "completed").await;
    let (alice, bob) = (alice.stop().await, bob.stop().await);
    assert!(
        seconds_of(&bob, ALICE) >= 2.5,
        "Bob heard Alice before and after"
    );
    assert_eq!(silences(&bob, 1.5), 1, "and not while she was muted");
    assert!(seconds_of(&alice, BOB) >= 4.5, "Alice heard Bob all along");
}

/// A SIP answer that is not 200 ends the leg with Twilio's status: an unknown user (404) is
/// `failed`; nobody at the address (no answer within `timeout`) is `no-answer`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legs_that_are_not_answered() {
    let media = Media::start().await;
    let alice = media.phone("alice", ALICE).await;
    let unknown = format!("sip:nobody@127.0.0.1:{}", alice.sip_port);
    let call = media.call(&unknown, "/unused").await;
    media.until_status(&call, "failed").await;
    let silent = format!("sip:nobody@127.0.0.1:{}", free_port());
    let body = format!(
        "To={}&From=%2B15551230001&Url={}&Timeout=3",
        encode(&silent),
        encode(&media.app.url("/unused"))
    );
    let (status, call) = media.post(&format!("{}.json", media.calls()), &body).await;
    assert_eq!(status, 201, "{call}");
    media
        .until_status(call["sid"].as_str().unwrap(), "no-answer")
        .await;
    assert!(
        media.app.received_at("/unused").is_empty(),
        "nothing answered, nothing fetched"
    );
    alice.stop().await;
}

/// `Status=canceled` on a call still ringing sends CANCEL: the phone stops ringing and the call
/// is `canceled`; nothing was answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ringing_call_is_canceled() {
    let media = Media::start().await;
    let microphone = tone_file(&media.dir, ALICE, 120.0);
    let settings = Settings {
        answers: false,
        ..Settings::default()
    };
    let alice = Phone::start_with("alice", &media.dir, &microphone, settings).await;
    let call = media.call(&alice.uri(), "/unused").await;
    media.until_status(&call, "ringing").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    media.modify(&call, "Status=canceled").await;
    media.until_status(&call, "canceled").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !alice.log().contains("CANCEL") && !alice.log().contains("closed") {
        assert!(
            Instant::now() < deadline,
            "the phone never heard the CANCEL: {}",
            alice.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!alice.log().contains("Call established"), "{}", alice.log());
    assert!(
        media.app.received_at("/unused").is_empty(),
        "never answered, never fetched"
    );
    alice.stop().await;
}

/// `MoveConnectedCallLeg=true` moves both legs to the new RCML: Bob's leg is not hung up, and
/// both phones hear what it plays; then each hears the other no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_legs_move_to_new_rcml() {
    let media = Media::start().await;
    // Bob speaks A-law only: the bridge between the two laws is the worker's.
    let microphone = tone_file(&media.dir, BOB, 120.0);
    let settings = Settings {
        codecs: "PCMA/8000/1",
        ..Settings::default()
    };
    let alice = media.phone("alice", ALICE).await;
    let bob = Phone::start_with("bob", &media.dir, &microphone, settings).await;
    media.app.always("/bob", Reply::rcml(&dial(&bob.uri())));
    let beep = tone(1_500.0, 3.0);
    let wav = media.dir.join("beep.wav");
    teleapi_tests::phone::write_wav(&wav, &beep);
    media.app.always(
        "/beep.wav",
        Reply::file("audio/wav", std::fs::read(&wav).unwrap()),
    );
    let moved = format!(
        "<Response><Play>{}</Play><Pause length=\"2\"/></Response>",
        media.app.url("/beep.wav")
    );
    media.app.always("/moved", Reply::rcml(&moved));
    let call = media.call(&alice.uri(), "/bob").await;
    let bob_leg = media.until_leg(&call, &bob.uri(), "in-progress").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    media
        .modify(
            &call,
            &format!(
                "Url={}&MoveConnectedCallLeg=true",
                encode(&media.app.url("/moved"))
            ),
        )
        .await;
    media.until_status(&call, "completed").await;
    media.until_status(&bob_leg, "completed").await;
    let (alice, bob) = (alice.stop().await, bob.stop().await);
    assert!(
        seconds_of(&bob, ALICE) >= 1.5,
        "Bob heard Alice first (A-law from μ-law)"
    );
    assert!(
        seconds_of(&alice, BOB) >= 1.5,
        "Alice heard Bob first (μ-law from A-law)"
    );
    assert!(
        seconds_of(&alice, 1_500.0) >= 2.5,
        "Alice heard the new RCML"
    );
    assert!(
        seconds_of(&bob, 1_500.0) >= 2.5,
        "so did Bob, moved with her"
    );
    assert_eq!(
        media.app.received_at("/moved").len(),
        2,
        "each leg fetched it"
    );
}

/// A far end that answers 486 makes the dialled leg `busy`, and the caller's RCML goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_far_end() {
    let media = Media::start().await;
    let alice = media.phone("alice", ALICE).await;
    let port = free_port();
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/media/busy.xml");
    let mut sipp = tokio::process::Command::new("sipp")
        .args(["-sf", scenario, "-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-m", "1", "-nostdin", "-bg"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs (tests/run installs sip-tester)");
    let _ = sipp.wait().await;
    let busy = format!("sip:busy@127.0.0.1:{port}");
    let rcml = format!(
        "<Response><Dial timeout=\"10\"><Sip>{busy}</Sip></Dial><Say>The line is busy</Say></Response>"
    );
    media.app.always("/busy", Reply::rcml(&rcml));
    let call = media.call(&alice.uri(), "/busy").await;
    media.until_leg(&call, &busy, "busy").await;
    media.until_status(&call, "completed").await;
    let heard = alice.stop().await;
    assert!(
        seconds_of_sound(&heard) >= 0.5,
        "the RCML after <Dial> was heard"
    );
    let _ = std::process::Command::new("pkill")
        .args(["-f", &format!("sipp -sf {scenario} -i 127.0.0.1 -p {port}")])
        .status();
}

/// A worker killed mid-call: the phone is hung up on, and once the worker's lease runs out the
/// control plane ends the call `completed`, with its StatusCallback (the leases of #16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_ends_its_calls() {
    let lease = Duration::from_secs(3);
    let media = Media::start_with(|options| {
        options.worker_lease = lease;
        options.reconcile_every = Duration::from_millis(500);
        options.simulator.heartbeat = lease / 3;
    })
    .await;
    let alice = media.phone("alice", ALICE).await;
    media.app.always(
        "/hold",
        Reply::rcml("<Response><Pause length=\"60\"/></Response>"),
    );
    let body = format!(
        "To={}&From=%2B15551230001&Url={}&StatusCallback={}",
        encode(&alice.uri()),
        encode(&media.app.url("/hold")),
        encode(&media.app.url("/status"))
    );
    let (status, call) = media.post(&format!("{}.json", media.calls()), &body).await;
    assert_eq!(status, 201, "{call}");
    let call = call["sid"].as_str().unwrap().to_owned();
    media.until_status(&call, "in-progress").await;
    let worker = media.simulator.first();
    assert!(media.simulator.kill(worker.id().as_str()));
    media.until_status(&call, "completed").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !media
        .app
        .values_at("/status", "CallStatus")
        .contains(&"completed".to_owned())
    {
        assert!(Instant::now() < deadline, "no completed StatusCallback");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while !alice.log().contains("closed") {
        assert!(
            Instant::now() < deadline,
            "the phone was not hung up on: {}",
            alice.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let notices = media
        .get(&format!("{}/{call}/Notifications.json", media.calls()))
        .await;
    let codes: Vec<&Value> = notices["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["error_code"])
        .collect();
    assert!(
        codes.iter().any(|c| *c == "15000"),
        "ended for its lease: {notices}"
    );
    alice.stop().await;
}

/// OPTIONS from `source` to the worker, `count` of them, 10 every 10 ms (1000 a second); how
/// many were answered 200.
async fn options_answered(worker: std::net::SocketAddr, source: &str, count: usize) -> usize {
    let socket = tokio::net::UdpSocket::bind((source, 0)).await.unwrap();
    let local = socket.local_addr().unwrap();
    let mut answered = 0;
    let mut buffer = [0u8; 4096];
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    for n in 0..count {
        if n % 10 == 0 {
            pace.tick().await;
            while let Ok((read, _)) = socket.try_recv_from(&mut buffer) {
                answered += usize::from(buffer[..read].starts_with(b"SIP/2.0 200"));
            }
        }
        let request = format!(
            "OPTIONS sip:probe@{worker} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-{n}-probe\r\n\
             From: <sip:probe@{local}>;tag={n}\r\n\
             To: <sip:probe@{worker}>\r\n\
             Call-ID: probe-{n}@{local}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Max-Forwards: 70\r\n\
             Content-Length: 0\r\n\r\n"
        );
        socket.send_to(request.as_bytes(), worker).await.unwrap();
    }
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(1_500), socket.recv_from(&mut buffer)).await
    {
        if buffer[..n].starts_with(b"SIP/2.0 200") {
            answered += 1;
        }
    }
    answered
}

/// Hostile SIP (SIPp: a broken request line, an INVITE with nonsense SDP and a huge header,
/// bytes that are not SIP) and hostile RTP (garbage, and RTP from a stranger after the far end
/// is latched, at every port of the worker) change nothing: the worker still answers, and a
/// call in progress goes on, heard by its phone all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sip_and_rtp_change_nothing() {
    let media = Media::start().await;
    let alice = media.phone("alice", ALICE).await;
    let wav = media.dir.join("music.wav");
    teleapi_tests::phone::write_wav(&wav, &tone(1_500.0, 1.0));
    media.app.always(
        "/music.wav",
        Reply::file("audio/wav", std::fs::read(&wav).unwrap()),
    );
    let rcml = format!(
        "<Response><Play loop=\"0\">{}</Play></Response>",
        media.app.url("/music.wav")
    );
    media.app.always("/music", Reply::rcml(&rcml));
    let call = media.call(&alice.uri(), "/music").await;
    media.until_status(&call, "in-progress").await;
    let answered = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/media/garbage.xml");
    let sipp = tokio::process::Command::new("sipp")
        .arg(media.sip().to_string())
        .args([
            "-sf",
            scenario,
            "-i",
            "127.0.0.1",
            "-p",
            &free_port().to_string(),
        ])
        .args(["-m", "1", "-nostdin", "-timeout", "20s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .expect("sipp runs");
    assert!(
        sipp.success(),
        "the worker answered OPTIONS after the garbage"
    );

    // Garbage at every port of the worker; and for three seconds a stranger's RTP stream, ten
    // times as fast as the phone's, at the first ports (where the call's leg is): a worker that
    // followed it would send the music to the stranger.
    let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rtp = vec![0x80u8, 0, 0, 1, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef];
    rtp.extend([0u8; 160]);
    for port in media.rtp.0..=media.rtp.1 {
        let target = ("127.0.0.1", port);
        let _ = stranger.send_to(&[0x5a; 37], target);
        let _ = stranger.send_to(&[0x80, 0xc8, 0, 0], target);
        let _ = stranger.send_to(&[0x80; 2_000], target);
    }
    let mut pace = tokio::time::interval(Duration::from_millis(2));
    for n in 0..1_500u16 {
        pace.tick().await;
        rtp[2..4].copy_from_slice(&n.to_be_bytes());
        for port in (media.rtp.0..media.rtp.0 + 8).step_by(2) {
            let _ = stranger.send_to(&rtp, ("127.0.0.1", port));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    media.modify(&call, "Status=completed").await;
    media.until_status(&call, "completed").await;
    let heard = alice.stop().await;
    // A lost packet is missing from what the phone wrote, not silence in it: the music must
    // have been heard for as long as the call was up.
    let up = answered.elapsed().as_secs_f64();
    let played = seconds_of(&heard, 1_500.0);
    assert!(
        played >= up - 0.5,
        "the music played on through it all: {played} s of {up:.1} s"
    );
    let lost = lost_frames(&heard);
    assert!(
        lost < 0.02,
        "without a gap: {:.1}% of its 20 ms frames were silent",
        lost * 100.0
    );
}

/// The front door: a source that floods the worker (1000 datagrams a second for 1.5 s) is held
/// to its rate (200 a second, a burst of 400: about 700 answered), while others are still
/// answered; a source outside `--sip-allow` is not answered at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_are_held_back_and_strangers_not_answered() {
    let media = Media::start().await;
    let flooded = options_answered(media.sip(), "127.0.0.2", 1_500).await;
    assert!(
        (550..=800).contains(&flooded),
        "1500 in 1.5 s from one source: {flooded} answered"
    );
    assert_eq!(options_answered(media.sip(), "127.0.0.1", 5).await, 5);

    let strict = Media::start_with(|options| {
        let sip = options.sip.as_mut().unwrap();
        sip.allowed = "127.0.0.1/32".parse().unwrap();
    })
    .await;
    assert_eq!(options_answered(strict.sip(), "127.0.0.3", 5).await, 0);
    assert_eq!(options_answered(strict.sip(), "127.0.0.1", 5).await, 5);
}

#[test]
fn the_analysis_tells_tones_apart() {
    let mut heard = tone(ALICE, 2.0);
    heard.extend(vec![0; 16_000]);
    heard.extend(tone(BOB, 1.0));
    assert!((1.9..=2.1).contains(&seconds_of(&heard, ALICE)));
    assert!((0.9..=1.1).contains(&seconds_of(&heard, BOB)));
    assert_eq!(seconds_of(&heard, CAROL), 0.0);
    assert_eq!(silences(&heard, 1.5), 1);
}
