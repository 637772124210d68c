//! SIP as the worker needs it, whatever stack speaks it: calls placed (INVITE, then CANCEL or
//! BYE), calls offered (INVITE answered, rejected, or ended with BYE), and what happens to each
//! as [`SipEvent`]s. The stack is [`stack::RsipStack`] (rsipstack, pinned); nothing outside
//! this folder names it.

pub mod stack;

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

/// What happens to a call, as SIP tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipEvent {
    /// 180 or 183, with the far end's SDP if it sent early media.
    Ringing { sdp: Option<String> },
    /// 200 to our INVITE, with the far end's SDP answer.
    Answered { sdp: String },
    /// A final answer other than 200 (486, 480, 404, …), or no answer at all (408).
    Refused { code: u16 },
    /// The far end ended the call: BYE, or CANCEL of a call it offered.
    Ended,
}

/// One call's dialog.
#[async_trait]
pub trait Dialog: Send + Sync {
    /// Offered calls: 180 Ringing.
    fn ring(&self);
    /// Offered calls: 200 OK with our SDP.
    fn answer(&self, sdp: String) -> Result<(), String>;
    /// Offered calls, before they are answered: a final answer of `code`.
    fn reject(&self, code: u16);
    /// Ends the call: CANCEL while a placed call rings, BYE once answered.
    async fn hang_up(&self);
}

/// A call offered to the worker: an INVITE from outside any dialog.
pub struct Offer {
    /// The request-URI's user part (the number called).
    pub user: String,
    /// The From and To URIs, as written.
    pub from: String,
    pub to: String,
    /// Where the INVITE came from.
    pub source: IpAddr,
    pub sdp: String,
    pub dialog: Arc<dyn Dialog>,
    /// What happens next: `Ended` when the caller cancels or hangs up.
    pub events: mpsc::UnboundedReceiver<SipEvent>,
}

/// Calls placed.
pub trait Sip: Send + Sync {
    /// INVITEs `to` (a SIP URI) as `from`, offering `sdp`; what happens comes on `events`.
    fn invite(
        &self,
        from: &str,
        to: &str,
        sdp: String,
        events: mpsc::UnboundedSender<SipEvent>,
    ) -> Result<Arc<dyn Dialog>, String>;
}
