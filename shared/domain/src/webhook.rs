//! What an application gives us to call it back: URLs, HTTP methods, and which events it wants.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest URL accepted in any parameter, as on Twilio.
pub const MAX_URL_LENGTH: usize = 4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Method {
    Get,
    #[default]
    Post,
}

impl Method {
    /// Case-insensitive: `get`, `Get` and `GET` are all GET.
    pub fn parse(value: &str) -> Option<Self> {
        if value.eq_ignore_ascii_case("GET") {
            Some(Self::Get)
        } else if value.eq_ignore_ascii_case("POST") {
            Some(Self::Post)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

impl Serialize for Method {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Method::parse(&raw).ok_or_else(|| serde::de::Error::custom("method must be GET or POST"))
    }
}

/// Which kinds of addresses a webhook may point at. Deployed, only public addresses are allowed;
/// the local stack allows loopback so that an app on the same machine can be called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    pub allow_loopback: bool,
}

/// The class of an IP address, for deciding whether we may send requests to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    /// RFC 1918, carrier-grade NAT, unique-local IPv6: someone's internal network.
    Private,
    /// Link-local, which holds the cloud metadata services (169.254.169.254, fd00:ec2::254 is
    /// unique-local and classed Private).
    LinkLocal,
    /// Unspecified, multicast, broadcast, documentation and other reserved ranges.
    Reserved,
}

impl AddressClass {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::of_v4(v4),
            IpAddr::V6(v6) => Self::of_v6(v6),
        }
    }

    fn of_v4(ip: Ipv4Addr) -> Self {
        let [a, b, c, _] = ip.octets();
        if ip.is_loopback() {
            Self::Loopback
        } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
            Self::Private
        } else if ip.is_link_local() {
            Self::LinkLocal
        } else if a == 0
            || a >= 224
            || (a == 192 && b == 0 && (c == 0 || c == 2))
            || (a == 198 && (b == 18 || b == 19))
            || (a == 198 && b == 51 && c == 100)
            || (a == 203 && b == 0 && c == 113)
        {
            Self::Reserved
        } else {
            Self::Public
        }
    }

    fn of_v6(ip: Ipv6Addr) -> Self {
        if let Some(v4) = ip.to_ipv4_mapped() {
            return Self::of_v4(v4);
        }
        let segments = ip.segments();
        // NAT64 (64:ff9b::/96) embeds an IPv4 address that decides.
        if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
            let [_, _, _, _, _, _, hi, lo] = segments;
            return Self::of_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
        }
        if ip.is_loopback() {
            Self::Loopback
        } else if segments[0] & 0xfe00 == 0xfc00 {
            Self::Private
        } else if segments[0] & 0xffc0 == 0xfe80 {
            Self::LinkLocal
        } else if ip.is_unspecified()
            || ip.is_multicast()
            || (segments[0] == 0x2001 && segments[1] == 0x0db8)
            || segments[0] == 0
        {
            Self::Reserved
        } else {
            Self::Public
        }
    }

    pub fn allowed_by(self, policy: AddressPolicy) -> bool {
        match self {
            Self::Public => true,
            Self::Loopback => policy.allow_loopback,
            Self::Private | Self::LinkLocal | Self::Reserved => false,
        }
    }
}

/// Why a string is not an acceptable webhook URL. The message completes "… is not a valid URL: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    #[error("it is longer than {MAX_URL_LENGTH} characters")]
    TooLong,
    #[error("it contains whitespace or control characters")]
    Whitespace,
    #[error("it is not an absolute URL")]
    NotAbsolute,
    #[error("the scheme must be http or https")]
    Scheme,
    #[error("it has no host")]
    NoHost,
    #[error("it points at a {0} address, which is not reachable from this service")]
    Address(&'static str),
}

/// An absolute http(s) URL, kept exactly as the application wrote it (its signature covers that
/// exact text), with a host we are allowed to reach.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(value: &str, policy: AddressPolicy) -> Result<Self, UrlProblem> {
        if value.len() > MAX_URL_LENGTH {
            return Err(UrlProblem::TooLong);
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(UrlProblem::Whitespace);
        }
        let parsed = url::Url::parse(value).map_err(|_| UrlProblem::NotAbsolute)?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(UrlProblem::Scheme);
        }
        let class = match parsed.host() {
            None => return Err(UrlProblem::NoHost),
            Some(url::Host::Domain("")) => return Err(UrlProblem::NoHost),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    AddressClass::Loopback
                } else {
                    AddressClass::Public
                }
            }
            Some(url::Host::Ipv4(ip)) => AddressClass::of(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => AddressClass::of(IpAddr::V6(ip)),
        };
        if !class.allowed_by(policy) {
            return Err(UrlProblem::Address(match class {
                AddressClass::Loopback => "loopback",
                AddressClass::Private => "private",
                AddressClass::LinkLocal => "link-local",
                _ => "reserved",
            }));
        }
        Ok(Self(value.to_owned()))
    }

    /// For values already validated once, read back from a store.
    pub fn trusted(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The call events an application may subscribe to with `StatusCallbackEvent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallbackEvent {
    Initiated,
    Ringing,
    Answered,
    Completed,
}

impl CallbackEvent {
    pub const ALL: [CallbackEvent; 4] = [
        Self::Initiated,
        Self::Ringing,
        Self::Answered,
        Self::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::Answered => "answered",
            Self::Completed => "completed",
        }
    }

    /// Case-insensitive, like every enum value of the API.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(value))
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`CallbackEvent`]s; `completed` alone unless the application says otherwise.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusCallbackEvents(u8);

impl StatusCallbackEvents {
    pub const fn empty() -> Self {
        Self(0)
    }

    pub fn insert(&mut self, event: CallbackEvent) {
        self.0 |= event.bit();
    }

    pub fn contains(self, event: CallbackEvent) -> bool {
        self.0 & event.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = CallbackEvent> {
        CallbackEvent::ALL
            .into_iter()
            .filter(move |e| self.contains(*e))
    }
}

impl Default for StatusCallbackEvents {
    fn default() -> Self {
        let mut events = Self::empty();
        events.insert(CallbackEvent::Completed);
        events
    }
}

impl FromIterator<CallbackEvent> for StatusCallbackEvents {
    fn from_iter<I: IntoIterator<Item = CallbackEvent>>(iter: I) -> Self {
        let mut events = Self::empty();
        for event in iter {
            events.insert(event);
        }
        events
    }
}

impl fmt::Debug for StatusCallbackEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for StatusCallbackEvents {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for StatusCallbackEvents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<CallbackEvent>::deserialize(deserializer)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYED: AddressPolicy = AddressPolicy {
        allow_loopback: false,
    };
    const LOCAL: AddressPolicy = AddressPolicy {
        allow_loopback: true,
    };

    #[test]
    fn methods_are_case_insensitive() {
        for (input, expected) in [
            ("GET", Some(Method::Get)),
            ("get", Some(Method::Get)),
            ("Post", Some(Method::Post)),
            ("PUT", None),
            ("", None),
            (" GET", None),
        ] {
            assert_eq!(Method::parse(input), expected, "{input:?}");
        }
    }

    #[test]
    fn webhook_urls() {
        let cases: &[(&str, Result<(), UrlProblem>)] = &[
            ("https://example.com/rcml", Ok(())),
            ("http://example.com:8080/a?b=c#rc=2", Ok(())),
            ("https://user:pass@example.com/", Ok(())),
            ("https://203.0.114.7/x", Ok(())),
            ("/relative", Err(UrlProblem::NotAbsolute)),
            ("example.com/x", Err(UrlProblem::NotAbsolute)),
            ("ftp://example.com/x", Err(UrlProblem::Scheme)),
            ("javascript:alert(1)", Err(UrlProblem::Scheme)),
            ("http://", Err(UrlProblem::NotAbsolute)),
            ("https://exa mple.com/", Err(UrlProblem::Whitespace)),
            (" https://example.com/", Err(UrlProblem::Whitespace)),
            ("https://example.com/\n", Err(UrlProblem::Whitespace)),
            ("http://localhost/x", Err(UrlProblem::Address("loopback"))),
            (
                "http://app.localhost./x",
                Err(UrlProblem::Address("loopback")),
            ),
            ("http://127.0.0.1/x", Err(UrlProblem::Address("loopback"))),
            ("http://0x7f.1/x", Err(UrlProblem::Address("loopback"))),
            ("http://[::1]/x", Err(UrlProblem::Address("loopback"))),
            (
                "http://[::ffff:127.0.0.1]/x",
                Err(UrlProblem::Address("loopback")),
            ),
            ("http://10.1.2.3/x", Err(UrlProblem::Address("private"))),
            ("http://172.16.0.1/x", Err(UrlProblem::Address("private"))),
            ("http://192.168.1.1/x", Err(UrlProblem::Address("private"))),
            ("http://100.64.0.1/x", Err(UrlProblem::Address("private"))),
            (
                "http://[fd00:ec2::254]/x",
                Err(UrlProblem::Address("private")),
            ),
            (
                "http://169.254.169.254/latest",
                Err(UrlProblem::Address("link-local")),
            ),
            ("http://[fe80::1]/x", Err(UrlProblem::Address("link-local"))),
            (
                "http://[64:ff9b::a9fe:a9fe]/x",
                Err(UrlProblem::Address("link-local")),
            ),
            ("http://0.0.0.0/x", Err(UrlProblem::Address("reserved"))),
            ("http://[::]/x", Err(UrlProblem::Address("reserved"))),
            ("http://224.0.0.1/x", Err(UrlProblem::Address("reserved"))),
        ];
        for (input, expected) in cases {
            let got = WebhookUrl::parse(input, DEPLOYED).map(|_| ());
            assert_eq!(&got, expected, "{input:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LENGTH));
        assert_eq!(WebhookUrl::parse(&long, DEPLOYED), Err(UrlProblem::TooLong));
    }

    #[test]
    fn the_local_policy_allows_loopback_only() {
        assert!(WebhookUrl::parse("http://127.0.0.1:9/x", LOCAL).is_ok());
        assert!(WebhookUrl::parse("http://localhost:9/x", LOCAL).is_ok());
        assert!(WebhookUrl::parse("http://10.0.0.1/x", LOCAL).is_err());
        assert!(WebhookUrl::parse("http://169.254.169.254/x", LOCAL).is_err());
    }

    #[test]
    fn urls_are_kept_verbatim() {
        let raw = "HTTPS://Example.com/a/../b?x=1";
        assert_eq!(WebhookUrl::parse(raw, DEPLOYED).unwrap().as_str(), raw);
    }

    #[test]
    fn callback_events() {
        assert_eq!(
            CallbackEvent::parse("ANSWERED"),
            Some(CallbackEvent::Answered)
        );
        assert_eq!(CallbackEvent::parse("answer"), None);
        let default = StatusCallbackEvents::default();
        assert_eq!(
            default.iter().collect::<Vec<_>>(),
            [CallbackEvent::Completed]
        );
        let json = serde_json::to_string(
            &[CallbackEvent::Ringing, CallbackEvent::Initiated]
                .into_iter()
                .collect::<StatusCallbackEvents>(),
        )
        .unwrap();
        assert_eq!(json, r#"["initiated","ringing"]"#);
    }
}
