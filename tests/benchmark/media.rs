//! `tests/bench media`: the SIP/RTP worker under load, with SIPp on loopback.
//!
//! teleapi-local (release, in-memory control plane, `--sip`) serves a number whose RCML dials a
//! SIPp far end; a SIPp caller places `CALLS` calls to it at `RATE` a second, each sending
//! G.711 μ-law audio for `HOLD`; the far end's SDP sends each dialled leg's audio to a UDP
//! socket of this program, which times every packet. While every call is up: the worker
//! process's CPU and memory, the packets lost (by RTP timestamp: a frame the worker's clock
//! skipped is lost to the listener too) and the delay variation of what it sends (each
//! packet's arrival against its RTP timestamp, relative to the leg's fastest). Then redirects of
//! live calls to RCML that dials a second far end: from the API's 200 to the new leg's first
//! RTP packet.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use teleapi_tests::phone::free_port;
use teleapi_tests::sink::{Reply, Sink};

use crate::{Row, SID, TOKEN, stats, workspace};

/// Calls held at once and the rate they are placed at (`BENCH_MEDIA_CALLS`,
/// `BENCH_MEDIA_RATE` to probe further), and how long each lasts.
const CALLS: usize = 300;
const RATE: usize = 100;
const HOLD: Duration = Duration::from_secs(40);
/// Redirects timed, one live call each.
const REDIRECTS: usize = 10;

/// One RTP packet as it arrived.
pub(crate) struct Arrival {
    pub source: u16,
    timestamp: u32,
    /// When this program read it.
    pub at: Instant,
    /// Its audio is sound, not silence (G.711 μ-law, RMS above 500).
    pub loud: bool,
    /// When the kernel received it (ns, CLOCK_REALTIME): what the delay variation is measured
    /// on, free of this program's own scheduling.
    kernel_ns: i128,
}

/// Asks the kernel to stamp each datagram as it arrives (`SO_TIMESTAMPNS`).
fn stamp_arrivals(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket, and a c_int option of the size given.
    let done = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(done, 0, "SO_TIMESTAMPNS is set");
    // A receive buffer for a second of every leg's packets, so that what is lost is lost by
    // the worker, not by this program's socket (FORCE, as root, passes rmem_max).
    let size: libc::c_int = 16 << 20;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: as above.
        let done = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if done == 0 {
            break;
        }
    }
}

/// One datagram: its length, its source port and the kernel's stamp of its arrival.
fn receive(socket: &UdpSocket, buffer: &mut [u8]) -> Option<(usize, u16, i128)> {
    use std::os::fd::AsRawFd;
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // SAFETY: plain C structs, zero is a valid value of each.
    let mut address: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 8];
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_name = (&mut address as *mut libc::sockaddr_in).cast();
    message.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in `message` points at a live buffer of the length it gives.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut message, 0) };
    if n < 0 {
        return None;
    }
    let mut stamp = None;
    // SAFETY: the control messages the kernel wrote into `control`, walked with its macros.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET
                && (*header).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let at: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(header).cast());
                stamp = Some(i128::from(at.tv_sec) * 1_000_000_000 + i128::from(at.tv_nsec));
            }
            header = libc::CMSG_NXTHDR(&message, header);
        }
    }
    Some((n as usize, u16::from_be(address.sin_port), stamp?))
}

/// Whether a frame of μ-law is sound (RMS above 500 of 16-bit).
fn loud(payload: &[u8]) -> bool {
    if payload.is_empty() {
        return false;
    }
    let sum: f64 = payload
        .iter()
        .map(|b| f64::from(teleapi_media::g711::Law::Mu.decode(*b)).powi(2))
        .sum();
    (sum / payload.len() as f64).sqrt() > 500.0
}

/// Collects every RTP packet sent to its port until stopped.
pub(crate) struct Receiver {
    pub port: u16,
    pub packets: Arc<Mutex<Vec<Arrival>>>,
    stop: Arc<AtomicBool>,
    /// Its socket, to send from (a phone's RTP comes from where it receives).
    pub socket: UdpSocket,
}

impl Receiver {
    pub fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a receiver port");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        stamp_arrivals(&socket);
        let port = socket.local_addr().unwrap().port();
        let sender = socket.try_clone().expect("the socket is cloned");
        let packets = Arc::new(Mutex::new(Vec::with_capacity(2_000_000)));
        let stop = Arc::new(AtomicBool::new(false));
        let (into, stopped) = (packets.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buffer = [0u8; 2048];
            while !stopped.load(Ordering::Relaxed) {
                let Some((n, source, kernel_ns)) = receive(&socket, &mut buffer) else {
                    continue;
                };
                let at = Instant::now();
                if n < 12 {
                    continue;
                }
                let timestamp = u32::from_be_bytes([buffer[4], buffer[5], buffer[6], buffer[7]]);
                into.lock().unwrap().push(Arrival {
                    source,
                    timestamp,
                    at,
                    kernel_ns,
                    loud: loud(&buffer[12..n]),
                });
            }
        });
        Self {
            port,
            packets,
            stop,
            socket: sender,
        }
    }

    /// The ports packets have come from.
    pub fn source_ports(&self) -> std::collections::BTreeSet<u16> {
        self.packets
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.source)
            .collect()
    }

    fn sources(&self) -> usize {
        let packets = self.packets.lock().unwrap();
        let mut seen: Vec<u16> = packets.iter().map(|p| p.source).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    /// When the first packet from a source not in `known` arrived, if one has.
    fn first_new(&self, known: &[u16]) -> Option<(u16, Instant)> {
        self.packets
            .lock()
            .unwrap()
            .iter()
            .find(|p| !known.contains(&p.source))
            .map(|p| (p.source, p.at))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Kills the child when dropped.
pub(crate) struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn sipp(dir: &Path, args: &[&str]) -> Running {
    Running(
        Command::new("sipp")
            .args(args)
            .args(["-nostdin", "-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp runs (sip-tester; tests/run installs it)"),
    )
}

/// `target/release/teleapi-local` with the SIP/RTP worker on `sip_port` (and `more`
/// arguments): the process, its pid and its account's API base.
pub(crate) fn start_local(sip_port: u16, more: &[&str]) -> (Running, u32, String) {
    use std::io::BufRead;
    let binary = workspace().join("target/release/teleapi-local");
    let mut local = Command::new(&binary)
        .args(["--listen", "127.0.0.1:0", "--sip"])
        .arg(format!("127.0.0.1:{sip_port}"))
        .args(["--rtp-ports", "32000-35999", "--sip-rate", "5000"])
        .args(more)
        .env("TELEAPI_DEV_ACCOUNT_SID", SID)
        .env("TELEAPI_DEV_AUTH_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("target/release/teleapi-local (tests/bench builds it)");
    let pid = local.id();
    let stdout = local.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let base = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split("listening on ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        })
        .expect("teleapi-local says where it listens");
    // Keep reading, so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (
        Running(local),
        pid,
        format!("{base}/call/2012-04-24/Accounts/{SID}"),
    )
}

/// CPU seconds the process has used, and its resident memory in KiB.
pub(crate) fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    (ticks / 100.0, rss)
}

/// The packets lost and the delay variation (ms, p99 and max) of the packets that arrived in
/// `window`, per leg.
fn quality(packets: &[Arrival], window: (Instant, Instant)) -> (f64, f64, f64, usize) {
    let mut legs: HashMap<u16, Vec<&Arrival>> = HashMap::new();
    for packet in packets
        .iter()
        .filter(|p| p.at >= window.0 && p.at <= window.1)
    {
        legs.entry(packet.source).or_default().push(packet);
    }
    let (mut expected, mut received) = (0u64, 0u64);
    let mut variation = Vec::new();
    for leg in legs.values() {
        let first = leg[0];
        let last_ts = leg
            .iter()
            .map(|p| p.timestamp.wrapping_sub(first.timestamp))
            .max();
        expected += u64::from(last_ts.unwrap_or(0) / 160) + 1;
        received += leg.len() as u64;
        // Transit relative to the first packet: arrival minus the RTP clock's instant.
        let transit: Vec<f64> = leg
            .iter()
            .map(|p| {
                let sent = f64::from(p.timestamp.wrapping_sub(first.timestamp)) / 8.0;
                (p.kernel_ns - first.kernel_ns) as f64 / 1e6 - sent
            })
            .collect();
        let fastest = transit.iter().copied().fold(f64::INFINITY, f64::min);
        variation.extend(transit.iter().map(|t| t - fastest));
    }
    variation.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p99 = variation
        .get(((variation.len().max(1) - 1) as f64 * 0.99) as usize)
        .copied()
        .unwrap_or(0.0);
    let max = variation.last().copied().unwrap_or(0.0);
    let lost = if expected == 0 {
        0.0
    } else {
        (expected.saturating_sub(received)) as f64 / expected as f64 * 100.0
    };
    (lost, p99, max, legs.len())
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub async fn media(rows: &mut Vec<Row>) {
    let calls_wanted = setting("BENCH_MEDIA_CALLS", CALLS);
    let offered = setting("BENCH_MEDIA_RATE", RATE);
    let dir = std::env::temp_dir().join(format!("teleapi-bench-media-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new("sox")
        .args(["-n", "-r", "8000", "-c", "1", "-e", "u-law"])
        .arg(dir.join("caller.wav"))
        .args(["synth", "10", "sine", "1000"])
        .status()
        .expect("sox runs (tests/run installs it)");
    assert!(status.success(), "sox made the caller's audio");

    let (callee, moved) = (Receiver::start(), Receiver::start());
    let (callee_port, moved_port, sip_port) = (free_port(), free_port(), free_port());
    let app = Sink::start().await;
    app.always(
        "/dial",
        Reply::rcml(&format!(
            "<Response><Dial timeout=\"10\"><Sip>sip:callee@127.0.0.1:{callee_port}</Sip></Dial></Response>"
        )),
    );
    app.always(
        "/moved",
        Reply::rcml(&format!(
            "<Response><Dial timeout=\"10\"><Sip>sip:moved@127.0.0.1:{moved_port}</Sip></Dial></Response>"
        )),
    );

    let (_local, pid, api) = start_local(sip_port, &[]);
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{api}/IncomingPhoneNumbers.json"))
        .basic_auth(SID, Some(TOKEN))
        .form(&[
            ("PhoneNumber", "+15557650000"),
            ("VoiceUrl", app.url("/dial").as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "the number is created");

    let receiver = callee.port.to_string();
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
            &receiver,
        ],
    );
    let receiver = moved.port.to_string();
    let _moved = sipp(
        &dir,
        &[
            "-sf",
            &workspace()
                .join("tests/media/bench-callee.xml")
                .to_string_lossy(),
            "-p",
            &moved_port.to_string(),
            "-set",
            "receiver",
            &receiver,
        ],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = usage(pid);
    let started = Instant::now();
    let (calls, rate, hold) = (
        calls_wanted.to_string(),
        offered.to_string(),
        HOLD.as_millis().to_string(),
    );
    let target = format!("127.0.0.1:{sip_port}");
    let mut caller = sipp(
        &dir,
        &[
            "-sf",
            &workspace().join("tests/media/caller.xml").to_string_lossy(),
            "-p",
            &free_port().to_string(),
            "-s",
            "+15557650000",
            &target,
            "-r",
            &rate,
            "-l",
            &calls,
            "-m",
            &calls,
            "-d",
            &hold,
        ],
    );

    // Every call up: each dialled leg's audio reaches the receiver.
    let deadline = started + HOLD - Duration::from_secs(10);
    let mut all_up = None;
    while Instant::now() < deadline {
        if callee.sources() >= calls_wanted {
            all_up = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let up = callee.sources();
    let setup = all_up.map(|at| at.duration_since(started));
    // Steady: from every call up (or the deadline) to 10 s before the first ends.
    let window_start = Instant::now();
    let before = usage(pid);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = usage(pid);
    let window_end = Instant::now();

    // Redirects of live calls, one at a time: the 200, then the new leg's first packet.
    let listed: Value = client
        .get(format!(
            "{api}/Calls.json?Status=in-progress&To=%2B15557650000&PageSize={REDIRECTS}"
        ))
        .basic_auth(SID, Some(TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut known: Vec<u16> = Vec::new();
    let mut redirects = Vec::new();
    for call in listed["calls"].as_array().cloned().unwrap_or_default() {
        let sid = call["sid"].as_str().unwrap_or_default();
        let answered = client
            .post(format!("{api}/Calls/{sid}.json"))
            .basic_auth(SID, Some(TOKEN))
            .form(&[("Url", app.url("/moved"))])
            .send()
            .await
            .unwrap();
        let ok = Instant::now();
        if answered.status() != 200 {
            continue;
        }
        let waited = Instant::now() + Duration::from_secs(5);
        while Instant::now() < waited {
            if let Some((source, at)) = moved.first_new(&known) {
                known.push(source);
                redirects.push(at.saturating_duration_since(ok).as_secs_f64() * 1000.0);
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let succeeded = tokio::task::spawn_blocking(move || caller.0.wait())
        .await
        .unwrap()
        .map(|s| s.success())
        .unwrap_or(false);

    let packets = std::mem::take(&mut *callee.packets.lock().unwrap());
    let (lost, p99, max, legs) = quality(&packets, (window_start, window_end));
    let seconds = window_end.duration_since(window_start).as_secs_f64();
    let cpu = (after.0 - before.0) / seconds * 100.0;
    let memory = after.1.saturating_sub(idle.1);
    let _ = std::fs::remove_dir_all(&dir);

    let setup_rate = setup.map(|d| calls_wanted as f64 / d.as_secs_f64());
    rows.push(Row {
        figure: "media: bridged calls held at once".into(),
        value: format!("{up} of {calls_wanted}"),
        target: ">= 300".into(),
        met: Some(up >= calls_wanted.max(300) && succeeded),
        detail: format!(
            "SIPp placed {calls_wanted} calls at {offered}/s, {} s each; every call {}",
            HOLD.as_secs(),
            if succeeded {
                "completed"
            } else {
                "did NOT complete (SIPp saw failures)"
            }
        ),
    });
    rows.push(Row {
        figure: "media: new calls a second".into(),
        value: setup_rate.map_or("-".into(), |r| format!("{r:.1}/s")),
        target: ">= 50/s".into(),
        met: setup_rate.map(|r| r >= 50.0),
        detail: format!(
            "{calls_wanted} calls offered at {offered}/s all bridged in {}",
            setup.map_or("-".into(), |d| format!("{:.1} s", d.as_secs_f64()))
        ),
    });
    rows.push(Row {
        figure: "media: packets lost (worker to far end)".into(),
        value: format!("{lost:.3}%"),
        target: "< 0.5%".into(),
        met: Some(lost < 0.5),
        detail: format!("{legs} legs, {seconds:.1} s with every call up"),
    });
    rows.push(Row {
        figure: "media: delay variation added, p99".into(),
        value: format!("{p99:.2} ms"),
        target: "< 5 ms".into(),
        met: Some(p99 < 5.0),
        detail: format!(
            "max {max:.1} ms; each packet's arrival (the kernel's stamp) against its RTP time"
        ),
    });
    // A worker's default host (infra/media.yaml: c7i.large, 2 vCPUs, 4 GiB) holds 500 bridged
    // calls on one of its cores and in an eighth of its memory (docs/benchmarks.md says why).
    let per_call_cpu = cpu / up.max(1) as f64;
    rows.push(Row {
        figure: "media: CPU per call".into(),
        value: format!("{per_call_cpu:.3}% of a core"),
        target: "<= 0.2%".into(),
        met: Some(up > 0 && per_call_cpu <= 0.2),
        detail: format!(
            "{cpu:.0}% of a core for {up} calls (teleapi-local: worker and control plane)"
        ),
    });
    let per_call_memory = memory as f64 / up.max(1) as f64;
    rows.push(Row {
        figure: "media: memory per call".into(),
        value: format!("{per_call_memory:.0} KiB"),
        target: "<= 1024 KiB".into(),
        met: Some(up > 0 && per_call_memory <= 1024.0),
        detail: format!(
            "resident {} MiB with {up} calls, {} MiB idle",
            after.1 / 1024,
            idle.1 / 1024
        ),
    });
    let timed = if redirects.is_empty() {
        None
    } else {
        Some(stats(&redirects))
    };
    rows.push(Row {
        figure: "media: redirect's 200 to the new leg's first RTP".into(),
        value: timed
            .as_ref()
            .map_or("-".into(), |s| format!("{:.1} ms", s.median)),
        target: "<= 50 ms".into(),
        met: timed.as_ref().map(|s| s.median <= 50.0),
        detail: timed.map_or("no redirect was timed".into(), |s| {
            format!(
                "p10-p90 {:.1}-{:.1} ms, n={} (RCML fetched, INVITE, 200, first frame)",
                s.p10, s.p90, s.runs
            )
        }),
    });
}
