//! What reaches a leg's inbox: its call's commands, word from the legs and rooms it is
//! connected to, and what its media hears; and how a leg begins.

use std::time::Duration;

use teleapi_domain::wire::command::Command;
use teleapi_domain::{AccountSid, CallSid, ConferenceSid, Method, StreamSid, WebhookUrl};
use tokio::sync::mpsc;

use crate::media::LegInput;

/// Where a leg's RCML comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Fetch {
        url: String,
        method: Method,
        /// Parameters besides the call's (a `<Gather>`'s `Digits`).
        extra: Vec<(&'static str, String)>,
    },
    Inline(String),
}

impl Source {
    pub(crate) fn fetch(url: String, method: Method) -> Self {
        Self::Fetch {
            url,
            method,
            extra: Vec::new(),
        }
    }

    /// The same, with one more parameter if it is fetched (`AnsweredBy`).
    pub(crate) fn with(mut self, name: &'static str, value: String) -> Self {
        if let Self::Fetch { extra, .. } = &mut self {
            extra.push((name, value));
        }
        self
    }
}

/// What an inbound call looks like when it reaches a worker.
#[derive(Debug, Clone)]
pub struct InboundCall {
    pub sid: CallSid,
    pub account_sid: AccountSid,
    pub from: String,
    pub to: String,
    pub url: WebhookUrl,
    pub method: Method,
    /// Asked for RCML when `url`'s fails (the number's `VoiceFallbackUrl`).
    pub fallback: Option<(WebhookUrl, Method)>,
    /// Told when the call ends (the number's `StatusCallback`).
    pub status_callback: Option<(WebhookUrl, Method)>,
}

pub(crate) enum Message {
    Command(Box<Command>),
    /// From the parent: hang up (the parent moved on or ended).
    HangUp,
    /// From the parent: run this RCML, on your own from now on (MoveConnectedCallLeg).
    Run(Source),
    /// From a dialled leg: it answered.
    LegAnswered(CallSid),
    /// From a dialled leg: it ended, so.
    LegEnded(CallSid, teleapi_domain::CallStatus),
    /// From the queue: a caller for this agent, which waited for one (`<Dial><Queue>`).
    QueueMember {
        queue: String,
        call: CallSid,
        leg: mpsc::UnboundedSender<Message>,
        since: tokio::time::Instant,
    },
    /// From an agent: this queued caller is taken (its `url` to run first, if any); it answers
    /// as a dialled leg does, and the agent's dial is its parent.
    Dequeued {
        agent: CallSid,
        leg: mpsc::UnboundedSender<Message>,
        url: Option<Source>,
    },
    /// From the agent: the bridge with this dequeued caller is over; the caller goes on with
    /// its `<Enqueue>`'s action (`QueueResult=bridged`).
    AgentLeft,
    /// From a bridge of another worker (relay.rs): the caller `caller`, taken for this
    /// agent by the control plane, is at `relay`; taken as a queued caller if the agent still
    /// waits, else told `LegEnded`.
    RemoteCaller {
        caller: CallSid,
        relay: CallSid,
        leg: mpsc::UnboundedSender<Message>,
    },
    /// From the bridge toward a remote agent: it was not answered; the caller waits in its
    /// queue again.
    Requeue,
    /// From the leg's own timer: an agent waiting with no caller says so again.
    StillWaiting,
    /// From the room: the conference this leg is in ended; on with the RCML after `<Dial>`.
    ConferenceEnded(ConferenceSid),
    /// From one of the leg's streams: it is over.
    StreamEnded(StreamSid),
    /// From the media.
    Media(LegInput),
    /// The worker was killed: stop here, saying nothing.
    Die,
}

/// How a leg begins.
pub(crate) enum Start {
    Inbound {
        source: Source,
        call: Box<InboundCall>,
    },
    Outbound {
        source: Source,
        timeout: Duration,
        intent: Box<Command>,
    },
    Dialled {
        timeout: Duration,
        parent: mpsc::UnboundedSender<Message>,
        /// `<Number url>`: what the leg runs once answered, before it is connected.
        whisper: Option<Source>,
        /// `<Number sendDigits>`: sent once answered.
        digits: Option<String>,
    },
}
