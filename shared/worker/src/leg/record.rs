//! `<Record>`: a beep, then the caller recorded until `timeout` seconds of silence, a key of
//! `finishOnKey`, `maxLength`, or the caller hanging up; then the action hears of the
//! recording (`RecordingUrl`, `RecordingSid`, `RecordingDuration`, `Digits`). Nothing heard: no
//! action, the document goes on (as on Twilio).

use super::*;
use crate::media::Prompt;
use crate::rcml::RecordVerb;
use teleapi_domain::RecordingSid;
use teleapi_domain::recording::{
    RecordingChannels, RecordingSource, RecordingSpec, RecordingTrack,
};

/// A `<Record>` in progress.
pub(super) struct Recording {
    verb: RecordVerb,
    /// The beep playing before it starts.
    pub(super) beep: Option<PlayId>,
    /// It ends then, at the latest (`maxLength`).
    until_max: Option<Instant>,
    /// It ends then, unless the caller speaks (`timeout` seconds of silence).
    until_silence: Option<Instant>,
}

impl Recording {
    /// When it ends of itself, if nothing else happens.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match (self.until_max, self.until_silence) {
            (Some(max), Some(silence)) => Some(max.min(silence)),
            (max, silence) => max.or(silence),
        }
    }
}

impl Leg {
    /// Begins `<Record>`: its beep first, if it has one.
    pub(super) async fn record_verb(&mut self, verb: RecordVerb) {
        let beep = verb.play_beep.then(|| self.play(Prompt::Beep));
        self.wait = Wait::Record(Recording {
            verb,
            beep,
            until_max: None,
            until_silence: None,
        });
        if beep.is_none() {
            self.start_record_verb().await;
        }
    }

    /// The beep is over (or there was none): the caller is recorded and listened to.
    pub(super) async fn start_record_verb(&mut self) {
        let (max, silence) = match &self.wait {
            Wait::Record(recording) => (
                Instant::now() + self.shared.scaled(f64::from(recording.verb.max_length)),
                self.silence_deadline(&recording.verb),
            ),
            _ => return,
        };
        let Wait::Record(recording) = &mut self.wait else {
            return;
        };
        recording.beep = None;
        recording.until_max = Some(max);
        recording.until_silence = silence;
        let spec = RecordingSpec {
            recording_sid: RecordingSid::generate(),
            channels: RecordingChannels::Mono,
            track: RecordingTrack::Inbound,
            trim: recording.verb.trim,
            source: RecordingSource::RecordVerb,
            status_callback: recording.verb.status_callback.clone(),
        };
        // One recording of a leg at a time: the call's own one ends first.
        self.stop_recording().await;
        self.start_recording(spec).await;
        self.relisten();
    }

    fn silence_deadline(&self, verb: &RecordVerb) -> Option<Instant> {
        (verb.timeout > 0).then(|| Instant::now() + self.shared.scaled(f64::from(verb.timeout)))
    }

    /// The caller began (or stopped) speaking: the silence timeout waits (or runs again).
    pub(super) fn heard_speech(&mut self, speaking: bool) {
        let deadline = match &self.wait {
            Wait::Record(recording) if recording.beep.is_none() && !speaking => {
                self.silence_deadline(&recording.verb)
            }
            _ => None,
        };
        if let Wait::Record(recording) = &mut self.wait
            && recording.beep.is_none()
        {
            recording.until_silence = deadline;
        }
    }

    /// Whether `key` ends the recording in progress.
    pub(super) fn ends_recording(&self, key: char) -> bool {
        matches!(&self.wait, Wait::Record(r) if r.beep.is_none() && r.verb.finish_on_key.contains(key))
    }

    /// The recording is over: by `key` (a key, `hangup`, or empty: silence or its length).
    pub(super) async fn recorded(&mut self, key: &str) {
        match self.finish_record_verb(key, false).await {
            Some(source) => self.run(source).await,
            None => self.advance().await,
        }
    }

    /// Ends the `<Record>` in progress: its recording stopped, its action (or the document)
    /// to request with it, if anything was heard. If the call has ended (`ended`), the action
    /// is still told, and nothing runs.
    pub(super) async fn finish_record_verb(&mut self, key: &str, ended: bool) -> Option<Source> {
        let Wait::Record(recording) = std::mem::replace(&mut self.wait, Wait::Idle) else {
            return None;
        };
        if recording.beep.is_some() {
            self.shared.media.stop_playing(self.sid());
            return None;
        }
        self.relisten();
        let mut extra = self.stop_recording_for_action().await;
        let heard = extra
            .iter()
            .any(|(name, value)| *name == "RecordingDuration" && value != "0");
        if !heard {
            return None;
        }
        extra.push(("Digits", key.to_owned()));
        let (url, method) = match &recording.verb.action {
            Some(action) => (self.resolve(action), recording.verb.method),
            None => self.document.clone()?,
        };
        if ended {
            let _ = self.fetch(&url, method, &extra).await;
            return None;
        }
        Some(Source::Fetch { url, method, extra })
    }
}
