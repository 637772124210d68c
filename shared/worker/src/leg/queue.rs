//! Call queues on a leg. A caller `<Enqueue>`d waits in its worker's queue, hearing its
//! `waitUrl`'s RCML again and again (with Twilio's `QueuePosition`, `QueueSid`, `QueueTime`,
//! `AvgQueueTime`, `CurrentQueueSize`, `MaxQueueSize`), until an agent takes it, it `<Leave>`s
//! or it hangs up; then its action hears `QueueResult` (`bridged`, `leave`, `queue-full`,
//! `hangup`), `QueueSid` and `QueueTime`, or, without one, the document goes on after
//! `<Enqueue>`. An agent's `<Dial><Queue>` takes the first caller (or waits for the next, for
//! the dial's `timeout`): the caller runs the noun's `url` if it has one, then is bridged as a
//! dialled leg is; when the agent's side ends, the caller goes on with its action.

use super::*;
use crate::queues::{Enqueued, Member};
use crate::rcml::{EnqueueVerb, Verb};
use std::time::Duration;
use teleapi_domain::QueueSid;
use teleapi_domain::wire::event::EventKind;

/// A caller in a queue, or taken from it by an agent.
pub(super) struct Queued {
    name: String,
    sid: QueueSid,
    /// The action (resolved against the document that enqueued the caller), and the wait
    /// music's document.
    action: Option<(String, Method)>,
    wait: Option<(String, Method)>,
    /// The document and where it goes on after `<Enqueue>`, if there is no action.
    resume: (Vec<Verb>, usize),
    /// The most callers the queue holds (`MaxQueueSize`).
    max_size: u32,
    since: Instant,
    /// Taken by an agent, after waiting so long.
    taken: Option<Duration>,
}

/// The silence a caller waits in without a `waitUrl` (no worker has default hold music).
const SILENCE: &str = "<Response><Pause length=\"60\"/></Response>";

impl Leg {
    /// `<Enqueue>`: the caller joins its queue (reported: `call.enqueued`); the wait music's
    /// document to run, or, if the queue is full, its action's (none: the document goes on,
    /// from the program restored).
    pub(super) async fn enqueue(&mut self, verb: EnqueueVerb) -> Option<Source> {
        let action = verb.action.as_ref().map(|a| (self.resolve(a), verb.method));
        let wait = verb
            .wait_url
            .as_ref()
            .map(|(url, method)| (self.resolve(url), *method));
        let member = Member {
            call: self.info.sid.clone(),
            leg: self.sender.clone(),
            since: Instant::now(),
        };
        let sid = QueueSid::named(&self.info.account_sid, &verb.name);
        let (max_size, listed) = match &self.shared.queue_sizes {
            Some(sizes) => (sizes.max_size(&sid).await, sizes.listed(&sid).await),
            None => (teleapi_domain::queue::DEFAULT_MAX_SIZE, 0),
        };
        let enqueued = self.shared.call_queues.enqueue(
            &self.info.account_sid,
            &verb.name,
            member,
            max_size,
            listed,
        );
        let queued = Queued {
            name: verb.name,
            sid: match &enqueued {
                Enqueued::Waiting { sid } | Enqueued::Taken { sid } | Enqueued::Full { sid } => {
                    sid.clone()
                }
            },
            action,
            wait,
            resume: (self.program.clone(), self.pc),
            since: Instant::now(),
            taken: None,
            max_size,
        };
        if let Enqueued::Full { .. } = enqueued {
            return self.after_queue(queued, "queue-full", Duration::ZERO);
        }
        tracing::info!(call_sid = %self.info.sid, queue = %queued.sid, "worker: enqueued");
        let (queue_sid, queue) = (queued.sid.clone(), queued.name.clone());
        self.queued = Some(queued);
        self.report_enqueued(queue_sid, queue).await;
        Some(self.wait_music())
    }

    /// What a waiting caller hears next: its `waitUrl`'s document, asked with where it stands.
    pub(super) fn wait_music(&self) -> Source {
        let Some(queued) = &self.queued else {
            return Source::Inline(SILENCE.into());
        };
        let Some((url, method)) = queued.wait.clone() else {
            return Source::Inline(SILENCE.into());
        };
        let standing =
            self.shared
                .call_queues
                .standing(&self.info.account_sid, &queued.name, &self.info.sid);
        let (position, size, average) = standing
            .map(|s| (s.position, s.size, s.average))
            .unwrap_or((0, 0, Duration::ZERO));
        Source::Fetch {
            url,
            method,
            extra: vec![
                ("QueueSid", queued.sid.to_string()),
                ("QueuePosition", position.to_string()),
                ("QueueTime", queued.since.elapsed().as_secs().to_string()),
                ("AvgQueueTime", average.as_secs().to_string()),
                ("CurrentQueueSize", size.to_string()),
                ("MaxQueueSize", queued.max_size.to_string()),
            ],
        }
    }

    /// Whether the leg waits in a queue (not taken by an agent yet).
    pub(super) fn waiting_in_queue(&self) -> bool {
        self.queued.as_ref().is_some_and(|q| q.taken.is_none())
    }

    /// The caller is out of its queue with `result`: its action to request, with Twilio's
    /// parameters; without one, the document goes on after `<Enqueue>` (restored here).
    fn after_queue(&mut self, queued: Queued, result: &str, waited: Duration) -> Option<Source> {
        let Some((url, method)) = queued.action else {
            (self.program, self.pc) = queued.resume;
            return None;
        };
        Some(Source::Fetch {
            url,
            method,
            extra: vec![
                ("QueueResult", result.to_owned()),
                ("QueueSid", queued.sid.to_string()),
                ("QueueTime", waited.as_secs().to_string()),
            ],
        })
    }

    /// `<Leave>`: a waiting caller leaves its queue; what runs next (see [`Leg::after_queue`]).
    pub(super) async fn leave_queue(&mut self) -> Option<Source> {
        if !self.waiting_in_queue() {
            return None;
        }
        let queued = self.queued.take()?;
        let waited = self
            .shared
            .call_queues
            .leave(&self.info.account_sid, &queued.name, &self.info.sid)
            .unwrap_or_else(|| queued.since.elapsed());
        self.report_dequeued(&queued.sid).await;
        self.after_queue(queued, "leave", waited)
    }

    /// `call.enqueued`: the caller waits in `queue_sid` (named `queue`).
    async fn report_enqueued(&mut self, queue_sid: QueueSid, queue: String) {
        self.event(|seq| EventKind::CallEnqueued {
            seq,
            queue_sid,
            queue,
        })
        .await;
    }

    /// `call.dequeued`: the caller no longer waits in `queue`.
    async fn report_dequeued(&mut self, queue: &QueueSid) {
        let queue_sid = queue.clone();
        self.event(|seq| EventKind::CallDequeued { seq, queue_sid })
            .await;
    }

    /// The caller's call ended: out of its queue, and its action is told (`hangup`, or
    /// `bridged` if an agent had taken it); what it answers is not run.
    pub(super) async fn queued_call_ended(&mut self) {
        let Some(queued) = self.queued.take() else {
            return;
        };
        let (result, waited) = match queued.taken {
            Some(waited) => ("bridged", waited),
            None => (
                "hangup",
                self.shared
                    .call_queues
                    .leave(&self.info.account_sid, &queued.name, &self.info.sid)
                    .unwrap_or_else(|| queued.since.elapsed()),
            ),
        };
        if let Some(Source::Fetch { url, method, extra }) = self.after_queue(queued, result, waited)
        {
            let _ = self.fetch(&url, method, &extra).await;
        }
    }

    /// A redirect of the caller (`POST …/Calls/{CA}`): it leaves its queue, or the agent it is
    /// bridged to; the action is not asked (`redirected`).
    pub(super) async fn redirected_out_of_queue(&mut self) {
        let Some(queued) = self.queued.take() else {
            return;
        };
        if queued.taken.is_none() {
            self.shared
                .call_queues
                .leave(&self.info.account_sid, &queued.name, &self.info.sid);
            self.report_dequeued(&queued.sid).await;
        } else if let Some(agent) = self.parent.take() {
            self.shared.media.unbridge(&self.info.sid);
            let _ = agent.send(Message::LegEnded(
                self.info.sid.clone(),
                CallStatus::Completed,
            ));
        }
    }

    /// An agent takes this caller: its wait music stops; it runs the agent's `url` first, if
    /// any, and is then connected as a dialled leg is (the agent is its parent).
    pub(super) async fn dequeued(
        &mut self,
        agent: CallSid,
        leg: mpsc::UnboundedSender<Message>,
        url: Option<Source>,
    ) {
        let Some(queued) = self.queued.as_mut().filter(|q| q.taken.is_none()) else {
            // No longer waiting (it left, or ended): the agent's dial goes on without it.
            let _ = leg.send(Message::LegEnded(self.info.sid.clone(), self.status));
            return;
        };
        let waited = queued.since.elapsed();
        queued.taken = Some(waited);
        let sid = queued.sid.clone();
        self.report_dequeued(&sid).await;
        self.stop_document();
        tracing::info!(call_sid = %self.info.sid, queue = %sid, agent = %agent, "worker: dequeued");
        self.parent = Some(leg.clone());
        match url {
            Some(source) => {
                self.screening = true;
                let source = source
                    .with("QueueSid", sid.to_string())
                    .with("QueueTime", waited.as_secs().to_string())
                    .with("DequeingCallSid", agent.to_string());
                self.run(source).await;
            }
            None => {
                let _ = leg.send(Message::LegAnswered(self.info.sid.clone()));
            }
        }
    }

    /// `queue.bridge`: the control plane took this waiting caller for an agent on another
    /// worker. It leaves its queue and is "dequeued" by a bridge to that worker, which stands
    /// for the agent (`crate::relay`); if the agent is this worker's after all, it is handed
    /// to it as a caller who just joined. Refused if it no longer waits in that queue (taken
    /// here, left, or redirected since).
    pub(super) async fn taken_for_agent(&mut self, command: &Command) {
        let bridge = command.parameters.bridge.as_deref().filter(|b| {
            self.queued
                .as_ref()
                .is_some_and(|q| q.taken.is_none() && q.sid == b.queue_sid)
        });
        let Some(bridge) = bridge.cloned() else {
            let kind = EventKind::CommandRejected {
                intent_sid: command.intent_sid.clone(),
                seq: command.seq,
                reason: "not-waiting".into(),
            };
            self.emit(kind).await;
            return;
        };
        self.applied(command).await;
        let Some((name, since)) = self.queued.as_ref().map(|q| (q.name.clone(), q.since)) else {
            return;
        };
        self.shared
            .call_queues
            .leave(&self.info.account_sid, &name, &self.info.sid);
        let local = self
            .shared
            .legs
            .lock()
            .unwrap()
            .get(&bridge.agent_call_sid)
            .cloned();
        if let Some(agent) = local {
            // As if it had just joined: the agent takes it (`call.dequeued`), or it waits in
            // its line, where the control plane, which took it out, must see it again.
            self.report_enqueued(bridge.queue_sid.clone(), name.clone())
                .await;
            let offered = agent.send(Message::QueueMember {
                queue: name,
                call: self.info.sid.clone(),
                leg: self.sender.clone(),
                since,
            });
            if let Err(mpsc::error::SendError(Message::QueueMember {
                queue,
                call,
                leg,
                since,
            })) = offered
            {
                // The agent has just ended: back in the line.
                let member = Member { call, leg, since };
                self.shared
                    .call_queues
                    .put_back(&self.info.account_sid, &queue, member);
            }
            return;
        }
        let url = bridge
            .url
            .clone()
            .map(|url| Source::fetch(url, bridge.method.unwrap_or_default()));
        let relay =
            crate::relay::toward_agent(&self.shared, &self.info, self.sender.clone(), &bridge);
        self.dequeued(bridge.agent_call_sid, relay, url).await;
    }

    /// The bridge to an agent on another worker was not answered: the caller waits in its
    /// queue again (where it stood, counted in already), hearing its wait music, and says so
    /// (`call.enqueued`).
    pub(super) async fn requeue(&mut self) {
        let Some(queued) = self.queued.as_mut().filter(|q| q.taken.is_some()) else {
            return;
        };
        queued.taken = None;
        let (name, sid, since) = (queued.name.clone(), queued.sid.clone(), queued.since);
        self.parent = None;
        self.screening = false;
        self.stop_document();
        tracing::info!(call_sid = %self.info.sid, queue = %sid, "worker: back in the queue");
        let member = Member {
            call: self.info.sid.clone(),
            leg: self.sender.clone(),
            since,
        };
        self.shared
            .call_queues
            .put_back(&self.info.account_sid, &name, member);
        self.report_enqueued(sid, name).await;
        let music = self.wait_music();
        self.run(music).await;
    }

    /// What the leg plays stops, and its document with it (taken from, or back in, its queue).
    fn stop_document(&mut self) {
        if matches!(
            self.wait,
            Wait::Playing(_) | Wait::Gather { .. } | Wait::Record(_)
        ) {
            self.shared.media.stop_playing(&self.info.sid);
        }
        self.program.clear();
        self.pc = 0;
        self.wait = Wait::Idle;
    }

    /// The agent's side of the bridge ended: the caller goes on with its action (`bridged`).
    pub(super) async fn agent_left(&mut self) {
        self.parent = None;
        self.screening = false;
        self.shared.media.unbridge(&self.info.sid);
        let Some(queued) = self.queued.take() else {
            return;
        };
        let waited = queued.taken.unwrap_or_else(|| queued.since.elapsed());
        match self.after_queue(queued, "bridged", waited) {
            Some(source) => self.run(source).await,
            None => self.advance().await,
        }
    }
}
