//! SDP (RFC 4566) for one audio stream, and the offer/answer of RFC 3264 as a G.711 leg needs
//! it: PCMU and PCMA, RFC 4733 telephone-event, 20 ms packets, the stream's direction. Written
//! here (a hundred lines) rather than taken from a crate: the crates parse all of SDP into
//! types this worker would have to walk, and a parser this small is read and fuzzed whole.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::g711::Law;

/// The largest SDP body read; a larger one is refused.
pub const MAX_LEN: usize = 8 * 1024;

/// Which way a stream's audio flows, from the side that wrote the SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answer gives to an offer's.
    pub fn answer(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// Whether the side that wrote it sends audio.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

/// One payload format of the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub payload_type: u8,
    /// As written (`PCMU`, `telephone-event`); compared without case.
    pub name: String,
    pub rate: u32,
}

/// The audio stream a session description offers or answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    /// Where its RTP goes; port 0: the stream is refused.
    pub address: SocketAddr,
    /// `RTP/AVP` is the only profile this worker speaks (no SRTP).
    pub profile: String,
    /// In the writer's order of preference.
    pub formats: Vec<Format>,
    pub direction: Direction,
}

/// Why a session description was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdpError {
    /// Not SDP, or not SDP this worker reads (too long, no address, a line it cannot parse).
    Malformed(String),
    /// SDP, but no audio stream this worker can take (SIP 488).
    NotAcceptable(String),
}

impl std::fmt::Display for SdpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SdpError::Malformed(why) => write!(f, "malformed SDP: {why}"),
            SdpError::NotAcceptable(why) => write!(f, "no acceptable audio: {why}"),
        }
    }
}

fn malformed(why: impl Into<String>) -> SdpError {
    SdpError::Malformed(why.into())
}

/// Reads the first audio stream of a session description.
pub fn parse(text: &str) -> Result<Audio, SdpError> {
    if text.len() > MAX_LEN {
        return Err(malformed(format!("longer than {MAX_LEN} bytes")));
    }
    let mut session_address: Option<IpAddr> = None;
    let mut session_direction = Direction::SendRecv;
    let mut audio: Option<(u16, String, Vec<u8>)> = None;
    let mut media_address: Option<IpAddr> = None;
    let mut direction: Option<Direction> = None;
    let mut maps: Vec<(u8, String, u32)> = Vec::new();
    // Inside the first audio `m=` section, or before any `m=` (the session part), or elsewhere.
    #[derive(PartialEq)]
    enum At {
        Session,
        Audio,
        Other,
    }
    let mut at = At::Session;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let Some((kind, value)) = line.split_once('=') else {
            return Err(malformed(format!("'{}' is not a line of SDP", clip(line))));
        };
        match (kind, &at) {
            ("m", _) => {
                let mut words = value.split_ascii_whitespace();
                let media = words.next().unwrap_or_default();
                if media == "audio" && audio.is_none() {
                    let port = words
                        .next()
                        .and_then(|p| p.split('/').next())
                        .and_then(|p| p.parse().ok())
                        .ok_or_else(|| malformed("m=audio without a port"))?;
                    let profile = words.next().unwrap_or_default().to_owned();
                    let formats = words
                        .take(64)
                        .filter_map(|f| f.parse().ok())
                        .filter(|pt: &u8| *pt < 128)
                        .collect();
                    audio = Some((port, profile, formats));
                    at = At::Audio;
                } else {
                    at = At::Other;
                }
            }
            ("c", At::Session | At::Audio) => {
                let address = connection(value)?;
                if at == At::Session {
                    session_address = Some(address);
                } else {
                    media_address = Some(address);
                }
            }
            ("a", At::Session | At::Audio) => {
                let (name, rest) = value.split_once(':').unwrap_or((value, ""));
                let found = match name {
                    "sendrecv" => Some(Direction::SendRecv),
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                match (found, &at) {
                    (Some(d), At::Session) => session_direction = d,
                    (Some(d), _) => direction = Some(d),
                    (None, At::Audio) if name == "rtpmap" && maps.len() < 64 => {
                        if let Some(map) = rtpmap(rest) {
                            maps.push(map);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let (port, profile, payload_types) =
        audio.ok_or_else(|| SdpError::NotAcceptable("no m=audio stream".into()))?;
    let address = media_address
        .or(session_address)
        .ok_or_else(|| malformed("no c= address for the audio stream"))?;
    let formats = payload_types
        .into_iter()
        .filter_map(|pt| {
            let (name, rate) = match maps.iter().find(|(p, ..)| *p == pt) {
                Some((_, name, rate)) => (name.clone(), *rate),
                // The static payload types of RFC 3551 need no rtpmap.
                None => match pt {
                    0 => ("PCMU".into(), 8_000),
                    8 => ("PCMA".into(), 8_000),
                    _ => return None,
                },
            };
            Some(Format {
                payload_type: pt,
                name,
                rate,
            })
        })
        .collect();
    Ok(Audio {
        address: SocketAddr::new(address, port),
        profile,
        formats,
        direction: direction.unwrap_or(session_direction),
    })
}

fn clip(line: &str) -> &str {
    let end = line.char_indices().nth(40).map_or(line.len(), |(at, _)| at);
    &line[..end]
}

/// `IN IP4 192.0.2.1` (a TTL or count after a slash is ignored).
fn connection(value: &str) -> Result<IpAddr, SdpError> {
    let mut words = value.split_ascii_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("IN"), Some("IP4" | "IP6"), Some(address)) => address
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| malformed(format!("c= address '{}'", clip(address)))),
        _ => Err(malformed(format!("c={}", clip(value)))),
    }
}

/// `0 PCMU/8000[/1]`.
fn rtpmap(value: &str) -> Option<(u8, String, u32)> {
    let (pt, encoding) = value.split_once(' ')?;
    let mut parts = encoding.trim().split('/');
    let name = parts.next()?.to_owned();
    let rate = parts.next()?.parse().ok()?;
    Some((pt.parse().ok().filter(|pt| *pt < 128)?, name, rate))
}

/// What an offer and its answer settled for a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Where the far end said to send RTP (until its packets come from elsewhere: symmetric
    /// RTP).
    pub remote: SocketAddr,
    pub law: Law,
    pub payload_type: u8,
    /// RFC 4733 telephone-event, if both sides have it.
    pub digits: Option<u8>,
    /// The direction from this side: whether it sends, and whether it hears.
    pub direction: Direction,
}

/// This worker's payload type for telephone-event, in its offers.
pub const DIGITS_PT: u8 = 101;

fn law_of(format: &Format) -> Option<Law> {
    if format.rate != 8_000 {
        return None;
    }
    if format.name.eq_ignore_ascii_case("PCMU") {
        Some(Law::Mu)
    } else if format.name.eq_ignore_ascii_case("PCMA") {
        Some(Law::A)
    } else {
        None
    }
}

fn digits_of(formats: &[Format]) -> Option<u8> {
    formats
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case("telephone-event") && f.rate == 8_000)
        .map(|f| f.payload_type)
}

/// What this side can take from the far end's description (an offer, or the answer to ours):
/// the first G.711 format in its order, and telephone-event if it has it. For an answer, the
/// direction is ours (the reverse of its).
pub fn negotiate(theirs: &Audio) -> Result<Negotiated, SdpError> {
    if theirs.profile != "RTP/AVP" {
        return Err(SdpError::NotAcceptable(format!(
            "profile {} (only RTP/AVP: no SRTP)",
            clip(&theirs.profile)
        )));
    }
    if theirs.address.port() == 0 {
        return Err(SdpError::NotAcceptable(
            "the audio stream is refused (port 0)".into(),
        ));
    }
    let (law, payload_type) = theirs
        .formats
        .iter()
        .find_map(|f| law_of(f).map(|law| (law, f.payload_type)))
        .ok_or_else(|| SdpError::NotAcceptable("neither PCMU nor PCMA offered".into()))?;
    Ok(Negotiated {
        remote: theirs.address,
        law,
        payload_type,
        digits: digits_of(&theirs.formats),
        direction: theirs.direction.answer(),
    })
}

/// This side's description: the offer of every format it has (`None`), or the answer with
/// what was negotiated.
pub fn write(session_id: u64, local: SocketAddr, answer: Option<&Negotiated>) -> String {
    let ip = match local.ip() {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    };
    let address = local.ip();
    let mut sdp = format!(
        "v=0\r\no=teleapi {session_id} {session_id} IN {ip} {address}\r\ns=teleapi\r\n\
         c=IN {ip} {address}\r\nt=0 0\r\n"
    );
    let (formats, direction): (Vec<(u8, &str)>, Direction) = match answer {
        None => (
            vec![(0, "PCMU"), (8, "PCMA"), (DIGITS_PT, "telephone-event")],
            Direction::SendRecv,
        ),
        Some(n) => {
            let mut formats = vec![(n.payload_type, n.law.name())];
            formats.extend(n.digits.map(|pt| (pt, "telephone-event")));
            (formats, n.direction)
        }
    };
    let list: Vec<String> = formats.iter().map(|(pt, _)| pt.to_string()).collect();
    let _ = write!(
        sdp,
        "m=audio {} RTP/AVP {}\r\n",
        local.port(),
        list.join(" ")
    );
    for (pt, name) in &formats {
        let _ = write!(sdp, "a=rtpmap:{pt} {name}/8000\r\n");
        if *name == "telephone-event" {
            let _ = write!(sdp, "a=fmtp:{pt} 0-16\r\n");
        }
    }
    let _ = write!(sdp, "a=ptime:20\r\na={}\r\n", direction.attribute());
    sdp
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARESIP: &str = "v=0\r\n\
o=- 1234 5678 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 10000 RTP/AVP 8 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=sendrecv\r\n\
a=label:1\r\n\
a=ssrc:3129316131 cname:sip:x@127.0.0.1\r\n\
m=video 10002 RTP/AVP 96\r\n\
c=IN IP4 10.9.9.9\r\n\
a=sendonly\r\n";

    #[test]
    fn an_offer_is_read_and_answered() {
        let offer = parse(BARESIP).unwrap();
        assert_eq!(offer.address, "127.0.0.1:10000".parse().unwrap());
        assert_eq!(offer.formats.len(), 3);
        assert_eq!(offer.direction, Direction::SendRecv);
        let negotiated = negotiate(&offer).unwrap();
        assert_eq!(negotiated.law, Law::A, "the offerer's first choice");
        assert_eq!(negotiated.digits, Some(101));
        let answer = write(7, "127.0.0.1:30000".parse().unwrap(), Some(&negotiated));
        let read = parse(&answer).unwrap();
        assert_eq!(read.address, "127.0.0.1:30000".parse().unwrap());
        assert_eq!(
            read.formats
                .iter()
                .map(|f| f.payload_type)
                .collect::<Vec<_>>(),
            [8, 101]
        );
        assert!(answer.ends_with("a=ptime:20\r\na=sendrecv\r\n"), "{answer}");
    }

    #[test]
    fn our_offer_is_what_a_peer_answers() {
        let offer = write(1, "[::1]:4000".parse().unwrap(), None);
        let read = parse(&offer).unwrap();
        assert_eq!(read.address, "[::1]:4000".parse().unwrap());
        let names: Vec<_> = read.formats.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["PCMU", "PCMA", "telephone-event"]);
    }

    #[test]
    fn directions_hold_and_answer() {
        let sdp = "v=0\nc=IN IP4 192.0.2.1\na=recvonly\nm=audio 5004 RTP/AVP 0\n";
        let audio = parse(sdp).unwrap();
        assert_eq!(
            audio.direction,
            Direction::RecvOnly,
            "from the session part"
        );
        let negotiated = negotiate(&audio).unwrap();
        assert_eq!(negotiated.direction, Direction::SendOnly);
        assert_eq!(negotiated.law, Law::Mu, "0 needs no rtpmap");
        assert_eq!(negotiated.digits, None);
        let hold = format!("{sdp}a=inactive\n");
        assert_eq!(parse(&hold).unwrap().direction, Direction::Inactive);
    }

    #[test]
    fn what_cannot_be_taken_says_why() {
        let base = "v=0\r\nc=IN IP4 192.0.2.1\r\n";
        let cases = [
            (
                format!("{base}m=audio 5004 RTP/AVP 9 18\r\n"),
                "neither PCMU",
            ),
            (format!("{base}m=audio 5004 RTP/SAVP 0\r\n"), "no SRTP"),
            (format!("{base}m=audio 0 RTP/AVP 0\r\n"), "port 0"),
            (format!("{base}m=video 5004 RTP/AVP 96\r\n"), "no m=audio"),
            (
                format!("{base}m=audio 5004 RTP/AVP 0\r\na=rtpmap:0 PCMU/16000\r\n"),
                "neither PCMU",
            ),
        ];
        for (sdp, why) in cases {
            let err = parse(&sdp).and_then(|a| negotiate(&a)).unwrap_err();
            assert!(matches!(err, SdpError::NotAcceptable(_)), "{sdp}");
            assert!(err.to_string().contains(why), "{err}");
        }
        let malformed_cases = [
            "v=0\r\nm=audio 5004 RTP/AVP 0\r\n".to_owned(),
            "v=0\r\nc=IN IP4 nowhere\r\nm=audio 5004 RTP/AVP 0\r\n".to_owned(),
            "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio x RTP/AVP 0\r\n".to_owned(),
            "garbage".to_owned(),
            "v=0\r\n".repeat(2_000),
        ];
        for sdp in malformed_cases {
            assert!(
                matches!(parse(&sdp), Err(SdpError::Malformed(_))),
                "{sdp:.40}"
            );
        }
    }
}
