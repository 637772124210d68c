//! `tests/bench amd`: answering-machine detection's accuracy on speech made for it.
//!
//! Samples of what answers a call, made with espeak-ng in three voices at three speeds (sox at
//! 8 kHz, light line noise, through G.711 μ-law and back as a phone line carries it): people
//! who answer with a short word or sentence and wait, and answering machines' greetings (some
//! ending with a beep). Each goes frame by frame through what the SIP/RTP worker runs: its
//! voice detector (media/src/voice.rs) and the kit's detector (shared/worker/src/amd.rs) with
//! Twilio's default thresholds, its timer firing when it asks. Printed: every sample's verdict
//! and when, then the share of right answers per mode.

use std::time::Duration;

use teleapi_domain::call::{AmdMode, AnsweredBy, MachineDetection};
use teleapi_media::g711::Law;
use teleapi_media::voice::Voice;
use teleapi_tests::speech::{Part, add_noise, make};
use teleapi_worker::amd::Detector;

use crate::Row;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Truth {
    Human,
    Machine,
}

struct Sample {
    name: String,
    truth: Truth,
    audio: Vec<i16>,
}

const VOICES: [(&str, u32); 3] = [("en-us", 165), ("en+f3", 180), ("en-gb+m3", 150)];

fn samples(dir: &std::path::Path) -> Vec<Sample> {
    let people: [(&str, &[&str]); 6] = [
        ("hello", &["Hello?"]),
        ("who", &["Hello, who is this?"]),
        ("yes", &["Yes?"]),
        ("sam", &["Hi, this is Sam."]),
        ("twice", &["Hello?", "Hello?"]),
        (
            "desk",
            &["Good morning, Acme Corporation, how can I help you?"],
        ),
    ];
    let machines: [(&str, &[&str], bool); 5] = [
        (
            "reached",
            &["Hi, you've reached Sam. Please leave a message after the tone."],
            true,
        ),
        (
            "unavailable",
            &[
                "The person you are calling is not available. Please leave a message after the beep.",
            ],
            true,
        ),
        (
            "voicemail",
            &[
                "Hello, you have reached the voicemail of five five five, one two three four. Please leave your name and number and I will call you back.",
            ],
            false,
        ),
        (
            "thanks",
            &["Thanks for calling. I can't come to the phone right now."],
            false,
        ),
        ("short", &["Hi, it's Sam.", "Leave a message."], true),
    ];
    let mut out = Vec::new();
    for (voice, wpm) in VOICES {
        let say = |text: &'static str| Part::Say { text, voice, wpm };
        for (name, words) in people {
            let mut parts = vec![Part::Silence(0.4)];
            for (n, text) in words.iter().enumerate() {
                if n > 0 {
                    parts.push(Part::Silence(0.8));
                }
                parts.push(say(text));
            }
            parts.push(Part::Silence(8.0));
            out.push((format!("person {name} ({voice})"), Truth::Human, parts));
        }
        for (name, words, beep) in machines {
            let mut parts = vec![Part::Silence(0.6)];
            for (n, text) in words.iter().enumerate() {
                if n > 0 {
                    parts.push(Part::Silence(0.5));
                }
                parts.push(say(text));
            }
            if beep {
                parts.push(Part::Silence(0.3));
                parts.push(Part::Tone(1_000.0, 0.5));
            }
            parts.push(Part::Silence(8.0));
            out.push((format!("machine {name} ({voice})"), Truth::Machine, parts));
        }
    }
    out.into_iter()
        .map(|(name, truth, parts)| {
            let mut audio = make(dir, &parts);
            add_noise(&mut audio, 40.0);
            Sample { name, truth, audio }
        })
        .collect()
}

/// What the worker would answer for `audio`, and when (since the answer).
fn detect(audio: &[i16], mode: AmdMode) -> (AnsweredBy, Duration) {
    let asked = MachineDetection {
        mode,
        timeout: 30,
        speech_threshold: 2400,
        speech_end_threshold: 1200,
        silence_timeout: 5000,
        asynchronous: false,
        callback: None,
    };
    let mut detector = Detector::new(&asked, Duration::from_secs_f64);
    let mut voice = Voice::default();
    let (mut encoded, mut line) = (Vec::new(), Vec::new());
    for (n, frame) in audio.chunks(160).enumerate() {
        let at = Duration::from_millis(20 * (n as u64 + 1));
        // The detector's timer fires first if it was due.
        while detector.deadline() <= at {
            let due = detector.deadline();
            if let Some(answer) = detector.time(due) {
                return (answer, due);
            }
            if detector.deadline() == due {
                break;
            }
        }
        encoded.clear();
        line.clear();
        Law::Mu.encode_frame(frame, &mut encoded);
        Law::Mu.decode_frame(&encoded, &mut line);
        if let Some(speaking) = voice.feed(&line)
            && let Some(answer) = detector.speech(speaking, at)
        {
            return (answer, at);
        }
    }
    let end = Duration::from_secs(30);
    (detector.time(end).unwrap_or(AnsweredBy::Unknown), end)
}

pub async fn amd(rows: &mut Vec<Row>) {
    let dir = std::env::temp_dir().join(format!(
        "teleapi-bench-amd-{}",
        &teleapi_domain::sid::random_hex32()[..8]
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let samples = samples(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    println!("\nanswering-machine detection, {} samples:", samples.len());
    for mode in [AmdMode::Enable, AmdMode::DetectMessageEnd] {
        let (mut right, mut unknown) = (0, 0);
        let mut wrong = Vec::new();
        for sample in &samples {
            let (answer, at) = detect(&sample.audio, mode);
            let correct = matches!(
                (sample.truth, answer),
                (Truth::Human, AnsweredBy::Human)
                    | (
                        Truth::Machine,
                        AnsweredBy::MachineStart | AnsweredBy::MachineEndSilence
                    )
            );
            if correct {
                right += 1;
            } else if answer == AnsweredBy::Unknown {
                unknown += 1;
            } else {
                wrong.push(sample.name.clone());
            }
            println!(
                "  {:17} {:52} {:20} at {:5.2} s{}",
                mode.as_str(),
                sample.name,
                answer.as_str(),
                at.as_secs_f64(),
                if correct { "" } else { "  (wrong)" }
            );
        }
        let share = 100.0 * f64::from(right) / samples.len() as f64;
        rows.push(Row {
            figure: format!("AMD {} right answers", mode.as_str()),
            value: format!("{right}/{} ({share:.0}%)", samples.len()),
            target: "≥ 90%".into(),
            met: Some(share >= 90.0),
            detail: format!(
                "espeak-ng samples, 3 voices; unknown {unknown}; wrong: {}",
                if wrong.is_empty() {
                    "none".to_owned()
                } else {
                    wrong.join(", ")
                }
            ),
        });
    }
}
