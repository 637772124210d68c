//! G.711 (ITU-T G.711): μ-law (PCMU, payload type 0) and A-law (PCMA, 8), 8 kHz, one byte a
//! sample. Encoding is the kit's μ-law (the one media streams send) and A-law beside it;
//! decoding is by table, built once.

use std::sync::OnceLock;

pub use teleapi_worker::audio::mulaw as encode_mulaw;

/// The two G.711 laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    Mu,
    A,
}

impl Law {
    /// The static RTP payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Mu => 0,
            Law::A => 8,
        }
    }

    /// The SDP encoding name.
    pub fn name(self) -> &'static str {
        match self {
            Law::Mu => "PCMU",
            Law::A => "PCMA",
        }
    }

    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Mu => encode_mulaw(sample),
            Law::A => encode_alaw(sample),
        }
    }

    pub fn decode(self, byte: u8) -> i16 {
        let tables = tables();
        match self {
            Law::Mu => tables.mu[usize::from(byte)],
            Law::A => tables.a[usize::from(byte)],
        }
    }

    /// A frame of samples, encoded.
    pub fn encode_frame(self, samples: &[i16], out: &mut Vec<u8>) {
        out.extend(samples.iter().map(|s| self.encode(*s)));
    }

    /// A frame of bytes, decoded.
    pub fn decode_frame(self, bytes: &[u8], out: &mut Vec<i16>) {
        out.extend(bytes.iter().map(|b| self.decode(*b)));
    }
}

/// G.711 A-law of one 16-bit sample.
pub fn encode_alaw(sample: i16) -> u8 {
    // On 13 bits, as G.711 defines it.
    let mut value = i32::from(sample) >> 3;
    let sign = if value >= 0 {
        0x80
    } else {
        value = -value - 1;
        0
    };
    let value = value.min(0x0fff);
    let byte = if value < 32 {
        (value >> 1) as u8
    } else {
        let exponent = (5..=11).rev().find(|e| value & (1 << e) != 0).unwrap_or(5);
        let segment = (exponent - 4) as u8;
        (segment << 4) | ((value >> (exponent - 4)) & 0x0f) as u8
    };
    (byte | sign) ^ 0x55
}

fn decode_mulaw(byte: u8) -> i16 {
    let byte = !byte;
    let sign = byte & 0x80;
    let exponent = (byte >> 4) & 0x07;
    let mantissa = i32::from(byte & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

fn decode_alaw(byte: u8) -> i16 {
    let byte = byte ^ 0x55;
    let sign = byte & 0x80;
    let exponent = (byte >> 4) & 0x07;
    let mantissa = i32::from(byte & 0x0f);
    let magnitude = match exponent {
        0 => (mantissa << 4) + 8,
        e => ((mantissa << 4) + 0x108) << (e - 1),
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

struct Tables {
    mu: [i16; 256],
    a: [i16; 256],
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut mu = [0; 256];
        let mut a = [0; 256];
        for byte in 0..=255u8 {
            mu[usize::from(byte)] = decode_mulaw(byte);
            a[usize::from(byte)] = decode_alaw(byte);
        }
        Tables { mu, a }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_of_both_laws() {
        // G.711's tables: silence, and the extremes.
        assert_eq!(Law::Mu.decode(0xff), 0);
        assert_eq!(Law::Mu.decode(0x00), -32_124);
        assert_eq!(Law::Mu.decode(0x80), 32_124);
        assert_eq!(encode_alaw(0), 0xd5);
        assert_eq!(Law::A.decode(0xd5), 8);
        assert_eq!(Law::A.decode(0x2a), -32_256);
        assert_eq!(Law::A.decode(0xaa), 32_256);
        assert_eq!(encode_alaw(-32_768), 0x2a);
        assert_eq!(encode_alaw(32_767), 0xaa);
    }

    #[test]
    fn every_code_survives_a_round_trip() {
        for law in [Law::Mu, Law::A] {
            for byte in 0..=255u8 {
                let back = law.encode(law.decode(byte));
                // μ-law has two codes for zero (0xff and 0x7f); both decode to 0.
                if law == Law::Mu && byte == 0x7f {
                    assert_eq!(back, 0xff);
                    continue;
                }
                assert_eq!(back, byte, "{law:?} {byte:#04x}");
            }
        }
    }

    #[test]
    fn quantisation_error_is_within_a_step() {
        for law in [Law::Mu, Law::A] {
            for sample in (-32_000i32..32_000).step_by(97) {
                let back = i32::from(law.decode(law.encode(sample as i16)));
                let tolerance = (sample.abs() / 16).max(16);
                assert!(
                    (back - sample).abs() <= tolerance,
                    "{law:?} {sample} {back}"
                );
            }
        }
    }
}
