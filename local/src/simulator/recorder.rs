//! A recording on a simulated leg: real media with no telephony. The leg has no audio, so what
//! was recorded is a tone (440 Hz from the caller, 660 Hz towards them, as the track asks) and a
//! pause with `PauseBehavior=silence` is silence; a pause with `skip` leaves nothing. Written as
//! a WAV file (8 kHz, 16-bit PCM, one channel or one per leg), and an MP3 beside it, when the
//! recording ends, whose length is the real time recorded: wall-clock, not scaled by `--speed`.

use std::path::Path;
use std::time::Duration;

use teleapi_domain::recording::{
    PauseBehavior, RecordingChannels, RecordingSpec, RecordingStatus, RecordingTrack, Trim,
};
use teleapi_domain::wire::event::EventKind;
use teleapi_domain::{AccountSid, Timestamp};
use tokio::time::Instant;

/// Samples a second.
pub const SAMPLE_RATE: u32 = 8_000;

/// One stretch of the media: audible (the tone) or silent.
#[derive(Debug, Clone, Copy)]
struct Span {
    length: Duration,
    audible: bool,
}

enum State {
    Recording,
    Paused(PauseBehavior),
}

pub struct Recorder {
    pub spec: RecordingSpec,
    account_sid: AccountSid,
    /// The recording's own event numbers.
    seq: u64,
    spans: Vec<Span>,
    /// When the current stretch began.
    since: Instant,
    state: State,
}

impl Recorder {
    /// Starts recording now; the event that says so.
    pub fn start(spec: RecordingSpec, account_sid: AccountSid) -> (Self, EventKind) {
        let mut recorder = Self {
            spec,
            account_sid,
            seq: 0,
            spans: Vec::new(),
            since: Instant::now(),
            state: State::Recording,
        };
        recorder.seq += 1;
        let event = EventKind::RecordingStarted {
            seq: recorder.seq,
            account_sid: recorder.account_sid.clone(),
            recording: recorder.spec.clone(),
            start_time: Timestamp::now().millis(),
        };
        (recorder, event)
    }

    /// Closes the current stretch at `now`.
    fn close(&mut self, now: Instant) {
        let length = now - self.since;
        self.since = now;
        match self.state {
            State::Recording => self.spans.push(Span {
                length,
                audible: true,
            }),
            State::Paused(PauseBehavior::Silence) => self.spans.push(Span {
                length,
                audible: false,
            }),
            State::Paused(PauseBehavior::Skip) => {}
        }
    }

    fn status(&mut self, status: RecordingStatus) -> EventKind {
        self.seq += 1;
        EventKind::RecordingChanged {
            seq: self.seq,
            recording_sid: self.spec.recording_sid.clone(),
            status,
            duration: None,
            media_url: None,
            error_code: None,
        }
    }

    /// Pauses (again: changes how) or resumes; the event that says so, if anything changed.
    pub fn set(
        &mut self,
        status: RecordingStatus,
        behavior: Option<PauseBehavior>,
    ) -> Option<EventKind> {
        let now = Instant::now();
        match (status, &self.state) {
            (RecordingStatus::Paused, _) => {
                self.close(now);
                self.state = State::Paused(behavior.unwrap_or(PauseBehavior::Silence));
                Some(self.status(RecordingStatus::Paused))
            }
            (RecordingStatus::InProgress, State::Paused(_)) => {
                self.close(now);
                self.state = State::Recording;
                Some(self.status(RecordingStatus::InProgress))
            }
            _ => None,
        }
    }

    /// Ends the recording: writes its media into `dir` and says where (or that it failed).
    pub async fn stop(mut self, dir: &Path) -> EventKind {
        self.close(Instant::now());
        let path = dir.join(format!("{}.wav", self.spec.recording_sid));
        let channels = self.spec.channels;
        let track = self.spec.track;
        let mut spans = std::mem::take(&mut self.spans);
        if self.spec.trim == Trim::TrimSilence {
            // Leading and trailing silence (pauses kept as silence) is cut.
            while spans.first().is_some_and(|s| !s.audible) {
                spans.remove(0);
            }
            while spans.last().is_some_and(|s| !s.audible) {
                spans.pop();
            }
        }
        let target = path.clone();
        let written =
            tokio::task::spawn_blocking(move || write_wav(&target, channels, track, &spans))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
        self.seq += 1;
        let recording_sid = self.spec.recording_sid.clone();
        match written {
            Ok(samples) => {
                // Whole seconds, as Twilio reports them: rounded to the nearest.
                let duration =
                    (u64::from(samples) + u64::from(SAMPLE_RATE) / 2) / u64::from(SAMPLE_RATE);
                let status = if samples == 0 {
                    RecordingStatus::Absent
                } else {
                    RecordingStatus::Completed
                };
                EventKind::RecordingChanged {
                    seq: self.seq,
                    recording_sid,
                    status,
                    duration: Some(duration),
                    media_url: Some(format!("file://{}", path.display())),
                    error_code: None,
                }
            }
            Err(why) => {
                tracing::error!(recording_sid = %recording_sid, error = %why, "simulator: recording not written");
                EventKind::RecordingChanged {
                    seq: self.seq,
                    recording_sid,
                    status: RecordingStatus::Failed,
                    duration: None,
                    media_url: None,
                    // Twilio's "Recording failed" code.
                    error_code: Some(16_105),
                }
            }
        }
    }
}

/// The spans as 16-bit samples (interleaved when dual), and how many frames that is.
fn render(channels: RecordingChannels, track: RecordingTrack, spans: &[Span]) -> (Vec<i16>, u32) {
    let tone = |hz: f64, n: u64| {
        (2.0 * std::f64::consts::PI * hz * n as f64 / f64::from(SAMPLE_RATE)).sin() * 6_000.0
    };
    let (inbound, outbound) = match track {
        RecordingTrack::Inbound => (true, false),
        RecordingTrack::Outbound => (false, true),
        RecordingTrack::Both => (true, true),
    };
    let sample = |value: f64| {
        value
            .round()
            .clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
    };
    let mut samples = Vec::new();
    let mut n: u64 = 0;
    for span in spans {
        let frames = (span.length.as_secs_f64() * f64::from(SAMPLE_RATE)).round() as u64;
        for _ in 0..frames {
            let (caller, callee) = if span.audible {
                (
                    if inbound { tone(440.0, n) } else { 0.0 },
                    if outbound { tone(660.0, n) } else { 0.0 },
                )
            } else {
                (0.0, 0.0)
            };
            match channels {
                RecordingChannels::Mono => samples.push(sample(caller + callee)),
                RecordingChannels::Dual => samples.extend([sample(caller), sample(callee)]),
            }
            n += 1;
        }
    }
    (samples, u32::try_from(n).unwrap_or(u32::MAX))
}

/// Writes the recording as a WAV file (8 kHz, 16-bit PCM) and, beside it, an MP3 of the same
/// audio (32 kbit/s, LAME); the number of sample frames.
fn write_wav(
    path: &Path,
    channels: RecordingChannels,
    track: RecordingTrack,
    spans: &[Span],
) -> Result<u32, String> {
    let (samples, frames) = render(channels, track, spans);
    let spec = hound::WavSpec {
        channels: channels.count(),
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(|e| e.to_string())?;
    for sample in &samples {
        writer.write_sample(*sample).map_err(|e| e.to_string())?;
    }
    writer.finalize().map_err(|e| e.to_string())?;
    let mp3 = encode_mp3(channels, &samples)?;
    std::fs::write(path.with_extension("mp3"), mp3).map_err(|e| e.to_string())?;
    Ok(frames)
}

fn encode_mp3(channels: RecordingChannels, samples: &[i16]) -> Result<Vec<u8>, String> {
    use mp3lame_encoder::{Bitrate, Builder, FlushNoGap, InterleavedPcm, MonoPcm, Quality};
    let failed = |e: &dyn std::fmt::Display| format!("mp3: {e}");
    let mut builder = Builder::new().ok_or("mp3: LAME did not start")?;
    builder
        .set_num_channels(u8::try_from(channels.count()).unwrap_or(1))
        .map_err(|e| failed(&e))?;
    builder
        .set_sample_rate(SAMPLE_RATE)
        .map_err(|e| failed(&e))?;
    builder.set_brate(Bitrate::Kbps32).map_err(|e| failed(&e))?;
    builder.set_quality(Quality::Good).map_err(|e| failed(&e))?;
    let mut encoder = builder.build().map_err(|e| failed(&e))?;
    // LAME writes into the buffer's spare room: it must be there before each call (an empty
    // one reads as "unbounded" to LAME).
    let mut out = Vec::with_capacity(mp3lame_encoder::max_required_buffer_size(samples.len()));
    match channels {
        RecordingChannels::Mono => encoder.encode_to_vec(MonoPcm(samples), &mut out),
        RecordingChannels::Dual => encoder.encode_to_vec(InterleavedPcm(samples), &mut out),
    }
    .map_err(|e| failed(&e))?;
    out.reserve(7_200);
    encoder
        .flush_to_vec::<FlushNoGap>(&mut out)
        .map_err(|e| failed(&e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_mp3() {
        let spans = [Span {
            length: Duration::from_millis(500),
            audible: true,
        }];
        for channels in [RecordingChannels::Mono, RecordingChannels::Dual] {
            let (samples, frames) = render(channels, RecordingTrack::Both, &spans);
            assert_eq!(frames, 4000);
            let mp3 = encode_mp3(channels, &samples).unwrap();
            assert!(mp3.len() > 500, "{}", mp3.len());
        }
    }
}
