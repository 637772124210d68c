//! DTMF heard in the audio itself (in-band), for a far end that did not negotiate RFC 4733
//! telephone-events: Goertzel's algorithm at the eight frequencies of ITU-T Q.23 on each 20 ms
//! frame. A key is one row tone and one column tone that together carry nearly all of the
//! frame's energy, within the twist Q.24 allows, for two frames in a row (40 ms, Q.24's
//! shortest tone); it is reported once, and again only after two frames without it.

/// The keypad's row and column frequencies (Hz), and its keys row by row (ITU-T Q.23).
pub const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
pub const COLUMNS: [f64; 4] = [1_209.0, 1_336.0, 1_477.0, 1_633.0];
pub const LAYOUT: [&str; 4] = ["123A", "456B", "789C", "*0#D"];

/// Quieter than this (RMS of 16-bit samples, about -45 dBm0) is not a key.
const MIN_RMS: f64 = 150.0;
/// The two tones together carry at least this share of the frame's energy (speech and music
/// spread theirs).
const MIN_SHARE: f64 = 0.7;
/// Twist: the weaker tone is at least this share of the stronger (8 dB, Q.24).
const MAX_TWIST: f64 = 0.16;
/// The best row (column) tone is this many times stronger than the row (column) next to it.
const MIN_LEAD: f64 = 6.0;

/// Goertzel's coefficient of each row, then column, frequency at 8 kHz: 2·cos(2πf/8000).
fn coefficients() -> &'static [f32; 8] {
    static COEFFICIENTS: std::sync::OnceLock<[f32; 8]> = std::sync::OnceLock::new();
    COEFFICIENTS.get_or_init(|| {
        let mut all = [0f32; 8];
        for (c, hz) in all.iter_mut().zip(ROWS.iter().chain(&COLUMNS)) {
            *c = (2.0 * (2.0 * std::f64::consts::PI * hz / 8_000.0).cos()) as f32;
        }
        all
    })
}

/// One leg's in-band detector.
#[derive(Debug, Default)]
pub struct Detector {
    /// The key the last frame held, and for how many frames in a row.
    seen: Option<(char, u8)>,
    /// The key reported and not yet released.
    reported: Option<char>,
    /// Frames in a row without a key.
    quiet: u8,
}

impl Detector {
    /// Takes one frame (8 kHz samples); the key it completes, if any.
    pub fn feed(&mut self, samples: &[i16]) -> Option<char> {
        match key_in(samples) {
            Some(key) => {
                self.quiet = 0;
                let count = match self.seen {
                    Some((held, n)) if held == key => n.saturating_add(1),
                    _ => 1,
                };
                self.seen = Some((key, count));
                if count >= 2 && self.reported != Some(key) {
                    self.reported = Some(key);
                    return Some(key);
                }
                None
            }
            None => {
                self.seen = None;
                self.quiet = self.quiet.saturating_add(1);
                if self.quiet >= 2 {
                    self.reported = None;
                }
                None
            }
        }
    }
}

/// The key one frame holds, if it holds one. Every frame of a leg without telephone-events
/// passes here (50 a second), so it is lean: the eight filters run together in `f32` on one
/// pass over the samples, with no allocation.
pub fn key_in(samples: &[i16]) -> Option<char> {
    if samples.is_empty() {
        return None;
    }
    let energy: f32 = samples.iter().map(|s| f32::from(*s).powi(2)).sum();
    if f64::from(energy / samples.len() as f32).sqrt() < MIN_RMS {
        return None;
    }
    let coefficients = coefficients();
    let (mut s1, mut s2) = ([0f32; 8], [0f32; 8]);
    for sample in samples {
        let x = f32::from(*sample);
        for k in 0..8 {
            let s0 = x + coefficients[k] * s1[k] - s2[k];
            s2[k] = s1[k];
            s1[k] = s0;
        }
    }
    // A pure tone's Goertzel power is energy * N / 2: as a share of the frame's energy.
    let scale = 2.0 / (f64::from(energy) * samples.len() as f64);
    let mut levels = [0f64; 8];
    for k in 0..8 {
        let power = s1[k] * s1[k] + s2[k] * s2[k] - coefficients[k] * s1[k] * s2[k];
        levels[k] = f64::from(power) * scale;
    }
    // The strongest of four, and the next.
    let best = |levels: &[f64]| {
        let (mut first, mut second) = ((0, f64::MIN), f64::MIN);
        for (i, level) in levels.iter().enumerate() {
            if *level > first.1 {
                second = first.1;
                first = (i, *level);
            } else if *level > second {
                second = *level;
            }
        }
        (first, second)
    };
    let ((row, row_level), row_next) = best(&levels[..4]);
    let ((column, column_level), column_next) = best(&levels[4..]);
    let (weak, strong) = if row_level < column_level {
        (row_level, column_level)
    } else {
        (column_level, row_level)
    };
    let key = row_level + column_level >= MIN_SHARE
        && weak >= strong * MAX_TWIST
        && row_level >= row_next * MIN_LEAD
        && column_level >= column_next * MIN_LEAD;
    key.then(|| LAYOUT[row].as_bytes()[column] as char)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::g711::Law;
    use crate::sound::{Frame, Part, Player};

    /// `keys` as the worker writes them into audio (tones, no events), through G.711 and back.
    fn heard(keys: &str, law: Law) -> Vec<Vec<i16>> {
        let mut player = Player::new([Part::Keys(keys.to_owned())]);
        let mut frames = Vec::new();
        while let Some(frame) = player.next_frame(false) {
            let Frame::Audio(samples) = frame else {
                panic!("tones, not events")
            };
            let (mut bytes, mut back) = (Vec::new(), Vec::new());
            law.encode_frame(&samples, &mut bytes);
            law.decode_frame(&bytes, &mut back);
            frames.push(back);
        }
        frames
    }

    fn detect(frames: &[Vec<i16>]) -> String {
        let mut detector = Detector::default();
        frames.iter().filter_map(|f| detector.feed(f)).collect()
    }

    #[test]
    fn every_key_is_heard_once_through_either_law() {
        for law in [Law::Mu, Law::A] {
            assert_eq!(detect(&heard("123A456B789C*0#D", law)), "123A456B789C*0#D");
            assert_eq!(detect(&heard("11w22", law)), "1122", "a key pressed twice");
        }
    }

    #[test]
    fn a_tone_speech_or_silence_is_not_a_key() {
        let tone = |hz: f64| crate::sound::tone(hz, 1.0);
        for hz in [697.0, 1_000.0, 1_209.0, 2_000.0] {
            let frames: Vec<Vec<i16>> = tone(hz).chunks(160).map(<[i16]>::to_vec).collect();
            assert_eq!(detect(&frames), "", "{hz} Hz alone");
        }
        // A chord of a row and a column tone far out of balance (beyond the twist allowed).
        let loud = tone(770.0);
        let quiet = tone(1_336.0);
        let mixed: Vec<i16> = loud
            .iter()
            .zip(&quiet)
            .map(|(a, b)| a.saturating_add(b / 20))
            .collect();
        let frames: Vec<Vec<i16>> = mixed.chunks(160).map(<[i16]>::to_vec).collect();
        assert_eq!(detect(&frames), "");
        assert_eq!(detect(&vec![vec![0; 160]; 10]), "");
        // Noise-like sound: a sweep across the band.
        let sweep: Vec<i16> = (0..8_000)
            .map(|n| {
                let t = f64::from(n) / 8_000.0;
                ((2.0 * std::f64::consts::PI * (300.0 + 1_500.0 * t) * t).sin() * 6_000.0) as i16
            })
            .collect();
        let frames: Vec<Vec<i16>> = sweep.chunks(160).map(<[i16]>::to_vec).collect();
        assert_eq!(detect(&frames), "");
    }

    #[test]
    fn one_frame_of_a_key_is_not_enough() {
        let frames = heard("5", Law::Mu);
        assert_eq!(detect(&frames[..1]), "");
        assert_eq!(detect(&frames[..2]), "5");
    }
}
