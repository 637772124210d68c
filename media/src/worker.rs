//! The SIP/RTP worker's [`Media`]: legs are SIP dialogs (placed with INVITE, offered calls
//! answered), their audio is the [`Engine`]'s, and their prompts are real speech and files.
//! The kit does everything else, exactly as it does for the simulator.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use teleapi_domain::conference::ParticipantState;
use teleapi_domain::recording::RecordingSpec;
use teleapi_domain::{AccountSid, CallSid, ConferenceSid};
use teleapi_ports::MediaStore;
use teleapi_worker::{AudioTap, Inputs, LegInfo, LegInput, Media, PlayId, Prompt, RecordingMedia};
use tokio::sync::mpsc;

use crate::capture::{Recording, StreamTap};
use crate::engine::{Engine, random_u32};
use crate::mix::Member;
use crate::prompts::Prompts;
use crate::sdp::{self, Negotiated};
use crate::sip::{Dialog, Offer, Sip, SipEvent};
use crate::sound::Part;

/// How the worker reaches the world.
#[derive(Clone)]
pub struct SipMediaConfig {
    /// The address written in SDP for RTP (the public one behind NAT).
    pub media_ip: IpAddr,
    /// Where calls to numbers go (`host[:port]`): `sip:+15551230000@host`. None: a leg to a
    /// number fails.
    pub trunk: Option<String>,
    /// The host part of From URIs this worker writes (`sip:+15551230000@host`).
    pub from_host: String,
    /// Where the fleet's other workers reach this one for bridges (their SDP's address too);
    /// none: `from_host`, and `media_ip`.
    pub bridge: Option<SocketAddr>,
    /// Where recordings are kept (WAV, and MP3 beside it); none: a recording fails.
    pub recordings: Option<Arc<dyn MediaStore>>,
}

/// SIP legs with real audio.
#[derive(Clone)]
pub struct SipMedia {
    inner: Arc<Inner>,
}

struct Inner {
    config: SipMediaConfig,
    sip: Arc<dyn Sip>,
    engine: Engine,
    prompts: Prompts,
    legs: Mutex<HashMap<CallSid, Leg>>,
}

#[derive(Default)]
struct Leg {
    /// Where the kit hears about it; none until it is placed or attached.
    inputs: Option<Inputs>,
    /// Its account, once the kit has told (its recordings are kept under it).
    account_sid: Option<AccountSid>,
    dialog: Option<Arc<dyn Dialog>>,
    /// An offered call: what its SDP settled, and its answer, until it is answered.
    answer: Option<(Negotiated, String)>,
    /// An offered call's events, until it is attached.
    events: Option<mpsc::UnboundedReceiver<SipEvent>>,
}

/// Why an offered call could not be taken, as a SIP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub reason: String,
}

impl SipMedia {
    /// Refuses an offered leg with the SIP status `code`, and forgets it.
    pub fn refuse(&self, leg: &CallSid, code: u16) {
        let entry = self.inner.legs.lock().unwrap().remove(leg);
        if let Some(dialog) = entry.and_then(|e| e.dialog) {
            dialog.reject(code);
        }
        self.inner.engine.close(leg);
    }

    /// Where other workers reach this one (its SIP address: the public one behind NAT), for
    /// bridges of their queued callers to its agents.
    pub fn address(&self) -> String {
        match self.inner.config.bridge {
            Some(bridge) => bridge.to_string(),
            None => self.inner.config.from_host.clone(),
        }
    }

    /// The address written in the SDP of a leg whose request-URI is `to` (or its user): the
    /// fleet's for a bridge between workers, else the world's.
    fn media_ip_for(&self, to: &str) -> IpAddr {
        match self.inner.config.bridge {
            Some(bridge) if teleapi_worker::bridged_agent(to).is_some() => bridge.ip(),
            _ => self.inner.config.media_ip,
        }
    }

    pub fn new(
        config: SipMediaConfig,
        sip: Arc<dyn Sip>,
        engine: Engine,
        prompts: Prompts,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                sip,
                engine,
                prompts,
                legs: Mutex::default(),
            }),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// What the engine reports about `leg` goes to the kit, once the kit has it.
    fn forward(&self, leg: &CallSid) -> Inputs {
        let (weak, leg) = (Arc::downgrade(&self.inner), leg.clone());
        Inputs::new(move |input| {
            if let Some(inner) = weak.upgrade()
                && let Some(inputs) = inner.inputs(&leg)
            {
                inputs.send(input);
            }
        })
    }

    /// Takes an offered call as the kit's leg `sid` (its SDP can be answered and a port was
    /// free), or says why not; the dialog is answered with the refusal then.
    pub async fn take_offer(&self, sid: &CallSid, offer: Offer) -> Result<(), Refusal> {
        let refuse = |code: u16, reason: String| {
            offer.dialog.reject(code);
            Refusal { code, reason }
        };
        let negotiated = match sdp::parse(&offer.sdp).and_then(|a| sdp::negotiate(&a)) {
            Ok(negotiated) => negotiated,
            Err(err) => return Err(refuse(488, err.to_string())),
        };
        let local = match self.inner.engine.open(sid, self.forward(sid)).await {
            Ok(local) => local,
            Err(err) => return Err(refuse(503, err.to_string())),
        };
        let answer = sdp::write(
            u64::from(random_u32()),
            SocketAddr::new(self.media_ip_for(&offer.user), local.port()),
            Some(&negotiated),
        );
        self.inner.legs.lock().unwrap().insert(
            sid.clone(),
            Leg {
                inputs: None,
                account_sid: None,
                dialog: Some(offer.dialog),
                answer: Some((negotiated, answer)),
                events: Some(offer.events),
            },
        );
        Ok(())
    }

    /// The request-URI a leg to `to` is sent to: a SIP URI as it is, a number through the
    /// trunk.
    fn target(&self, to: &str) -> Result<String, String> {
        let lower = to.to_ascii_lowercase();
        if lower.starts_with("sip:") {
            return Ok(to.to_owned());
        }
        if lower.starts_with("client:") {
            return Err("client legs need a registered client; this worker has none".into());
        }
        match &self.inner.config.trunk {
            Some(trunk) => Ok(format!("sip:{to}@{trunk}")),
            None => Err("no outbound trunk is configured for calls to numbers".into()),
        }
    }

    fn caller_uri(&self, from: &str) -> String {
        if from.to_ascii_lowercase().starts_with("sip:") {
            from.to_owned()
        } else {
            let user: String = from
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "+-_.".contains(*c))
                .collect();
            format!("sip:{}@{}", user, self.inner.config.from_host)
        }
    }

    async fn place_leg(&self, leg: LegInfo, inputs: Inputs) {
        let failed = |why: String| inputs.send(LegInput::Failed(why));
        let target = match self.target(&leg.to) {
            Ok(target) => target,
            Err(why) => return failed(why),
        };
        let local = match self
            .inner
            .engine
            .open(&leg.sid, self.forward(&leg.sid))
            .await
        {
            Ok(local) => local,
            Err(err) => return failed(err.to_string()),
        };
        let offer = sdp::write(
            u64::from(random_u32()),
            SocketAddr::new(self.media_ip_for(&leg.to), local.port()),
            None,
        );
        let (events, mut incoming) = mpsc::unbounded_channel();
        let dialog =
            match self
                .inner
                .sip
                .invite(&self.caller_uri(&leg.from), &target, offer, events)
            {
                Ok(dialog) => dialog,
                Err(why) => {
                    self.inner.engine.close(&leg.sid);
                    return failed(why);
                }
            };
        {
            let mut legs = self.inner.legs.lock().unwrap();
            let Some(entry) = legs.get_mut(&leg.sid) else {
                // Hung up while its port was found: nothing to ring.
                drop(legs);
                let dialog = dialog.clone();
                tokio::spawn(async move { dialog.hang_up().await });
                self.inner.engine.close(&leg.sid);
                return;
            };
            entry.dialog = Some(dialog.clone());
        }
        while let Some(event) = incoming.recv().await {
            let input = match event {
                SipEvent::Ringing { sdp: Some(sdp) } => {
                    // Early media: what the far end plays while it rings is heard.
                    if let Ok(n) = sdp::parse(&sdp).and_then(|a| sdp::negotiate(&a)) {
                        self.inner.engine.connect(&leg.sid, n);
                    }
                    continue;
                }
                SipEvent::Ringing { sdp: None } => continue,
                SipEvent::Answered { sdp } => {
                    match sdp::parse(&sdp).and_then(|a| sdp::negotiate(&a)) {
                        Ok(n) => {
                            self.inner.engine.connect(&leg.sid, n);
                            LegInput::Answered
                        }
                        Err(err) => {
                            dialog.hang_up().await;
                            LegInput::Failed(format!("the answer's SDP: {err}"))
                        }
                    }
                }
                SipEvent::Refused { code } => refused(code),
                SipEvent::Ended => LegInput::HungUp,
            };
            let over = !matches!(input, LegInput::Answered);
            if let Some(inputs) = self.inner.inputs(&leg.sid) {
                inputs.send(input);
            }
            if over {
                break;
            }
        }
    }
}

/// A placed leg's final answer, as the kit knows it (Twilio's statuses: busy, no-answer,
/// failed).
pub fn refused(code: u16) -> LegInput {
    match code {
        486 | 600 | 603 => LegInput::Busy,
        408 | 480 | 487 => LegInput::NoAnswer,
        _ => LegInput::Failed(format!("SIP {code}")),
    }
}

impl Inner {
    fn inputs(&self, leg: &CallSid) -> Option<Inputs> {
        self.legs.lock().unwrap().get(leg)?.inputs.clone()
    }
}

#[async_trait]
impl Media for SipMedia {
    fn place(&self, leg: &LegInfo, inputs: Inputs) {
        self.inner.legs.lock().unwrap().insert(
            leg.sid.clone(),
            Leg {
                inputs: Some(inputs.clone()),
                account_sid: Some(leg.account_sid.clone()),
                ..Leg::default()
            },
        );
        let (media, leg) = (self.clone(), leg.clone());
        tokio::spawn(async move { media.place_leg(leg, inputs).await });
    }

    fn attach(&self, leg: &LegInfo, inputs: Inputs) {
        let (events, dialog) = {
            let mut legs = self.inner.legs.lock().unwrap();
            let Some(entry) = legs.get_mut(&leg.sid) else {
                inputs.send(LegInput::HungUp);
                return;
            };
            entry.inputs = Some(inputs.clone());
            entry.account_sid = Some(leg.account_sid.clone());
            (entry.events.take(), entry.dialog.clone())
        };
        if let Some(dialog) = dialog {
            dialog.ring();
        }
        if let Some(mut events) = events {
            let media = self.clone();
            let sid = leg.sid.clone();
            tokio::spawn(async move {
                while let Some(event) = events.recv().await {
                    if event == SipEvent::Ended {
                        if let Some(inputs) = media.inner.inputs(&sid) {
                            inputs.send(LegInput::HungUp);
                        }
                        break;
                    }
                }
            });
        }
    }

    async fn answer(&self, leg: &CallSid) {
        let taken = {
            let mut legs = self.inner.legs.lock().unwrap();
            legs.get_mut(leg)
                .and_then(|entry| Some((entry.answer.take()?, entry.dialog.clone()?)))
        };
        if let Some(((negotiated, answer), dialog)) = taken {
            self.inner.engine.connect(leg, negotiated);
            if let Err(err) = dialog.answer(answer) {
                tracing::warn!(call_sid = %leg, error = %err, "sip: answer not sent");
            }
        }
    }

    fn reject(&self, leg: &CallSid, busy: bool) {
        self.refuse(leg, if busy { 486 } else { 603 });
    }

    fn hang_up(&self, leg: &CallSid) {
        let entry = self.inner.legs.lock().unwrap().remove(leg);
        if let Some(dialog) = entry.and_then(|e| e.dialog) {
            tokio::spawn(async move { dialog.hang_up().await });
        }
        self.inner.engine.close(leg);
    }

    fn play(&self, leg: &CallSid, id: PlayId, prompt: Prompt) {
        // Silence until the prompt's audio is ready (spoken, fetched, or at once).
        self.inner
            .engine
            .play(leg, id, vec![Part::Silence(u64::MAX)]);
        let (media, leg) = (self.clone(), leg.clone());
        tokio::spawn(async move {
            let parts = match media.inner.prompts.parts(&prompt).await {
                Ok(parts) => parts,
                Err(err) => {
                    tracing::warn!(call_sid = %leg, error = %err, "media: prompt not played");
                    Vec::new()
                }
            };
            media.inner.engine.loaded(&leg, id, parts);
        });
    }

    fn stop_playing(&self, leg: &CallSid) {
        self.inner.engine.stop(leg);
    }

    fn send_digits(&self, leg: &CallSid, digits: &str) {
        self.inner.engine.send_keys(leg, digits);
    }

    fn bridge(&self, a: &CallSid, b: &CallSid) {
        self.inner.engine.bridge(a, b);
    }

    fn unbridge(&self, leg: &CallSid) {
        self.inner.engine.unbridge(leg);
    }

    fn set_muted(&self, leg: &CallSid, muted: bool) {
        self.inner.engine.set_muted(leg, muted);
    }

    fn room(&self, room: &ConferenceSid, state: &ParticipantState) {
        let member = Member {
            muted: state.muted,
            hold: state.hold,
            coaching: state.call_sid_to_coach.clone().filter(|_| state.coaching),
        };
        self.inner.engine.join_room(&state.call_sid, room, member);
    }

    fn leave_room(&self, room: &ConferenceSid, leg: &CallSid) {
        self.inner.engine.leave_room(leg, room);
    }

    fn tap(&self, leg: &CallSid) -> Box<dyn AudioTap> {
        Box::new(StreamTap(self.inner.engine.tap(leg)))
    }

    fn listen(&self, leg: &CallSid, on: bool) {
        self.inner.engine.listen(leg, on);
    }

    fn record(&self, leg: &CallSid, spec: &RecordingSpec) -> Box<dyn RecordingMedia> {
        let account_sid = self
            .inner
            .legs
            .lock()
            .unwrap()
            .get(leg)
            .and_then(|l| l.account_sid.clone());
        Box::new(Recording {
            capture: self.inner.engine.capture(leg),
            spec: spec.clone(),
            account_sid,
            store: self.inner.config.recordings.clone(),
        })
    }
}
