//! A recording of a leg, as the control plane hears of it: started, paused and resumed (each a
//! `recording.status` event, numbered by the recording), and stopped, when the media says where
//! its audio went and how long it is. The audio itself is the media's ([`RecordingMedia`]).

use teleapi_domain::recording::{PauseBehavior, RecordingSpec, RecordingStatus};
use teleapi_domain::wire::event::EventKind;
use teleapi_domain::{AccountSid, Timestamp};

use crate::audio::SAMPLE_RATE;
use crate::media::RecordingMedia;

/// Twilio's "Recording failed".
pub const RECORDING_FAILED: u32 = 16_105;

pub struct Recorder {
    pub spec: RecordingSpec,
    /// The recording's own event numbers.
    seq: u64,
    paused: bool,
    media: Box<dyn RecordingMedia>,
}

impl Recorder {
    /// Starts recording now, into `media`; the event that says so.
    pub fn start(
        spec: RecordingSpec,
        account_sid: AccountSid,
        media: Box<dyn RecordingMedia>,
    ) -> (Self, EventKind) {
        let recorder = Self {
            spec,
            seq: 1,
            paused: false,
            media,
        };
        let event = EventKind::RecordingStarted {
            seq: recorder.seq,
            account_sid,
            recording: recorder.spec.clone(),
            start_time: Timestamp::now().millis(),
        };
        (recorder, event)
    }

    fn status(&mut self, status: RecordingStatus) -> EventKind {
        self.seq += 1;
        EventKind::RecordingChanged {
            seq: self.seq,
            recording_sid: self.spec.recording_sid.clone(),
            status,
            duration: None,
            media_url: None,
            error_code: None,
        }
    }

    /// Pauses (again: changes how) or resumes; the event that says so, if anything changed.
    pub fn set(
        &mut self,
        status: RecordingStatus,
        behavior: Option<PauseBehavior>,
    ) -> Option<EventKind> {
        match (status, self.paused) {
            (RecordingStatus::Paused, _) => {
                let behavior = behavior.unwrap_or(PauseBehavior::Silence);
                self.media.pause(behavior == PauseBehavior::Silence);
                self.paused = true;
                Some(self.status(RecordingStatus::Paused))
            }
            (RecordingStatus::InProgress, true) => {
                self.media.resume();
                self.paused = false;
                Some(self.status(RecordingStatus::InProgress))
            }
            _ => None,
        }
    }

    /// Ends the recording: the media stores it; the event says where and how long (whole
    /// seconds, rounded to the nearest, as Twilio reports them), `absent` if nothing was heard,
    /// or `failed` (16105).
    pub async fn stop(mut self) -> EventKind {
        self.seq += 1;
        let recording_sid = self.spec.recording_sid.clone();
        match self.media.finish().await {
            Ok(recorded) => {
                let rate = u64::from(SAMPLE_RATE);
                let duration = (recorded.samples + rate / 2) / rate;
                let status = if recorded.samples == 0 {
                    RecordingStatus::Absent
                } else {
                    RecordingStatus::Completed
                };
                EventKind::RecordingChanged {
                    seq: self.seq,
                    recording_sid,
                    status,
                    duration: Some(duration),
                    media_url: Some(recorded.url),
                    error_code: None,
                }
            }
            Err(why) => {
                tracing::error!(recording_sid = %recording_sid, error = %why, "worker: recording not written");
                EventKind::RecordingChanged {
                    seq: self.seq,
                    recording_sid,
                    status: RecordingStatus::Failed,
                    duration: None,
                    media_url: None,
                    error_code: Some(RECORDING_FAILED),
                }
            }
        }
    }
}
