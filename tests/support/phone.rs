//! Real SIP phones for the media tests: Debian's baresip, headless, on loopback. Each phone
//! plays a WAV file as its microphone (a tone the test chose), answers by itself, writes what
//! it heard to a WAV file (the `sndfile` module), and is driven over `ctrl_tcp` (netstring
//! JSON), whose events say which keys it received. What a phone heard is checked by frequency analysis ([`tone_level`]), not by whether
//! packets arrived.

use std::net::TcpListener as StdTcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// A port free for both UDP and TCP on 127.0.0.1 now, from 10000-19999: outside the kernel's
/// ephemeral range, where a TIME-WAIT socket can hold a port baresip wants on TCP too.
pub fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() as u16).wrapping_mul(7_919);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 10_000 + seed.wrapping_add(n.wrapping_mul(104)) % 10_000;
        let tcp = StdTcpListener::bind(("127.0.0.1", port));
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port));
        if tcp.is_ok() && udp.is_ok() {
            return port;
        }
    }
}

/// A band of 100 ports for a worker's RTP, from 30000-32699 (a port in use is skipped by the
/// worker).
pub fn rtp_band() -> (u16, u16) {
    let low = 30_000 + (free_port() % 27) * 100;
    (low, low + 99)
}

/// A WAV file of a sine tone (8 kHz, 16-bit, mono), long enough for any test call.
pub fn tone_file(dir: &Path, hz: f64, seconds: f64) -> PathBuf {
    let path = dir.join(format!("tone-{hz}.wav"));
    write_wav(&path, &tone(hz, seconds));
    path
}

pub fn tone(hz: f64, seconds: f64) -> Vec<i16> {
    let n = (seconds * 8_000.0) as usize;
    (0..n)
        .map(|i| ((2.0 * std::f64::consts::PI * hz * i as f64 / 8_000.0).sin() * 8_000.0) as i16)
        .collect()
}

pub fn write_wav(path: &Path, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for s in samples {
        writer.write_sample(*s).unwrap();
    }
    writer.finalize().unwrap();
}

/// How strong `hz` is in `samples` (8 kHz), relative to their whole energy: near 1 for a pure
/// tone at `hz`, near 0 where it is absent (Goertzel's algorithm).
pub fn tone_level(samples: &[i16], hz: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * hz / 8_000.0;
    let coefficient = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut energy = 0.0f64;
    for sample in samples {
        let x = f64::from(*sample);
        energy += x * x;
        let s0 = x + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
    if energy == 0.0 {
        return 0.0;
    }
    // A pure tone's Goertzel power is energy * N / 2.
    (2.0 * power / (energy * samples.len() as f64)).min(1.0)
}

/// The loudness (RMS) of `samples`.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// How a phone answers, and what it speaks.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Answers by itself (else it rings until hung up on).
    pub answers: bool,
    /// Its codecs, in its order of preference (`PCMU/8000/1,PCMA/8000/1`).
    pub codecs: &'static str,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            answers: true,
            codecs: "PCMU/8000/1,PCMA/8000/1",
        }
    }
}

/// One baresip phone.
pub struct Phone {
    pub name: String,
    pub sip_port: u16,
    /// Its control connection (ctrl_tcp takes one at a time: commands and events share it).
    control: tokio::sync::Mutex<Control>,
    /// The events it reported (`CALL_DTMF_START`, …), in order.
    events: Arc<Mutex<Vec<serde_json::Value>>>,
    dir: PathBuf,
    child: Child,
}

struct Control {
    writer: tokio::net::tcp::OwnedWriteHalf,
    replies: tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
}

/// Reads the control connection: replies to the command waiting, events to the log.
async fn read_control(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    replies: tokio::sync::mpsc::UnboundedSender<serde_json::Value>,
    events: Arc<Mutex<Vec<serde_json::Value>>>,
) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = reader.read(&mut chunk).await {
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
        let (messages, used) = netstrings(&buffer);
        buffer.drain(..used);
        for message in messages {
            if message.get("response").is_some() {
                let _ = replies.send(message);
            } else if message.get("event").is_some() {
                events.lock().unwrap().push(message);
            }
        }
    }
}

impl Phone {
    /// A phone `name` (its SIP URI is [`Phone::uri`]) playing `microphone`, answering calls
    /// by itself.
    pub async fn start(name: &str, dir: &Path, microphone: &Path) -> Self {
        Self::start_with(name, dir, microphone, Settings::default()).await
    }

    /// A phone as `settings` say.
    pub async fn start_with(name: &str, dir: &Path, microphone: &Path, settings: Settings) -> Self {
        let dir = dir.join(name);
        std::fs::create_dir_all(dir.join("heard")).unwrap();
        let (sip_port, ctrl_port) = (free_port(), free_port());
        let rtp_low = 20_000 + (free_port() % 1_000) * 10;
        let config = format!(
            "poll_method\t\tepoll\n\
             sip_listen\t\t127.0.0.1:{sip_port}\n\
             net_interface\t\t127.0.0.1\n\
             call_local_timeout\t60\n\
             call_max_calls\t\t4\n\
             audio_buffer\t\t20-160\n\
             audio_source\t\taufile,{mic}\n\
             audio_player\t\tnullplay,none\n\
             audio_alert\t\tnullplay,none\n\
             rtp_ports\t\t{rtp_low}-{rtp_high}\n\
             rtp_timeout\t\t0\n\
             jitter_buffer_delay\t1-10\n\
             module_path\t\t/usr/lib/baresip/modules\n\
             module\t\t\tg711.so\n\
             module\t\t\taufile.so\n\
             module\t\t\tsndfile.so\n\
             module_tmp\t\taccount.so\n\
             module_app\t\tmenu.so\n\
             module_app\t\tctrl_tcp.so\n\
             ctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}\n\
             snd_path\t\t{heard}\n\
             ringback_disabled\tyes\n\
             statmode_default\toff\n",
            mic = microphone.display(),
            rtp_high = rtp_low + 9,
            heard = dir.join("heard").display(),
        );
        std::fs::write(dir.join("config"), config).unwrap();
        std::fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{name}@127.0.0.1:{sip_port};transport=udp>;regint=0;answermode={mode};\
                 audio_codecs={codecs}\n",
                mode = if settings.answers { "auto" } else { "manual" },
                codecs = settings.codecs,
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("baresip.log")).unwrap();
        let child = Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("baresip runs (tests/run installs baresip-core)");
        // Ready once its control port answers.
        for _ in 0..100 {
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", ctrl_port)).await {
                let (reader, writer) = stream.into_split();
                let (replies, received) = tokio::sync::mpsc::unbounded_channel();
                let events = Arc::new(Mutex::new(Vec::new()));
                tokio::spawn(read_control(reader, replies, events.clone()));
                return Self {
                    name: name.to_owned(),
                    sip_port,
                    control: tokio::sync::Mutex::new(Control {
                        writer,
                        replies: received,
                    }),
                    events,
                    dir,
                    child,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(dir.join("baresip.log")).unwrap_or_default();
        panic!("baresip {name} did not start: {log}");
    }

    pub fn uri(&self) -> String {
        format!("sip:{}@127.0.0.1:{}", self.name, self.sip_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }

    /// Sends a `ctrl_tcp` command; its reply's `data`.
    pub async fn command(&self, command: &str, params: &str) -> String {
        let mut control = self.control.lock().await;
        let body =
            serde_json::json!({"command": command, "params": params, "token": "t"}).to_string();
        control
            .writer
            .write_all(format!("{}:{body},", body.len()).as_bytes())
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_secs(5), control.replies.recv()).await {
            Ok(Some(reply)) => reply["data"].as_str().unwrap_or_default().to_owned(),
            _ => panic!("baresip {} did not answer {command}", self.name),
        }
    }

    /// The DTMF keys the phone has received (RFC 4733 events), in order.
    pub fn keys_received(&self) -> String {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|event| event["type"] == "CALL_DTMF_START")
            .filter_map(|event| event["param"].as_str()?.chars().next())
            .collect()
    }

    /// Calls `uri` (the phone's own tone is what the callee hears).
    pub async fn dial(&self, uri: &str) {
        self.command("dial", uri).await;
    }

    /// Everything the phone heard, call after call, in order (`dump-…-dec.wav`).
    pub fn heard(&self) -> Vec<i16> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("heard"))
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        let mut samples = Vec::new();
        for file in files {
            if let Ok(mut reader) = hound::WavReader::open(&file) {
                samples.extend(reader.samples::<i16>().filter_map(Result::ok));
            }
        }
        samples
    }

    /// Stops the phone (its files are complete once it has exited).
    pub async fn stop(mut self) -> Vec<i16> {
        if let Some(pid) = self.child.id() {
            for _ in 0..2 {
                // SIGTERM twice: the second one exits at once.
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
                if tokio::time::timeout(Duration::from_secs(2), self.child.wait())
                    .await
                    .is_ok()
                {
                    break;
                }
            }
        }
        let _ = self.child.kill().await;
        self.heard()
    }
}

/// The whole netstrings at the front of `bytes` (`LENGTH:JSON,`), and the bytes they take.
fn netstrings(bytes: &[u8]) -> (Vec<serde_json::Value>, usize) {
    let mut out = Vec::new();
    let mut used = 0;
    loop {
        let rest = &bytes[used..];
        let Some(colon) = rest.iter().position(|b| *b == b':') else {
            break;
        };
        let Some(length) = std::str::from_utf8(&rest[..colon])
            .ok()
            .and_then(|l| l.trim().parse::<usize>().ok())
        else {
            break;
        };
        let body = colon + 1;
        if rest.len() < body + length + 1 {
            break;
        }
        if let Ok(value) = serde_json::from_slice(&rest[body..body + length]) {
            out.push(value);
        }
        used += body + length + 1;
    }
    (out, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_is_told_from_others_and_from_silence() {
        let one = tone(1_000.0, 1.0);
        assert!(tone_level(&one, 1_000.0) > 0.9);
        assert!(tone_level(&one, 2_000.0) < 0.01);
        let mut both = tone(1_000.0, 1.0);
        for (s, t) in both.iter_mut().zip(tone(2_000.0, 1.0)) {
            *s = s.saturating_add(t) / 2;
        }
        assert!(tone_level(&both, 1_000.0) > 0.4);
        assert!(tone_level(&both, 2_000.0) > 0.4);
        assert_eq!(tone_level(&vec![0; 800], 1_000.0), 0.0);
    }

    #[test]
    fn netstrings_are_split() {
        let (a, b) = (r#"{"event":true}"#, r#"{"response":true,"ok":true}"#);
        let text = format!("{}:{a},{}:{b},", a.len(), b.len());
        let (values, used) = netstrings(text.as_bytes());
        assert_eq!((values.len(), used), (2, text.len()));
        assert_eq!(values[1]["ok"], true);
        let (values, used) = netstrings(&text.as_bytes()[..text.len() - 3]);
        assert_eq!(
            (values.len(), used),
            (1, a.len() + 4),
            "a netstring in part waits"
        );
    }
}
