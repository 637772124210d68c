//! Answering-machine detection from the pattern of the far end's speech and silence, as the
//! media reports it ([`crate::LegInput::Speech`]) from the answer on: a person says a short
//! "hello?" and waits; a machine's greeting goes on. Twilio's parameters decide:
//!
//! - speech longer than `speech_threshold` (its voiced time, pauses shorter than
//!   `speech_end_threshold` between words not counted) is a machine: `machine_start` at once (`Enable`), or, with `DetectMessageEnd`,
//!   `machine_end_silence` once its greeting is followed by `speech_end_threshold` of silence
//!   (`machine_end_other` if the time runs out first);
//! - shorter speech followed by `speech_end_threshold` of silence is a person (`human`);
//! - nothing said for `silence_timeout`, or no decision within `timeout`: `unknown`.
//!
//! It hears no tones: a fax's CNG and a greeting's beep are not told apart from speech, so it
//! never answers `fax` or `machine_end_beep`. Times are durations since the answer, on the
//! worker's clock.

use std::time::Duration;

use teleapi_domain::call::{AmdMode, AnsweredBy, MachineDetection};

pub struct Detector {
    mode: AmdMode,
    timeout: Duration,
    speech_threshold: Duration,
    speech_end: Duration,
    silence_timeout: Duration,
    /// When the far end first spoke, if it has.
    utterance: Option<Duration>,
    /// Time spoken in the words that have ended.
    voiced: Duration,
    /// When the word being spoken began, while the far end speaks.
    word: Option<Duration>,
    speaking: bool,
    /// When it last fell silent, while it is silent after speaking.
    silent_since: Option<Duration>,
    /// A machine was heard; with `DetectMessageEnd`, its greeting is not over yet.
    machine: bool,
}

impl Detector {
    /// A detector for `detection`, its durations as `scaled` makes them (the worker's clock).
    pub fn new(detection: &MachineDetection, scaled: impl Fn(f64) -> Duration) -> Self {
        let ms = |n: u32| scaled(f64::from(n) / 1000.0);
        Self {
            mode: detection.mode,
            timeout: scaled(f64::from(detection.timeout)),
            speech_threshold: ms(detection.speech_threshold),
            speech_end: ms(detection.speech_end_threshold),
            silence_timeout: ms(detection.silence_timeout),
            utterance: None,
            voiced: Duration::ZERO,
            word: None,
            speaking: false,
            silent_since: None,
            machine: false,
        }
    }

    /// The far end began (or stopped) speaking `at`; the answer, if that decides it.
    pub fn speech(&mut self, speaking: bool, at: Duration) -> Option<AnsweredBy> {
        if let Some(answer) = self.time(at) {
            return Some(answer);
        }
        if speaking && !self.speaking {
            self.utterance.get_or_insert(at);
            self.word = Some(at);
            self.silent_since = None;
        } else if !speaking && self.speaking {
            if let Some(began) = self.word.take() {
                self.voiced += at.saturating_sub(began);
            }
            self.silent_since = Some(at);
        }
        self.speaking = speaking;
        self.time(at)
    }

    /// When to look again if nothing is heard before.
    pub fn deadline(&self) -> Duration {
        let mut next = self.timeout;
        match (self.utterance, self.word, self.silent_since) {
            (None, ..) => next = next.min(self.silence_timeout),
            (Some(_), Some(began), _) if !self.machine => {
                next = next.min(began + self.speech_threshold.saturating_sub(self.voiced));
            }
            (Some(_), None, Some(silent)) => next = next.min(silent + self.speech_end),
            _ => {}
        }
        next
    }

    /// Time has passed to `at`; the answer, if that decides it.
    pub fn time(&mut self, at: Duration) -> Option<AnsweredBy> {
        if let Some(began) = self.word
            && !self.machine
            && self.voiced + at.saturating_sub(began) >= self.speech_threshold
        {
            self.machine = true;
            if self.mode == AmdMode::Enable {
                return Some(AnsweredBy::MachineStart);
            }
        }
        if let Some(silent) = self.silent_since
            && !self.speaking
            && at >= silent + self.speech_end
        {
            return Some(if self.machine {
                AnsweredBy::MachineEndSilence
            } else {
                AnsweredBy::Human
            });
        }
        if self.utterance.is_none() && at >= self.silence_timeout {
            return Some(AnsweredBy::Unknown);
        }
        if at >= self.timeout {
            return Some(if self.machine {
                AnsweredBy::MachineEndOther
            } else {
                AnsweredBy::Unknown
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teleapi_domain::call::MachineDetection;

    fn detector(mode: AmdMode) -> Detector {
        let detection = MachineDetection {
            mode,
            timeout: 30,
            speech_threshold: 2400,
            speech_end_threshold: 1200,
            silence_timeout: 5000,
            asynchronous: false,
            callback: None,
        };
        Detector::new(&detection, Duration::from_secs_f64)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs a script of (ms, speaking) and then time, to `end` ms; the answer and when.
    fn hear(mode: AmdMode, script: &[(u64, bool)], end: u64) -> Option<(AnsweredBy, Duration)> {
        let mut detector = detector(mode);
        for &(at, speaking) in script {
            // Time passes to each report, as the worker's timer would wake it.
            while detector.deadline() < ms(at) {
                let at = detector.deadline();
                if let Some(answer) = detector.time(at) {
                    return Some((answer, at));
                }
            }
            if let Some(answer) = detector.speech(speaking, ms(at)) {
                return Some((answer, ms(at)));
            }
        }
        while detector.deadline() <= ms(end) {
            let at = detector.deadline();
            if let Some(answer) = detector.time(at) {
                return Some((answer, at));
            }
        }
        None
    }

    #[test]
    fn a_person_says_hello_and_waits() {
        let hello = [(300, true), (1_100, false)];
        assert_eq!(
            hear(AmdMode::Enable, &hello, 60_000),
            Some((AnsweredBy::Human, ms(2_300)))
        );
        // "Hello? ... hello?": the pause between them is not speech.
        let twice = [(300, true), (1_100, false), (1_900, true), (2_800, false)];
        assert_eq!(
            hear(AmdMode::DetectMessageEnd, &twice, 60_000),
            Some((AnsweredBy::Human, ms(4_000)))
        );
    }

    #[test]
    fn a_greeting_is_a_machine_at_its_start_or_its_end() {
        // "Hi, you've reached Sam, (pause) leave a message": 4 s of speech with a pause.
        let greeting = [(200, true), (1_800, false), (2_400, true), (4_200, false)];
        // Its voiced time reaches the threshold 800 ms into its second sentence.
        assert_eq!(
            hear(AmdMode::Enable, &greeting, 60_000),
            Some((AnsweredBy::MachineStart, ms(3_200)))
        );
        assert_eq!(
            hear(AmdMode::DetectMessageEnd, &greeting, 60_000),
            Some((AnsweredBy::MachineEndSilence, ms(5_400)))
        );
        // A greeting that never ends within the timeout.
        assert_eq!(
            hear(AmdMode::DetectMessageEnd, &[(200, true)], 60_000),
            Some((AnsweredBy::MachineEndOther, ms(30_000)))
        );
    }

    #[test]
    fn silence_is_unknown() {
        assert_eq!(
            hear(AmdMode::Enable, &[], 60_000),
            Some((AnsweredBy::Unknown, ms(5_000)))
        );
        assert_eq!(hear(AmdMode::Enable, &[], 4_000), None);
    }
}
