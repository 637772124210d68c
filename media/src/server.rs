//! A SIP/RTP worker's media, started from its options: the SIP endpoint, the RTP engine and
//! the prompts, as a [`SipMedia`] for the kit's workers, and the calls offered to it.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use std::sync::Arc;

use teleapi_domain::number::{IncomingNumber, number_of_sip_user};
use teleapi_domain::{Account, AccountStatus, CallSid, WebhookUrl};
use teleapi_ports::{AccountStore, MediaStore, NumberStore};
use teleapi_worker::{InboundCall, Life, Media, WorkerHandle};
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
    /// Where the other workers of the fleet reach this one, for bridges of their queued
    /// callers to its agents (its private address, `TELEAPI_BRIDGE_ADDR`); written in those
    /// legs' SDP and Contact. None: its SIP address as the world sees it.
    pub bridge: Option<SocketAddr>,
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
            bridge: None,
        }
    }
}

impl SipOptions {
    /// The options of worker `n` (from 0) of `of` run together (`teleapi-local --sip ADDR
    /// --workers N`): SIP on the port `n` after this one, and the `n`th of `of` equal parts of
    /// the RTP ports (even-sized, at least a leg's two ports each).
    pub fn for_worker(&self, n: u16, of: u16) -> Result<Self, String> {
        let (low, high) = (*self.rtp_ports.start(), *self.rtp_ports.end());
        let share = ((high - low + 1) / of.max(1)) & !1;
        if share < 2 {
            return Err(format!(
                "RTP ports {low}-{high} are too few for {of} workers (two a leg, per worker)"
            ));
        }
        let port = self
            .sip
            .port()
            .checked_add(n)
            .ok_or_else(|| format!("no SIP port {n} after {}", self.sip))?;
        let start = low + n * share;
        let bridge = self
            .bridge
            .map(|b| b.port().checked_add(n).map(|p| SocketAddr::new(b.ip(), p)))
            .map(|b| b.ok_or_else(|| format!("no bridge port {n} after {:?}", self.bridge)))
            .transpose()?;
        Ok(Self {
            sip: SocketAddr::new(self.sip.ip(), port),
            bridge,
            rtp_ports: start..=start + share - 1,
            ..self.clone()
        })
    }

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

/// SIP datagrams a second one source may send: a whole number from 1 to 100,000.
pub fn parse_sip_rate(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<u32>() {
        Ok(rate) if (1..=100_000).contains(&rate) => Ok(f64::from(rate)),
        _ => Err(format!(
            "{raw:?} is not a number of SIP datagrams a second (1 to 100000)"
        )),
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

/// Starts the SIP endpoint and the RTP engine, keeping recordings in `recordings` (the API's
/// media store; none: a recording on this worker fails with 16105); calls offered arrive on
/// the receiver.
pub async fn start(
    options: &SipOptions,
    recordings: Option<Arc<dyn MediaStore>>,
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
            bridge: options.bridge,
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
        bridge: options.bridge,
        recordings,
    };
    let media = SipMedia::new(config, stack, engine, Prompts::new(&options.espeak));
    Ok((media, offered))
}

/// Where offered calls find their number and its account.
#[derive(Clone)]
pub struct Directory {
    pub numbers: Arc<dyn NumberStore>,
    pub accounts: Arc<dyn AccountStore>,
}

/// Takes the calls offered to the worker: an INVITE to a number of an active account (its
/// request-URI's user) becomes an inbound call of that account on `worker`, which fetches the
/// number's `VoiceUrl`; any other is answered 404 and creates nothing (docs/decisions.md, "The
/// SIP/RTP worker").
pub async fn answer_offers(
    mut offered: mpsc::UnboundedReceiver<Offer>,
    media: SipMedia,
    directory: Directory,
    worker: WorkerHandle,
) {
    while let Some(offer) = offered.recv().await {
        let (media, directory, worker) = (media.clone(), directory.clone(), worker.clone());
        tokio::spawn(async move { take_offer(offer, &media, &directory, &worker).await });
    }
}

/// A leg from another worker of the fleet (from an allowed address, as every INVITE must be)
/// bridging its queued caller to an agent of this worker: taken if the agent waits and the
/// request-URI carries its wait's token (the kit checks both), else refused 404 and nothing
/// is made.
async fn take_bridge(offer: Offer, media: &SipMedia, worker: &WorkerHandle) {
    let sid = CallSid::generate();
    let (to, from, source) = (offer.user.clone(), caller_of(&offer.from), offer.source);
    if let Err(refusal) = media.take_offer(&sid, offer).await {
        tracing::info!(code = refusal.code, reason = %refusal.reason, %source, "sip: bridge refused");
        return;
    }
    if !worker.bridge_in(sid.clone(), &from, &to) {
        tracing::info!(%source, "sip: a bridge for no agent waiting here");
        media.refuse(&sid, 404);
    }
}

/// Whether a call to `number` is taken: it needs RCML, and an active account (a suspended or
/// closed account's RCML runs nothing, and dials nobody). The RCML's URL, or the SIP refusal.
pub fn answerable<'a>(
    number: &'a IncomingNumber,
    account: Option<&Account>,
) -> Result<&'a WebhookUrl, (u16, &'static str)> {
    // As an unconfigured Twilio number.
    let url = number
        .voice
        .url
        .as_ref()
        .ok_or((404, "the number has no VoiceUrl"))?;
    match account {
        Some(account) if account.status == AccountStatus::Active => Ok(url),
        _ => Err((404, "the number's account is not active")),
    }
}

async fn take_offer(offer: Offer, media: &SipMedia, directory: &Directory, worker: &WorkerHandle) {
    let refuse = |offer: Offer, code: u16, why: &str| {
        tracing::info!(user = %offer.user, from = %offer.from, source = %offer.source, code, "sip: {why}");
        offer.dialog.reject(code);
    };
    if teleapi_worker::bridged_agent(&offer.user).is_some() {
        return take_bridge(offer, media, worker).await;
    }
    let Some(called) = number_of_sip_user(&offer.user) else {
        return refuse(offer, 404, "not a number");
    };
    let number = match directory.numbers.number_called(&called).await {
        Ok(Some(number)) => number,
        Ok(None) => return refuse(offer, 404, "no such number"),
        Err(err) => {
            tracing::warn!(error = %err, "sip: the numbers could not be read");
            return refuse(offer, 503, "the numbers could not be read");
        }
    };
    let account = match directory.accounts.account(&number.account_sid).await {
        Ok(account) => account,
        Err(err) => {
            tracing::warn!(error = %err, "sip: the accounts could not be read");
            return refuse(offer, 503, "the accounts could not be read");
        }
    };
    let url = match answerable(&number, account.as_ref()) {
        Ok(url) => url.clone(),
        Err((code, why)) => return refuse(offer, code, why),
    };
    if worker.life() != Life::Active {
        return refuse(offer, 503, "the worker takes no new calls");
    }
    let sid = CallSid::generate();
    let from = caller_of(&offer.from);
    let source = offer.source;
    if let Err(refusal) = media.take_offer(&sid, offer).await {
        tracing::info!(call_sid = %sid, code = refusal.code, reason = %refusal.reason, "sip: offer refused");
        return;
    }
    let voice = &number.voice;
    let call = InboundCall {
        sid: sid.clone(),
        account_sid: number.account_sid.clone(),
        from,
        to: number.phone_number.clone(),
        url,
        method: voice.method,
        fallback: voice
            .fallback_url
            .clone()
            .map(|u| (u, voice.fallback_method)),
        status_callback: voice
            .status_callback
            .clone()
            .map(|u| (u, voice.status_callback_method)),
    };
    tracing::info!(call_sid = %sid, to = %call.to, %source, "sip: inbound call");
    if !worker.inbound(call) {
        // It began draining in the meantime.
        media.reject(&sid, false);
    }
}

/// Who calls, as Twilio's `From` says it: the caller's number (E.164) when the From URI's user
/// is one, else the URI itself (`sip:alice@example.com`).
pub fn caller_of(from: &str) -> String {
    let uri = from
        .split_once('<')
        .map_or(from, |(_, rest)| rest.split('>').next().unwrap_or(rest))
        .trim();
    let uri = uri.split(';').next().unwrap_or(uri);
    let user = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .and_then(|rest| rest.split_once('@'))
        .map(|(user, _)| user);
    match user.and_then(number_of_sip_user) {
        Some(number) if user.is_some_and(|u| u.starts_with('+')) => number,
        _ => uri.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_run_together_on_ports_of_their_own() {
        let mut first = SipOptions::new("127.0.0.1:5060".parse().unwrap(), 30_000..=30_999);
        first.bridge = Some("10.0.1.7:5070".parse().unwrap());
        let second = first.for_worker(1, 3).unwrap();
        assert_eq!(second.sip, "127.0.0.1:5061".parse().unwrap());
        assert_eq!(second.bridge, Some("10.0.1.7:5071".parse().unwrap()));
        assert_eq!(second.rtp_ports, 30_332..=30_663);
        assert_eq!(first.for_worker(0, 1).unwrap().rtp_ports, 30_000..=30_999);
        let few = SipOptions::new("127.0.0.1:5060".parse().unwrap(), 30_000..=30_003);
        assert!(few.for_worker(0, 3).unwrap_err().contains("too few"));
    }

    #[test]
    fn only_a_number_with_rcml_of_an_active_account_takes_calls() {
        let now = teleapi_domain::Timestamp::from_millis(0);
        let mut account = Account::open("Acme", None, now);
        let form = teleapi_domain::Form::parse(
            b"PhoneNumber=%2B15557650000&VoiceUrl=https%3A%2F%2Fapp.example.com%2Fv",
        )
        .unwrap();
        let number =
            IncomingNumber::parse_create(account.sid.clone(), &form, Default::default(), now)
                .unwrap();
        assert_eq!(
            answerable(&number, Some(&account)).map(|url| url.as_str().to_owned()),
            Ok("https://app.example.com/v".to_owned())
        );
        assert_eq!(answerable(&number, None).unwrap_err().0, 404);
        for status in [AccountStatus::Suspended, AccountStatus::Closed] {
            account.status = status;
            assert_eq!(answerable(&number, Some(&account)).unwrap_err().0, 404);
        }
        account.status = AccountStatus::Active;
        let mut silent = number.clone();
        silent.voice.url = None;
        assert_eq!(answerable(&silent, Some(&account)).unwrap_err().0, 404);
    }

    #[test]
    fn the_caller_is_its_number_or_its_uri() {
        for (from, caller) in [
            ("sip:+15551230001@127.0.0.1:5062", "+15551230001"),
            (
                "\"Alice\" <sip:+15551230001@pbx.example;user=phone>;tag=1",
                "+15551230001",
            ),
            (
                "<sip:alice@127.0.0.1:5062>;tag=9",
                "sip:alice@127.0.0.1:5062",
            ),
            ("sip:15551230001@pbx.example", "sip:15551230001@pbx.example"),
        ] {
            assert_eq!(caller_of(from), caller, "{from}");
        }
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("30000-30999").unwrap(), 30000..=30999);
        for bad in ["30000", "80-90", "5000-4000", "a-b", "30000-"] {
            assert!(parse_port_range(bad).is_err(), "{bad}");
        }
    }
}
