//! Address ranges (CIDR), for who may send the worker SIP: `127.0.0.0/8,::1/128`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A list of networks; an address is in it if it is in one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Networks(Vec<(IpAddr, u8)>);

impl Networks {
    /// Loopback only: what teleapi-local answers unless told otherwise.
    pub fn loopback() -> Self {
        "127.0.0.0/8,::1/128".parse().expect("loopback parses")
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|(network, bits)| match (network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix(&n.octets(), &a.octets(), *bits),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix(&n.octets(), &a.octets(), *bits),
            _ => false,
        })
    }
}

fn prefix(network: &[u8], address: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let (whole, rest) = (bits / 8, bits % 8);
    if network[..whole] != address[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        network[whole] & mask == address[whole] & mask
    }
}

impl FromStr for Networks {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (address, bits) = part.split_once('/').unwrap_or((part, ""));
            let address: IpAddr = address
                .parse()
                .map_err(|_| format!("'{part}' is not an address or network (CIDR)"))?;
            let most = if address.is_ipv4() { 32 } else { 128 };
            let bits = if bits.is_empty() {
                most
            } else {
                bits.parse::<u8>()
                    .ok()
                    .filter(|b| *b <= most)
                    .ok_or_else(|| format!("'{part}': the prefix length must be 0 to {most}"))?
            };
            networks.push((address, bits));
        }
        Ok(Self(networks))
    }
}

impl fmt::Display for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(a, b)| format!("{a}/{b}")).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_and_out() {
        let networks: Networks = "10.0.0.0/8, 192.168.1.128/25, 2001:db8::/32"
            .parse()
            .unwrap();
        for inside in [
            "10.1.2.3",
            "192.168.1.200",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(networks.contains(inside.parse().unwrap()), "{inside}");
        }
        for outside in ["11.0.0.1", "192.168.1.127", "2001:db9::1", "127.0.0.1"] {
            assert!(!networks.contains(outside.parse().unwrap()), "{outside}");
        }
        assert!(Networks::loopback().contains("127.0.0.1".parse().unwrap()));
        assert!(Networks::loopback().contains("::1".parse().unwrap()));
        assert!(
            "0.0.0.0/0"
                .parse::<Networks>()
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert_eq!(
            networks.to_string(),
            "10.0.0.0/8,192.168.1.128/25,2001:db8::/32"
        );
    }

    #[test]
    fn bad_networks_say_why() {
        assert!(
            "10.0.0.0/33"
                .parse::<Networks>()
                .unwrap_err()
                .contains("0 to 32")
        );
        assert!(
            "nowhere"
                .parse::<Networks>()
                .unwrap_err()
                .contains("not an address")
        );
    }
}
