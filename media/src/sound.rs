//! What a leg plays, 20 ms at a time: audio (a prompt's samples, looped), silence, and DTMF
//! keys (RFC 4733 events where the far end takes them, tones in the audio where it does not).

use std::collections::VecDeque;
use std::f64::consts::PI;
use std::sync::Arc;

use crate::pacer::FRAME_SAMPLES;
use crate::rtp::DigitEvent;

/// One part of what a leg plays.
#[derive(Debug, Clone)]
pub enum Part {
    /// 8 kHz samples, `loops` times (0: until stopped).
    Samples { samples: Arc<[i16]>, loops: u32 },
    /// So many frames of silence.
    Silence(u64),
    /// DTMF keys (`0-9 * # A-D`; `w`: half a second's wait).
    Keys(String),
}

/// One frame out.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Audio(Vec<i16>),
    /// A telephone-event packet: the event, and whether it begins (the RTP marker).
    Event {
        event: DigitEvent,
        begins: bool,
    },
}

/// Frames of a key: 100 ms of it, then its end (sent three times, as RFC 4733 asks), then
/// 40 ms of nothing before the next.
const KEY_FRAMES: u16 = 5;
const END_REPEATS: u16 = 3;
const GAP_FRAMES: u16 = 2;
/// Frames of a `w`.
const WAIT_FRAMES: u64 = 25;
/// The loudness of tones written into the audio: about -10 dBm0 each.
const TONE_LEVEL: f64 = 6_000.0;

/// A sequence of parts played frame by frame.
#[derive(Debug, Default)]
pub struct Player {
    parts: VecDeque<Part>,
    /// Within the first part: the sample (audio), frame (silence, keys) reached, and the loop.
    at: u64,
    looped: u32,
    /// The key being sent, its char index in the part.
    key: usize,
}

impl Player {
    pub fn new(parts: impl IntoIterator<Item = Part>) -> Self {
        Self {
            parts: parts.into_iter().collect(),
            ..Self::default()
        }
    }

    pub fn is_done(&self) -> bool {
        self.parts.is_empty()
    }

    fn advance_part(&mut self) {
        self.parts.pop_front();
        self.at = 0;
        self.looped = 0;
        self.key = 0;
    }

    /// The next frame; `None` when everything has played. `events`: the far end takes RFC 4733
    /// telephone-events (else keys are tones in the audio).
    pub fn next_frame(&mut self, events: bool) -> Option<Frame> {
        loop {
            let part = self.parts.front()?.clone();
            match part {
                Part::Samples { samples, loops } => {
                    if samples.is_empty() {
                        self.advance_part();
                        continue;
                    }
                    let mut frame = Vec::with_capacity(FRAME_SAMPLES);
                    while frame.len() < FRAME_SAMPLES {
                        let at = self.at as usize;
                        if at >= samples.len() {
                            self.looped += 1;
                            self.at = 0;
                            if loops != 0 && self.looped >= loops {
                                break;
                            }
                            continue;
                        }
                        let take = (samples.len() - at).min(FRAME_SAMPLES - frame.len());
                        frame.extend_from_slice(&samples[at..at + take]);
                        self.at += take as u64;
                    }
                    if loops != 0 && self.looped >= loops {
                        self.advance_part();
                        if frame.is_empty() {
                            continue;
                        }
                    }
                    frame.resize(FRAME_SAMPLES, 0);
                    return Some(Frame::Audio(frame));
                }
                Part::Silence(frames) => {
                    if self.at >= frames {
                        self.advance_part();
                        continue;
                    }
                    self.at += 1;
                    return Some(Frame::Audio(vec![0; FRAME_SAMPLES]));
                }
                Part::Keys(keys) => {
                    let Some(key) = keys.chars().nth(self.key) else {
                        self.advance_part();
                        continue;
                    };
                    if let Some(frame) = self.key_frame(key, events) {
                        return Some(frame);
                    }
                    self.key += 1;
                    self.at = 0;
                }
            }
        }
    }

    /// Frame `self.at` of `key`, counting on; `None` once the key is over.
    fn key_frame(&mut self, key: char, events: bool) -> Option<Frame> {
        let at = self.at;
        self.at += 1;
        if key == 'w' {
            return (at < WAIT_FRAMES).then(|| Frame::Audio(vec![0; FRAME_SAMPLES]));
        }
        let Some(code) = DigitEvent::code(key) else {
            return None; // not a key: nothing to send
        };
        let at = u16::try_from(at).unwrap_or(u16::MAX);
        let sounding = at < KEY_FRAMES;
        if events && at < KEY_FRAMES + END_REPEATS {
            let duration = (at.min(KEY_FRAMES - 1) + 1) * FRAME_SAMPLES as u16;
            let event = DigitEvent {
                event: code,
                end: !sounding,
                volume: 10,
                duration,
            };
            return Some(Frame::Event {
                event,
                begins: at == 0,
            });
        }
        if !events && sounding {
            return Some(Frame::Audio(dtmf_tone(key, u64::from(at))));
        }
        let rest = if events {
            KEY_FRAMES + END_REPEATS + GAP_FRAMES
        } else {
            KEY_FRAMES + END_REPEATS
        };
        (at < rest).then(|| Frame::Audio(vec![0; FRAME_SAMPLES]))
    }
}

/// The two frequencies of a DTMF key (ITU-T Q.23).
pub fn dtmf_frequencies(key: char) -> Option<(f64, f64)> {
    use crate::dtmf::{COLUMNS, LAYOUT, ROWS};
    LAYOUT
        .iter()
        .enumerate()
        .find_map(|(row, keys)| keys.find(key).map(|column| (ROWS[row], COLUMNS[column])))
}

/// Frame `n` of a key's tone.
fn dtmf_tone(key: char, n: u64) -> Vec<i16> {
    let Some((low, high)) = dtmf_frequencies(key) else {
        return vec![0; FRAME_SAMPLES];
    };
    (0..FRAME_SAMPLES as u64)
        .map(|i| {
            let t = (n * FRAME_SAMPLES as u64 + i) as f64 / 8_000.0;
            ((2.0 * PI * low * t).sin() * TONE_LEVEL + (2.0 * PI * high * t).sin() * TONE_LEVEL)
                as i16
        })
        .collect()
}

/// A sine tone of `seconds` at `hz`: what the tests' phones play, and the comfort of a beep.
pub fn tone(hz: f64, seconds: f64) -> Vec<i16> {
    let n = (seconds * 8_000.0) as usize;
    (0..n)
        .map(|i| ((2.0 * PI * hz * i as f64 / 8_000.0).sin() * TONE_LEVEL) as i16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(player: &mut Player, events: bool) -> Vec<Frame> {
        std::iter::from_fn(|| player.next_frame(events))
            .take(10_000)
            .collect()
    }

    #[test]
    fn samples_play_their_loops_then_end() {
        let samples: Arc<[i16]> = (1..=200).collect::<Vec<i16>>().into();
        let mut player = Player::new([Part::Samples { samples, loops: 2 }]);
        let out = frames(&mut player, true);
        // 400 samples: two full frames and one padded with silence.
        assert_eq!(out.len(), 3);
        let Frame::Audio(second) = &out[1] else {
            panic!()
        };
        assert_eq!(second[0], 161);
        assert_eq!(second[39], 200);
        assert_eq!(second[40], 1, "the second loop follows at once");
        let Frame::Audio(last) = &out[2] else {
            panic!()
        };
        assert_eq!(last[79], 200);
        assert_eq!(last[80], 0);
        assert!(player.is_done());
    }

    #[test]
    fn a_prompt_looped_forever_goes_on() {
        let samples: Arc<[i16]> = vec![1; 100].into();
        let mut player = Player::new([Part::Samples { samples, loops: 0 }]);
        assert_eq!(frames(&mut player, true).len(), 10_000);
    }

    #[test]
    fn keys_as_events_and_waits() {
        let mut player = Player::new([Part::Keys("1w#".into()), Part::Silence(1)]);
        let out = frames(&mut player, true);
        let per_key = usize::from(KEY_FRAMES + END_REPEATS + GAP_FRAMES);
        assert_eq!(out.len(), 2 * per_key + WAIT_FRAMES as usize + 1);
        let Frame::Event { event, begins } = &out[0] else {
            panic!()
        };
        assert!(*begins);
        assert_eq!(
            (event.key(), event.end, event.duration),
            (Some('1'), false, 160)
        );
        let Frame::Event { event, begins } = &out[5] else {
            panic!()
        };
        assert!(!begins);
        assert_eq!((event.end, event.duration), (true, 800));
        assert!(
            matches!(&out[per_key + WAIT_FRAMES as usize], Frame::Event { event, .. } if event.key() == Some('#'))
        );
    }

    #[test]
    fn keys_as_tones_when_the_far_end_takes_no_events() {
        let mut player = Player::new([Part::Keys("5".into())]);
        let out = frames(&mut player, false);
        assert_eq!(out.len(), usize::from(KEY_FRAMES + END_REPEATS));
        let Frame::Audio(first) = &out[0] else {
            panic!()
        };
        assert!(first.iter().any(|s| s.abs() > 3_000));
        assert_eq!(dtmf_frequencies('5'), Some((770.0, 1336.0)));
        assert_eq!(dtmf_frequencies('x'), None);
    }
}
