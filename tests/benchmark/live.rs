//! `tests/bench media`, part two: the SIP/RTP worker's live audio beyond bridging. Conference
//! rooms of 3, 10 and 50 participants, media streams to an echoing bot, and recordings.
//!
//! teleapi-local (release, in memory, `--sip`) places every leg through the API to a SIPp far
//! end (tests/media/bench-callee.xml) whose SDP sends the leg's audio to one socket of this
//! program; this program is every leg's phone: from that socket it sends each leg an RTP frame
//! every 20 ms (a tone, silence, or bursts of tone), and it stamps what comes back. The worker
//! latches each leg on this socket's address, as it would a phone behind NAT.
//!
//! - Rooms: 300 participants at once, in rooms of 3, 10 or 50. In each room one participant
//!   speaks in bursts (200 ms of tone each second; the phones' clock slides 7 ms a second
//!   against the worker's, so that bursts meet its tick at every phase), the others are silent.
//!   Added latency: from this program sending a burst's first frame to the first frame of sound
//!   another participant of the room receives. CPU of the worker process per participant over
//!   6 s, less what it uses idle. No speaker may hear itself.
//! - Streams: each call's `<Connect><Stream>` goes to a WebSocket bot in this program that
//!   echoes every inbound frame. Held: streams whose frames arrive at the pace of real time;
//!   pacing: each frame's arrival against 20 ms a frame, p99 over every frame; the echo: legs
//!   that hear their own tone back.
//! - Recordings: calls recorded (`Record=true`, dual) for 10 s of tone, then all hung up at
//!   once: from the first hang-up to the last recording `completed`.

use std::collections::{BTreeSet, HashSet};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use teleapi_media::g711::Law;
use teleapi_tests::phone::free_port;
use tokio_tungstenite::tungstenite::Message;

use crate::media::{Receiver, sipp, start_local, usage};
use crate::{Row, SID, TOKEN, stats, workspace};

const ROOM_SIZES: [usize; 3] = [3, 10, 50];
/// Participants in rooms at once, whatever their size: 300 legs, as many as the bridged calls'
/// figure has in 150 calls.
const PARTICIPANTS: usize = 300;
const STREAMS: usize = 100;
const RECORDINGS: usize = 50;
/// How long the steady windows are.
const WINDOW: Duration = Duration::from_secs(6);

/// What a phone of this program sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Voice {
    Silence,
    Tone,
    /// 200 ms of tone at the start of each second.
    Bursts,
}

/// This program as the legs' phones: every 20 ms, a frame to each leg's RTP port.
struct Phones {
    targets: Arc<Mutex<Vec<(u16, Voice)>>>,
    /// When each burst's first frame was sent.
    bursts: Arc<Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
}

impl Phones {
    fn start(socket: UdpSocket) -> Self {
        let phones = Self {
            targets: Arc::default(),
            bursts: Arc::default(),
            stop: Arc::default(),
        };
        let (targets, bursts, stop) = (
            phones.targets.clone(),
            phones.bursts.clone(),
            phones.stop.clone(),
        );
        std::thread::spawn(move || {
            let tone: Vec<i16> = (0..160)
                .map(|n| ((2.0 * std::f64::consts::PI * f64::from(n) / 8.0).sin() * 8_000.0) as i16)
                .collect();
            let mut loud = Vec::new();
            Law::Mu.encode_frame(&tone, &mut loud);
            let quiet = vec![0xffu8; 160];
            let mut next = Instant::now();
            let mut frame: u64 = 0;
            let mut packet = Vec::with_capacity(172);
            while !stop.load(Ordering::Relaxed) {
                let targets = targets.lock().unwrap().clone();
                let burst = frame % 50 < 10;
                if frame.is_multiple_of(50) && targets.iter().any(|(_, v)| *v == Voice::Bursts) {
                    bursts.lock().unwrap().push(Instant::now());
                }
                for (port, voice) in &targets {
                    let sound = match voice {
                        Voice::Silence => false,
                        Voice::Tone => true,
                        Voice::Bursts => burst,
                    };
                    packet.clear();
                    packet.extend_from_slice(&[0x80, 0x00]);
                    packet.extend_from_slice(&(frame as u16).to_be_bytes());
                    packet.extend_from_slice(&((frame * 160) as u32).to_be_bytes());
                    packet.extend_from_slice(&(0xbe00_0000 | u32::from(*port)).to_be_bytes());
                    packet.extend_from_slice(if sound { &loud } else { &quiet });
                    let _ = socket.send_to(&packet, ("127.0.0.1", *port));
                }
                frame += 1;
                next += Duration::from_millis(20);
                if frame % 50 == 45 {
                    // Once a second, in the silence between bursts, the phones' clock moves 7 ms
                    // against the worker's: the bursts meet its 20 ms tick at every phase.
                    next += Duration::from_millis(7);
                }
                match next.checked_duration_since(Instant::now()) {
                    Some(wait) => std::thread::sleep(wait),
                    None => next = Instant::now(),
                }
            }
        });
        phones
    }

    fn set(&self, targets: Vec<(u16, Voice)>) {
        *self.targets.lock().unwrap() = targets;
    }
}

impl Drop for Phones {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The API of the local stack, and the far end its legs are placed to.
struct Api {
    client: reqwest::Client,
    base: String,
    callee: String,
}

impl Api {
    /// Places a leg to the far end running `twiml`; its sid.
    async fn place(&self, twiml: &str, more: &[(&str, &str)]) -> String {
        let mut form = vec![
            ("To", self.callee.as_str()),
            ("From", "+15551230001"),
            ("Twiml", twiml),
        ];
        form.extend_from_slice(more);
        let answer: Value = self
            .client
            .post(format!("{}/Calls.json", self.base))
            .basic_auth(SID, Some(TOKEN))
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["sid"]
            .as_str()
            .unwrap_or_else(|| panic!("a call is placed: {answer}"))
            .to_owned()
    }

    async fn hang_up(&self, calls: &[String]) {
        for call in calls {
            let _ = self
                .client
                .post(format!("{}/Calls/{call}.json", self.base))
                .basic_auth(SID, Some(TOKEN))
                .form(&[("Status", "completed")])
                .send()
                .await;
        }
    }

    async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.base))
            .basic_auth(SID, Some(TOKEN))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null)
    }
}

/// Waits for `n` legs the receiver has not heard from before (`known`); their ports.
async fn new_legs(receiver: &Receiver, known: &BTreeSet<u16>, n: usize) -> Vec<u16> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let fresh: Vec<u16> = receiver.source_ports().difference(known).copied().collect();
        if fresh.len() >= n || Instant::now() > deadline {
            return fresh;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The share of a core the process used over `seconds`, from two [`usage`] readings.
fn cpu(before: (f64, u64), after: (f64, u64), seconds: f64) -> f64 {
    (after.0 - before.0) / seconds * 100.0
}

pub async fn live(rows: &mut Vec<Row>) {
    let dir = std::env::temp_dir().join(format!("teleapi-bench-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let receiver = Receiver::start();
    let phones = Phones::start(receiver.socket.try_clone().unwrap());
    let (callee_port, sip_port) = (free_port(), free_port());
    let (_local, pid, base) = start_local(sip_port, &["--rate-limit", "10000000/10000000"]);
    let _callee = sipp(
        &dir,
        &[
            "-sf",
            &workspace()
                .join("tests/media/bench-callee.xml")
                .to_string_lossy(),
            "-p",
            &callee_port.to_string(),
            "-set",
            "receiver",
            &receiver.port.to_string(),
        ],
    );
    let api = Api {
        client: reqwest::Client::new(),
        base,
        callee: format!("sip:callee@127.0.0.1:{callee_port}"),
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // What the process uses with no call (the control plane's loops, heartbeats): taken off
    // each figure below.
    let before = usage(pid);
    tokio::time::sleep(WINDOW).await;
    let idle = cpu(before, usage(pid), WINDOW.as_secs_f64());
    let bench = (&api, &receiver, &phones, (pid, idle));
    for size in ROOM_SIZES {
        rooms(rows, bench, size).await;
    }
    streams(rows, bench).await;
    recordings(rows, bench).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The stack, the phones, the worker's pid and the share of a core it uses idle.
type Bench<'a> = (&'a Api, &'a Receiver, &'a Phones, (u32, f64));

async fn rooms(rows: &mut Vec<Row>, (api, receiver, phones, (pid, idle)): Bench<'_>, size: usize) {
    // Rooms of `size` until PARTICIPANTS are in one, each placed once the last one's legs are
    // up (so that each room's ports are known).
    let mut calls = Vec::new();
    let mut rooms: Vec<Vec<u16>> = Vec::new();
    for room in 0..PARTICIPANTS / size {
        let known = receiver.source_ports();
        let twiml = format!(
            "<Response><Dial><Conference>room-{size}-{room}</Conference></Dial></Response>"
        );
        for _ in 0..size {
            calls.push(api.place(&twiml, &[]).await);
        }
        rooms.push(new_legs(receiver, &known, size).await);
    }
    let participants: usize = rooms.iter().map(Vec::len).sum();
    let mut voices = Vec::new();
    for legs in &rooms {
        voices.push((legs[0], Voice::Bursts));
        voices.extend(legs[1..].iter().map(|p| (*p, Voice::Silence)));
    }
    phones.set(voices);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (start, before) = (Instant::now(), usage(pid));
    tokio::time::sleep(WINDOW).await;
    let (end, after) = (Instant::now(), usage(pid));
    phones.set(Vec::new());
    api.hang_up(&calls).await;

    let bursts: Vec<Instant> = phones
        .bursts
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|b| *b >= start && *b + Duration::from_millis(500) <= end)
        .collect();
    let (mut delays, mut echoes) = (Vec::new(), 0);
    {
        let packets = receiver.packets.lock().unwrap();
        for legs in &rooms {
            let (speaker, listener) = (legs[0], legs.get(1).copied().unwrap_or(0));
            for burst in &bursts {
                let heard = packets.iter().find(|p| {
                    p.source == listener
                        && p.loud
                        && p.at > *burst
                        && p.at < *burst + Duration::from_millis(500)
                });
                if let Some(p) = heard {
                    delays.push(p.at.duration_since(*burst).as_secs_f64() * 1_000.0);
                }
            }
            echoes += packets
                .iter()
                .filter(|p| p.source == speaker && p.loud && p.at >= start && p.at <= end)
                .count();
        }
    }
    let share = cpu(before, after, end.duration_since(start).as_secs_f64()) - idle;
    let per = share / participants.max(1) as f64;
    let timed = (!delays.is_empty()).then(|| stats(&delays));
    let max = delays.iter().copied().fold(0.0f64, f64::max);
    let expected = bursts.len() * rooms.len();
    rows.push(Row {
        figure: format!("media: rooms of {size}, CPU per participant"),
        value: format!("{per:.3}% of a core"),
        target: "<= 0.11%".into(),
        met: Some(participants == PARTICIPANTS && per <= 0.11),
        detail: format!(
            "{share:.1}% of a core for {participants} participants in {} rooms, beyond {idle:.2}% \
             idle (a bridged call, two legs: 0.11%)",
            rooms.len()
        ),
    });
    rows.push(Row {
        figure: format!("media: rooms of {size}, added latency"),
        value: timed
            .as_ref()
            .map_or("-".into(), |s| format!("{:.1} ms", s.median)),
        target: "max <= 40 ms".into(),
        met: Some(delays.len() == expected && expected > 0 && max <= 40.0 && echoes == 0),
        detail: timed.map_or("no burst was heard".into(), |s| {
            format!(
                "p10-p90 {:.1}-{:.1} ms, max {max:.1} ms, {} of {expected} bursts heard; speakers \
                 heard themselves in {echoes} frames",
                s.p10,
                s.p90,
                delays.len(),
            )
        }),
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// When each frame of one stream reached the bot.
type Arrivals = Arc<Mutex<Vec<Instant>>>;

/// The bot: echoes every inbound frame of every stream; each stream's frames' arrival times.
async fn echo_bot() -> (u16, Arc<Mutex<Vec<Arrivals>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let streams: Arc<Mutex<Vec<Arrivals>>> = Arc::default();
    let all = streams.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let arrivals = Arc::new(Mutex::new(Vec::new()));
            all.lock().unwrap().push(arrivals.clone());
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(socket).await else {
                    return;
                };
                while let Some(Ok(Message::Text(text))) = socket.next().await {
                    let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if message["event"] == "media" {
                        arrivals.lock().unwrap().push(Instant::now());
                        let back = json!({
                            "event": "media",
                            "streamSid": message["streamSid"],
                            "media": {"payload": message["media"]["payload"]},
                        });
                        if socket.send(Message::text(back.to_string())).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, streams)
}

async fn streams(rows: &mut Vec<Row>, (api, receiver, phones, (pid, idle)): Bench<'_>) {
    let (port, bot) = echo_bot().await;
    let known = receiver.source_ports();
    let twiml = format!(
        "<Response><Connect><Stream url=\"ws://127.0.0.1:{port}/echo\"/></Connect></Response>"
    );
    let mut calls = Vec::new();
    for _ in 0..STREAMS {
        calls.push(api.place(&twiml, &[]).await);
    }
    let legs = new_legs(receiver, &known, STREAMS).await;
    phones.set(legs.iter().map(|p| (*p, Voice::Tone)).collect());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (start, before) = (Instant::now(), usage(pid));
    tokio::time::sleep(WINDOW).await;
    let (end, after) = (Instant::now(), usage(pid));
    phones.set(Vec::new());
    api.hang_up(&calls).await;

    let seconds = end.duration_since(start).as_secs_f64();
    let expected = (seconds * 50.0) as usize;
    let (mut held, mut variation) = (0, Vec::new());
    for stream in bot.lock().unwrap().iter() {
        let arrivals: Vec<Instant> = stream
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(|at| *at >= start && *at <= end)
            .collect();
        if arrivals.len() * 100 >= expected * 95 {
            held += 1;
        }
        let Some(first) = arrivals.first() else {
            continue;
        };
        let transit: Vec<f64> = arrivals
            .iter()
            .enumerate()
            .map(|(n, at)| at.duration_since(*first).as_secs_f64() * 1_000.0 - 20.0 * n as f64)
            .collect();
        let fastest = transit.iter().copied().fold(f64::INFINITY, f64::min);
        variation.extend(transit.iter().map(|t| t - fastest));
    }
    variation.sort_by(f64::total_cmp);
    let p99 = variation
        .get(((variation.len().max(1) - 1) as f64 * 0.99) as usize)
        .copied()
        .unwrap_or(f64::INFINITY);
    let max = variation.last().copied().unwrap_or(f64::INFINITY);
    let legs: HashSet<u16> = legs.into_iter().collect();
    let loud_legs: HashSet<u16> = receiver
        .packets
        .lock()
        .unwrap()
        .iter()
        .filter(|p| legs.contains(&p.source) && p.loud && p.at >= start && p.at <= end)
        .map(|p| p.source)
        .collect();
    let share = cpu(before, after, seconds) - idle;
    rows.push(Row {
        figure: "media: streams held, paced in real time".into(),
        value: format!("{held} of {STREAMS}"),
        target: format!(">= {STREAMS}"),
        met: Some(held >= STREAMS && loud_legs.len() >= STREAMS),
        detail: format!(
            "<Connect><Stream> to an echoing bot; {} legs heard their echo; {:.3}% of a core a stream",
            loud_legs.len(),
            share / STREAMS as f64
        ),
    });
    rows.push(Row {
        figure: "media: stream frames off real time, p99".into(),
        value: format!("{p99:.1} ms"),
        target: "< 40 ms".into(),
        met: Some(p99 < 40.0),
        detail: format!(
            "max {max:.1} ms over {} frames: each frame's arrival at the bot against 20 ms a frame",
            variation.len()
        ),
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn recordings(rows: &mut Vec<Row>, (api, receiver, phones, (pid, idle)): Bench<'_>) {
    let known = receiver.source_ports();
    let twiml = "<Response><Pause length=\"120\"/></Response>";
    let mut calls = Vec::new();
    for _ in 0..RECORDINGS {
        let more = [("Record", "true"), ("RecordingChannels", "dual")];
        calls.push(api.place(twiml, &more).await);
    }
    let legs = new_legs(receiver, &known, RECORDINGS).await;
    phones.set(legs.iter().map(|p| (*p, Voice::Tone)).collect());
    let (start, before) = (Instant::now(), usage(pid));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = usage(pid);
    let capturing = cpu(before, after, start.elapsed().as_secs_f64()) - idle;
    phones.set(Vec::new());
    let stopped = Instant::now();
    api.hang_up(&calls).await;
    let ours: HashSet<&str> = calls.iter().map(String::as_str).collect();
    let deadline = stopped + Duration::from_secs(120);
    let (mut done, mut sample) = (0, None);
    while Instant::now() < deadline {
        let page = api.get("/Recordings.json?PageSize=1000").await;
        let completed: Vec<&Value> = page["recordings"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|r| {
                        r["status"] == "completed"
                            && ours.contains(r["call_sid"].as_str().unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        done = completed.len();
        sample = completed.first().map(|r| r["duration"].clone());
        if done >= RECORDINGS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = stopped.elapsed().as_secs_f64();
    rows.push(Row {
        figure: "media: recordings written a second".into(),
        value: format!("{:.1}/s", done as f64 / took),
        target: ">= 10/s".into(),
        met: Some(done >= RECORDINGS && done as f64 / took >= 10.0),
        detail: format!(
            "{done} of {RECORDINGS} calls of 10 s recorded (dual, WAV and MP3) hung up at once, all \
             completed {took:.2} s after the first hang-up (a duration: {} s); capturing them: \
             {:.3}% of a core a recording",
            sample.unwrap_or(Value::Null),
            capturing / RECORDINGS as f64
        ),
    });
}
