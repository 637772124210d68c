//! A recording on a simulated leg: real media with no telephony. The leg has no audio, so what
//! was recorded is a tone (440 Hz from the caller, 660 Hz towards them, as the track asks) and a
//! pause with `PauseBehavior=silence` is silence; a pause with `skip` leaves nothing. Written as
//! a WAV file (8 kHz, 16-bit PCM, one channel or one per leg), and an MP3 beside it, when the
//! recording ends, whose length is the real time recorded: wall-clock, not scaled by `--speed`.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use teleapi_domain::recording::{RecordingChannels, RecordingSpec, RecordingTrack, Trim};
use teleapi_worker::audio::{SAMPLE_RATE, write_recording};
use teleapi_worker::media::hears;
use teleapi_worker::{Recorded, RecordingMedia};
use tokio::time::Instant;

/// One stretch of the media: audible (the tone) or silent.
#[derive(Debug, Clone, Copy)]
struct Span {
    length: Duration,
    audible: bool,
}

enum State {
    Recording,
    Paused { keep_silence: bool },
}

pub struct Tones {
    spec: RecordingSpec,
    dir: PathBuf,
    spans: Vec<Span>,
    /// When the current stretch began.
    since: Instant,
    state: State,
}

impl Tones {
    pub fn start(spec: RecordingSpec, dir: PathBuf) -> Self {
        Self {
            spec,
            dir,
            spans: Vec::new(),
            since: Instant::now(),
            state: State::Recording,
        }
    }

    /// Closes the current stretch now.
    fn close(&mut self) {
        let now = Instant::now();
        let length = now - self.since;
        self.since = now;
        match self.state {
            State::Recording => self.spans.push(Span {
                length,
                audible: true,
            }),
            State::Paused { keep_silence: true } => self.spans.push(Span {
                length,
                audible: false,
            }),
            State::Paused {
                keep_silence: false,
            } => {}
        }
    }
}

#[async_trait]
impl RecordingMedia for Tones {
    fn pause(&mut self, keep_silence: bool) {
        self.close();
        self.state = State::Paused { keep_silence };
    }

    fn resume(&mut self) {
        self.close();
        self.state = State::Recording;
    }

    async fn finish(mut self: Box<Self>) -> Result<Recorded, String> {
        self.close();
        let path = self.dir.join(format!("{}.wav", self.spec.recording_sid));
        let (channels, track) = (self.spec.channels, self.spec.track);
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
        let samples = tokio::task::spawn_blocking(move || {
            let samples = render(channels, track, &spans);
            write_recording(&target, channels.count(), &samples)
        })
        .await
        .map_err(|e| e.to_string())??;
        Ok(Recorded {
            url: format!("file://{}", path.display()),
            samples,
        })
    }
}

/// The spans as 16-bit samples (interleaved when dual).
fn render(channels: RecordingChannels, track: RecordingTrack, spans: &[Span]) -> Vec<i16> {
    let tone = |hz: f64, n: u64| {
        (2.0 * std::f64::consts::PI * hz * n as f64 / f64::from(SAMPLE_RATE)).sin() * 6_000.0
    };
    let (inbound, outbound) = hears(track);
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
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_tracks_asked_for() {
        let spans = [
            Span {
                length: Duration::from_millis(500),
                audible: true,
            },
            Span {
                length: Duration::from_millis(250),
                audible: false,
            },
        ];
        let mono = render(RecordingChannels::Mono, RecordingTrack::Both, &spans);
        assert_eq!(mono.len(), 6000);
        let dual = render(RecordingChannels::Dual, RecordingTrack::Inbound, &spans);
        assert_eq!(dual.len(), 12_000);
        assert!(dual.iter().skip(1).step_by(2).all(|s| *s == 0), "no callee");
        assert!(
            dual.iter().step_by(2).take(4000).any(|s| *s != 0),
            "the caller"
        );
        assert!(dual[8000..].iter().all(|s| *s == 0), "the pause is silent");
    }
}
