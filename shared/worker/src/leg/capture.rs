//! A leg's recordings and media streams: started and stopped by commands or by RCML.

use super::*;
use crate::rcml::{self};
use crate::recorder::{RECORDING_FAILED, Recorder};
use crate::streams::{self};
use teleapi_domain::recording::{RecordingSpec, RecordingStatus};
use teleapi_domain::stream::{StreamCallback, StreamSpec, StreamTrack, StreamUrl};
use teleapi_domain::wire::command::{Command, CommandType};
use teleapi_domain::wire::event::EventKind;
use teleapi_domain::{CallStatus, StreamSid, WebhookUrl};

impl Leg {
    pub(super) async fn start_recording(&mut self, spec: RecordingSpec) {
        let media = self.shared.media.record(self.sid(), &spec);
        let (recorder, started) = Recorder::start(spec, self.info.account_sid.clone(), media);
        tracing::info!(call_sid = %self.info.sid, recording_sid = %recorder.spec.recording_sid, "worker: recording");
        self.recorder = Some(recorder);
        self.emit(started).await;
    }

    /// The recording command `command`: applied, or refused (and a refused start reports its
    /// recording failed, so that it does not stay in progress).
    pub(super) async fn on_recording(&mut self, command: &Command) {
        let p = &command.parameters;
        let refuse = match (command.kind, p.recording.as_deref(), &p.recording_sid) {
            (CommandType::RecordingStart, Some(spec), _) => {
                if self.status != CallStatus::InProgress {
                    Some(("not-in-progress", Some(spec.recording_sid.clone())))
                } else if self.recorder.is_some() {
                    Some(("recording-active", Some(spec.recording_sid.clone())))
                } else {
                    self.applied(command).await;
                    self.start_recording(spec.clone()).await;
                    None
                }
            }
            (CommandType::RecordingUpdate, _, Some(sid)) => {
                let ours = self
                    .recorder
                    .as_ref()
                    .is_some_and(|r| r.spec.recording_sid == *sid);
                match (ours, p.recording_status) {
                    (true, Some(RecordingStatus::Stopped)) => {
                        self.applied(command).await;
                        self.stop_recording().await;
                        None
                    }
                    (true, Some(status)) => {
                        self.applied(command).await;
                        let changed = self
                            .recorder
                            .as_mut()
                            .and_then(|r| r.set(status, p.pause_behavior));
                        if let Some(event) = changed {
                            self.emit(event).await;
                        }
                        None
                    }
                    _ => Some(("no-such-recording", None)),
                }
            }
            _ => Some(("malformed", None)),
        };
        if let Some((reason, failed)) = refuse {
            let kind = EventKind::CommandRejected {
                intent_sid: command.intent_sid.clone(),
                seq: command.seq,
                reason: reason.into(),
            };
            self.emit(kind).await;
            if let Some(recording_sid) = failed {
                let kind = EventKind::RecordingChanged {
                    seq: 1,
                    recording_sid,
                    status: RecordingStatus::Failed,
                    duration: None,
                    media_url: None,
                    error_code: Some(RECORDING_FAILED),
                };
                self.emit(kind).await;
            }
        }
    }

    pub(super) fn start_stream(&mut self, spec: StreamSpec, bidirectional: bool) -> StreamSid {
        tracing::info!(call_sid = %self.info.sid, stream_sid = %spec.stream_sid, url = %spec.url.as_str(), "worker: stream");
        let handle = streams::start(
            &self.shared,
            (&self.info.sid, &self.info.account_sid),
            spec,
            bidirectional,
            self.sender.clone(),
        );
        let sid = handle.sid.clone();
        self.streams.push(handle);
        sid
    }

    /// Stops the running stream named `name_or_sid`.
    pub(super) fn stop_stream(&mut self, name_or_sid: &str) {
        for stream in &self.streams {
            if stream.sid.as_str() == name_or_sid || stream.name.as_deref() == Some(name_or_sid) {
                stream.stop();
            }
        }
    }

    /// A stream of the leg's RCML: the URL under the local address policy (as the API checks
    /// an application's), a sid of its own.
    pub(super) fn rcml_stream(
        &self,
        noun: &rcml::StreamNoun,
        bidirectional: bool,
    ) -> Option<StreamSpec> {
        let local = teleapi_domain::AddressPolicy {
            allow_loopback: true,
        };
        let url = match StreamUrl::parse(&noun.url, local) {
            Ok(url) => url,
            Err(problem) => {
                tracing::info!(call_sid = %self.info.sid, url = %noun.url, %problem, "worker: <Stream> url refused");
                return None;
            }
        };
        let track = match StreamTrack::parse(&noun.track) {
            Some(track) if !bidirectional => track,
            _ => StreamTrack::Inbound,
        };
        Some(StreamSpec {
            stream_sid: StreamSid::generate(),
            name: noun.name.clone(),
            url,
            track,
            parameters: noun.parameters.iter().cloned().collect(),
            status_callback: noun.status_callback.as_ref().and_then(|(url, method)| {
                WebhookUrl::parse(url, local)
                    .ok()
                    .map(|url| StreamCallback {
                        url,
                        method: *method,
                    })
            }),
        })
    }

    /// Ends the recording in progress, if any, and reports its media.
    pub(super) async fn stop_recording(&mut self) {
        if let Some(recorder) = self.recorder.take() {
            let event = recorder.stop().await;
            self.emit(event).await;
        }
    }

    /// Ends the recording in progress and reports its media; what an action URL is told of it
    /// (`RecordingUrl`, `RecordingSid`, `RecordingDuration`, as on Twilio).
    pub(super) async fn stop_recording_for_action(&mut self) -> Vec<(&'static str, String)> {
        let Some(recorder) = self.recorder.take() else {
            return Vec::new();
        };
        let sid = recorder.spec.recording_sid.clone();
        let event = recorder.stop().await;
        let duration = match &event {
            EventKind::RecordingChanged { duration, .. } => duration.unwrap_or(0),
            _ => 0,
        };
        self.emit(event).await;
        let url = teleapi_domain::recording::recording_url(
            &self.shared.config.public_url,
            &self.info.account_sid,
            &sid,
        );
        vec![
            ("RecordingUrl", url),
            ("RecordingSid", sid.to_string()),
            ("RecordingDuration", duration.to_string()),
        ]
    }
}
