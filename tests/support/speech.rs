//! Speech made for tests: espeak-ng's voices at 8 kHz (sox resamples), silences and tones, as
//! a phone line carries them. What answering-machine detection is measured and tested on.

use std::path::Path;
use std::process::Command;

/// Samples a second.
pub const RATE: usize = 8_000;

/// One stretch of a recording made up for a test.
#[derive(Debug, Clone)]
pub enum Part {
    /// Seconds of silence.
    Silence(f64),
    /// Words, spoken by espeak-ng's `voice` (`en-us`, `en+f3`, …) at `wpm` words a minute.
    Say {
        text: &'static str,
        voice: &'static str,
        wpm: u32,
    },
    /// A tone (a greeting's beep): `hz` for `seconds`.
    Tone(f64, f64),
}

/// `parts` one after another at 8 kHz, in `dir` (espeak-ng and sox work there). Panics if
/// espeak-ng or sox is missing (tests/run installs both).
pub fn make(dir: &Path, parts: &[Part]) -> Vec<i16> {
    let mut samples = Vec::new();
    for part in parts {
        match part {
            Part::Silence(seconds) => {
                samples.resize(samples.len() + (seconds * RATE as f64) as usize, 0)
            }
            Part::Tone(hz, seconds) => samples.extend(crate::phone::tone(*hz, *seconds)),
            Part::Say { text, voice, wpm } => samples.extend(say(dir, text, voice, *wpm)),
        }
    }
    samples
}

/// `text` spoken by espeak-ng, at 8 kHz, 16-bit, mono.
pub fn say(dir: &Path, text: &str, voice: &str, wpm: u32) -> Vec<i16> {
    let raw = dir.join("espeak.wav");
    let eight = dir.join("espeak-8k.wav");
    let spoke = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &wpm.to_string(), "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng runs (tests/run installs it)");
    assert!(spoke.success(), "espeak-ng failed on {text:?}");
    let converted = Command::new("sox")
        .arg(&raw)
        .args(["-r", "8000", "-c", "1", "-b", "16"])
        .arg(&eight)
        .status()
        .expect("sox runs (tests/run installs it)");
    assert!(converted.success(), "sox failed");
    let mut reader = hound::WavReader::open(&eight).expect("sox wrote a WAV");
    reader.samples::<i16>().map(|s| s.unwrap_or(0)).collect()
}

/// Adds white noise at `rms` (of 32,768), the same noise every run (a fixed seed).
pub fn add_noise(samples: &mut [i16], rms: f64) {
    let mut state: u32 = 0x2545_f491;
    // Uniform noise in [-a, a] has an RMS of a/√3.
    let amplitude = rms * 3f64.sqrt();
    for sample in samples {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let unit = f64::from(state) / f64::from(u32::MAX) * 2.0 - 1.0;
        *sample = (f64::from(*sample) + unit * amplitude).clamp(-32_768.0, 32_767.0) as i16;
    }
}
