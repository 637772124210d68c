//! RTP packets (RFC 3550) as this worker sends and reads them, and RFC 4733's
//! telephone-events. Only what a G.711 audio leg needs: version 2, CSRCs and a header
//! extension skipped on reading, padding removed; anything else is not a packet of ours.

/// An RTP packet's fields that matter here, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

/// The fixed header's length.
pub const HEADER: usize = 12;

impl<'a> Packet<'a> {
    /// Reads a datagram; `None` if it is not an RTP version 2 packet (RTCP on the same port,
    /// STUN, garbage).
    pub fn parse(datagram: &'a [u8]) -> Option<Self> {
        if datagram.len() < HEADER || datagram[0] >> 6 != 2 {
            return None;
        }
        let padding = datagram[0] & 0x20 != 0;
        let extension = datagram[0] & 0x10 != 0;
        let csrcs = usize::from(datagram[0] & 0x0f);
        let marker = datagram[1] & 0x80 != 0;
        let payload_type = datagram[1] & 0x7f;
        // RTCP (RFC 5761): packet types 200-204 land on payload types 72-76 with the marker.
        if (72..=76).contains(&payload_type) {
            return None;
        }
        let seq = u16::from_be_bytes([datagram[2], datagram[3]]);
        let timestamp = u32::from_be_bytes(datagram[4..8].try_into().ok()?);
        let ssrc = u32::from_be_bytes(datagram[8..12].try_into().ok()?);
        let mut start = HEADER + 4 * csrcs;
        if extension {
            let words = datagram.get(start + 2..start + 4)?;
            start += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        let mut end = datagram.len();
        if padding {
            let pad = usize::from(*datagram.last()?);
            if pad == 0 {
                return None;
            }
            end = end.checked_sub(pad)?;
        }
        let payload = datagram.get(start..end)?;
        Some(Self {
            payload_type,
            marker,
            seq,
            timestamp,
            ssrc,
            payload,
        })
    }

    /// The packet on the wire, appended to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(0x80);
        out.push(self.payload_type & 0x7f | if self.marker { 0x80 } else { 0 });
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(self.payload);
    }
}

/// An RFC 4733 telephone-event payload: which key, whether it has ended, how long so far (in
/// timestamp units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigitEvent {
    /// 0-9, 10 `*`, 11 `#`, 12-15 `A`-`D`.
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl DigitEvent {
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let [event, flags, d0, d1, ..] = *payload else {
            return None;
        };
        Some(Self {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let [d0, d1] = self.duration.to_be_bytes();
        [
            self.event,
            (if self.end { 0x80 } else { 0 }) | (self.volume & 0x3f),
            d0,
            d1,
        ]
    }

    /// The key it names, if it is one of `0-9 * # A-D`.
    pub fn key(self) -> Option<char> {
        match self.event {
            0..=9 => Some(char::from(b'0' + self.event)),
            10 => Some('*'),
            11 => Some('#'),
            12..=15 => Some(char::from(b'A' + self.event - 12)),
            _ => None,
        }
    }

    /// The event code of a key.
    pub fn code(key: char) -> Option<u8> {
        match key {
            '0'..='9' => Some(key as u8 - b'0'),
            '*' => Some(10),
            '#' => Some(11),
            'A'..='D' => Some(key as u8 - b'A' + 12),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_round_trips() {
        let payload = [0xffu8; 160];
        let packet = Packet {
            payload_type: 8,
            marker: true,
            seq: 65_535,
            timestamp: 0xdead_beef,
            ssrc: 42,
            payload: &payload,
        };
        let mut wire = Vec::new();
        packet.write(&mut wire);
        assert_eq!(wire.len(), HEADER + 160);
        assert_eq!(Packet::parse(&wire), Some(packet));
    }

    #[test]
    fn csrcs_extensions_and_padding_are_skipped() {
        let mut wire = vec![0x80 | 0x20 | 0x10 | 1, 0, 0, 7, 0, 0, 0, 160, 0, 0, 0, 9];
        wire.extend_from_slice(&[1, 2, 3, 4]); // one CSRC
        wire.extend_from_slice(&[0xbe, 0xde, 0, 1, 9, 9, 9, 9]); // extension of one word
        wire.extend_from_slice(&[5, 6, 7]); // payload
        wire.extend_from_slice(&[0, 0, 3]); // padding of 3
        let packet = Packet::parse(&wire).unwrap();
        assert_eq!(packet.seq, 7);
        assert_eq!(packet.payload, &[5, 6, 7]);
    }

    #[test]
    fn what_is_not_rtp_is_refused() {
        assert_eq!(Packet::parse(&[]), None);
        assert_eq!(Packet::parse(&[0x80; 11]), None);
        // Version 1, RTCP sender report, padding longer than the packet, extension cut short.
        assert_eq!(Packet::parse(&[0x40; 20]), None);
        assert_eq!(
            Packet::parse(&[0x80, 200, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
        let mut padded = vec![0xa0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        padded.push(200);
        assert_eq!(Packet::parse(&padded), None);
        assert_eq!(
            Packet::parse(&[0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe]),
            None
        );
    }

    #[test]
    fn telephone_events() {
        let event = DigitEvent::parse(&[11, 0x8a, 0x03, 0x20]).unwrap();
        assert_eq!(event.key(), Some('#'));
        assert!(event.end);
        assert_eq!(event.volume, 10);
        assert_eq!(event.duration, 800);
        assert_eq!(event.to_bytes(), [11, 0x8a, 0x03, 0x20]);
        for key in "0123456789*#ABCD".chars() {
            let code = DigitEvent::code(key).unwrap();
            let event = DigitEvent {
                event: code,
                end: false,
                volume: 10,
                duration: 0,
            };
            assert_eq!(event.key(), Some(key));
        }
        assert_eq!(DigitEvent::code('x'), None);
        assert_eq!(DigitEvent::parse(&[1, 2, 3]), None);
    }
}
