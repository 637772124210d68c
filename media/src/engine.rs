//! The audio of a worker's legs: one RTP socket per leg from the worker's port range, what
//! each leg hears (through its reorder buffer), and what each sends every 20 ms on one clock
//! for all legs: the DTMF it was asked to send, what its media stream's application sends
//! (`<Connect><Stream>`), its prompt, its conference room's mix ([`crate::mix`]), or the audio
//! of the leg it is bridged to (silence when that leg is muted). On the same tick, each leg's
//! media streams and recordings take what it heard and what it sent ([`crate::capture`]).
//! Keys come as RFC 4733 events, or, from a far end without them, as tones in its audio
//! ([`crate::dtmf`]); whether the far end speaks, while someone listens ([`crate::voice`]).
//! Symmetric RTP: a leg sends to where its far end's packets come from,
//! once one has come (latched; packets from anyone else are dropped).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use teleapi_domain::{CallSid, ConferenceSid};
use teleapi_worker::{Inputs, LegInput, PlayId};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::capture::{Capture, Tapped};
use crate::dtmf::Detector;
use crate::mix::{Member, RoomMix};
use crate::pacer::{FRAME_SAMPLES, Pacer};
use crate::reorder::Reorder;
use crate::rtp::{DigitEvent, Packet};
use crate::sdp::Negotiated;
use crate::sound::{Frame, Part, Player};
use crate::voice::Voice;

/// The largest datagram read; RTP of G.711 at 20 ms is 172 bytes.
const MAX_DATAGRAM: usize = 1_500;

/// What the engine counts, for the benchmark and for operators.
#[derive(Debug, Default)]
pub struct Counters {
    pub packets_in: AtomicU64,
    pub packets_out: AtomicU64,
    /// Datagrams dropped: not RTP, not the negotiated format, from a stranger, too late.
    pub dropped: AtomicU64,
    /// Ticks that came late (frames skipped rather than sent in a burst).
    pub late_ticks: AtomicU64,
}

/// The legs' audio of one worker.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    ip: IpAddr,
    ports: Mutex<PortPool>,
    legs: Mutex<HashMap<CallSid, Arc<LegAudio>>>,
    counters: Counters,
}

struct LegAudio {
    socket: Arc<UdpSocket>,
    port: u16,
    state: Mutex<LegState>,
    receiver: Mutex<Option<JoinHandle<()>>>,
}

struct LegState {
    inputs: Inputs,
    negotiated: Option<Negotiated>,
    /// Where the far end's packets come from, once one has.
    latched: Option<SocketAddr>,
    source: Option<u32>,
    heard: Reorder<Vec<i16>>,
    /// The last telephone-event heard (its RTP timestamp), not to report one key twice.
    last_key: Option<u32>,
    playing: Option<(PlayId, Player)>,
    /// Keys to send (`SendDigits`), before anything else.
    keys: Option<Player>,
    peer: Option<CallSid>,
    /// The conference room it is in, and how.
    room: Option<(ConferenceSid, Member)>,
    muted: bool,
    /// Its media streams' and recordings' captures, while they are held.
    taps: Vec<Weak<Mutex<Tapped>>>,
    recordings: Vec<Weak<Mutex<Capture>>>,
    /// Keys in its audio, for a far end without telephone-events.
    detector: Detector,
    /// Whether its far end speaks, while someone listens.
    voice: Option<Voice>,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
}

/// The even ports of a range (RTP on even ports, RFC 3550), handed out and taken back.
struct PortPool {
    free: Vec<u16>,
}

impl PortPool {
    fn new(range: RangeInclusive<u16>) -> Self {
        let mut free: Vec<u16> = range.filter(|p| p % 2 == 0).collect();
        free.reverse();
        Self { free }
    }
}

impl Engine {
    /// An engine that binds legs' sockets on `ip`, on the even ports of `ports`, and runs the
    /// clock that sends their audio.
    pub fn new(ip: IpAddr, ports: RangeInclusive<u16>) -> Self {
        let engine = Self {
            inner: Arc::new(Inner {
                ip,
                ports: Mutex::new(PortPool::new(ports)),
                legs: Mutex::default(),
                counters: Counters::default(),
            }),
        };
        let weak = Arc::downgrade(&engine.inner);
        tokio::spawn(async move {
            let mut pacer = Pacer::new();
            loop {
                let passed = pacer.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if passed > 1 {
                    inner.counters.late_ticks.fetch_add(1, Ordering::Relaxed);
                }
                inner.tick(passed);
            }
        });
        engine
    }

    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// The legs with audio now.
    pub fn legs(&self) -> usize {
        self.inner.legs.lock().unwrap().len()
    }

    /// A socket for `leg`'s audio: the address to write in its SDP. What it hears of keys, and
    /// the end of its prompts, go to `inputs`.
    pub async fn open(&self, leg: &CallSid, inputs: Inputs) -> std::io::Result<SocketAddr> {
        if let Some(open) = self.inner.legs.lock().unwrap().get(leg) {
            return Ok(SocketAddr::new(self.inner.ip, open.port));
        }
        let (socket, port) = self.bind().await?;
        let socket = Arc::new(socket);
        let audio = Arc::new(LegAudio {
            socket: socket.clone(),
            port,
            state: Mutex::new(LegState {
                inputs,
                negotiated: None,
                latched: None,
                source: None,
                heard: Reorder::new(),
                last_key: None,
                playing: None,
                keys: None,
                peer: None,
                room: None,
                muted: false,
                taps: Vec::new(),
                recordings: Vec::new(),
                detector: Detector::default(),
                voice: None,
                ssrc: random_u32(),
                seq: random_u32() as u16,
                timestamp: random_u32(),
            }),
            receiver: Mutex::new(None),
        });
        let receiving = tokio::spawn(receive(self.inner.clone(), audio.clone()));
        *audio.receiver.lock().unwrap() = Some(receiving);
        self.inner.legs.lock().unwrap().insert(leg.clone(), audio);
        Ok(SocketAddr::new(self.inner.ip, port))
    }

    async fn bind(&self) -> std::io::Result<(UdpSocket, u16)> {
        // A port another program holds is skipped (and not handed out again).
        loop {
            let port = self.inner.ports.lock().unwrap().free.pop();
            let Some(port) = port else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "no RTP port left in the range",
                ));
            };
            match UdpSocket::bind(SocketAddr::new(self.inner.ip, port)).await {
                Ok(socket) => return Ok((socket, port)),
                Err(err) => tracing::warn!(port, error = %err, "media: RTP port unavailable"),
            }
        }
    }

    /// The far end's description was read: where and how to send.
    pub fn connect(&self, leg: &CallSid, negotiated: Negotiated) {
        self.with(leg, |state| {
            if state
                .negotiated
                .is_some_and(|n| n.remote != negotiated.remote)
            {
                state.latched = None; // a new far end (re-INVITE): latch afresh
            }
            state.negotiated = Some(negotiated);
        });
    }

    /// The leg is gone: its socket and port are given back.
    pub fn close(&self, leg: &CallSid) {
        let removed = self.inner.legs.lock().unwrap().remove(leg);
        if let Some(audio) = removed {
            if let Some(task) = audio.receiver.lock().unwrap().take() {
                task.abort();
            }
            for other in self.inner.legs.lock().unwrap().values() {
                let mut state = other.state.lock().unwrap();
                if state.peer.as_ref() == Some(leg) {
                    state.peer = None;
                }
            }
            self.inner.ports.lock().unwrap().free.insert(0, audio.port);
        }
    }

    fn with<T>(&self, leg: &CallSid, f: impl FnOnce(&mut LegState) -> T) -> Option<T> {
        let audio = self.inner.legs.lock().unwrap().get(leg).cloned()?;
        let mut state = audio.state.lock().unwrap();
        Some(f(&mut state))
    }

    /// Plays `parts` as prompt `id`, in place of what the leg played (which reports played).
    pub fn play(&self, leg: &CallSid, id: PlayId, parts: Vec<Part>) {
        self.with(leg, |state| {
            if let Some((old, _)) = state.playing.take() {
                state.inputs.send(LegInput::Played(old));
            }
            state.playing = Some((id, Player::new(parts)));
        });
    }

    /// What prompt `id` plays, once it is known (a prompt's audio is fetched or spoken after
    /// it began, playing silence meanwhile); nothing if another prompt has taken its place.
    pub fn loaded(&self, leg: &CallSid, id: PlayId, parts: Vec<Part>) {
        self.with(leg, |state| {
            if let Some((playing, player)) = &mut state.playing
                && *playing == id
            {
                *player = Player::new(parts);
            }
        });
    }

    /// Stops the prompt, which reports played.
    pub fn stop(&self, leg: &CallSid) {
        self.with(leg, |state| {
            if let Some((id, _)) = state.playing.take() {
                state.inputs.send(LegInput::Played(id));
            }
        });
    }

    /// Sends DTMF keys, before anything else the leg plays.
    pub fn send_keys(&self, leg: &CallSid, keys: &str) {
        self.with(leg, |state| {
            state.keys = Some(Player::new([Part::Keys(keys.to_owned())]));
        });
    }

    /// `a` hears `b` and `b` hears `a`.
    pub fn bridge(&self, a: &CallSid, b: &CallSid) {
        self.with(a, |state| state.peer = Some(b.clone()));
        self.with(b, |state| state.peer = Some(a.clone()));
    }

    /// The leg hears nobody, and nobody hears it.
    pub fn unbridge(&self, leg: &CallSid) {
        if let Some(Some(peer)) = self.with(leg, |state| state.peer.take()) {
            self.with(&peer, |state| {
                if state.peer.as_ref() == Some(leg) {
                    state.peer = None;
                }
            });
        }
    }

    pub fn set_muted(&self, leg: &CallSid, muted: bool) {
        self.with(leg, |state| state.muted = muted);
    }

    /// The leg is in `room` as `member` says (it joined, or its state changed).
    pub fn join_room(&self, leg: &CallSid, room: &ConferenceSid, member: Member) {
        self.with(leg, |state| state.room = Some((room.clone(), member)));
    }

    /// The leg left `room`.
    pub fn leave_room(&self, leg: &CallSid, room: &ConferenceSid) {
        self.with(leg, |state| {
            if state.room.as_ref().is_some_and(|(r, _)| r == room) {
                state.room = None;
            }
        });
    }

    /// Reports whether the far end speaks on the leg's inputs, or stops.
    pub fn listen(&self, leg: &CallSid, on: bool) {
        self.with(leg, |state| state.voice = on.then(Voice::default));
    }

    /// The leg's frames for a media stream, from the next tick on, while the tap is held.
    pub fn tap(&self, leg: &CallSid) -> Arc<Mutex<Tapped>> {
        let tapped = Arc::default();
        self.with(leg, |state| state.taps.push(Arc::downgrade(&tapped)));
        tapped
    }

    /// The leg's audio for a recording, from the next tick on, while the capture is held.
    pub fn capture(&self, leg: &CallSid) -> Arc<Mutex<Capture>> {
        let capture = Arc::default();
        self.with(leg, |state| state.recordings.push(Arc::downgrade(&capture)));
        capture
    }
}

/// What a leg heard on a tick.
struct Heard {
    frame: Option<Vec<i16>>,
    /// Its call is muted: nobody hears it.
    muted: bool,
}

impl Heard {
    /// What others hear of it.
    fn said(&self) -> Option<&[i16]> {
        self.frame.as_deref().filter(|_| !self.muted)
    }
}

impl Inner {
    /// One tick of the clock: every leg takes what it heard, then sends its frame.
    fn tick(&self, passed: u64) {
        let legs: Vec<(CallSid, Arc<LegAudio>)> = self
            .legs
            .lock()
            .unwrap()
            .iter()
            .map(|(sid, audio)| (sid.clone(), audio.clone()))
            .collect();
        let mut heard: HashMap<&CallSid, Heard> = HashMap::with_capacity(legs.len());
        let mut rooms: HashMap<ConferenceSid, RoomMix> = HashMap::new();
        for (sid, audio) in &legs {
            let mut state = audio.state.lock().unwrap();
            let leg = Heard {
                frame: state.heard.pop(),
                muted: state.muted,
            };
            if let Some((room, member)) = &state.room {
                let mix = rooms.entry(room.clone()).or_default();
                mix.add(sid, member, leg.said());
            }
            heard.insert(sid, leg);
        }
        let mut datagram = Vec::with_capacity(MAX_DATAGRAM);
        for (sid, audio) in &legs {
            let mut state = audio.state.lock().unwrap();
            let advance = (passed as u32).wrapping_mul(FRAME_SAMPLES as u32);
            let Some(negotiated) = state.negotiated else {
                continue;
            };
            let frame = state.next_frame(sid, (&heard, &rooms), negotiated.digits.is_some());
            let own = heard.get(sid).and_then(|h| h.frame.as_deref());
            state.feed_captures(own, &frame);
            state.timestamp = state.timestamp.wrapping_add(advance);
            if !negotiated.direction.sends() {
                continue;
            }
            let destination = state.latched.unwrap_or(negotiated.remote);
            datagram.clear();
            let mut payload = Vec::with_capacity(FRAME_SAMPLES);
            let (payload_type, marker, timestamp) = match frame {
                Frame::Audio(samples) => {
                    negotiated.law.encode_frame(&samples, &mut payload);
                    (negotiated.payload_type, false, state.timestamp)
                }
                Frame::Event { event, begins } => {
                    payload.extend_from_slice(&event.to_bytes());
                    // Every packet of one key carries the timestamp of its beginning.
                    let began = state
                        .timestamp
                        .wrapping_sub(u32::from(event.duration.saturating_sub(160)));
                    let pt = negotiated.digits.unwrap_or(crate::sdp::DIGITS_PT);
                    (pt, begins, began)
                }
            };
            state.seq = state.seq.wrapping_add(1);
            Packet {
                payload_type,
                marker,
                seq: state.seq,
                timestamp,
                ssrc: state.ssrc,
                payload: &payload,
            }
            .write(&mut datagram);
            drop(state);
            if audio.socket.try_send_to(&datagram, destination).is_ok() {
                self.counters.packets_out.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl LegState {
    /// The frame this leg sends now: keys, its stream's audio, its prompt, its room's mix, or
    /// what its peer said.
    fn next_frame(
        &mut self,
        sid: &CallSid,
        (heard, rooms): (&HashMap<&CallSid, Heard>, &HashMap<ConferenceSid, RoomMix>),
        events: bool,
    ) -> Frame {
        if let Some(keys) = &mut self.keys {
            match keys.next_frame(events) {
                Some(frame) => return frame,
                None => self.keys = None,
            }
        }
        let streamed = self
            .taps
            .iter()
            .filter_map(Weak::upgrade)
            .find_map(|tap| tap.lock().unwrap().to_play());
        if let Some(samples) = streamed {
            return Frame::Audio(samples);
        }
        if let Some((id, player)) = &mut self.playing {
            match player.next_frame(events) {
                Some(frame) => return frame,
                None => {
                    let id = *id;
                    self.playing = None;
                    self.inputs.send(LegInput::Played(id));
                }
            }
        }
        if let Some((room, member)) = &self.room {
            let mix = rooms.get(room).map(|mix| mix.heard_by(sid, member));
            return Frame::Audio(mix.unwrap_or_else(|| vec![0; FRAME_SAMPLES]));
        }
        let said = self
            .peer
            .as_ref()
            .and_then(|peer| heard.get(peer))
            .and_then(Heard::said);
        Frame::Audio(said.map_or_else(|| vec![0; FRAME_SAMPLES], <[i16]>::to_vec))
    }

    /// The leg's streams and recordings take this tick's frames: what it heard (`heard`) and
    /// what it sends (a key's event is silence in them). Dropped ones are forgotten.
    fn feed_captures(&mut self, heard: Option<&[i16]>, sent: &Frame) {
        if self.taps.is_empty() && self.recordings.is_empty() {
            return;
        }
        let silence = [0i16; FRAME_SAMPLES];
        let inbound = heard.unwrap_or(&silence);
        let outbound = match sent {
            Frame::Audio(samples) => samples.as_slice(),
            Frame::Event { .. } => &silence,
        };
        self.taps.retain(|tap| match tap.upgrade() {
            Some(tap) => {
                tap.lock().unwrap().took(inbound, outbound);
                true
            }
            None => false,
        });
        self.recordings.retain(|capture| match capture.upgrade() {
            Some(capture) => {
                capture.lock().unwrap().took(inbound, outbound);
                true
            }
            None => false,
        });
    }
}

/// Reads a leg's socket until it is closed: RTP from its far end into its reorder buffer, keys
/// to its inputs.
async fn receive(inner: Arc<Inner>, audio: Arc<LegAudio>) {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        let (length, from) = match audio.socket.recv_from(&mut buffer).await {
            Ok(received) => received,
            Err(err) => {
                // Nothing a datagram can do makes this last; a pause keeps it from spinning.
                tracing::debug!(port = audio.port, error = %err, "media: RTP receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let taken = take(&audio, &buffer[..length], from);
        let counter = if taken {
            &inner.counters.packets_in
        } else {
            &inner.counters.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One datagram a leg's socket received; `false` if it was dropped.
fn take(audio: &LegAudio, datagram: &[u8], from: SocketAddr) -> bool {
    let Some(packet) = Packet::parse(datagram) else {
        return false;
    };
    let mut state = audio.state.lock().unwrap();
    let Some(negotiated) = state.negotiated else {
        return false; // no description of the far end yet
    };
    match state.latched {
        Some(latched) if latched != from => return false, // a stranger
        Some(_) => {}
        None => state.latched = Some(from),
    }
    if state.source != Some(packet.ssrc) {
        state.source = Some(packet.ssrc);
        state.heard.reset();
    }
    if Some(packet.payload_type) == negotiated.digits {
        let Some(event) = DigitEvent::parse(packet.payload) else {
            return false;
        };
        if state.last_key != Some(packet.timestamp) {
            state.last_key = Some(packet.timestamp);
            if let Some(key) = event.key() {
                state.inputs.send(LegInput::Digits(key.to_string()));
            }
        }
        return true;
    }
    if packet.payload_type != negotiated.payload_type || packet.payload.len() > 2 * FRAME_SAMPLES {
        return false;
    }
    let mut samples = Vec::with_capacity(FRAME_SAMPLES);
    negotiated.law.decode_frame(packet.payload, &mut samples);
    samples.resize(FRAME_SAMPLES, 0);
    if negotiated.digits.is_none()
        && let Some(key) = state.detector.feed(&samples)
    {
        state.inputs.send(LegInput::Digits(key.to_string()));
    }
    if let Some(speaking) = state.voice.as_mut().and_then(|voice| voice.feed(&samples)) {
        state.inputs.send(LegInput::Speech(speaking));
    }
    state.heard.push(packet.seq, samples)
}

/// A random 32-bit number (SSRC, first sequence number and timestamp: RFC 3550 §5.1).
pub fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    u32::from_ne_bytes(bytes)
}
