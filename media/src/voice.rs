//! Whether a far end speaks, frame by frame: the energy of each 20 ms frame against a fixed
//! floor, speech once two frames in a row are above it (40 ms, so a click is not a word) and
//! silence once 300 ms in a row are below it (the pauses between words are shorter). What
//! `<Record>`'s silence timeout and answering-machine detection listen to.
//!
//! A fixed floor, not an adaptive one: a line's noise stays under it (−36 dBFS, about
//! 45 dB below a loud voice), and speech on a phone line is well above it. A far end whose
//! background noise is louder than that always "speaks"; one that sends no RTP during silence
//! (silence suppression) is heard as silence by the frames it does not send only once
//! it sends again.

/// The RMS level (of 32,768) above which a frame is voice: −36 dBFS.
const FLOOR: f64 = 520.0;
/// Frames above the floor before speech begins (40 ms).
const ONSET: u32 = 2;
/// Frames below it before speech ends (300 ms).
const HANGOVER: u32 = 15;

#[derive(Debug, Default)]
pub struct Voice {
    speaking: bool,
    /// Frames in a row on the other side of the floor from `speaking`.
    run: u32,
}

impl Voice {
    /// Takes one frame; `Some(speaking)` when the far end starts or stops speaking.
    pub fn feed(&mut self, frame: &[i16]) -> Option<bool> {
        if frame.is_empty() {
            return None;
        }
        let energy: f64 = frame.iter().map(|s| f64::from(*s).powi(2)).sum();
        let loud = (energy / frame.len() as f64).sqrt() > FLOOR;
        if loud == self.speaking {
            self.run = 0;
            return None;
        }
        self.run += 1;
        let needed = if loud { ONSET } else { HANGOVER };
        if self.run < needed {
            return None;
        }
        self.speaking = loud;
        self.run = 0;
        Some(loud)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amplitude: f64) -> Vec<i16> {
        (0..160)
            .map(|n| {
                (amplitude * (2.0 * std::f64::consts::PI * 440.0 * n as f64 / 8000.0).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn speech_begins_after_two_loud_frames_and_ends_after_300_ms_of_quiet() {
        let mut voice = Voice::default();
        let (loud, quiet) = (tone(8_000.0), tone(200.0));
        assert_eq!(voice.feed(&quiet), None);
        assert_eq!(voice.feed(&loud), None, "one frame is a click");
        assert_eq!(voice.feed(&quiet), None);
        assert_eq!(voice.feed(&loud), None);
        assert_eq!(voice.feed(&loud), Some(true));
        // A pause between words (200 ms) does not end it.
        for _ in 0..10 {
            assert_eq!(voice.feed(&quiet), None);
        }
        assert_eq!(voice.feed(&loud), None);
        let ended: Vec<_> = (0..15).map(|_| voice.feed(&quiet)).collect();
        assert_eq!(ended[..14], [None; 14]);
        assert_eq!(ended[14], Some(false));
        assert_eq!(voice.feed(&[]), None);
    }
}
