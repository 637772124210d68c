//! Media streams of a worker's calls, speaking Twilio's Media Streams protocol to the
//! application's WebSocket exactly: `connected`, `start` (with `customParameters` and the
//! media format: audio/x-mulaw, 8000 Hz, mono), a `media` message every 20 ms per track (160
//! bytes of μ-law, base64, with its `track`, `chunk` and `timestamp`), `dtmf` when digits are
//! pressed on the call, and `stop`. Bidirectional (`<Connect><Stream>`): `media` the
//! application sends is played back, 20 ms at a time; its `mark` comes back once the audio
//! sent before it has played (or been cleared), and `clear` empties what is left to play.
//!
//! The audio is the media's ([`AudioTap`]): what the caller says, what the call plays them, and
//! where the application's audio goes.

use std::collections::VecDeque;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use teleapi_domain::stream::StreamSpec;
use teleapi_domain::wire::event::EventKind;
use teleapi_domain::{AccountSid, CallSid, StreamSid};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::audio::FRAME_BYTES;
use crate::inbox::Message;
use crate::media::{AudioTap, Track};
use crate::shared::Shared;

/// Audio per `media` message: 20 ms at 8000 samples a second, one byte each.
pub const FRAME: Duration = Duration::from_millis(20);
/// Most audio the application may have waiting to play: ten minutes (more is dropped).
const MAX_QUEUED_BYTES: usize = 8_000 * 600;

/// What a call says to one of its streams.
pub enum Control {
    /// Send `stop` and close.
    Stop,
    /// A digit pressed on the call.
    Dtmf(char),
}

/// A running stream, as its call holds it.
pub struct StreamHandle {
    pub sid: StreamSid,
    pub name: Option<String>,
    control: mpsc::UnboundedSender<Control>,
}

impl StreamHandle {
    pub fn stop(&self) {
        let _ = self.control.send(Control::Stop);
    }

    pub fn dtmf(&self, digit: char) {
        let _ = self.control.send(Control::Dtmf(digit));
    }
}

/// Starts `spec`'s stream of the call; `bidirectional` for `<Connect><Stream>`. The leg hears
/// `Message::StreamEnded` when it is over.
pub fn start(
    shared: &Shared,
    call: (&CallSid, &AccountSid),
    spec: StreamSpec,
    bidirectional: bool,
    leg: mpsc::UnboundedSender<Message>,
) -> StreamHandle {
    let tap = shared.media.tap(call.0);
    let (control, inbox) = mpsc::unbounded_channel();
    let handle = StreamHandle {
        sid: spec.stream_sid.clone(),
        name: spec.name.clone(),
        control,
    };
    let shared = shared.clone();
    let (call_sid, account_sid) = (call.0.clone(), call.1.clone());
    tokio::spawn(async move {
        let sid = spec.stream_sid.clone();
        let ended = run(
            &shared,
            &call_sid,
            &account_sid,
            &spec,
            bidirectional,
            (inbox, tap),
        )
        .await;
        let event = match ended {
            Ok(()) => EventKind::StreamStopped {
                seq: 2,
                stream_sid: sid.clone(),
            },
            Err(error) => {
                tracing::info!(call_sid = %call_sid, stream_sid = %sid, error = %error, "worker: stream failed");
                EventKind::StreamFailed {
                    seq: 2,
                    stream_sid: sid.clone(),
                    error,
                }
            }
        };
        shared.emit(&call_sid, event).await;
        let _ = leg.send(Message::StreamEnded(sid));
    });
    handle
}

/// What is left to play of what the application sent (bidirectional).
enum Queued {
    Audio(Vec<u8>),
    Mark(String),
}

struct Session<'a> {
    spec: &'a StreamSpec,
    sequence: u64,
    chunks: [u64; 2],
}

impl Session<'_> {
    fn next(&mut self, mut message: Value) -> Frame {
        self.sequence += 1;
        message["sequenceNumber"] = json!(self.sequence.to_string());
        message["streamSid"] = json!(self.spec.stream_sid);
        Frame::text(message.to_string())
    }

    fn media(&mut self, track: &str, payload: &[u8], timestamp: u64) -> Frame {
        let index = usize::from(track == "outbound");
        self.chunks[index] += 1;
        let chunk = self.chunks[index];
        self.next(json!({
            "event": "media",
            "media": {
                "track": track,
                "chunk": chunk.to_string(),
                "timestamp": timestamp.to_string(),
                "payload": STANDARD.encode(payload),
            },
        }))
    }
}

async fn run(
    shared: &Shared,
    call_sid: &CallSid,
    account_sid: &AccountSid,
    spec: &StreamSpec,
    bidirectional: bool,
    (mut control, mut tap): (mpsc::UnboundedReceiver<Control>, Box<dyn AudioTap>),
) -> Result<(), String> {
    let connect = tokio_tungstenite::connect_async(spec.url.as_str());
    let (mut socket, _) = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .map_err(|_| "connect timeout".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    let send_failed = |e: tokio_tungstenite::tungstenite::Error| format!("send: {e}");
    let mut session = Session {
        spec,
        sequence: 0,
        chunks: [0, 0],
    };
    socket
        .send(Frame::text(
            json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}).to_string(),
        ))
        .await
        .map_err(send_failed)?;
    let start = session.next(json!({
        "event": "start",
        "start": {
            "accountSid": account_sid,
            "streamSid": spec.stream_sid,
            "callSid": call_sid,
            "tracks": spec.track.tracks(),
            "customParameters": spec.parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    }));
    socket.send(start).await.map_err(send_failed)?;
    shared
        .emit(
            call_sid,
            EventKind::StreamStarted {
                seq: 1,
                stream: spec.clone(),
            },
        )
        .await;

    let began = Instant::now();
    let mut ticks = tokio::time::interval_at(began + FRAME, FRAME);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut frame: u64 = 0;
    let mut playback: VecDeque<Queued> = VecDeque::new();
    let mut queued_bytes = 0usize;
    let tracks = spec.track.tracks();
    let stop = |session: &mut Session| {
        session.next(json!({
            "event": "stop",
            "stop": {"accountSid": account_sid, "callSid": call_sid},
        }))
    };
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let timestamp = frame * 20;
                let samples = frame * FRAME_BYTES as u64;
                frame += 1;
                // What the call plays this frame: the application's audio, else its own.
                let mut played = None;
                let mut marks = Vec::new();
                while let Some(front) = playback.front_mut() {
                    match front {
                        Queued::Mark(_) => {
                            if let Some(Queued::Mark(name)) = playback.pop_front() {
                                marks.push(name);
                            }
                        }
                        Queued::Audio(bytes) if played.is_none() => {
                            let take = bytes.len().min(FRAME_BYTES);
                            queued_bytes -= take;
                            let mut out: Vec<u8> = bytes.drain(..take).collect();
                            out.resize(FRAME_BYTES, 0xff);
                            if bytes.is_empty() {
                                playback.pop_front();
                            }
                            played = Some(out);
                        }
                        Queued::Audio(_) => break,
                    }
                }
                if let Some(audio) = &played {
                    tap.play(audio);
                }
                for track in tracks {
                    let payload = match (*track, &played) {
                        ("outbound", Some(audio)) => audio.clone(),
                        ("outbound", None) => tap.read(Track::Outbound, samples),
                        _ => tap.read(Track::Inbound, samples),
                    };
                    let message = session.media(track, &payload, timestamp);
                    socket.send(message).await.map_err(send_failed)?;
                }
                for name in marks {
                    let message = session.next(json!({"event": "mark", "mark": {"name": name}}));
                    socket.send(message).await.map_err(send_failed)?;
                }
            }
            command = control.recv() => match command {
                Some(Control::Dtmf(digit)) => {
                    let message = session.next(json!({
                        "event": "dtmf",
                        "dtmf": {"track": "inbound_track", "digit": digit.to_string()},
                    }));
                    socket.send(message).await.map_err(send_failed)?;
                }
                Some(Control::Stop) | None => {
                    let message = stop(&mut session);
                    socket.send(message).await.map_err(send_failed)?;
                    let _ = socket.close(None).await;
                    return Ok(());
                }
            },
            frame_in = socket.next() => match frame_in {
                Some(Ok(Frame::Text(text))) if bidirectional => {
                    let Ok(message) = serde_json::from_str::<Value>(&text) else { continue };
                    match message["event"].as_str() {
                        Some("media") => {
                            let audio = message["media"]["payload"]
                                .as_str()
                                .and_then(|p| STANDARD.decode(p).ok());
                            if let Some(audio) = audio.filter(|a| {
                                !a.is_empty() && queued_bytes + a.len() <= MAX_QUEUED_BYTES
                            }) {
                                queued_bytes += audio.len();
                                playback.push_back(Queued::Audio(audio));
                            }
                        }
                        Some("mark") => {
                            if let Some(name) = message["mark"]["name"].as_str() {
                                playback.push_back(Queued::Mark(name.to_owned()));
                            }
                        }
                        Some("clear") => {
                            // What was left to play is dropped; its marks come back now.
                            queued_bytes = 0;
                            tap.clear();
                            let cleared: Vec<String> = playback
                                .drain(..)
                                .filter_map(|q| match q {
                                    Queued::Mark(name) => Some(name),
                                    Queued::Audio(_) => None,
                                })
                                .collect();
                            for name in cleared {
                                let message = session.next(json!({"event": "mark", "mark": {"name": name}}));
                                socket.send(message).await.map_err(send_failed)?;
                            }
                        }
                        _ => {}
                    }
                }
                Some(Ok(Frame::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("receive: {e}")),
            },
        }
    }
}
