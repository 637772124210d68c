//! What a worker needs from its media: the one thing the kit does not do. The simulator
//! implements it with fake phones and tones; a SIP/RTP worker with real legs and real audio.
//!
//! The kit runs each leg as an actor; the media never blocks it. A call to the media starts
//! something (ringing a phone, playing a prompt) and returns; what happens next comes back as a
//! [`LegInput`] on the leg's [`Inputs`]: the far end answered, was busy or hung up, a prompt
//! finished, digits were pressed. The media must send each input at most once, and nothing for
//! a leg after [`Media::hang_up`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use teleapi_domain::conference::ParticipantState;
use teleapi_domain::recording::{RecordingSpec, RecordingTrack};
use teleapi_domain::{AccountSid, CallSid, ConferenceSid, Direction};

/// Who a leg is, as the media needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegInfo {
    pub sid: CallSid,
    pub account_sid: AccountSid,
    pub from: String,
    /// An E.164 number, `client:NAME`, or a SIP URI.
    pub to: String,
    pub direction: Direction,
    /// The leg that dialled this one.
    pub parent: Option<CallSid>,
}

/// What a leg hears of its prompt: RCML's `<Say>`, `<Play>` and `<Pause>`, and DTMF.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Say {
        text: String,
        /// `voice`, `language`: as the document gave them, for a media that speaks.
        voice: Option<String>,
        language: Option<String>,
        /// At least 1.
        loops: u32,
    },
    Play {
        url: String,
        /// 0: until something else happens.
        loops: u32,
    },
    /// Silence.
    Pause { seconds: u32 },
    /// DTMF (`0-9 * #`, `w`: half a second's wait).
    Digits(String),
    /// A conference room's beep (a participant joined or left): a quarter of a second of tone.
    Beep,
}

/// Names one prompt of a leg, so that its end can be told from an earlier one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlayId(pub u64);

/// What the media reports about a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegInput {
    /// A placed leg was answered.
    Answered,
    /// A placed leg's far end is busy.
    Busy,
    /// A placed leg's far end did not answer (it said so before the worker's timeout: SIP 480,
    /// 408).
    NoAnswer,
    /// A placed leg could not be reached (why, for the log).
    Failed(String),
    /// The far end hung up.
    HungUp,
    /// The prompt `PlayId` has played to its end (or was stopped).
    Played(PlayId),
    /// The far end pressed these keys (`0-9 * #`).
    Digits(String),
    /// The far end began to speak (`true`) or fell silent (`false`), while the leg is listened
    /// to ([`Media::listen`]).
    Speech(bool),
}

/// Where the media sends a leg's inputs.
#[derive(Clone)]
pub struct Inputs(Arc<dyn Fn(LegInput) + Send + Sync>);

impl Inputs {
    pub fn new(send: impl Fn(LegInput) + Send + Sync + 'static) -> Self {
        Self(Arc::new(send))
    }

    pub fn send(&self, input: LegInput) {
        (self.0)(input);
    }
}

impl fmt::Debug for Inputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Inputs")
    }
}

/// One of a stream's audio tracks: what the caller says, or what the call plays them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Inbound,
    Outbound,
}

/// A leg's audio as a media stream reads it and writes it, 20 ms at a time, in G.711 μ-law at
/// 8 kHz (160 bytes a frame).
pub trait AudioTap: Send {
    /// The next frame of `track`; `sample` counts the samples since the stream began.
    fn read(&mut self, track: Track, sample: u64) -> Vec<u8>;
    /// A frame the stream's application sends (`<Connect><Stream>`), to be played to the caller
    /// in place of the call's own outbound audio.
    fn play(&mut self, frame: &[u8]);
    /// The application sent `clear`: what it sent and is not yet played is dropped.
    fn clear(&mut self) {}
}

/// Where a recording's media went, and how much of it there is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Where the API reads it: `file://…` locally, `s3://bucket/key` deployed.
    pub url: String,
    /// Samples per channel, at [`crate::audio::SAMPLE_RATE`]; 0: nothing was heard.
    pub samples: u64,
}

/// A recording's audio, captured by the media.
#[async_trait]
pub trait RecordingMedia: Send + Sync {
    /// Stops capturing; `keep_silence`: the pause stays in the media as silence (Twilio's
    /// `PauseBehavior=silence`), else it is left out (`skip`).
    fn pause(&mut self, keep_silence: bool);
    fn resume(&mut self);
    /// Ends the recording and stores its media (WAV, and MP3 beside it).
    async fn finish(self: Box<Self>) -> Result<Recorded, String>;
}

/// A worker's media. Every method is quick; what takes time is reported on the leg's inputs.
#[async_trait]
pub trait Media: Send + Sync + 'static {
    /// A leg the worker places (`POST …/Calls`, `<Dial>`): ring `leg.to`. Its inputs say
    /// whether it was answered, busy or failed; no answer is the worker's timeout.
    fn place(&self, leg: &LegInfo, inputs: Inputs);
    /// A leg offered to the worker (an inbound call): its inputs from now on.
    fn attach(&self, leg: &LegInfo, inputs: Inputs);
    /// Answers an inbound leg; returns once it is answered.
    async fn answer(&self, leg: &CallSid);
    /// Refuses an inbound leg: busy, or not answered.
    fn reject(&self, leg: &CallSid, busy: bool);
    /// Hangs the leg up (or stops ringing it). Nothing more is reported for it.
    fn hang_up(&self, leg: &CallSid);
    /// Plays `prompt` to the leg, in place of what it played; [`LegInput::Played`] when done.
    fn play(&self, leg: &CallSid, id: PlayId, prompt: Prompt);
    /// Stops what the leg plays (a redirect, a key pressed during a `<Gather>`'s prompt). The
    /// prompt stopped still reports [`LegInput::Played`].
    fn stop_playing(&self, leg: &CallSid);
    /// Sends DTMF to the far end while the call goes on (`SendDigits`, once answered): `w` is
    /// half a second's wait. Nothing is reported.
    fn send_digits(&self, leg: &CallSid, digits: &str);
    /// Connects two legs' audio both ways (`<Dial>` answered).
    fn bridge(&self, a: &CallSid, b: &CallSid);
    /// Takes the leg out of any bridge.
    fn unbridge(&self, leg: &CallSid);
    /// The leg's audio no longer reaches anyone (`Mute`), or does again.
    fn set_muted(&self, leg: &CallSid, muted: bool);
    /// The leg is in the room `room` with `state` (joined, or its state changed: muted, on hold,
    /// coaching).
    fn room(&self, room: &ConferenceSid, state: &ParticipantState);
    /// The leg left the room.
    fn leave_room(&self, room: &ConferenceSid, leg: &CallSid);
    /// The leg's audio for a media stream.
    fn tap(&self, leg: &CallSid) -> Box<dyn AudioTap>;
    /// Reports whether the far end speaks ([`LegInput::Speech`] at each change, from silence:
    /// nothing until it first speaks) until told to stop (`on: false`): what `<Record>`'s
    /// silence timeout and answering-machine detection listen to.
    fn listen(&self, leg: &CallSid, on: bool);
    /// Starts recording the leg (and what it is connected to) as `spec` says.
    fn record(&self, leg: &CallSid, spec: &RecordingSpec) -> Box<dyn RecordingMedia>;
}

/// Whether `track` of a recording hears the caller, the callee, or both.
pub fn hears(track: RecordingTrack) -> (bool, bool) {
    match track {
        RecordingTrack::Inbound => (true, false),
        RecordingTrack::Outbound => (false, true),
        RecordingTrack::Both => (true, true),
    }
}
