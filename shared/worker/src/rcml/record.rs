//! `<Record>`: voicemail.

use teleapi_domain::Method;
use teleapi_domain::recording::{RecordingCallback, Trim};

use super::{Attributes, count, dial::recording_callback};

/// `<Record>`, with Twilio's attributes and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordVerb {
    /// Requested with `RecordingUrl`, `RecordingSid`, `RecordingDuration` and `Digits` (the key
    /// that ended it, `hangup`, or nothing); the document's own URL if absent.
    pub action: Option<String>,
    pub method: Method,
    /// Seconds of silence that end the recording (0: silence never does).
    pub timeout: u32,
    /// Keys that end it; empty: none do.
    pub finish_on_key: String,
    /// Seconds it lasts at most.
    pub max_length: u32,
    /// A beep before it starts.
    pub play_beep: bool,
    pub trim: Trim,
    pub status_callback: Option<RecordingCallback>,
}

impl Default for RecordVerb {
    fn default() -> Self {
        Self {
            action: None,
            method: Method::Post,
            timeout: 5,
            finish_on_key: "1234567890*#".into(),
            max_length: 3600,
            play_beep: true,
            trim: Trim::TrimSilence,
            status_callback: None,
        }
    }
}

/// Twilio's longest `<Record>`: four hours.
const MAX_LENGTH: u32 = 4 * 3600;

pub(super) fn record(attrs: &mut Attributes) -> RecordVerb {
    let defaults = RecordVerb::default();
    if attrs.get("transcribe").is_some_and(|t| t == "true") {
        attrs.warn(
            13614,
            "transcribe is not offered: the recording is kept, not transcribed".into(),
        );
    }
    RecordVerb {
        action: attrs.get("action").filter(|a| !a.trim().is_empty()),
        method: attrs.method("method", 13610),
        timeout: attrs
            .read("timeout", 13611, count)
            .unwrap_or(defaults.timeout),
        finish_on_key: attrs
            .read("finishOnKey", 13613, |keys| {
                (keys.len() <= 12 && keys.chars().all(|c| "0123456789*#".contains(c)))
                    .then(|| keys.to_owned())
            })
            .unwrap_or(defaults.finish_on_key),
        max_length: attrs
            .read("maxLength", 13612, |n| {
                count(n).filter(|n| (1..=MAX_LENGTH).contains(n))
            })
            .unwrap_or(defaults.max_length),
        play_beep: attrs.flag("playBeep", 13615, true),
        trim: attrs
            .read("trim", 13616, Trim::parse)
            .unwrap_or(defaults.trim),
        status_callback: recording_callback(attrs, 13616),
    }
}
