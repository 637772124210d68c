//! A SIP/RTP worker's media, started from its options: the SIP endpoint, the RTP engine and
//! the prompts, as a [`SipMedia`] for the kit's workers, and the calls offered to it.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::networks::Networks;
use crate::prompts::Prompts;
use crate::sip::Offer;
use crate::sip::stack::{RsipStack, StackConfig};
use crate::worker::{SipMedia, SipMediaConfig};

/// How a SIP/RTP worker runs (teleapi-local's `--sip`, `--rtp-ports`, …; `teleapi-media`'s
/// environment).
#[derive(Debug, Clone)]
pub struct SipOptions {
    /// Where SIP is heard (UDP).
    pub sip: SocketAddr,
    /// The ports legs' RTP is sent from and received on (even ports: a leg each).
    pub rtp_ports: RangeInclusive<u16>,
    /// The address written in SDP and Contact, when it is not the one listened on (behind
    /// NAT).
    pub public_ip: Option<IpAddr>,
    /// Who may send SIP (default: loopback only).
    pub allowed: Networks,
    /// Where calls to numbers go (`host[:port]`).
    pub trunk: Option<String>,
    /// The speech program.
    pub espeak: String,
    /// SIP datagrams a second one source may send.
    pub rate: f64,
}

impl SipOptions {
    pub fn new(sip: SocketAddr, rtp_ports: RangeInclusive<u16>) -> Self {
        Self {
            sip,
            rtp_ports,
            public_ip: None,
            allowed: Networks::loopback(),
            trunk: None,
            espeak: "espeak-ng".into(),
            rate: 200.0,
        }
    }
}

impl SipOptions {
    /// Whether the options can run: an address to write in SDP and Contact is needed when the
    /// worker listens on every interface (`0.0.0.0`), where it has no address of its own.
    pub fn check(&self) -> Result<(), String> {
        if self.sip.ip().is_unspecified() && self.public_ip.is_none() {
            return Err(format!(
                "listening on {} needs the address to give callers: TELEAPI_PUBLIC_ADDR \
                 (teleapi-local: --public-addr)",
                self.sip
            ));
        }
        Ok(())
    }
}

/// `LOW-HIGH`: at least two ports (one leg), from 1024 up.
pub fn parse_port_range(raw: &str) -> Result<RangeInclusive<u16>, String> {
    let (low, high) = raw
        .split_once('-')
        .ok_or_else(|| format!("{raw:?} is not a range like 30000-30999"))?;
    let low: u16 = low
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?}: {low:?} is not a port"))?;
    let high: u16 = high
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?}: {high:?} is not a port"))?;
    if low < 1024 || high <= low {
        return Err(format!(
            "{raw:?}: the range must be LOW-HIGH with 1024 <= LOW < HIGH"
        ));
    }
    Ok(low..=high)
}

/// Starts the SIP endpoint and the RTP engine; calls offered arrive on the receiver.
pub async fn start(
    options: &SipOptions,
) -> Result<(SipMedia, mpsc::UnboundedReceiver<Offer>), String> {
    options.check()?;
    let (offers, offered) = mpsc::unbounded_channel();
    let public = options
        .public_ip
        .map(|ip| SocketAddr::new(ip, options.sip.port()));
    let stack = RsipStack::start(
        StackConfig {
            bind: options.sip,
            public,
            allowed: options.allowed.clone(),
            rate: options.rate,
        },
        offers,
    )
    .await?;
    let engine = Engine::new(options.sip.ip(), options.rtp_ports.clone());
    let media_ip = options.public_ip.unwrap_or(options.sip.ip());
    let config = SipMediaConfig {
        media_ip,
        trunk: options.trunk.clone(),
        from_host: public.unwrap_or(options.sip).to_string(),
    };
    let media = SipMedia::new(config, stack, engine, Prompts::new(&options.espeak));
    Ok((media, offered))
}

/// Answers every call offered with 404: no number is configured on this worker.
pub async fn refuse_offers(mut offered: mpsc::UnboundedReceiver<Offer>) {
    while let Some(offer) = offered.recv().await {
        tracing::info!(user = %offer.user, from = %offer.from, source = %offer.source, "sip: no such number; 404");
        offer.dialog.reject(404);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("30000-30999").unwrap(), 30000..=30999);
        for bad in ["30000", "80-90", "5000-4000", "a-b", "30000-"] {
            assert!(parse_port_range(bad).is_err(), "{bad}");
        }
    }
}
