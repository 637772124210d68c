//! How a deployed `teleapi-media` is configured: its environment, read and checked in one
//! place (every variable named once), so that a mistake is one clear line at start.

use std::net::SocketAddr;

use crate::server::{SipOptions, parse_port_range, parse_sip_rate};

/// The environment of a deployed worker.
pub const COMMANDS_QUEUE_ENV: &str = "TELEAPI_COMMANDS_QUEUE_URL";
pub const EVENTS_QUEUE_ENV: &str = "TELEAPI_EVENTS_QUEUE_URL";
pub const ACCOUNTS_TABLE_ENV: &str = "TELEAPI_ACCOUNTS_TABLE";
pub const NUMBERS_TABLE_ENV: &str = "TELEAPI_NUMBERS_TABLE";
pub const QUEUES_TABLE_ENV: &str = "TELEAPI_QUEUES_TABLE";
/// The calls table: a worker counts a queue's callers on every worker through its `queue`
/// index when one more joins (`MaxSize`).
pub const CALLS_TABLE_ENV: &str = "TELEAPI_CALLS_TABLE";
pub const WORKER_QUEUE_PREFIX_ENV: &str = "TELEAPI_WORKER_QUEUE_PREFIX";
pub const WORKER_NAME_ENV: &str = "TELEAPI_WORKER_NAME";
pub const CAPACITY_ENV: &str = "TELEAPI_WORKER_CAPACITY";
pub const SIP_ADDR_ENV: &str = "TELEAPI_SIP_ADDR";
pub const RTP_PORTS_ENV: &str = "TELEAPI_RTP_PORTS";
pub const PUBLIC_ADDR_ENV: &str = "TELEAPI_PUBLIC_ADDR";
/// Where the fleet's other workers reach this one (its private address and SIP port), for
/// bridges of their queued callers to its agents; default: its public address.
pub const BRIDGE_ADDR_ENV: &str = "TELEAPI_BRIDGE_ADDR";
pub const SIP_ALLOW_ENV: &str = "TELEAPI_SIP_ALLOW";
pub const TRUNK_ENV: &str = "TELEAPI_TRUNK";
pub const SIP_RATE_ENV: &str = "TELEAPI_SIP_RATE";
/// Where recordings are kept: the control plane's recordings bucket (the functions read the
/// same variable).
pub const RECORDINGS_BUCKET_ENV: &str = "TELEAPI_RECORDINGS_BUCKET";
/// Where the API is reached: the `RecordingUrl` given to a `<Record>` or `<Dial record>` action
/// is under it (the call-events function reads the same variable).
pub const PUBLIC_URL_ENV: &str = "TELEAPI_PUBLIC_URL";

/// A deployed worker's settings.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The commands queue the workers share (new calls).
    pub commands_queue: String,
    pub events_queue: String,
    pub accounts_table: String,
    /// The bucket recordings are kept in.
    pub recordings_bucket: String,
    /// Where the API is reached.
    pub public_url: String,
    /// Where the accounts' numbers are: an INVITE to one is a call of its account.
    pub numbers_table: String,
    /// Where the accounts' call queues are: how many callers each holds (`MaxSize`).
    pub queues_table: String,
    /// The calls table, whose `queue` index lists who waits in each queue.
    pub calls_table: String,
    /// Its own commands queue's name: `{prefix}{name}.fifo`, created at start if missing.
    pub own_queue_name: String,
    /// The name of this host or task, in its worker ids (`{name}.{start}`).
    pub name: String,
    /// Calls it takes at most (its heartbeat says so).
    pub capacity: Option<u32>,
    pub sip: SipOptions,
}

/// Reads a deployed worker's settings through `var` (the process environment in `main`).
pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Deployment, String> {
    let required = |name: &str| {
        var(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("{name} is not set"))
    };
    let name = var(WORKER_NAME_ENV)
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "teleapi-media".into());
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    let prefix = var(WORKER_QUEUE_PREFIX_ENV).unwrap_or_else(|| "teleapi-worker-".into());
    let sip: SocketAddr = var(SIP_ADDR_ENV)
        .unwrap_or_else(|| "0.0.0.0:5060".into())
        .parse()
        .map_err(|_| format!("{SIP_ADDR_ENV} is not an address like 0.0.0.0:5060"))?;
    let ports = parse_port_range(&var(RTP_PORTS_ENV).unwrap_or_else(|| "30000-39999".into()))
        .map_err(|why| format!("{RTP_PORTS_ENV}: {why}"))?;
    let mut options = SipOptions::new(sip, ports);
    options.public_ip = var(PUBLIC_ADDR_ENV)
        .map(|raw| {
            raw.parse()
                .map_err(|_| format!("{PUBLIC_ADDR_ENV}: {raw:?} is not an IP address"))
        })
        .transpose()?;
    // Deployed, nobody is let in by default: the operator names the carriers and PBXs.
    options.allowed = required(SIP_ALLOW_ENV)?
        .parse()
        .map_err(|why| format!("{SIP_ALLOW_ENV}: {why}"))?;
    options.trunk = var(TRUNK_ENV).filter(|t| !t.trim().is_empty());
    options.bridge = var(BRIDGE_ADDR_ENV)
        .filter(|b| !b.trim().is_empty())
        .map(|raw| {
            raw.trim().parse().map_err(|_| {
                format!("{BRIDGE_ADDR_ENV}: {raw:?} is not an address like 10.0.1.7:5060")
            })
        })
        .transpose()?;
    if let Some(raw) = var(SIP_RATE_ENV) {
        options.rate = parse_sip_rate(&raw).map_err(|why| format!("{SIP_RATE_ENV}: {why}"))?;
    }
    options.check()?;
    let capacity = var(CAPACITY_ENV)
        .map(|raw| {
            raw.parse::<u32>()
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| format!("{CAPACITY_ENV}: {raw:?} is not a number of calls"))
        })
        .transpose()?;
    Ok(Deployment {
        commands_queue: required(COMMANDS_QUEUE_ENV)?,
        events_queue: required(EVENTS_QUEUE_ENV)?,
        accounts_table: required(ACCOUNTS_TABLE_ENV)?,
        recordings_bucket: required(RECORDINGS_BUCKET_ENV)?,
        public_url: required(PUBLIC_URL_ENV)?,
        numbers_table: required(NUMBERS_TABLE_ENV)?,
        queues_table: required(QUEUES_TABLE_ENV)?,
        calls_table: required(CALLS_TABLE_ENV)?,
        own_queue_name: format!("{prefix}{name}.fifo"),
        name,
        capacity,
        sip: options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(pairs: &[(&str, &str)]) -> Result<Deployment, String> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        from_env(|name| env.get(name).cloned())
    }

    const BASE: [(&str, &str); 11] = [
        (COMMANDS_QUEUE_ENV, "https://sqs/commands.fifo"),
        (EVENTS_QUEUE_ENV, "https://sqs/events.fifo"),
        (ACCOUNTS_TABLE_ENV, "prod-accounts"),
        (NUMBERS_TABLE_ENV, "prod-numbers"),
        (QUEUES_TABLE_ENV, "prod-queues"),
        (RECORDINGS_BUCKET_ENV, "prod-recordings"),
        (PUBLIC_URL_ENV, "https://api.example.com/prod"),
        (CALLS_TABLE_ENV, "prod-calls"),
        (SIP_ALLOW_ENV, "203.0.113.0/24"),
        (PUBLIC_ADDR_ENV, "198.51.100.7"),
        (WORKER_NAME_ENV, "ip-10-0-1-7.ec2.internal"),
    ];

    #[test]
    fn a_deployment_reads_its_environment() {
        let deployment = read(&BASE).unwrap();
        assert_eq!(deployment.name, "ip-10-0-1-7-ec2-internal");
        assert_eq!(
            deployment.own_queue_name,
            "teleapi-worker-ip-10-0-1-7-ec2-internal.fifo"
        );
        assert_eq!(deployment.sip.sip, "0.0.0.0:5060".parse().unwrap());
        assert_eq!(deployment.sip.rtp_ports, 30_000..=39_999);
        assert!(
            deployment
                .sip
                .allowed
                .contains("203.0.113.9".parse().unwrap())
        );
        assert!(
            !deployment
                .sip
                .allowed
                .contains("127.0.0.1".parse().unwrap())
        );
        assert_eq!(deployment.capacity, None);
        assert_eq!(deployment.recordings_bucket, "prod-recordings");
        assert_eq!(deployment.public_url, "https://api.example.com/prod");
        assert_eq!(deployment.sip.bridge, None);
        let mut pairs = BASE.to_vec();
        pairs.push((BRIDGE_ADDR_ENV, "10.0.1.7:5060"));
        let fleet = read(&pairs).unwrap().sip.bridge;
        assert_eq!(fleet, Some("10.0.1.7:5060".parse().unwrap()));
    }

    #[test]
    fn what_is_missing_or_wrong_is_named() {
        for (missing, _) in BASE.iter().take(8) {
            let pairs: Vec<_> = BASE.iter().copied().filter(|(k, _)| k != missing).collect();
            let err = read(&pairs).unwrap_err();
            assert!(err.contains(missing), "{err}");
        }
        let without_public: Vec<_> = BASE
            .iter()
            .copied()
            .filter(|(k, _)| *k != PUBLIC_ADDR_ENV)
            .collect();
        assert!(read(&without_public).unwrap_err().contains(PUBLIC_ADDR_ENV));
        for (name, value) in [
            (RTP_PORTS_ENV, "10-20"),
            (SIP_ADDR_ENV, "nowhere"),
            (CAPACITY_ENV, "0"),
            (SIP_ALLOW_ENV, "10.0.0.0/99"),
            (SIP_RATE_ENV, "-5"),
            (BRIDGE_ADDR_ENV, "10.0.1.7"),
        ] {
            let mut pairs = BASE.to_vec();
            pairs.push((name, value));
            let err = read(&pairs).unwrap_err();
            assert!(err.contains(name), "{err}");
        }
    }
}
