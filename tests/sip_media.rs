//! Real media, part two, on real phones (`sip_calls`' bench: teleapi-local with the SIP/RTP
//! worker, Debian's baresip phones each playing a tone of its own, SIPp where a phone without
//! telephone-events is needed): digits pressed and sent, recordings of what the parties said,
//! media streams carrying the call's audio both ways, and conference rooms mixing their
//! participants. What each phone heard, and what each recording and stream holds, is checked
//! by frequency analysis.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use teleapi_tests::phone::{free_port, rms, tone_level, write_wav};
use teleapi_tests::sink::Reply;
use teleapi_tests::ws::WsPeer;

use teleapi_media::g711::Law;
use teleapi_media::sound::dtmf_frequencies;

use crate::sip_calls::{ALICE, BOB, CAROL, Media, encode};

/// How much of `samples` is the tone `hz`, 100 ms at a time (about 1 alone, 0.5 in an even mix
/// of two, near 0 when absent), over the windows that are sound.
fn presence(samples: &[i16], hz: f64) -> f64 {
    let windows: Vec<&[i16]> = samples.chunks(800).filter(|w| rms(w) > 500.0).collect();
    if windows.is_empty() {
        return 0.0;
    }
    windows.iter().map(|w| tone_level(w, hz)).sum::<f64>() / windows.len() as f64
}

/// The part of what a phone heard between `from` and `to` (instants of the test), its call
/// having begun at `began`: without the first 0.8 s and the last 0.4 s, which the phones'
/// buffers and the test's polling blur.
fn between(heard: &[i16], began: Instant, from: Instant, to: Instant) -> &[i16] {
    let at = |when: Instant, margin: f64| {
        let seconds = when.saturating_duration_since(began).as_secs_f64() + margin;
        ((seconds.max(0.0) * 8_000.0) as usize).min(heard.len())
    };
    let (start, end) = (at(from, 0.8), at(to, -0.4));
    &heard[start..end.max(start)]
}

/// Waits until `what` holds (polling), or fails saying `waiting_for`.
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    waiting_for: &str,
    mut what: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = what().await {
            return value;
        }
        assert!(Instant::now() < deadline, "waited for {waiting_for}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the phone has received `keys` in all.
async fn until_keys(phone: &teleapi_tests::phone::Phone, keys: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while phone.keys_received() != keys {
        assert!(
            Instant::now() < deadline,
            "the phone received {:?}, not {keys:?}",
            phone.keys_received()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A PIN pressed on a phone (RFC 4733 events) and one played as tones by a caller that did
/// not negotiate telephone-events (SIPp, PCMU alone) both reach the `<Gather>`'s action as
/// `Digits`, the first key stopping the prompt; `<Play digits>` and `SendDigits` reach the
/// phone as events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_is_collected_from_events_and_from_tones() {
    let media = Media::start().await;
    let alice = media.phone("alice", ALICE).await;
    media.app.always(
        "/gather",
        Reply::rcml(
            "<Response><Gather numDigits=\"4\" action=\"/pin\" timeout=\"10\">\
             <Say>Please enter your PIN, then wait.</Say><Pause length=\"20\"/></Gather></Response>",
        ),
    );
    media.app.always(
        "/pin",
        Reply::rcml("<Response><Play digits=\"w9#\"/><Pause length=\"2\"/></Response>"),
    );
    media.number("+15557650001", "/gather", "").await;

    alice
        .dial(&format!("sip:+15557650001@{}", media.sip()))
        .await;
    media.until_call_to("+15557650001", "in-progress").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    alice.command("sndcode", "1234").await;
    let pin = until("the PIN at the action", || async {
        media.app.values_at("/pin", "Digits").first().cloned()
    })
    .await;
    assert_eq!(pin, "1234", "the PIN as pressed (RFC 4733)");
    until_keys(&alice, "9#").await;
    media.until_call_to("+15557650001", "completed").await;

    // SendDigits on a call the API places: sent once the phone answers.
    let pause = "<Response><Pause length=\"3\"/></Response>";
    media.app.always("/pause", Reply::rcml(pause));
    let body = format!(
        "To={}&From=%2B15551230001&Url={}&SendDigits=w5*",
        encode(&alice.uri()),
        encode(&media.app.url("/pause"))
    );
    let (status, call) = media.post(&format!("{}.json", media.calls()), &body).await;
    assert_eq!(status, 201, "{call}");
    until_keys(&alice, "9#5*").await;

    // In-band: SIPp offers PCMU alone and plays the PIN 5678 as tones after a second.
    let dir = media.dir.join("sipp");
    std::fs::create_dir_all(&dir).unwrap();
    let mut pin: Vec<i16> = vec![0; 8_000];
    for key in "5678".chars() {
        let (low, high) = dtmf_frequencies(key).unwrap();
        let tone = |n: usize, hz: f64| (2.0 * std::f64::consts::PI * hz * n as f64 / 8_000.0).sin();
        pin.extend((0..960).map(|n| ((tone(n, low) + tone(n, high)) * 6_000.0) as i16));
        pin.extend(std::iter::repeat_n(0, 960));
    }
    pin.extend(std::iter::repeat_n(0, 16_000));
    write_wav(&dir.join("linear.wav"), &pin);
    let converted = std::process::Command::new("sox")
        .arg(dir.join("linear.wav"))
        .args(["-e", "u-law"])
        .arg(dir.join("caller.wav"))
        .status()
        .expect("sox runs (tests/run installs it)");
    assert!(converted.success());
    let scenario = format!(
        "{}/tests/media/caller.xml",
        std::env::var("CARGO_MANIFEST_DIR")
            .unwrap()
            .trim_end_matches("/tests")
    );
    let port = free_port().to_string();
    let sipp = tokio::process::Command::new("sipp")
        .args([
            "-sf",
            &scenario,
            "-s",
            "+15557650001",
            "-m",
            "1",
            "-d",
            "5000",
        ])
        .args([
            "-nostdin",
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-p",
            &port,
        ])
        .arg(media.sip().to_string())
        .current_dir(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs (tests/run installs sip-tester)");
    let pins = until("the in-band PIN at the action", || async {
        let pins = media.app.values_at("/pin", "Digits");
        (pins.len() == 2).then_some(pins)
    })
    .await;
    assert_eq!(pins[1], "5678", "the PIN heard as tones (Goertzel)");
    let _ = sipp.wait_with_output().await;
    let _ = alice.stop().await;
}

/// The WAV the API serves for `recording`: its channels and samples (interleaved).
async fn recording_wav(media: &Media, recording: &str) -> (u16, Vec<i16>) {
    let url = format!(
        "{}/call/2012-04-24/Accounts/{}/Recordings/{recording}.wav",
        media.base, media.sid
    );
    let bytes = media
        .client
        .get(url)
        .basic_auth(&media.sid, Some(crate::sip_calls::TOKEN))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let channels = reader.spec().channels;
    (
        channels,
        reader.into_samples::<i16>().map(Result::unwrap).collect(),
    )
}

/// Waits for the recording to complete; its resource.
async fn completed(media: &Media, recording: &str) -> Value {
    let url = format!(
        "{}/call/2012-04-24/Accounts/{}/Recordings/{recording}.json",
        media.base, media.sid
    );
    until("the recording to complete", || async {
        let resource = media.get(&url).await;
        (resource["status"] == "completed").then_some(resource)
    })
    .await
}

/// Alice (1 kHz) is called and dials Bob (2 kHz). A dual recording of her call, paused 1.5 s
/// with `PauseBehavior=silence`, holds Alice on its first channel and Bob on its second, the
/// pause silent, at the length recorded; a mono one paused with `skip` holds both, the pause
/// cut. `RecordingDuration` is the media's length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_hold_what_the_parties_said() {
    let media = Media::start().await;
    let (alice, bob, call) = media.alice_calls_bob().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let recordings = format!("{}/{call}/Recordings", media.calls());
    let current = format!("{recordings}/Twilio.CURRENT.json");
    let step = |seconds: f64| tokio::time::sleep(Duration::from_secs_f64(seconds));

    let (status, dual) = media
        .post(&format!("{recordings}.json"), "RecordingChannels=dual")
        .await;
    assert_eq!(status, 201, "{dual}");
    step(2.0).await;
    media
        .post(&current, "Status=paused&PauseBehavior=silence")
        .await;
    step(1.5).await;
    media.post(&current, "Status=in-progress").await;
    step(1.5).await;
    media.post(&current, "Status=stopped").await;
    let dual = dual["sid"].as_str().unwrap().to_owned();
    let resource = completed(&media, &dual).await;
    let (channels, samples) = recording_wav(&media, &dual).await;
    assert_eq!(channels, 2);
    let seconds = samples.len() as f64 / 16_000.0;
    assert!((seconds - 5.0).abs() < 0.4, "{seconds} s recorded, 5 asked");
    assert_eq!(resource["duration"], format!("{}", seconds.round() as u64));
    let channel = |n: usize, from: f64, to: f64| -> Vec<i16> {
        samples
            .iter()
            .skip(n)
            .step_by(2)
            .skip((from * 8_000.0) as usize)
            .take(((to - from) * 8_000.0) as usize)
            .copied()
            .collect()
    };
    for (from, to) in [(0.3, 1.7), (3.8, 4.7)] {
        let (caller, callee) = (channel(0, from, to), channel(1, from, to));
        assert!(presence(&caller, ALICE) > 0.8, "Alice on the first channel");
        assert!(presence(&caller, BOB) < 0.05, "only Alice on the first");
        assert!(presence(&callee, BOB) > 0.8, "Bob on the second channel");
        assert!(presence(&callee, ALICE) < 0.05, "only Bob on the second");
    }
    let (caller, callee) = (channel(0, 2.3, 3.2), channel(1, 2.3, 3.2));
    assert!(
        rms(&caller) < 50.0 && rms(&callee) < 50.0,
        "the pause is silent"
    );

    let (status, mono) = media.post(&format!("{recordings}.json"), "").await;
    assert_eq!(status, 201, "{mono}");
    step(1.5).await;
    media
        .post(&current, "Status=paused&PauseBehavior=skip")
        .await;
    step(1.5).await;
    media.post(&current, "Status=in-progress").await;
    step(1.5).await;
    media.post(&current, "Status=stopped").await;
    let mono = mono["sid"].as_str().unwrap().to_owned();
    completed(&media, &mono).await;
    let (channels, samples) = recording_wav(&media, &mono).await;
    assert_eq!(channels, 1);
    let seconds = samples.len() as f64 / 8_000.0;
    assert!((seconds - 3.0).abs() < 0.4, "{seconds} s: the pause is cut");
    assert!(presence(&samples, ALICE) > 0.3 && presence(&samples, BOB) > 0.3);
    let quiet = samples.chunks(800).filter(|w| rms(w) < 300.0).count();
    assert!(quiet <= 1, "{quiet} silent tenths of a second");

    media.modify(&call, "Status=completed").await;
    let _ = (alice.stop().await, bob.stop().await);
}

/// A media stream of a bridged call (`<Start><Stream>`, both tracks) carries Alice on its
/// inbound track and Bob on its outbound one, in real time; redirected to `<Connect><Stream>`
/// with a bot that echoes, Alice hears her own tone come back through it, and the bot's marks
/// come back once their audio has played. The call was placed with `Record=true`: its
/// recording holds Alice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_carry_the_call_both_ways() {
    let media = Media::start().await;
    let (alice, bob) = (
        media.phone("alice", ALICE).await,
        media.phone("bob", BOB).await,
    );
    let bot = WsPeer::start().await;
    bot.echo("/echo");
    media.app.always(
        "/tap",
        Reply::rcml(&format!(
            "<Response><Start><Stream url=\"{}\" track=\"both_tracks\"/></Start>\
             <Dial timeout=\"10\"><Sip>{}</Sip></Dial></Response>",
            bot.url("/tap"),
            bob.uri()
        )),
    );
    media.app.always(
        "/echo",
        Reply::rcml(&format!(
            "<Response><Connect><Stream url=\"{}\"/></Connect></Response>",
            bot.url("/echo")
        )),
    );
    let body = format!(
        "To={}&From=%2B15551230001&Url={}&Record=true&RecordingChannels=dual",
        encode(&alice.uri()),
        encode(&media.app.url("/tap"))
    );
    let (status, call) = media.post(&format!("{}.json", media.calls()), &body).await;
    assert_eq!(status, 201, "{call}");
    let call = call["sid"].as_str().unwrap().to_owned();
    media.until_status(&call, "in-progress").await;
    let began = Instant::now();
    media.until_leg(&call, &bob.uri(), "in-progress").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let echo_from = Instant::now();
    media
        .modify(&call, &format!("Url={}", encode(&media.app.url("/echo"))))
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    media.modify(&call, "Status=completed").await;
    media.until_status(&call, "completed").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (alice_heard, _) = (alice.stop().await, bob.stop().await);

    // The tap: each track's audio, and its pace.
    let tapped = bot.heard("/tap");
    assert_eq!(tapped.len(), 1, "one stream");
    // Until the redirect: the stream goes on after it (a <Start><Stream> lasts until stopped),
    // and Alice is sent her own echo then.
    let redirected = tokio::time::Instant::from_std(echo_from);
    let track = |name: &str| -> (Vec<i16>, Vec<tokio::time::Instant>) {
        let mut samples = Vec::new();
        let mut arrivals = Vec::new();
        for heard in &tapped[0] {
            let media = &heard.message["media"];
            if heard.message["event"] == "media" && media["track"] == name && heard.at < redirected
            {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(media["payload"].as_str().unwrap())
                    .unwrap();
                samples.extend(bytes.iter().map(|b| Law::Mu.decode(*b)));
                arrivals.push(heard.at);
            }
        }
        (samples, arrivals)
    };
    let (inbound, arrivals) = track("inbound");
    let (outbound, _) = track("outbound");
    let late = |from: usize| &inbound[from.min(inbound.len())..];
    let (alice_in, bob_in) = (presence(late(8_000), ALICE), presence(late(8_000), BOB));
    assert!(
        alice_in > 0.8 && bob_in < 0.05,
        "inbound: Alice {alice_in:.2}, Bob {bob_in:.2}"
    );
    let late_out = &outbound[8_000.min(outbound.len())..];
    let (alice_out, bob_out) = (presence(late_out, ALICE), presence(late_out, BOB));
    assert!(
        bob_out > 0.8 && alice_out < 0.05,
        "outbound: Alice {alice_out:.2}, Bob {bob_out:.2}"
    );
    // Frame n arrives 20·n ms after the first, within 40 ms.
    let first = arrivals[0];
    let worst = arrivals
        .iter()
        .enumerate()
        .map(|(n, at)| {
            let due = Duration::from_millis(20 * n as u64);
            (at.duration_since(first).as_secs_f64() - due.as_secs_f64()).abs()
        })
        .fold(0.0f64, f64::max);
    assert!(
        worst < 0.040,
        "a frame {:.1} ms off real time",
        worst * 1_000.0
    );

    // The echo: Alice hears her own tone back, and marks come back after their audio.
    let echoed = &bot.heard("/echo")[0];
    let marks: Vec<&Value> = echoed
        .iter()
        .filter(|h| h.message["event"] == "mark")
        .map(|h| &h.message["mark"]["name"])
        .collect();
    assert!(marks.len() >= 4, "marks echoed: {marks:?}");
    assert_eq!(marks[0], "echo-25");
    let echo_span = between(
        &alice_heard,
        began,
        echo_from,
        echo_from + Duration::from_secs(4),
    );
    assert!(
        presence(echo_span, ALICE) > 0.8,
        "Alice hears herself through the bot: {}",
        presence(echo_span, ALICE)
    );

    // Record=true: the call's recording, from its answer.
    let recordings = media
        .get(&format!("{}/{call}/Recordings.json", media.calls()))
        .await;
    let recording = recordings["recordings"][0]["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    completed(&media, &recording).await;
    let (channels, samples) = recording_wav(&media, &recording).await;
    assert_eq!(channels, 2);
    let caller: Vec<i16> = samples.iter().step_by(2).copied().collect();
    assert!(presence(&caller, ALICE) > 0.8, "Alice recorded");
}

/// The music of a room's `waitUrl` and a participant's `HoldUrl` (1.5 kHz), its beep (440 Hz)
/// and an announcement (350 Hz).
const MUSIC: f64 = 1_500.0;
const BEEP: f64 = 440.0;
const ANNOUNCEMENT: f64 = 350.0;

/// Three phones in a room. Alice and Bob, who do not start it, wait hearing its `waitUrl`'s
/// music and not each other; Carol starts it, and the room beeps. Then each hears the other two
/// and not itself; a muted one is heard by nobody (and hears); one on hold hears its `HoldUrl`'s
/// music, and nobody hears it; a coach is heard only by the participant it coaches; an
/// announcement to the room is heard by all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conference_room_mixes_its_participants() {
    let media = Media::start().await;
    let (alice, bob, carol) = (
        media.phone("alice", ALICE).await,
        media.phone("bob", BOB).await,
        media.phone("carol", CAROL).await,
    );
    let wav = |hz: f64, seconds: f64| {
        let path = media.dir.join(format!("served-{hz}.wav"));
        write_wav(&path, &teleapi_tests::phone::tone(hz, seconds));
        std::fs::read(&path).unwrap()
    };
    media
        .app
        .always("/music.wav", Reply::file("audio/wav", wav(MUSIC, 2.0)));
    media.app.always(
        "/announce.wav",
        Reply::file("audio/wav", wav(ANNOUNCEMENT, 1.5)),
    );
    media.app.always(
        "/hold-music",
        Reply::rcml("<Response><Play loop=\"0\">music.wav</Play></Response>"),
    );
    media.app.always(
        "/announce",
        Reply::rcml("<Response><Play>announce.wav</Play></Response>"),
    );
    media.app.always(
        "/wait",
        Reply::rcml(&format!(
            "<Response><Dial><Conference startConferenceOnEnter=\"false\" waitUrl=\"{}\">\
             standup</Conference></Dial></Response>",
            media.app.url("/music.wav")
        )),
    );
    media.app.always(
        "/room",
        Reply::rcml("<Response><Dial><Conference>standup</Conference></Dial></Response>"),
    );
    let (mut calls, mut began, mut marks) = (Vec::new(), Vec::new(), Vec::new());
    for (phone, path) in [(&alice, "/wait"), (&bob, "/wait"), (&carol, "/room")] {
        if path == "/room" {
            marks.push(Instant::now());
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        let call = media.call(&phone.uri(), path).await;
        media.until_status(&call, "in-progress").await;
        began.push(Instant::now());
        calls.push(call);
    }
    let conferences = format!(
        "{}/call/2012-04-24/Accounts/{}/Conferences",
        media.base, media.sid
    );
    // Started (its worker reported it, so the waiting music has stopped), not only listed: the
    // phases below are timed from here.
    let room = until("the room started", || async {
        let page = media
            .get(&format!("{conferences}.json?FriendlyName=standup"))
            .await;
        let room = &page["conferences"][0];
        (room["status"] == "in-progress")
            .then(|| room["sid"].as_str().map(str::to_owned))
            .flatten()
    })
    .await;
    let participant = |n: usize| format!("{conferences}/{room}/Participants/{}.json", calls[n]);
    let phase = Duration::from_secs(3);
    marks.push(Instant::now());
    tokio::time::sleep(phase).await;
    marks.push(Instant::now());
    media.post(&participant(2), "Muted=true").await;
    tokio::time::sleep(phase).await;
    marks.push(Instant::now());
    media.post(&participant(2), "Muted=false").await;
    let hold = format!(
        "Hold=true&HoldUrl={}",
        encode(&media.app.url("/hold-music"))
    );
    media.post(&participant(1), &hold).await;
    tokio::time::sleep(phase).await;
    marks.push(Instant::now());
    media.post(&participant(1), "Hold=false").await;
    let coach = format!("Coaching=true&CallSidToCoach={}", calls[0]);
    media.post(&participant(2), &coach).await;
    tokio::time::sleep(phase).await;
    marks.push(Instant::now());
    let announce = format!("AnnounceUrl={}", encode(&media.app.url("/announce")));
    let (status, _) = media
        .post(&format!("{conferences}/{room}.json"), &announce)
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(phase).await;
    marks.push(Instant::now());
    for call in &calls {
        media.modify(call, "Status=completed").await;
    }
    let heard = [alice.stop().await, bob.stop().await, carol.stop().await];
    let tones = [ALICE, BOB, CAROL];
    let names = ["Alice", "Bob", "Carol"];
    // Who hears whom, phase by phase: [listener][speaker]; and who hears music.
    let expected: [([[bool; 3]; 3], [bool; 3]); 5] = [
        // Alice and Bob wait for the room to start, with music (Carol is not called yet).
        (
            [
                [false, false, false],
                [false, false, false],
                [false, false, false],
            ],
            [true, true, false],
        ),
        (
            [
                [false, true, true],
                [true, false, true],
                [true, true, false],
            ],
            [false; 3],
        ),
        // Carol muted: heard by nobody, hears both.
        (
            [
                [false, true, false],
                [true, false, false],
                [true, true, false],
            ],
            [false; 3],
        ),
        // Bob on hold: hears its music, heard by nobody.
        (
            [
                [false, false, true],
                [false, false, false],
                [true, false, false],
            ],
            [false, true, false],
        ),
        // Carol coaches Alice: heard by Alice alone.
        (
            [
                [false, true, true],
                [true, false, false],
                [true, true, false],
            ],
            [false; 3],
        ),
    ];
    for (n, (hears, music)) in expected.iter().enumerate() {
        for listener in 0..3 {
            if n == 0 && listener == 2 {
                continue; // Carol is not called yet
            }
            let window = between(&heard[listener], began[listener], marks[n], marks[n + 1]);
            for speaker in 0..3 {
                if speaker == listener {
                    continue;
                }
                let level = presence(window, tones[speaker]);
                let should = hears[listener][speaker];
                assert!(
                    if should { level > 0.25 } else { level < 0.05 },
                    "phase {n}: {} {} {} ({level:.2})",
                    names[listener],
                    if should {
                        "should hear"
                    } else {
                        "should not hear"
                    },
                    names[speaker]
                );
            }
            let level = presence(window, MUSIC);
            assert!(
                if music[listener] {
                    level > 0.25
                } else {
                    level < 0.05
                },
                "phase {n}: {} music {level:.2}",
                names[listener]
            );
        }
    }
    // The beep as Carol joined (heard by those waiting), and the announcement (by everyone).
    let tone_in = |listener: usize, from: Instant, to: Instant, hz: f64| {
        let start = from
            .saturating_duration_since(began[listener])
            .as_secs_f64();
        let end = to.saturating_duration_since(began[listener]).as_secs_f64();
        let samples = &heard[listener];
        let span = &samples[((start * 8_000.0) as usize).min(samples.len())
            ..((end * 8_000.0) as usize).min(samples.len())];
        span.chunks(800)
            .any(|w| rms(w) > 500.0 && tone_level(w, hz) > 0.6)
    };
    let joined = marks[1];
    for (listener, name) in names.iter().enumerate() {
        if listener < 2 {
            let beep = tone_in(listener, joined - phase / 2, joined + phase / 2, BEEP);
            assert!(beep, "{name} hears the beep");
        }
        let announced = tone_in(listener, marks[5], marks[6], ANNOUNCEMENT);
        assert!(announced, "{name} hears the announcement");
    }
}

/// Answering-machine detection on real audio: a phone that answers with an answering
/// machine's greeting (espeak-ng) is `machine_start`, one that says "Hello?" and waits is
/// `human`, each RCML fetched with its `AnsweredBy`. Then forward, else voicemail: Alice
/// (1 kHz) dials a phone that never answers; the dial's action hears `no-answer` and answers
/// `<Record maxLength="3">`, which beeps and records Alice; the recording holds her tone. A
/// message ended by silence holds what was said, trimmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_are_told_from_people_and_voicemail_is_left() {
    use teleapi_tests::phone::{Phone, Settings};
    use teleapi_tests::speech::{Part, make};
    let media = crate::sip_calls::Media::start().await;
    let greeting = [
        Part::Silence(0.5),
        Part::Say {
            text: "Hi, you've reached Sam. I can't take your call, please leave a message after the tone.",
            voice: "en-us",
            wpm: 165,
        },
        Part::Silence(30.0),
    ];
    let hello = [
        Part::Silence(0.5),
        Part::Say {
            text: "Hello?",
            voice: "en-us",
            wpm: 165,
        },
        Part::Silence(30.0),
    ];
    let mut phones = Vec::new();
    for (name, parts) in [("machine", &greeting[..]), ("person", &hello[..])] {
        let microphone = media.dir.join(format!("{name}.wav"));
        write_wav(&microphone, &make(&media.dir, parts));
        phones.push(Phone::start(name, &media.dir, &microphone).await);
    }
    media
        .app
        .always("/amd", Reply::rcml("<Response><Hangup/></Response>"));
    let mut calls = Vec::new();
    for phone in &phones {
        let body = format!(
            "To={}&From=%2B15551230001&Url={}&MachineDetection=Enable",
            encode(&phone.uri()),
            encode(&media.app.url("/amd"))
        );
        let (status, call) = media.post(&format!("{}.json", media.calls()), &body).await;
        assert_eq!(status, 201, "{call}");
        calls.push(call["sid"].as_str().unwrap().to_owned());
    }
    for (call, expected) in calls.iter().zip(["machine_start", "human"]) {
        let fetched = until("the RCML fetched with AnsweredBy", || async {
            media
                .app
                .received_at("/amd")
                .into_iter()
                .find(|r| r.params["CallSid"] == *call)
        })
        .await;
        assert_eq!(fetched.params["AnsweredBy"], expected, "{call}");
        media.until_status(call, "completed").await;
        let stored = media.get(&format!("{}/{call}.json", media.calls())).await;
        assert_eq!(stored["answered_by"], expected);
    }
    for phone in phones {
        let _ = phone.stop().await;
    }

    let alice = media.phone("alice", ALICE).await;
    let never = Settings {
        answers: false,
        ..Settings::default()
    };
    let microphone = teleapi_tests::phone::tone_file(&media.dir, BOB, 60.0);
    let nobody = Phone::start_with("nobody", &media.dir, &microphone, never).await;
    let forward = format!(
        "<Response><Dial timeout=\"3\" action=\"{}\"><Sip>{}</Sip></Dial></Response>",
        media.app.url("/voicemail"),
        nobody.uri()
    );
    media.app.always("/forward", Reply::rcml(&forward));
    let voicemail = format!(
        "<Response><Say>Please leave a message.</Say><Record maxLength=\"3\" action=\"{}\"/></Response>",
        media.app.url("/saved")
    );
    media.app.always("/voicemail", Reply::rcml(&voicemail));
    media
        .app
        .always("/saved", Reply::rcml("<Response><Hangup/></Response>"));
    let call = media.call(&alice.uri(), "/forward").await;
    let saved = until("the message saved", || async {
        media.app.received_at("/saved").into_iter().next()
    })
    .await;
    let asked = &media.app.received_at("/voicemail")[0].params;
    assert_eq!(asked["DialCallStatus"], "no-answer", "{asked:?}");
    assert_eq!(saved.params["CallSid"], call);
    assert_eq!(saved.params["Digits"], "", "ended by its maxLength");
    assert_eq!(saved.params["RecordingDuration"], "3", "{:?}", saved.params);
    let recording = saved.params["RecordingSid"].clone();
    completed(&media, &recording).await;
    let (channels, samples) = recording_wav(&media, &recording).await;
    assert_eq!(channels, 1);
    assert!(
        presence(&samples, ALICE) > 0.8,
        "the message is Alice's tone: {}",
        presence(&samples, ALICE)
    );
    media.until_status(&call, "completed").await;
    let _ = alice.stop().await;
    let _ = nobody.stop().await;

    // A message ended by silence: the far end says something for two seconds (a 700 Hz
    // tone), then nothing; `timeout="2"` seconds of that silence end the recording, trimmed
    // to what was said.
    let talk = [
        Part::Silence(1.0),
        Part::Tone(700.0, 2.0),
        Part::Silence(30.0),
    ];
    let microphone = media.dir.join("talker.wav");
    write_wav(&microphone, &make(&media.dir, &talk));
    let talker = Phone::start("talker", &media.dir, &microphone).await;
    let record = format!(
        "<Response><Record timeout=\"2\" playBeep=\"false\" action=\"{}\"/></Response>",
        media.app.url("/said")
    );
    media.app.always("/record", Reply::rcml(&record));
    media
        .app
        .always("/said", Reply::rcml("<Response><Hangup/></Response>"));
    let call = media.call(&talker.uri(), "/record").await;
    let said = until("the message ended by silence", || async {
        media.app.received_at("/said").into_iter().next()
    })
    .await;
    assert_eq!(said.params["CallSid"], call);
    assert_eq!(said.params["Digits"], "", "ended by silence");
    assert_eq!(said.params["RecordingDuration"], "2", "{:?}", said.params);
    let recording = said.params["RecordingSid"].clone();
    completed(&media, &recording).await;
    let (_, samples) = recording_wav(&media, &recording).await;
    assert!(
        presence(&samples, 700.0) > 0.8,
        "{}",
        presence(&samples, 700.0)
    );
    let _ = talker.stop().await;
}

/// The app's documents of a call queue on real phones: `/queue` waits in `support` (`/music`:
/// silence), `/agent` takes its first caller.
fn queue_documents(media: &Media) {
    let enqueue = format!(
        "<Response><Enqueue waitUrl=\"{}\">support</Enqueue></Response>",
        media.app.url("/music")
    );
    media.app.always("/queue", Reply::rcml(&enqueue));
    media.app.always(
        "/music",
        Reply::rcml("<Response><Pause length=\"60\"/></Response>"),
    );
    media.app.always(
        "/agent",
        Reply::rcml("<Response><Dial><Queue>support</Queue></Dial></Response>"),
    );
}

/// A call queue on real phones: Alice (1 kHz) waits in `support`; Bob (2 kHz) dials the queue
/// and is bridged with her: each hears the other. When Bob hangs up, Alice goes on after her
/// `<Enqueue>` (nothing: her call completes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_caller_talks_with_its_agent() {
    let media = Media::start().await;
    let (alice, bob) = (
        media.phone("alice", ALICE).await,
        media.phone("bob", BOB).await,
    );
    queue_documents(&media);
    let caller = media.call(&alice.uri(), "/queue").await;
    until("the caller to wait", || async {
        media.app.received_at("/music").into_iter().next()
    })
    .await;
    let agent = media.call(&bob.uri(), "/agent").await;
    media.until_status(&agent, "in-progress").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    media.modify(&agent, "Status=completed").await;
    media.until_status(&caller, "completed").await;
    let (alice, bob) = (alice.stop().await, bob.stop().await);
    use crate::sip_calls::assert_heard;
    assert_heard(("Alice", &alice), ("Bob", BOB));
    assert_heard(("Bob", &bob), ("Alice", ALICE));
}

/// A call queue across two SIP/RTP workers (`--workers 2`): Bob (2 kHz) calls the support
/// line on the second worker, whose `<Dial><Queue>` waits with no caller there. Carol, who
/// knows Bob's CallSid but not his wait's token, calls the bridge address and is refused 404.
/// Alice (1 kHz) calls a number on the first worker and waits in `support`: the control plane
/// takes her for Bob (whose worker says again that he waits), and her worker reaches his over a
/// SIP leg between the two. Each hears the other through both workers; when Bob hangs up,
/// Alice goes on after her `<Enqueue>` (nothing: her call completes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_caller_and_an_agent_on_two_workers_talk() {
    let media = Media::start_with(|options| options.simulator.workers = 2).await;
    // Carol's SIP user is a CallSid, as a bridge's caller is: only the token keeps her out.
    let (alice, bob, carol) = (
        media.phone("alice", ALICE).await,
        media.phone("bob", BOB).await,
        media
            .phone(&teleapi_domain::CallSid::generate().to_string(), CAROL)
            .await,
    );
    queue_documents(&media);
    let (line, support) = ("+15557651001", "+15557651002");
    media.number(line, "/queue", "").await;
    media.number(support, "/agent", "").await;
    bob.dial(&format!("sip:{support}@{}", media.sip_of(1)))
        .await;
    media.until_call_to(support, "in-progress").await;
    let agent = media.latest_call_to(support).await;
    let agent = agent["sid"].as_str().expect("the agent's call").to_owned();
    let forged = teleapi_worker::bridge_uri(
        &agent.parse().unwrap(),
        &teleapi_domain::sid::random_hex32(),
        &media.sip_of(1).to_string(),
    );
    carol.dial(&forged).await;
    until("the forged bridge refused", || async {
        carol.log().contains("404 Not Found").then_some(())
    })
    .await;
    alice.dial(&format!("sip:{line}@{}", media.sip_of(0))).await;
    until("the caller to wait", || async {
        media.app.received_at("/music").into_iter().next()
    })
    .await;
    // Taken within the agent's next report (5 s), then talking.
    until("the caller taken", || async {
        let caller = media.latest_call_to(line).await["sid"].as_str()?.to_owned();
        let intents = media
            .get(&format!("{}/{caller}/Modifications.json", media.calls()))
            .await;
        intents["modifications"]
            .as_array()?
            .iter()
            .any(|m| m["action"] == "queue-bridge" && m["status"] == "applied")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    media.modify(&agent, "Status=completed").await;
    media.until_call_to(line, "completed").await;
    let (alice, bob, _) = (alice.stop().await, bob.stop().await, carol.stop().await);
    use crate::sip_calls::{assert_heard, seconds_of};
    assert_heard(("Alice", &alice), ("Bob", BOB));
    assert_heard(("Bob", &bob), ("Alice", ALICE));
    assert!(
        seconds_of(&bob, CAROL) < 0.5,
        "Bob heard Carol: {} s",
        seconds_of(&bob, CAROL)
    );
}
