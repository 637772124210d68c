//! A caller and an agent of one queue on different workers meet over a media leg between the
//! two workers, and neither call moves (docs/decisions.md, "The verbs after the first ones").
//! The control plane takes the caller for the agent (`queue.bridge`); the caller's worker
//! places a leg to `sip:bridge-{agent CallSid}@{agent's worker}`, and the agent's worker,
//! offered it, connects it to the agent, which still waits.
//!
//! A bridge is accepted only for an agent that waits, and only with the token its worker made
//! for that wait: the worker gives it to the control plane with the agent's address, which
//! gives it to the caller's worker in `queue.bridge`, which writes it in the bridge's URI.
//! Knowing a CallSid (an application knows its agents') is not enough to reach the agent.
//!
//! On each worker the leg between them is a relay: not a call (it is never reported), an actor
//! that speaks to its worker's leg as the other party would. On the caller's worker it stands
//! for the agent (the caller is "dequeued" by it, runs the `<Queue url>`, and is connected once
//! both it and the far worker have answered); on the agent's worker it stands for the caller
//! (the agent takes it as a queued caller). Either side's end ends the leg, and the other
//! side's relay tells its call as the party itself would have. A leg that is refused or not
//! answered puts the caller back in its queue.

use subtle::ConstantTimeEq;
use teleapi_domain::queue::Bridge;
use teleapi_domain::sid::random_hex32;
use teleapi_domain::{CallSid, CallStatus, Direction};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::inbox::Message;
use crate::media::{Inputs, LegInfo, LegInput};
use crate::shared::{Shared, Waiting, WaitingAgents};

/// What a bridge's URI begins with, before the agent's CallSid.
const PREFIX: &str = "sip:bridge-";

/// How long the caller's worker rings the agent's worker, in the worker's own seconds: the far
/// worker answers at once unless it is gone.
const RING_SECONDS: f64 = 20.0;

/// Where a caller's worker reaches the agent `agent` of the worker at `address`, with the
/// token of its wait.
pub fn bridge_uri(agent: &CallSid, token: &str, address: &str) -> String {
    format!("{PREFIX}{agent}-{token}@{address}")
}

/// The user part of a SIP URI (`sip:user@host` is `user`), or the text itself if it is one.
fn sip_user(uri: &str) -> &str {
    let user = uri.strip_prefix("sip:").unwrap_or(uri);
    user.split('@').next().unwrap_or(user)
}

/// The agent a bridge's URI names, and the token it carries, if it is a bridge's. The URI, or
/// only its user part (`bridge-CA…-…`).
pub fn bridged_agent(uri: &str) -> Option<(CallSid, String)> {
    let user = sip_user(uri).strip_prefix(&PREFIX[4..])?;
    let (agent, token) = user.split_once('-')?;
    let token_ok = token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit());
    Some((agent.parse().ok()?, token.to_owned())).filter(|_| token_ok)
}

/// An agent's wait, open to bridges until dropped (the agent took a caller, or its dial
/// ended).
pub(crate) struct Wait {
    agents: WaitingAgents,
    agent: CallSid,
    pub token: String,
}

impl Wait {
    pub(crate) fn open(shared: &Shared, agent: &LegInfo) -> Self {
        let token = random_hex32();
        shared.waiting_agents.lock().unwrap().insert(
            agent.sid.clone(),
            Waiting {
                token: token.clone(),
                account_sid: agent.account_sid.clone(),
            },
        );
        Self {
            agents: shared.waiting_agents.clone(),
            agent: agent.sid.clone(),
            token,
        }
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        let mut agents = self.agents.lock().unwrap();
        if agents
            .get(&self.agent)
            .is_some_and(|w| w.token == self.token)
        {
            agents.remove(&self.agent);
        }
    }
}

/// Where the media reports a relay's leg: its inbox.
fn inputs(sender: &mpsc::UnboundedSender<Message>) -> Inputs {
    let sender = sender.clone();
    Inputs::new(move |input| {
        let _ = sender.send(Message::Media(input));
    })
}

struct Relay {
    shared: Shared,
    /// The media's leg.
    sid: CallSid,
    /// This worker's leg it speaks to: the caller, or the agent.
    peer: mpsc::UnboundedSender<Message>,
    /// Its inbox: it holds no sender of its own, so that it ends once nobody can tell it
    /// anything more (its peer and its media gone).
    inbox: mpsc::UnboundedReceiver<Message>,
}

impl Relay {
    /// The relay, and its inbox's sender.
    fn new(
        shared: &Shared,
        sid: CallSid,
        peer: mpsc::UnboundedSender<Message>,
    ) -> (Self, mpsc::UnboundedSender<Message>) {
        let (sender, inbox) = mpsc::unbounded_channel();
        let relay = Self {
            shared: shared.clone(),
            sid,
            peer,
            inbox,
        };
        (relay, sender)
    }

    /// The caller's side: rings the agent's worker; once it has answered and the caller is
    /// ready (its `<Queue url>` run), they are connected; the far end's hanging up is the
    /// agent leaving, and the caller's end (or redirect) hangs the leg up.
    async fn stand_for_agent(mut self, caller: CallSid) {
        let until = Instant::now() + self.shared.scaled(RING_SECONDS);
        let (mut answered, mut ready) = (false, false);
        loop {
            let message = if answered {
                self.inbox.recv().await
            } else {
                tokio::select! {
                    message = self.inbox.recv() => message,
                    () = tokio::time::sleep_until(until) => {
                        tracing::info!(call_sid = %caller, "worker: the agent's worker did not answer the bridge");
                        self.shared.media.hang_up(&self.sid);
                        let _ = self.peer.send(Message::Requeue);
                        return;
                    }
                }
            };
            match message {
                None | Some(Message::Die) => return,
                Some(Message::Media(LegInput::Answered)) if !answered => {
                    answered = true;
                    if ready {
                        self.shared.media.bridge(&caller, &self.sid);
                    }
                }
                Some(Message::LegAnswered(_)) => {
                    ready = true;
                    if answered {
                        self.shared.media.bridge(&caller, &self.sid);
                    }
                }
                Some(Message::Media(LegInput::Busy | LegInput::NoAnswer | LegInput::Failed(_)))
                    if !answered =>
                {
                    tracing::info!(call_sid = %caller, "worker: the bridge to the agent was refused");
                    self.shared.media.hang_up(&self.sid);
                    let _ = self.peer.send(Message::Requeue);
                    return;
                }
                Some(Message::Media(LegInput::HungUp)) => {
                    self.shared.media.hang_up(&self.sid);
                    let _ = self.peer.send(if answered {
                        Message::AgentLeft
                    } else {
                        Message::Requeue
                    });
                    return;
                }
                // The caller ended, or was redirected.
                Some(Message::LegEnded(..) | Message::HangUp) => {
                    self.shared.media.hang_up(&self.sid);
                    return;
                }
                Some(_) => {}
            }
        }
    }

    /// The agent's side: offered to the agent as a queued caller; answered once the agent
    /// takes it (then connected by the agent, as any caller is); refused if it does not. The
    /// far end's hanging up is the caller's end; the agent's leaving hangs the leg up.
    async fn stand_for_caller(mut self) {
        loop {
            match self.inbox.recv().await {
                None | Some(Message::Die) => return,
                Some(Message::Dequeued { leg, .. }) => {
                    self.shared.media.answer(&self.sid).await;
                    let _ = leg.send(Message::LegAnswered(self.sid.clone()));
                }
                // The agent no longer waited.
                Some(Message::LegEnded(..)) => {
                    self.shared.media.reject(&self.sid, true);
                    return;
                }
                Some(Message::AgentLeft | Message::HangUp) => {
                    self.shared.media.hang_up(&self.sid);
                    return;
                }
                Some(Message::Media(LegInput::HungUp)) => {
                    self.shared.media.hang_up(&self.sid);
                    let _ = self
                        .peer
                        .send(Message::LegEnded(self.sid.clone(), CallStatus::Completed));
                    return;
                }
                Some(_) => {}
            }
        }
    }
}

/// The caller `caller` (whose inbox is `leg`) is taken for the agent `bridge` names: a leg to
/// the agent's worker is placed, and its relay's inbox returned (the caller's parent).
pub(crate) fn toward_agent(
    shared: &Shared,
    caller: &LegInfo,
    leg: mpsc::UnboundedSender<Message>,
    bridge: &Bridge,
) -> mpsc::UnboundedSender<Message> {
    let (relay, sender) = Relay::new(shared, CallSid::generate(), leg);
    let info = LegInfo {
        sid: relay.sid.clone(),
        account_sid: caller.account_sid.clone(),
        from: caller.sid.to_string(),
        to: bridge_uri(&bridge.agent_call_sid, &bridge.token, &bridge.address),
        direction: Direction::OutboundDial,
        parent: Some(caller.sid.clone()),
    };
    shared.media.place(&info, inputs(&sender));
    tokio::spawn(relay.stand_for_agent(caller.sid.clone()));
    sender
}

/// A bridge offered to this worker as the media's leg `sid`, to `to` (the bridge's URI or its
/// user part) from `from` (the caller's CallSid, or a SIP URI of it: `sip:CA…@host`): handed
/// to the agent it names, if that agent waits and the token is its wait's; the agent takes it
/// if it still waits. `false` (nothing attached: the media refuses the leg) if not.
pub(crate) fn from_caller(shared: &Shared, sid: CallSid, from: &str, to: &str) -> bool {
    let (Some((agent, token)), Ok(caller)) = (bridged_agent(to), sip_user(from).parse::<CallSid>())
    else {
        return false;
    };
    let account = {
        let agents = shared.waiting_agents.lock().unwrap();
        agents
            .get(&agent)
            .filter(|w| bool::from(w.token.as_bytes().ct_eq(token.as_bytes())))
            .map(|w| w.account_sid.clone())
    };
    // The agent's inbox is its entry among the worker's legs.
    let agent_leg = shared.legs.lock().unwrap().get(&agent).cloned();
    let Some((account_sid, agent_leg)) = account.zip(agent_leg) else {
        tracing::info!(agent = %agent, "worker: a bridge for no agent waiting here, refused");
        return false;
    };
    let (relay, sender) = Relay::new(shared, sid, agent_leg.clone());
    let leg = LegInfo {
        sid: relay.sid.clone(),
        account_sid,
        from: caller.to_string(),
        to: to.to_owned(),
        direction: Direction::Inbound,
        parent: None,
    };
    shared.media.attach(&leg, inputs(&sender));
    let offered = agent_leg.send(Message::RemoteCaller {
        caller,
        relay: relay.sid.clone(),
        leg: sender,
    });
    if offered.is_err() {
        shared.media.reject(&relay.sid, false);
        return true;
    }
    tracing::info!(agent = %agent, relay = %relay.sid, "worker: a bridge from another worker's caller");
    tokio::spawn(relay.stand_for_caller());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_uri_names_its_agent_and_token() {
        let (agent, token) = (CallSid::generate(), random_hex32());
        let uri = bridge_uri(&agent, &token, "127.0.0.1:5070");
        assert_eq!(uri, format!("sip:bridge-{agent}-{token}@127.0.0.1:5070"));
        let named = Some((agent.clone(), token.clone()));
        assert_eq!(bridged_agent(&uri), named);
        assert_eq!(bridged_agent(&format!("bridge-{agent}-{token}")), named);
        for not in [
            "sip:alice@127.0.0.1".to_owned(),
            "sip:bridge-CAnot-0123@x".to_owned(),
            format!("sip:bridge-{agent}@x"),
            format!("sip:bridge-{agent}-short@x"),
            format!("sip:bridge-{agent}-{token}x@x"),
        ] {
            assert_eq!(bridged_agent(&not), None, "{not}");
        }
    }
}
