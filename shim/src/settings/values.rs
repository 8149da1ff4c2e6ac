//! The kinds of value settings take: addresses, durations, sizes, host patterns.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// One entry of WASMHTTP_ALLOWED_OUTBOUND_HOSTS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPattern {
    /// lower case; `*` for any host, `*.suffix` for subdomains of suffix
    host: String,
    /// `None`: any port
    port: Option<u16>,
}

impl HostPattern {
    pub fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim().to_ascii_lowercase();
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (address, after) = rest.split_once(']')?;
            address.parse::<std::net::Ipv6Addr>().ok()?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port.parse().ok()?),
                None if after.is_empty() => None,
                None => return None,
            };
            (address.to_string(), port)
        } else {
            match entry.split_once(':') {
                Some((host, port)) => (host.to_string(), Some(port.parse().ok()?)),
                None => (entry.clone(), None),
            }
        };
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let valid = host == "*"
            || (!name.is_empty()
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                }))
            || host.parse::<std::net::Ipv6Addr>().is_ok();
        valid.then_some(Self { host, port })
    }

    /// Whether a request to `host:port` is allowed by this entry.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let host_ok = match self.host.strip_prefix("*.") {
            _ if self.host == "*" => true,
            Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
            None => host == self.host,
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

pub fn parse_address(value: &str) -> Option<SocketAddr> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Some(addr);
    }
    let port: u16 = value.parse().ok()?;
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
}

/// `250ms`, `30s`, `2m`, `1h`; a bare number is seconds.
pub fn parse_duration(value: &str) -> Option<Duration> {
    let split = value
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" | "" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    (0.0..1e9)
        .contains(&seconds)
        .then(|| Duration::from_secs_f64(seconds))
}

/// Kubernetes quantities: `64Mi`, `1Gi`, `500M`, `10k`, or bytes.
pub fn parse_size(value: &str) -> Option<u64> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().ok()?;
    let factor: u64 = match unit {
        "" => 1,
        "k" | "K" => 1000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        "Gi" | "GiB" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// WASMHTTP_KEYVALUE's Redis server: `redis://HOST:PORT[/DB]`. No
/// credentials: an address is logged, a password never is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisAddress {
    pub host: String,
    pub port: u16,
    pub db: i64,
}

impl RedisAddress {
    pub fn parse(value: &str) -> Result<Self, String> {
        let rest = value
            .strip_prefix("redis://")
            .ok_or("the address starts with redis://")?;
        if rest.contains('@') {
            return Err(
                "the address holds no user or password: set WASMHTTP_KEYVALUE_PASSWORD".into(),
            );
        }
        let (authority, db) = match rest.split_once('/') {
            Some((authority, "")) => (authority, 0),
            Some((authority, db)) => (
                authority,
                db.parse::<i64>()
                    .ok()
                    .filter(|db| (0..=1_000_000).contains(db))
                    .ok_or("the database after the `/` is a number")?,
            ),
            None => (rest, 0),
        };
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, port) = v6
                    .split_once("]:")
                    .ok_or("an IPv6 address is [ADDR]:PORT")?;
                (host, port)
            }
            None => authority
                .rsplit_once(':')
                .ok_or("the address has a :PORT")?,
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or("the port is a number from 1 to 65535")?;
        let valid_name = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'));
        if !valid_name {
            return Err(format!("{host:?} is not a host name or address"));
        }
        Ok(Self {
            host: host.to_string(),
            port,
            db,
        })
    }
}

impl std::fmt::Display for RedisAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "redis://[{}]:{}/{}", self.host, self.port, self.db)
        } else {
            write!(f, "redis://{}:{}/{}", self.host, self.port, self.db)
        }
    }
}

/// A credential: it prints as `<redacted>`, so no log line, error or
/// `Debug` of the settings shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: &str) -> Self {
        Self(value.to_string())
    }

    /// The value itself, for the one place that hands it on.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}
