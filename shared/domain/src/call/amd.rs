//! Answering-machine detection on a new call (`POST …/Calls` with `MachineDetection`): what an
//! application asks for, as the `dial` command carries it to the worker, and what the worker
//! found (`AnsweredBy`), which the call keeps and an `AsyncAmdStatusCallback` is told.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::InvalidParameter;
use crate::params::{Params, conflict, invalid};
use crate::webhook::{AddressPolicy, Method, WebhookUrl};

words!(
    /// `Enable`: the answer as soon as it is known (`human`, `machine_start`, …);
    /// `DetectMessageEnd`: for a machine, once its greeting is over (`machine_end_*`), so that
    /// a message left then is recorded whole.
    AmdMode {
        Enable = "Enable",
        DetectMessageEnd = "DetectMessageEnd",
    }
);

words!(
    /// Who or what answered, as Twilio's `AnsweredBy` says it.
    AnsweredBy {
        Human = "human",
        MachineStart = "machine_start",
        MachineEndBeep = "machine_end_beep",
        MachineEndSilence = "machine_end_silence",
        MachineEndOther = "machine_end_other",
        Fax = "fax",
        Unknown = "unknown",
    }
);

/// Where an asynchronous detection's outcome is posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmdCallback {
    pub url: WebhookUrl,
    pub method: Method,
}

/// What the application asked for, with Twilio's defaults and bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineDetection {
    pub mode: AmdMode,
    /// Seconds to decide in, at most (`MachineDetectionTimeout`, 3-59, 30): `unknown` after.
    pub timeout: u32,
    /// Milliseconds of speech that make a machine (`MachineDetectionSpeechThreshold`,
    /// 1000-6000, 2400): a person says a short "hello?", a greeting goes on.
    pub speech_threshold: u32,
    /// Milliseconds of silence that end a greeting or a person's hello
    /// (`MachineDetectionSpeechEndThreshold`, 500-5000, 1200).
    pub speech_end_threshold: u32,
    /// Milliseconds of silence at first after which nobody speaks: `unknown`
    /// (`MachineDetectionSilenceTimeout`, 2000-10000, 5000).
    pub silence_timeout: u32,
    /// `AsyncAmd=true`: the call's RCML runs at once, and the outcome goes to `callback`
    /// (`AsyncAmdStatusCallback`); otherwise the RCML is fetched once the outcome is known,
    /// with `AnsweredBy`.
    #[serde(default)]
    pub asynchronous: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<AmdCallback>,
}

/// The parameters of `POST …/Calls` that answering-machine detection takes.
pub const AMD_PARAMETERS: [&str; 8] = [
    "MachineDetection",
    "MachineDetectionTimeout",
    "MachineDetectionSpeechThreshold",
    "MachineDetectionSpeechEndThreshold",
    "MachineDetectionSilenceTimeout",
    "AsyncAmd",
    "AsyncAmdStatusCallback",
    "AsyncAmdStatusCallbackMethod",
];

impl MachineDetection {
    /// The detection `raw` asks for, if any; its other parameters without `MachineDetection`
    /// are refused (they would silently do nothing).
    pub fn read(raw: &Params, policy: AddressPolicy) -> Result<Option<Self>, InvalidParameter> {
        let Some(mode) = raw.get("MachineDetection") else {
            return match AMD_PARAMETERS[1..].iter().find(|name| raw.has(name)) {
                Some(name) => Err(conflict(
                    name,
                    format!(
                        "{name} tunes answering-machine detection; give it with \
                         MachineDetection=Enable or DetectMessageEnd"
                    ),
                )),
                None => Ok(None),
            };
        };
        let mode = AmdMode::parse(mode).ok_or_else(|| {
            invalid(
                "MachineDetection",
                format!(
                    "MachineDetection must be {}, not '{}'",
                    AmdMode::choices(),
                    crate::sid::shorten(mode)
                ),
            )
        })?;
        let asynchronous = raw.boolean("AsyncAmd")?.unwrap_or(false);
        let callback = raw
            .webhook(
                "AsyncAmdStatusCallback",
                "AsyncAmdStatusCallbackMethod",
                policy,
            )?
            .map(|(url, method)| AmdCallback { url, method });
        if callback.is_some() && !asynchronous {
            return Err(conflict(
                "AsyncAmdStatusCallback",
                "AsyncAmdStatusCallback is told of an asynchronous detection; give it with \
                 AsyncAmd=true"
                    .into(),
            ));
        }
        Ok(Some(Self {
            mode,
            timeout: raw
                .integer("MachineDetectionTimeout", 3..=59, "of seconds ")?
                .unwrap_or(30),
            speech_threshold: raw
                .integer("MachineDetectionSpeechThreshold", 1000..=6000, "of ms ")?
                .unwrap_or(2400),
            speech_end_threshold: raw
                .integer("MachineDetectionSpeechEndThreshold", 500..=5000, "of ms ")?
                .unwrap_or(1200),
            silence_timeout: raw
                .integer("MachineDetectionSilenceTimeout", 2000..=10000, "of ms ")?
                .unwrap_or(5000),
            asynchronous,
            callback,
        }))
    }

    /// Canonical parameters, defaults filled in (the intent's record).
    pub fn parameters(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::from([
            ("MachineDetection".to_owned(), self.mode.as_str().to_owned()),
            ("MachineDetectionTimeout".into(), self.timeout.to_string()),
            (
                "MachineDetectionSpeechThreshold".into(),
                self.speech_threshold.to_string(),
            ),
            (
                "MachineDetectionSpeechEndThreshold".into(),
                self.speech_end_threshold.to_string(),
            ),
            (
                "MachineDetectionSilenceTimeout".into(),
                self.silence_timeout.to_string(),
            ),
            ("AsyncAmd".into(), self.asynchronous.to_string()),
        ]);
        if let Some(callback) = &self.callback {
            out.insert("AsyncAmdStatusCallback".into(), callback.url.to_string());
            out.insert(
                "AsyncAmdStatusCallbackMethod".into(),
                callback.method.as_str().into(),
            );
        }
        out
    }
}
