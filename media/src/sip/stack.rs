//! [`Sip`] on rsipstack (pinned in Cargo.toml; docs/decisions.md says why it and not ezk-sip):
//! one UDP endpoint, its dialog layer, the INVITEs from outside any dialog turned into
//! [`Offer`]s, and each dialog's states turned into [`SipEvent`]s. The transport's whitelist
//! keeps out sources outside the allowed networks and sources that send too fast.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::{HeadersExt, ToTypedHeader};
use rsipstack::sip::{Header, Method, StatusCode, Uri};
use rsipstack::transaction::TransactionReceiver;
use rsipstack::transport::TransportLayer;
use rsipstack::transport::udp::UdpConnection;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Dialog, Offer, Sip, SipEvent};
use crate::networks::Networks;

/// What the endpoint is told.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Where it listens (UDP).
    pub bind: SocketAddr,
    /// The address it writes in Via and Contact (behind NAT: the public one).
    pub public: Option<SocketAddr>,
    /// Who may send it SIP at all.
    pub allowed: Networks,
    /// Datagrams a second one source may send (a burst of twice as many); beyond, they are
    /// dropped unanswered.
    pub rate: f64,
    /// The address it writes in Contact in bridges between workers (`sip:bridge-…`), when the
    /// fleet reaches it at another one than the world does (its private address).
    pub bridge: Option<SocketAddr>,
}

/// The SIP endpoint.
pub struct RsipStack {
    layer: Arc<DialogLayer>,
    contact: Contacts,
    cancel: CancellationToken,
}

/// The Contact it writes: the world's, and the fleet's in bridges between workers.
#[derive(Clone)]
struct Contacts {
    world: Uri,
    fleet: Uri,
}

impl Contacts {
    fn new(world: SocketAddr, fleet: Option<SocketAddr>) -> Result<Self, String> {
        let uri = |host: SocketAddr| {
            Uri::try_from(format!("sip:teleapi@{host}")).map_err(|e| e.to_string())
        };
        Ok(Self {
            world: uri(world)?,
            fleet: uri(fleet.unwrap_or(world))?,
        })
    }

    /// The Contact of a dialog whose request-URI's user is `user`.
    fn for_user(&self, user: &str) -> Uri {
        if user.starts_with("bridge-") {
            self.fleet.clone()
        } else {
            self.world.clone()
        }
    }
}

impl Drop for RsipStack {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl RsipStack {
    /// Listens; calls offered arrive on `offers`.
    pub async fn start(
        config: StackConfig,
        offers: mpsc::UnboundedSender<Offer>,
    ) -> Result<Arc<Self>, String> {
        let cancel = CancellationToken::new();
        let transport = TransportLayer::new(cancel.child_token());
        let limiter = Arc::new(Limiter::new(config.rate));
        let allowed = config.allowed.clone();
        transport.set_whitelist(move |ip: IpAddr| {
            let pass = allowed.contains(ip) && limiter.allow(ip);
            async move { pass }
        });
        let udp = UdpConnection::create_connection(
            config.bind,
            config.public,
            Some(cancel.child_token()),
        )
        .await
        .map_err(|e| format!("SIP on {}: {e}", config.bind))?;
        transport.add_transport(udp.into());
        let endpoint = rsipstack::EndpointBuilder::new()
            .with_user_agent(concat!("teleapi-media/", env!("CARGO_PKG_VERSION")))
            .with_transport_layer(transport)
            .with_cancel_token(cancel.child_token())
            .build();
        let incoming = endpoint
            .incoming_transactions()
            .map_err(|e| e.to_string())?;
        let layer = Arc::new(DialogLayer::new(endpoint.inner.clone()));
        let contact = Contacts::new(config.public.unwrap_or(config.bind), config.bridge)?;
        let stack = Arc::new(Self {
            layer: layer.clone(),
            contact: contact.clone(),
            cancel: cancel.clone(),
        });
        tokio::spawn(async move { endpoint.serve().await });
        tokio::spawn(serve(layer, incoming, contact, offers));
        Ok(stack)
    }

    /// The URI calls from this endpoint come from.
    pub fn contact(&self) -> &Uri {
        &self.contact.world
    }
}

/// Requests from outside any dialog: INVITEs become offers; the rest are answered here.
async fn serve(
    layer: Arc<DialogLayer>,
    mut incoming: TransactionReceiver,
    contact: Contacts,
    offers: mpsc::UnboundedSender<Offer>,
) {
    while let Some(mut tx) = incoming.recv().await {
        let in_dialog = tx
            .original
            .to_header()
            .ok()
            .and_then(|to| to.tag().ok().flatten())
            .is_some();
        if in_dialog {
            match layer.match_dialog(&tx) {
                Some(mut dialog) => {
                    tokio::spawn(async move {
                        let _ = dialog.handle(&mut tx).await;
                    });
                }
                None => {
                    let _ = tx.reply(StatusCode::CallTransactionDoesNotExist).await;
                }
            }
            continue;
        }
        match tx.original.method {
            Method::Invite => {
                let request = &tx.original;
                let user = request
                    .uri
                    .auth
                    .as_ref()
                    .map(|a| a.user.clone())
                    .unwrap_or_default();
                let from = request
                    .from_header()
                    .map(|h| h.value().to_owned())
                    .unwrap_or_default();
                let to = request
                    .to_header()
                    .map(|h| h.value().to_owned())
                    .unwrap_or_default();
                let source = source_of(request);
                let Ok(sdp) = String::from_utf8(request.body.clone()) else {
                    let _ = tx.reply(StatusCode::NotAcceptableHere).await;
                    continue;
                };
                let (states, receiver) = layer.new_dialog_state_channel();
                let dialog = match layer.get_or_create_server_invite(
                    &tx,
                    states,
                    None,
                    Some(contact.for_user(&user)),
                ) {
                    Ok(dialog) => dialog,
                    Err(_) => {
                        let _ = tx.reply(StatusCode::CallTransactionDoesNotExist).await;
                        continue;
                    }
                };
                let (events, events_in) = mpsc::unbounded_channel();
                let mut handling = dialog.clone();
                tokio::spawn(async move {
                    let _ = handling.handle(&mut tx).await;
                });
                tokio::spawn(pump(layer.clone(), receiver, events, true));
                let offer = Offer {
                    user,
                    from,
                    to,
                    source,
                    sdp,
                    dialog: Arc::new(RsipDialog { dialog }),
                    events: events_in,
                };
                if let Err(refused) = offers.send(offer) {
                    refused.0.dialog.reject(503);
                }
            }
            Method::Options => {
                let _ = tx.reply(StatusCode::OK).await;
            }
            // An ACK outside a dialog answers a final error of ours: nothing to say.
            Method::Ack => {}
            _ => {
                let _ = tx.reply(StatusCode::MethodNotAllowed).await;
            }
        }
    }
}

/// Where a request came from: the `received` address the transport wrote in its top Via (or
/// the Via's own host, when they were the same).
fn source_of(request: &rsipstack::sip::Request) -> IpAddr {
    let via = request.via_header().ok().and_then(|via| via.typed().ok());
    let Some(via) = via else {
        return IpAddr::from([0, 0, 0, 0]);
    };
    let received = via.params.iter().find_map(|p| match p {
        rsipstack::sip::Param::Received(received) => received.value().parse().ok(),
        _ => None,
    });
    received
        .or_else(|| {
            via.uri
                .host_with_port
                .to_string()
                .split(':')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// Whether a datagram reads as a SIP message, as the endpoint reads what it receives (the fuzz
/// target's entry: hostile SIP must never panic).
pub fn parses(datagram: &[u8]) -> bool {
    match rsipstack::sip::SipMessage::try_from(datagram) {
        Ok(rsipstack::sip::SipMessage::Request(request)) => {
            let _ = source_of(&request);
            let _ = request.from_header().map(|h| h.value().len());
            true
        }
        Ok(_) => true,
        Err(_) => false,
    }
}

/// A dialog's states, as [`SipEvent`]s, until it ends; then it is removed from the layer.
async fn pump(
    layer: Arc<DialogLayer>,
    mut states: DialogStateReceiver,
    events: mpsc::UnboundedSender<SipEvent>,
    offered: bool,
) {
    let body = |r: &rsipstack::sip::Response| String::from_utf8_lossy(&r.body).into_owned();
    while let Some(state) = states.recv().await {
        let event = match state {
            DialogState::Early(_, response) if !offered => Some(SipEvent::Ringing {
                sdp: Some(body(&response)).filter(|s| !s.trim().is_empty()),
            }),
            DialogState::Confirmed(_, response) if !offered => Some(SipEvent::Answered {
                sdp: body(&response),
            }),
            DialogState::Terminated(id, reason) => {
                layer.remove_dialog(&id);
                let event = match reason {
                    // The far end ended it (BYE, or CANCEL of what it offered).
                    TerminatedReason::UacBye | TerminatedReason::UacCancel if offered => {
                        Some(SipEvent::Ended)
                    }
                    TerminatedReason::UasBye if !offered => Some(SipEvent::Ended),
                    TerminatedReason::UasOther(code) | TerminatedReason::ProxyError(code)
                        if !offered =>
                    {
                        Some(SipEvent::Refused { code: code.code() })
                    }
                    TerminatedReason::UasBusy if !offered => Some(SipEvent::Refused { code: 486 }),
                    TerminatedReason::UasDecline if !offered => {
                        Some(SipEvent::Refused { code: 603 })
                    }
                    TerminatedReason::ProxyAuthRequired if !offered => {
                        Some(SipEvent::Refused { code: 407 })
                    }
                    TerminatedReason::Timeout => Some(if offered {
                        SipEvent::Ended // our 200 was never ACKed
                    } else {
                        SipEvent::Refused { code: 408 }
                    }),
                    // What we ended ourselves.
                    _ => None,
                };
                if let Some(event) = event {
                    let _ = events.send(event);
                }
                return;
            }
            _ => None,
        };
        if let Some(event) = event {
            let _ = events.send(event);
        }
    }
}

struct RsipDialog {
    dialog: InviteDialog,
}

#[async_trait]
impl Dialog for RsipDialog {
    fn ring(&self) {
        let _ = self.dialog.ringing(None, None);
    }

    fn answer(&self, sdp: String) -> Result<(), String> {
        let headers = vec![Header::ContentType("application/sdp".into())];
        self.dialog
            .accept(Some(headers), Some(sdp.into_bytes()))
            .map_err(|e| e.to_string())
    }

    fn reject(&self, code: u16) {
        let _ = self.dialog.reject(Some(StatusCode::from(code)), None);
    }

    async fn hang_up(&self) {
        let state = self.dialog.state();
        if state.is_confirmed() || matches!(state, DialogState::WaitAck(..)) {
            let _ = self.dialog.bye().await;
        } else {
            // Placed and ringing: CANCEL (an offered call not answered is rejected instead).
            let _ = self.dialog.hangup().await;
            if self.dialog.role() == rsipstack::transaction::key::TransactionRole::Server {
                let _ = self
                    .dialog
                    .reject(Some(StatusCode::RequestTerminated), None);
            }
        }
    }
}

impl Sip for RsipStack {
    fn invite(
        &self,
        from: &str,
        to: &str,
        sdp: String,
        events: mpsc::UnboundedSender<SipEvent>,
    ) -> Result<Arc<dyn Dialog>, String> {
        let callee = Uri::try_from(to).map_err(|e| format!("'{to}' is not a SIP URI: {e}"))?;
        let caller = Uri::try_from(from).unwrap_or_else(|_| self.contact.world.clone());
        let user = callee
            .auth
            .as_ref()
            .map(|a| a.user.clone())
            .unwrap_or_default();
        let option = InviteOption {
            caller,
            callee,
            contact: self.contact.for_user(&user),
            content_type: Some("application/sdp".into()),
            offer: Some(sdp.into_bytes()),
            ..Default::default()
        };
        let (states, receiver) = self.layer.new_dialog_state_channel();
        let (dialog, finished) = self
            .layer
            .do_invite_async(option, states)
            .map_err(|e| e.to_string())?;
        tokio::spawn(pump(self.layer.clone(), receiver, events.clone(), false));
        // A request that never left (no route, transport error) ends without a final answer.
        tokio::spawn(async move {
            if let Ok(Err(err)) = finished.await {
                tracing::info!(error = %err, "sip: INVITE failed");
                let _ = events.send(SipEvent::Refused { code: 503 });
            }
        });
        Ok(Arc::new(RsipDialog { dialog }))
    }
}

/// A token bucket per source address.
struct Limiter {
    rate: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl Limiter {
    /// Sources remembered at most; beyond, the idle ones are forgotten.
    const SOURCES: usize = 10_000;

    fn new(rate: f64) -> Self {
        Self {
            rate,
            buckets: Mutex::default(),
        }
    }

    fn allow(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let burst = self.rate * 2.0;
        let mut buckets = self.buckets.lock().unwrap();
        if buckets.len() >= Self::SOURCES {
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs() < 10);
        }
        let (tokens, at) = buckets.entry(ip).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_that_sends_too_fast_is_held_back() {
        let limiter = Limiter::new(10.0);
        let flood: IpAddr = "192.0.2.1".parse().unwrap();
        let passed = (0..100).filter(|_| limiter.allow(flood)).count();
        assert_eq!(passed, 20, "the burst, then nothing");
        assert!(
            limiter.allow("192.0.2.2".parse().unwrap()),
            "others still pass"
        );
    }
}
