//! Recordings of a live call: what an application asks for (`POST …/Calls/{Sid}/Recordings`,
//! `Record=true` on a new call), the recording as the control plane records it, the commands
//! that carry a start or a change to the call's worker, and what the worker's `recording.*`
//! events do to it. See docs/messages.md and docs/data-model.md, "recordings".
//!
//! A call has at most one active recording (`in-progress` or `paused`), named by the call's
//! `recording`: a start while one is active is refused, and `Twilio.CURRENT` names it.

mod apply;
mod callbacks;
mod create;
mod listing;
mod modify;

pub use apply::*;
pub use callbacks::*;
pub use create::*;
pub use listing::*;
pub use modify::*;

use serde::{Deserialize, Serialize};

use crate::sid::{AccountSid, CallSid, RecordingSid};
use crate::time::Timestamp;
use crate::webhook::{Method, WebhookUrl};
words!(
    /// Twilio's recording statuses. `in-progress` and `paused` are active; `completed`,
    /// `absent` and `failed` are final; `stopped` is the API's word between the two (asked to
    /// stop, its media not yet reported).
    RecordingStatus {
        InProgress = "in-progress",
        Paused = "paused",
        Stopped = "stopped",
        Processing = "processing",
        Completed = "completed",
        Absent = "absent",
        Failed = "failed",
    }
);

impl RecordingStatus {
    pub fn is_active(self) -> bool {
        matches!(self, Self::InProgress | Self::Paused)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Absent | Self::Failed)
    }
}

words!(
    /// One channel for every party, or one per leg.
    RecordingChannels {
        Mono = "mono",
        Dual = "dual",
    }
);

impl RecordingChannels {
    /// Channels of the media file: Twilio's `channels` field.
    pub fn count(self) -> u16 {
        match self {
            Self::Mono => 1,
            Self::Dual => 2,
        }
    }
}

words!(
    /// Which audio: what the platform receives from the caller, what it sends, or both.
    RecordingTrack {
        Inbound = "inbound",
        Outbound = "outbound",
        Both = "both",
    }
);

words!(
    /// Whether leading and trailing silence is cut.
    Trim {
        TrimSilence = "trim-silence",
        DoNotTrim = "do-not-trim",
    }
);

words!(
    /// What a pause leaves in the media: nothing (`skip`) or silence as long as the pause.
    PauseBehavior {
        Skip = "skip",
        Silence = "silence",
    }
);

words!(
    /// How the recording was started.
    RecordingSource {
        StartCallRecordingApi = "StartCallRecordingAPI",
        OutboundApi = "OutboundAPI",
        /// `<Dial record>`.
        DialVerb = "DialVerb",
        /// `<Record>`.
        RecordVerb = "RecordVerb",
    }
);

words!(
    /// The recording events an application may subscribe to with
    /// `RecordingStatusCallbackEvent`. `completed` covers `failed` too.
    RecordingCallbackEvent {
        InProgress = "in-progress",
        Completed = "completed",
        Absent = "absent",
    }
);

/// Where the recording's status changes are reported, and which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingCallback {
    pub url: WebhookUrl,
    pub method: Method,
    pub events: Vec<RecordingCallbackEvent>,
}

/// What to record, as the worker is told in a command and tells back in `recording.started`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingSpec {
    pub recording_sid: RecordingSid,
    pub channels: RecordingChannels,
    pub track: RecordingTrack,
    pub trim: Trim,
    pub source: RecordingSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_callback: Option<RecordingCallback>,
}

/// The recording as the control plane records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recording {
    pub sid: RecordingSid,
    pub account_sid: AccountSid,
    pub call_sid: CallSid,
    pub status: RecordingStatus,
    pub channels: RecordingChannels,
    pub track: RecordingTrack,
    pub trim: Trim,
    pub source: RecordingSource,
    pub status_callback: Option<RecordingCallback>,
    /// How the last pause was asked to behave.
    pub pause_behavior: PauseBehavior,
    pub start_time: Timestamp,
    /// Seconds of media, once the worker has reported it.
    pub duration: Option<u64>,
    /// Where the worker put the media (`s3://bucket/key`, or `file://…` for teleapi-local).
    pub media: Option<String>,
    /// Twilio's error code, when the recording failed.
    pub error_code: Option<u32>,
    /// `seq` of the last `recording.*` event applied (0 before the first).
    pub event_seq: u64,
    /// Bumped by every write: the optimistic-concurrency token.
    pub version: u64,
    pub date_created: Timestamp,
    pub date_updated: Timestamp,
}

impl Recording {
    fn new(
        spec: &RecordingSpec,
        account_sid: AccountSid,
        call_sid: CallSid,
        at: Timestamp,
    ) -> Self {
        Self {
            sid: spec.recording_sid.clone(),
            account_sid,
            call_sid,
            status: RecordingStatus::InProgress,
            channels: spec.channels,
            track: spec.track,
            trim: spec.trim,
            source: spec.source,
            status_callback: spec.status_callback.clone(),
            pause_behavior: PauseBehavior::Silence,
            start_time: at,
            duration: None,
            media: None,
            error_code: None,
            event_seq: 0,
            version: 1,
            date_created: at,
            date_updated: at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use crate::call::Call;
    use crate::call::CallStatus;
    use crate::form::Form;
    use crate::sid::IntentSid;
    use crate::webhook::AddressPolicy;
    use crate::wire::command::CommandType;
    use crate::wire::event::Event;
    use crate::wire::event::RecordingReport;
    use std::time::Duration;

    /// Every example of docs/messages.md's "Recording commands" decodes and encodes back to
    /// itself, as a call's command.
    #[test]
    fn documented_commands_round_trip() {
        let examples = crate::doc_examples("## Recording commands");
        assert_eq!(examples.len(), 2, "one example per command type");
        for example in examples {
            let command = Command::from_json(example).unwrap_or_else(|e| panic!("{e}: {example}"));
            assert!(matches!(
                command.kind,
                CommandType::RecordingStart | CommandType::RecordingUpdate
            ));
            let expected: serde_json::Value = serde_json::from_str(example).unwrap();
            assert_eq!(serde_json::to_value(&command).unwrap(), expected);
        }
    }

    /// Every example of "Recording events" decodes and encodes back to itself, as a recording
    /// report.
    #[test]
    fn documented_events_round_trip() {
        let examples = crate::doc_examples("## Recording events");
        assert_eq!(examples.len(), 2, "one example per event type");
        for example in examples {
            let event = Event::from_json(example).unwrap_or_else(|e| panic!("{e}: {example}"));
            assert!(event.kind.recording().is_some(), "{example}");
            let expected: serde_json::Value = serde_json::from_str(example).unwrap();
            assert_eq!(serde_json::to_value(&event).unwrap(), expected);
        }
    }

    fn form(body: &str) -> Form {
        Form::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn start_parameters_have_twilios_defaults_and_rules() {
        let policy = AddressPolicy::default();
        let options = RecordingOptions::parse_start(&form(""), policy).unwrap();
        assert_eq!(
            (options.channels, options.track, options.trim),
            (
                RecordingChannels::Mono,
                RecordingTrack::Both,
                Trim::DoNotTrim
            )
        );
        assert!(options.status_callback.is_none());
        let options = RecordingOptions::parse_start(
            &form("RecordingChannels=dual&RecordingStatusCallback=https%3A%2F%2Fapp.example.com%2Fr&RecordingStatusCallbackEvent=completed+in-progress&RecordingStatusCallbackEvent=absent&RecordingStatusCallbackMethod=GET"),
            policy,
        )
        .unwrap();
        let callback = options.status_callback.unwrap();
        assert_eq!(callback.method, Method::Get);
        assert_eq!(
            callback.events,
            [
                RecordingCallbackEvent::InProgress,
                RecordingCallbackEvent::Completed,
                RecordingCallbackEvent::Absent
            ]
        );
        for bad in [
            "RecordingChannels=stereo",
            "RecordingTrack=sideways",
            "Trim=maybe",
            "RecordingStatusCallbackEvent=completed",
            "RecordingStatusCallback=https%3A%2F%2Fapp.example.com&RecordingStatusCallbackEvent=done",
            "RecordingStatusCallback=https%3A%2F%2Fapp.example.com&RecordingStatusCallbackEvent=",
            "RecordingStatusCallback=http%3A%2F%2F10.0.0.1%2Fx",
            "RecordingStatusCallbackMethod=GET",
            "Channels=mono",
            "RecordingChannels=mono&RecordingChannels=dual",
        ] {
            assert!(
                RecordingOptions::parse_start(&form(bad), policy).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn update_parameters() {
        let update = RecordingUpdate::parse(&form("Status=paused&PauseBehavior=skip")).unwrap();
        assert_eq!(update.status, RecordingStatus::Paused);
        assert_eq!(update.pause_behavior, Some(PauseBehavior::Skip));
        assert_eq!(
            RecordingUpdate::parse(&form("Status=In-Progress"))
                .unwrap()
                .status,
            RecordingStatus::InProgress
        );
        for bad in [
            "",
            "Status=completed",
            "Status=absent",
            "Status=stopped&PauseBehavior=skip",
            "Status=paused&PauseBehavior=mute",
            "Status=paused&Mute=true",
        ] {
            assert!(RecordingUpdate::parse(&form(bad)).is_err(), "{bad}");
        }
    }

    fn call(status: CallStatus) -> Call {
        let now = Timestamp::from_millis(1_000_000);
        let mut call = Call::inbound(
            "AC0123456789abcdef0123456789abcdef".parse().unwrap(),
            "+15551230001".into(),
            "+15551230002".into(),
            Default::default(),
            status,
            now,
        );
        call.command_queue = Some("https://sqs.example/worker.fifo".into());
        call
    }

    const RETENTION: Duration = Duration::from_secs(3600);

    fn options() -> RecordingOptions {
        RecordingOptions::parse_start(&form(""), AddressPolicy::default()).unwrap()
    }

    #[test]
    fn a_call_in_progress_records_one_recording_at_a_time() {
        let now = Timestamp::from_millis(2_000_000);
        let live = call(CallStatus::InProgress);
        let sid = RecordingSid::generate();
        let planned = plan_start(
            &live,
            None,
            &options(),
            sid.clone(),
            IntentSid::generate(),
            now,
            RETENTION,
        )
        .unwrap();
        assert_eq!(planned.call.recording.as_ref(), Some(&sid));
        assert_eq!((planned.call.seq, planned.call_version), (1, live.version));
        assert_eq!(planned.recording_version, None);
        assert_eq!(planned.recording.status, RecordingStatus::InProgress);
        let command = planned
            .intent
            .command
            .as_ref()
            .and_then(|c| c.call())
            .unwrap();
        assert_eq!(command.kind, CommandType::RecordingStart);
        assert_eq!(
            command.parameters.recording.as_ref().unwrap().recording_sid,
            sid
        );
        assert_eq!(planned.intent.queue, live.command_queue);

        // Another start while it is active is refused; once it is over, allowed.
        let active = planned.recording.clone();
        let recording_call = planned.call.clone();
        assert!(matches!(
            plan_start(&recording_call, Some(&active), &options(), RecordingSid::generate(), IntentSid::generate(), now, RETENTION),
            Err(RecordingStateError::AlreadyRecording(s)) if s == sid
        ));
        let done = Recording {
            status: RecordingStatus::Completed,
            ..active.clone()
        };
        assert!(
            plan_start(
                &recording_call,
                Some(&done),
                &options(),
                RecordingSid::generate(),
                IntentSid::generate(),
                now,
                RETENTION
            )
            .is_ok()
        );

        for status in [
            CallStatus::Queued,
            CallStatus::Ringing,
            CallStatus::Completed,
        ] {
            assert!(matches!(
                plan_start(&call(status), None, &options(), RecordingSid::generate(), IntentSid::generate(), now, RETENTION),
                Err(RecordingStateError::CallNotInProgress(s)) if s == status
            ));
        }
    }

    #[test]
    fn pausing_resuming_and_stopping() {
        let now = Timestamp::from_millis(2_000_000);
        let live = call(CallStatus::InProgress);
        let started = plan_start(
            &live,
            None,
            &options(),
            RecordingSid::generate(),
            IntentSid::generate(),
            now,
            RETENTION,
        )
        .unwrap();
        let update = |status, behavior| RecordingUpdate {
            status,
            pause_behavior: behavior,
        };
        let paused = plan_update(
            &started.call,
            &started.recording,
            &update(RecordingStatus::Paused, Some(PauseBehavior::Skip)),
            IntentSid::generate(),
            now,
            RETENTION,
        )
        .unwrap();
        assert_eq!(paused.recording.status, RecordingStatus::Paused);
        assert_eq!(paused.recording.pause_behavior, PauseBehavior::Skip);
        assert_eq!(paused.recording_version, Some(started.recording.version));
        assert_eq!(paused.call.seq, started.call.seq + 1);
        let stopped = plan_update(
            &paused.call,
            &paused.recording,
            &update(RecordingStatus::Stopped, None),
            IntentSid::generate(),
            now,
            RETENTION,
        )
        .unwrap();
        assert_eq!(stopped.recording.status, RecordingStatus::Stopped);
        assert_eq!(stopped.call.recording, None, "the call may record again");
        // A stopped recording can no longer be paused or resumed.
        assert!(matches!(
            plan_update(
                &stopped.call,
                &stopped.recording,
                &update(RecordingStatus::Paused, None),
                IntentSid::generate(),
                now,
                RETENTION
            ),
            Err(RecordingStateError::NotActive(..))
        ));
    }

    #[test]
    fn worker_reports_apply_in_order_and_stopped_waits_for_the_media() {
        let now = Timestamp::from_millis(2_000_000);
        let live = call(CallStatus::InProgress);
        let planned = plan_start(
            &live,
            None,
            &options(),
            RecordingSid::generate(),
            IntentSid::generate(),
            now,
            RETENTION,
        )
        .unwrap();
        let sid = planned.recording.sid.clone();
        let spec = planned
            .intent
            .command
            .as_ref()
            .and_then(|c| c.call())
            .unwrap()
            .parameters
            .recording
            .clone()
            .unwrap();
        let account = live.account_sid.clone();
        let started = RecordingReport::Started {
            seq: 1,
            account_sid: &account,
            spec: &spec,
            start_time: 2_000_500,
        };
        let after_start = apply(Some(&planned.recording), &live.sid, &started, now).unwrap();
        assert_eq!(after_start.start_time, Timestamp::from_millis(2_000_500));
        assert_eq!(after_start.version, planned.recording.version + 1);
        assert!(
            apply(Some(&after_start), &live.sid, &started, now).is_err(),
            "a duplicate"
        );

        let stopped = Recording {
            status: RecordingStatus::Stopped,
            ..after_start.clone()
        };
        let resumed = RecordingReport::Changed {
            seq: 2,
            recording_sid: &sid,
            status: RecordingStatus::InProgress,
            duration: None,
            media_url: None,
            error_code: None,
        };
        assert_eq!(
            apply(Some(&stopped), &live.sid, &resumed, now)
                .unwrap()
                .status,
            RecordingStatus::Stopped
        );
        let completed = RecordingReport::Changed {
            seq: 3,
            recording_sid: &sid,
            status: RecordingStatus::Completed,
            duration: Some(12),
            media_url: Some("s3://b/k.wav"),
            error_code: None,
        };
        let done = apply(Some(&stopped), &live.sid, &completed, now).unwrap();
        assert_eq!(
            (done.status, done.duration, done.media.as_deref()),
            (RecordingStatus::Completed, Some(12), Some("s3://b/k.wav"))
        );
        let late = RecordingReport::Changed {
            seq: 4,
            recording_sid: &sid,
            status: RecordingStatus::Paused,
            duration: None,
            media_url: None,
            error_code: None,
        };
        assert!(
            apply(Some(&done), &live.sid, &late, now).is_err(),
            "final stays final"
        );

        // Record=true: the worker's start creates the recording.
        let created = apply(None, &live.sid, &started, now).unwrap();
        assert_eq!(
            (created.sid.clone(), created.event_seq, created.version),
            (sid.clone(), 1, 1)
        );
        assert!(apply(None, &live.sid, &completed, now).is_err());
    }

    #[test]
    fn callbacks_follow_the_subscription() {
        let now = Timestamp::from_millis(2_000_000);
        let live = call(CallStatus::InProgress);
        let with_callback = RecordingOptions::parse_start(
            &form(
                "RecordingStatusCallback=https%3A%2F%2Fapp.example.com%2Fr&RecordingChannels=dual",
            ),
            AddressPolicy::default(),
        )
        .unwrap();
        let planned = plan_start(
            &live,
            None,
            &with_callback,
            RecordingSid::generate(),
            IntentSid::generate(),
            now,
            RETENTION,
        )
        .unwrap();
        let mut recording = planned.recording;
        let sid = recording.sid.clone();
        let spec = with_callback.spec(sid.clone(), RecordingSource::StartCallRecordingApi);
        let started = RecordingReport::Started {
            seq: 1,
            account_sid: &live.account_sid,
            spec: &spec,
            start_time: 1,
        };
        assert!(
            callback(&recording, &started, "https://api.example.com/Prod").is_none(),
            "completed only, by default"
        );
        recording.status = RecordingStatus::Completed;
        recording.duration = Some(7);
        let completed = RecordingReport::Changed {
            seq: 2,
            recording_sid: &sid,
            status: RecordingStatus::Completed,
            duration: Some(7),
            media_url: None,
            error_code: None,
        };
        let job = callback(&recording, &completed, "https://api.example.com/Prod/").unwrap();
        let p = &job.parameters;
        assert_eq!(p["RecordingStatus"], "completed");
        assert_eq!(p["RecordingDuration"], "7");
        assert_eq!(p["RecordingChannels"], "2");
        assert_eq!(p["RecordingSource"], "StartCallRecordingAPI");
        assert_eq!(
            p["RecordingUrl"],
            format!(
                "https://api.example.com/Prod/call/2012-04-24/Accounts/{}/Recordings/{sid}",
                live.account_sid
            )
        );
        assert_eq!(job.job_id, format!("{sid}-e2-completed"));
        assert_eq!(job.call_sid.as_ref(), Some(&live.sid));
        let paused = RecordingReport::Changed {
            seq: 3,
            recording_sid: &sid,
            status: RecordingStatus::Paused,
            duration: None,
            media_url: None,
            error_code: None,
        };
        assert!(callback(&recording, &paused, "").is_none());
    }

    #[test]
    fn list_requests() {
        let call: CallSid = "CA0123456789abcdef0123456789abcdef".parse().unwrap();
        let list = ListRecordingsRequest::parse(
            &form("CallSid=CA0123456789ABCDEF0123456789ABCDEF&DateCreated%3E=2026-11-01"),
            None,
        )
        .unwrap();
        assert_eq!(list.filter.call_sid.as_ref(), Some(&call));
        assert!(list.filter.created_from.is_some() && list.filter.created_to.is_none());
        assert!(ListRecordingsRequest::parse(&form("CallSid=CA1"), None).is_err());
        assert!(
            ListRecordingsRequest::parse(
                &form("CallSid=CA0123456789abcdef0123456789abcdef"),
                Some(call.clone())
            )
            .is_err(),
            "a call's list takes no CallSid"
        );
        assert!(
            ListRecordingsRequest::parse(
                &form("DateCreated=2026-11-01&DateCreated%3C=2026-11-02"),
                None
            )
            .is_err()
        );
        assert_eq!(
            ListRecordingsRequest::parse(&form(""), Some(call.clone()))
                .unwrap()
                .filter
                .call_sid,
            Some(call)
        );
    }
}
