//! Conferences and their participants, as the control plane records them from what the media
//! worker that runs each room reports (docs/messages.md, "Conference events"), and the pure
//! rules that turn one such event into one write ([`apply`]).
//!
//! A room is run by one worker. It names the conference (`CF` + 32 hex) when its first
//! participant arrives and reports, in order on the events queue (group = ConferenceSid),
//! `conference.created`, `participant.joined`, `participant.updated`, `participant.left`,
//! `conference.started` and `conference.ended`, numbered per conference from 1: as for calls, an
//! event applies only if its `seq` is above the last one applied, so that a duplicate or a stale
//! event changes nothing.

mod apply;
mod callbacks;
mod listing;
mod modify;

pub use apply::*;
pub use callbacks::*;
pub use listing::*;
pub use modify::*;

use serde::{Deserialize, Serialize};

use crate::sid::WorkerId;
use crate::sid::{AccountSid, CallSid, ConferenceSid};
use crate::time::Timestamp;
use crate::webhook::{Method, WebhookUrl};
/// Twilio's conference statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConferenceStatus {
    /// Participants are waiting for one who starts it (`startConferenceOnEnter`).
    Init,
    InProgress,
    Completed,
}

impl ConferenceStatus {
    pub const ALL: [ConferenceStatus; 3] = [Self::Init, Self::InProgress, Self::Completed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// Why a conference ended, in Twilio's words (`reason_conference_ended`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    ConferenceEndedViaApi,
    ParticipantWithEndConferenceOnExitLeft,
    LastParticipantLeft,
    LastParticipantKicked,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConferenceEndedViaApi => "conference-ended-via-api",
            Self::ParticipantWithEndConferenceOnExitLeft => {
                "participant-with-end-conference-on-exit-left"
            }
            Self::LastParticipantLeft => "last-participant-left",
            Self::LastParticipantKicked => "last-participant-kicked",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::ConferenceEndedViaApi,
            Self::ParticipantWithEndConferenceOnExitLeft,
            Self::LastParticipantLeft,
            Self::LastParticipantKicked,
        ]
        .into_iter()
        .find(|r| r.as_str() == value)
    }
}

/// What a conference's StatusCallback is told about (`statusCallbackEvent` of `<Conference>`:
/// Twilio's names). `speaker` is accepted and never sent: the simulator has no audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConferenceCallbackEvent {
    Start,
    End,
    Join,
    Leave,
    Mute,
    Hold,
    Modify,
    Speaker,
    Announcement,
}

impl ConferenceCallbackEvent {
    pub const ALL: [ConferenceCallbackEvent; 9] = [
        Self::Start,
        Self::End,
        Self::Join,
        Self::Leave,
        Self::Mute,
        Self::Hold,
        Self::Modify,
        Self::Speaker,
        Self::Announcement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::End => "end",
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Mute => "mute",
            Self::Hold => "hold",
            Self::Modify => "modify",
            Self::Speaker => "speaker",
            Self::Announcement => "announcement",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(value))
    }
}

/// Where a conference's events are reported, from the `<Conference>` that created the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConferenceCallback {
    pub url: WebhookUrl,
    #[serde(default)]
    pub method: Method,
    /// `start` and `end` when the RCML named none.
    #[serde(default = "default_callback_events")]
    pub events: Vec<ConferenceCallbackEvent>,
}

fn default_callback_events() -> Vec<ConferenceCallbackEvent> {
    vec![ConferenceCallbackEvent::Start, ConferenceCallbackEvent::End]
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conference {
    pub sid: ConferenceSid,
    pub account_sid: AccountSid,
    /// The room's name in RCML (`<Conference>name</Conference>`).
    pub friendly_name: String,
    pub status: ConferenceStatus,
    /// The commands queue of the worker that runs the room.
    pub command_queue: String,
    pub worker: Option<WorkerId>,
    /// `seq` of the last conference-level event applied (participants keep their own).
    pub event_seq: u64,
    /// Sequence number of the conference's latest intent (its changes through the API); 0
    /// before the first.
    pub seq: u64,
    /// Bumped by every write: the optimistic-concurrency token.
    pub version: u64,
    pub date_created: Timestamp,
    pub date_updated: Timestamp,
    pub reason_ended: Option<EndReason>,
    /// The participant whose leaving ended it, when one did.
    pub call_sid_ending: Option<CallSid>,
    /// Where its events are reported (`statusCallback` of the `<Conference>` that created it).
    pub status_callback: Option<ConferenceCallback>,
    /// When the store may forget it (set when it completes; DynamoDB TTL, whole seconds).
    pub expires_at: Option<Timestamp>,
}

/// Twilio's participant statuses. A participant is `connected` while it is in the room and
/// `complete` once it left, when it is no longer listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParticipantStatus {
    Queued,
    Connecting,
    Ringing,
    Connected,
    Complete,
    Failed,
}

impl ParticipantStatus {
    pub const ALL: [ParticipantStatus; 6] = [
        Self::Queued,
        Self::Connecting,
        Self::Ringing,
        Self::Connected,
        Self::Complete,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Connecting => "connecting",
            Self::Ringing => "ringing",
            Self::Connected => "connected",
            Self::Complete => "complete",
            Self::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

/// How a participant is in the room: what the worker reports and the API shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantState {
    pub call_sid: CallSid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub muted: bool,
    pub hold: bool,
    pub coaching: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_sid_to_coach: Option<CallSid>,
    pub start_conference_on_enter: bool,
    pub end_conference_on_exit: bool,
}

impl ParticipantState {
    /// `call_sid` in the room as `<Conference>`'s defaults have it: unlabelled, heard, not on
    /// hold nor coaching, starting the room on entering and not ending it on leaving.
    pub fn new(call_sid: CallSid) -> Self {
        Self {
            call_sid,
            label: None,
            muted: false,
            hold: false,
            coaching: false,
            call_sid_to_coach: None,
            start_conference_on_enter: true,
            end_conference_on_exit: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub conference_sid: ConferenceSid,
    pub account_sid: AccountSid,
    pub state: ParticipantState,
    /// `connected` while in the room, `complete` once it left (no longer listed).
    pub status: ParticipantStatus,
    /// `seq` of the last conference event applied to the participant.
    pub event_seq: u64,
    pub date_created: Timestamp,
    pub date_updated: Timestamp,
    /// When the store may forget it (set when it leaves; DynamoDB TTL, whole seconds).
    pub expires_at: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::conference::ConferenceCommand;
    use crate::wire::conference::ConferenceEvent;
    use crate::wire::conference::ConferenceEventKind;
    use crate::wire::conference::is_conference_event;
    use crate::wire::event::EVENT_VERSION;
    use std::time::Duration;

    /// Every example in docs/messages.md's "Conference commands" decodes and encodes back to
    /// itself, and reads as an intent's command.
    #[test]
    fn documented_commands_round_trip() {
        let examples = crate::doc_examples("## Conference commands");
        assert_eq!(examples.len(), 4, "one example per command type");
        for example in examples {
            let command =
                ConferenceCommand::from_json(example).unwrap_or_else(|e| panic!("{e}: {example}"));
            let expected: serde_json::Value = serde_json::from_str(example).unwrap();
            assert_eq!(serde_json::to_value(&command).unwrap(), expected);
            assert!(matches!(
                crate::IntentCommand::from_json(example),
                Some(crate::IntentCommand::Conference(_))
            ));
        }
    }

    /// Every example in docs/messages.md's "Conference events" decodes and encodes back to
    /// itself.
    #[test]
    fn documented_examples_round_trip() {
        let examples = crate::doc_examples("## Conference events");
        assert_eq!(examples.len(), 9, "one example per event type");
        for example in examples {
            assert!(is_conference_event(example), "{example}");
            let event =
                ConferenceEvent::from_json(example).unwrap_or_else(|e| panic!("{e}: {example}"));
            let expected: serde_json::Value = serde_json::from_str(example).unwrap();
            assert_eq!(serde_json::to_value(&event).unwrap(), expected);
        }
    }

    fn event(seq: u64, kind: impl FnOnce(u64) -> ConferenceEventKind) -> ConferenceEvent {
        ConferenceEvent {
            version: EVENT_VERSION,
            conference_sid: "CF0123456789abcdef0123456789abcdef".parse().unwrap(),
            timestamp: 1,
            kind: kind(seq),
        }
    }

    fn state(call_sid: &CallSid) -> ParticipantState {
        ParticipantState::new(call_sid.clone())
    }

    const DAY: Duration = Duration::from_secs(86_400);

    fn conference_of(change: ConferenceChange) -> Conference {
        match change {
            ConferenceChange::Conference { conference, .. } => conference,
            other => panic!("not a conference write: {other:?}"),
        }
    }

    fn participant_of(change: ConferenceChange) -> Participant {
        match change {
            ConferenceChange::Participant(participant) => participant,
            other => panic!("not a participant write: {other:?}"),
        }
    }

    #[test]
    fn a_conference_goes_from_created_to_ended_and_then_changes_no_more() {
        let t = |ms| Timestamp::from_millis(ms);
        let created = event(1, |seq| ConferenceEventKind::Created {
            seq,
            account_sid: "AC0123456789abcdef0123456789abcdef".parse().unwrap(),
            friendly_name: "room-1".into(),
            command_queue_url: "https://sqs.example/w.fifo".into(),
            worker_id: None,
            status_callback: None,
        });
        let change = apply(None, None, &created, t(10), DAY).unwrap();
        assert!(matches!(
            change,
            ConferenceChange::Conference {
                expected_version: None,
                ..
            }
        ));
        let mut conference = conference_of(change);
        assert_eq!(conference.status, ConferenceStatus::Init);
        assert!(apply(Some(&conference), None, &created, t(11), DAY).is_err());

        let caller = CallSid::generate();
        let joined = event(2, |seq| ConferenceEventKind::ParticipantJoined {
            seq,
            participant: state(&caller),
        });
        let participant =
            participant_of(apply(Some(&conference), None, &joined, t(20), DAY).unwrap());
        assert_eq!(participant.status, ParticipantStatus::Connected);
        assert_eq!(participant.event_seq, 2);

        let mut muted = state(&caller);
        muted.muted = true;
        let updated = event(3, |seq| ConferenceEventKind::ParticipantUpdated {
            seq,
            participant: muted,
        });
        let after = participant_of(
            apply(Some(&conference), Some(&participant), &updated, t(30), DAY).unwrap(),
        );
        assert!(after.state.muted);
        assert_eq!((after.date_created, after.date_updated), (t(20), t(30)));
        // The same event again, or an older one: nothing.
        assert!(apply(Some(&conference), Some(&after), &updated, t(31), DAY).is_err());
        assert!(apply(Some(&conference), Some(&after), &joined, t(31), DAY).is_err());

        let started = event(4, |seq| ConferenceEventKind::Started { seq });
        let change = apply(Some(&conference), None, &started, t(40), DAY).unwrap();
        assert!(matches!(
            change,
            ConferenceChange::Conference {
                expected_version: Some(1),
                ..
            }
        ));
        conference = conference_of(change);
        assert_eq!(conference.status, ConferenceStatus::InProgress);
        assert_eq!((conference.date_updated, conference.version), (t(40), 2));
        assert!(apply(Some(&conference), None, &started, t(41), DAY).is_err());

        let left = event(5, |seq| ConferenceEventKind::ParticipantLeft {
            seq,
            call_sid: caller.clone(),
        });
        let gone =
            participant_of(apply(Some(&conference), Some(&after), &left, t(50), DAY).unwrap());
        assert_eq!(gone.status, ParticipantStatus::Complete);
        assert!(gone.state.muted, "it left as it was");
        assert_eq!(gone.expires_at, Some(t(50).plus(DAY).whole_seconds()));
        assert!(
            apply(Some(&conference), None, &left, t(50), DAY).is_err(),
            "never joined"
        );

        let ended = event(6, |seq| ConferenceEventKind::Ended {
            seq,
            reason: EndReason::LastParticipantLeft,
            call_sid_ending: Some(caller.clone()),
        });
        conference = conference_of(apply(Some(&conference), None, &ended, t(60), DAY).unwrap());
        assert_eq!(conference.status, ConferenceStatus::Completed);
        assert_eq!(
            conference.reason_ended,
            Some(EndReason::LastParticipantLeft)
        );
        assert_eq!(conference.expires_at, Some(t(60).plus(DAY).whole_seconds()));
        let late = event(7, |seq| ConferenceEventKind::ParticipantJoined {
            seq,
            participant: state(&caller),
        });
        assert!(apply(Some(&conference), None, &late, t(70), DAY).is_err());
    }

    /// What the application hears: Twilio's StatusCallbackEvent names and parameters, only for
    /// the events it subscribed to, one request per change.
    #[test]
    fn status_callbacks_name_each_change_once() {
        let caller = CallSid::generate();
        let account: AccountSid = "AC0123456789abcdef0123456789abcdef".parse().unwrap();
        let created = event(1, |seq| ConferenceEventKind::Created {
            seq,
            account_sid: account,
            friendly_name: "room-1".into(),
            command_queue_url: "https://sqs.example/w.fifo".into(),
            worker_id: None,
            status_callback: Some(ConferenceCallback {
                url: WebhookUrl::parse("https://app.example.com/cb", Default::default()).unwrap(),
                method: Method::Post,
                events: vec![
                    ConferenceCallbackEvent::Join,
                    ConferenceCallbackEvent::Mute,
                    ConferenceCallbackEvent::Modify,
                    ConferenceCallbackEvent::End,
                ],
            }),
        });
        let now = Timestamp::from_millis(1_000);
        let conference = conference_of(apply(None, None, &created, now, DAY).unwrap());
        let names = |before: Option<&Participant>, event: &ConferenceEvent| -> Vec<String> {
            callbacks(&conference, before, event, now)
                .iter()
                .map(|job| job.parameters["StatusCallbackEvent"].clone())
                .collect()
        };
        let joined = event(2, |seq| ConferenceEventKind::ParticipantJoined {
            seq,
            participant: state(&caller),
        });
        let jobs = callbacks(&conference, None, &joined, now);
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        assert_eq!(
            job.job_id,
            format!("{}-e2-participant-join", conference.sid)
        );
        for (name, value) in [
            ("ConferenceSid", conference.sid.as_str()),
            ("FriendlyName", "room-1"),
            ("CallSid", caller.as_str()),
            ("Muted", "false"),
            ("SequenceNumber", "2"),
        ] {
            assert_eq!(job.parameters[name], value, "{name}");
        }
        assert_eq!(job.call_sid.as_ref(), Some(&caller));
        let before = participant_of(apply(Some(&conference), None, &joined, now, DAY).unwrap());
        // Muted and put on hold at once: a mute (subscribed) and a hold (not subscribed).
        let mut after = state(&caller);
        after.muted = true;
        after.hold = true;
        let updated = event(3, |seq| ConferenceEventKind::ParticipantUpdated {
            seq,
            participant: after.clone(),
        });
        assert_eq!(names(Some(&before), &updated), ["participant-mute"]);
        after.coaching = true;
        after.call_sid_to_coach = Some(CallSid::generate());
        let coaching = event(4, |seq| ConferenceEventKind::ParticipantUpdated {
            seq,
            participant: after,
        });
        let muted =
            participant_of(apply(Some(&conference), Some(&before), &updated, now, DAY).unwrap());
        assert_eq!(names(Some(&muted), &coaching), ["participant-modify"]);
        let started = event(5, |seq| ConferenceEventKind::Started { seq });
        assert!(names(None, &started).is_empty(), "start is not subscribed");
        let ended = event(6, |seq| ConferenceEventKind::Ended {
            seq,
            reason: EndReason::ConferenceEndedViaApi,
            call_sid_ending: None,
        });
        let jobs = callbacks(&conference, None, &ended, now);
        assert_eq!(
            jobs[0].parameters["ReasonConferenceEnded"],
            "conference-ended-via-api"
        );
        assert_eq!(jobs[0].call_sid, None);
    }

    #[test]
    fn events_of_an_unknown_conference_are_ignored() {
        let started = event(2, |seq| ConferenceEventKind::Started { seq });
        let err = apply(None, None, &started, Timestamp::from_millis(1), DAY).unwrap_err();
        assert!(err.contains("unknown conference"), "{err}");
    }

    #[test]
    fn other_types_and_versions_are_refused() {
        for bad in [
            r#"{"version":2,"type":"conference.started","conference_sid":"CF0123456789abcdef0123456789abcdef","timestamp":1,"seq":2}"#,
            r#"{"version":1,"type":"conference.exploded","conference_sid":"CF0123456789abcdef0123456789abcdef","timestamp":1,"seq":2}"#,
            r#"{"version":1,"type":"conference.started","conference_sid":"CA0123456789abcdef0123456789abcdef","timestamp":1,"seq":2}"#,
        ] {
            assert!(ConferenceEvent::from_json(bad).is_err(), "{bad}");
        }
        assert!(!is_conference_event(r#"{"type":"call.status"}"#));
        assert!(!is_conference_event("not json"));
    }
}
