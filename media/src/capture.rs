//! A leg's audio as its media streams and recordings take it. On every tick the engine hands
//! each live capture of a leg the frame the leg heard from its far end (the inbound track: the
//! caller) and the frame it sent (the outbound track: what the call plays them); a capture that
//! its stream or recording dropped is no longer fed.
//!
//! A stream reads its frames on its own 20 ms clock: up to [`TAP_FRAMES`] wait for it (100 ms),
//! older ones are dropped, so that two clocks drifting apart never build a delay. What a
//! bidirectional stream's application sends is queued the same way and played in place of the
//! leg's own audio. A recording keeps every frame (8 kHz 16-bit: 32 KB a second for both
//! tracks) until it stops, and is encoded as WAV and MP3 then, and kept in the worker's
//! [`MediaStore`] (the stack's S3 bucket deployed, teleapi-local's recordings folder).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use teleapi_domain::AccountSid;
use teleapi_domain::recording::{RecordingChannels, RecordingSpec, Trim};
use teleapi_ports::MediaStore;
use teleapi_worker::media::hears;
use teleapi_worker::{AudioTap, Recorded, RecordingMedia, Track};

use crate::g711::Law;
use crate::pacer::FRAME_SAMPLES;

/// Frames a stream's tap holds for it, each way.
pub const TAP_FRAMES: usize = 5;

/// Below this loudness (RMS) a frame at a recording's edge is silence, which `trim-silence`
/// cuts.
const SILENCE_RMS: f64 = 100.0;

/// A media stream's frames, both ways.
#[derive(Debug, Default)]
pub struct Tapped {
    inbound: VecDeque<Vec<i16>>,
    outbound: VecDeque<Vec<i16>>,
    /// From the stream's application, to play to the leg.
    played: VecDeque<Vec<i16>>,
}

fn push_bounded(queue: &mut VecDeque<Vec<i16>>, frame: Vec<i16>) {
    if queue.len() >= TAP_FRAMES {
        queue.pop_front();
    }
    queue.push_back(frame);
}

impl Tapped {
    /// This tick's frames of the leg.
    pub fn took(&mut self, inbound: &[i16], outbound: &[i16]) {
        push_bounded(&mut self.inbound, inbound.to_vec());
        push_bounded(&mut self.outbound, outbound.to_vec());
    }

    /// The application's next frame for the leg, if one is waiting.
    pub fn to_play(&mut self) -> Option<Vec<i16>> {
        self.played.pop_front()
    }
}

/// The [`AudioTap`] a stream holds.
pub struct StreamTap(pub Arc<Mutex<Tapped>>);

impl AudioTap for StreamTap {
    fn read(&mut self, track: Track, _sample: u64) -> Vec<u8> {
        let frame = {
            let mut tapped = self.0.lock().unwrap();
            match track {
                Track::Inbound => tapped.inbound.pop_front(),
                Track::Outbound => tapped.outbound.pop_front(),
            }
        };
        let mut bytes = Vec::with_capacity(FRAME_SAMPLES);
        Law::Mu.encode_frame(&frame.unwrap_or_else(|| vec![0; FRAME_SAMPLES]), &mut bytes);
        bytes
    }

    fn play(&mut self, frame: &[u8]) {
        let mut samples = Vec::with_capacity(FRAME_SAMPLES);
        Law::Mu.decode_frame(frame, &mut samples);
        samples.resize(FRAME_SAMPLES, 0);
        push_bounded(&mut self.0.lock().unwrap().played, samples);
    }

    fn clear(&mut self) {
        self.0.lock().unwrap().played.clear();
    }
}

/// A recording's audio so far.
#[derive(Debug, Default)]
pub struct Capture {
    inbound: Vec<i16>,
    outbound: Vec<i16>,
    /// Paused: `Some(true)` keeps the pause as silence, `Some(false)` leaves it out.
    paused: Option<bool>,
}

impl Capture {
    /// This tick's frames of the leg.
    pub fn took(&mut self, inbound: &[i16], outbound: &[i16]) {
        match self.paused {
            None => {
                self.inbound.extend_from_slice(inbound);
                self.outbound.extend_from_slice(outbound);
            }
            Some(true) => {
                let length = self.inbound.len() + inbound.len();
                self.inbound.resize(length, 0);
                self.outbound.resize(length, 0);
            }
            Some(false) => {}
        }
    }
}

/// The [`RecordingMedia`] of a leg: its capture, kept in `store` when it stops.
pub struct Recording {
    pub capture: Arc<Mutex<Capture>>,
    pub spec: RecordingSpec,
    /// The leg's account: its recordings' keys begin with it.
    pub account_sid: Option<AccountSid>,
    /// Where recordings are kept; none: this worker has nowhere to keep them.
    pub store: Option<Arc<dyn MediaStore>>,
}

#[async_trait]
impl RecordingMedia for Recording {
    fn pause(&mut self, keep_silence: bool) {
        self.capture.lock().unwrap().paused = Some(keep_silence);
    }

    fn resume(&mut self) {
        self.capture.lock().unwrap().paused = None;
    }

    async fn finish(self: Box<Self>) -> Result<Recorded, String> {
        let Self {
            capture,
            spec,
            account_sid,
            store,
        } = *self;
        // The engine holds the capture weakly: from here on it is no longer fed.
        let capture = std::mem::take(&mut *capture.lock().unwrap());
        let store = store.ok_or("this worker has no place to keep recordings")?;
        let stem = match account_sid {
            Some(account) => format!("{account}/{}", spec.recording_sid),
            None => spec.recording_sid.to_string(),
        };
        let (wav, mp3, frames) = tokio::task::spawn_blocking(move || encode(&spec, capture))
            .await
            .map_err(|e| e.to_string())??;
        // The MP3 first: once the WAV's location is reported, both are there.
        let kept = |e: teleapi_ports::StoreError| format!("keeping the recording: {e}");
        store
            .put(&format!("{stem}.mp3"), "audio/mpeg", mp3)
            .await
            .map_err(kept)?;
        let url = store
            .put(&format!("{stem}.wav"), "audio/x-wav", wav)
            .await
            .map_err(kept)?;
        Ok(Recorded {
            url,
            samples: frames,
        })
    }
}

/// The recording's WAV and MP3, and its samples per channel.
#[cfg(feature = "recordings")]
fn encode(spec: &RecordingSpec, capture: Capture) -> Result<(Vec<u8>, Vec<u8>, u64), String> {
    let samples = render(spec, capture);
    let encoded = teleapi_worker::audio::encode_recording(spec.channels.count(), &samples)?;
    Ok((encoded.wav, encoded.mp3, encoded.frames))
}

#[cfg(not(feature = "recordings"))]
fn encode(_: &RecordingSpec, _: Capture) -> Result<(Vec<u8>, Vec<u8>, u64), String> {
    Err("built without the recordings feature".into())
}

/// A capture as the recording's samples: the tracks `spec` asks for, mixed (mono) or one
/// channel each (dual: the caller first), interleaved; its silent edges cut if asked.
pub fn render(spec: &RecordingSpec, capture: Capture) -> Vec<i16> {
    let (caller, callee) = hears(spec.track);
    let pick = |keep: bool, samples: Vec<i16>| {
        if keep {
            samples
        } else {
            vec![0; samples.len()]
        }
    };
    let inbound = pick(caller, capture.inbound);
    let outbound = pick(callee, capture.outbound);
    let mut frames = inbound.len().div_ceil(FRAME_SAMPLES);
    let mut first = 0;
    if spec.trim == Trim::TrimSilence {
        let loud = |frame: usize| {
            let range = frame * FRAME_SAMPLES..((frame + 1) * FRAME_SAMPLES).min(inbound.len());
            rms(&inbound[range.clone()]) > SILENCE_RMS || rms(&outbound[range]) > SILENCE_RMS
        };
        while first < frames && !loud(first) {
            first += 1;
        }
        while frames > first && !loud(frames - 1) {
            frames -= 1;
        }
    }
    let span = first * FRAME_SAMPLES..(frames * FRAME_SAMPLES).min(inbound.len());
    let (inbound, outbound) = (&inbound[span.clone()], &outbound[span]);
    match spec.channels {
        RecordingChannels::Mono => inbound
            .iter()
            .zip(outbound)
            .map(|(a, b)| a.saturating_add(*b))
            .collect(),
        RecordingChannels::Dual => inbound
            .iter()
            .zip(outbound)
            .flat_map(|(a, b)| [*a, *b])
            .collect(),
    }
}

fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    (sum / samples.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use teleapi_domain::RecordingSid;
    use teleapi_domain::recording::{RecordingSource, RecordingTrack};

    fn spec(channels: RecordingChannels, track: RecordingTrack, trim: Trim) -> RecordingSpec {
        RecordingSpec {
            recording_sid: RecordingSid::generate(),
            channels,
            track,
            trim,
            source: RecordingSource::StartCallRecordingApi,
            status_callback: None,
        }
    }

    fn frame(level: i16) -> Vec<i16> {
        vec![level; FRAME_SAMPLES]
    }

    #[test]
    fn pauses_are_kept_silent_or_left_out() {
        let mut capture = Capture::default();
        capture.took(&frame(1_000), &frame(2_000));
        capture.paused = Some(true);
        capture.took(&frame(1_000), &frame(2_000));
        capture.paused = Some(false);
        capture.took(&frame(1_000), &frame(2_000));
        capture.paused = None;
        capture.took(&frame(1_000), &frame(2_000));
        let dual = render(
            &spec(
                RecordingChannels::Dual,
                RecordingTrack::Both,
                Trim::DoNotTrim,
            ),
            capture,
        );
        assert_eq!(
            dual.len(),
            3 * FRAME_SAMPLES * 2,
            "the skipped pause is cut"
        );
        assert_eq!(&dual[..2], &[1_000, 2_000], "the caller first");
        let pause = &dual[2 * FRAME_SAMPLES..4 * FRAME_SAMPLES];
        assert!(pause.iter().all(|s| *s == 0), "the kept pause is silent");
        assert_eq!(&dual[4 * FRAME_SAMPLES..][..2], &[1_000, 2_000]);
    }

    #[test]
    fn tracks_mono_and_trimming() {
        let mut capture = Capture::default();
        capture.took(&frame(0), &frame(0));
        capture.took(&frame(1_000), &frame(2_000));
        capture.took(&frame(0), &frame(5));
        let inbound = spec(
            RecordingChannels::Mono,
            RecordingTrack::Inbound,
            Trim::TrimSilence,
        );
        let mono = render(&inbound, capture);
        assert_eq!(mono, frame(1_000), "one loud frame, the caller alone");
    }

    #[test]
    fn a_tap_holds_a_few_frames_and_plays_what_it_is_sent() {
        let tapped = Arc::new(Mutex::new(Tapped::default()));
        let mut tap = StreamTap(tapped.clone());
        assert_eq!(tap.read(Track::Inbound, 0), vec![0xff; FRAME_SAMPLES]);
        for level in 0..10 {
            tapped
                .lock()
                .unwrap()
                .took(&frame(level * 100), &frame(-level * 100));
        }
        let oldest = tap.read(Track::Inbound, 0);
        assert_eq!(oldest[0], Law::Mu.encode(500), "older frames were dropped");
        tap.play(&[Law::Mu.encode(3_000); FRAME_SAMPLES]);
        let played = tapped.lock().unwrap().to_play().unwrap();
        assert_eq!(played[0], Law::Mu.decode(Law::Mu.encode(3_000)));
        assert!(tapped.lock().unwrap().to_play().is_none());
        tap.play(&[Law::Mu.encode(3_000); FRAME_SAMPLES]);
        tap.clear();
        assert!(tapped.lock().unwrap().to_play().is_none(), "cleared");
    }
}
