//! The shim's settings: every `WASMHTTP_*` variable of the container (or of the
//! `wasmhttp serve` process) parsed once into [`Settings`]. Everything else in
//! the container's environment belongs to the guest.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Variables with this prefix configure the shim and are never shown to the guest.
pub const PREFIX: &str = "WASMHTTP_";

/// One entry per known setting: name, accepted values, default. The README's
/// configuration table lists the same.
pub const KNOWN: &[(&str, &str, &str)] = &[(
    "WASMHTTP_LISTEN",
    "a socket address (`0.0.0.0:8080`, `[::]:8080`, `127.0.0.1:9000`) or a bare port (`8080`)",
    "0.0.0.0:8080",
)];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Where the HTTP listener binds, inside the container's network namespace.
    pub listen: SocketAddr,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080),
        }
    }
}

/// A setting that cannot be used, with enough said to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingError {
    pub variable: String,
    pub value: String,
    pub accepted: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}={:?}: expected {}",
            self.variable, self.value, self.accepted
        )
    }
}

impl std::error::Error for SettingError {}

/// The container's environment, split into the shim's settings and the guest's variables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Environment {
    pub settings: Settings,
    pub guest_env: Vec<(String, String)>,
}

impl Environment {
    /// Splits `NAME=value` entries (as in an OCI spec's `process.env`).
    pub fn from_entries<S: AsRef<str>>(entries: &[S]) -> Result<Self, SettingError> {
        let pairs = entries.iter().map(|entry| {
            let entry = entry.as_ref();
            match entry.split_once('=') {
                Some((name, value)) => (name.to_string(), value.to_string()),
                None => (entry.to_string(), String::new()),
            }
        });
        Self::from_pairs(pairs)
    }

    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingError> {
        let mut settings = Settings::default();
        let mut guest_env = Vec::new();
        for (name, value) in pairs {
            if !name.starts_with(PREFIX) {
                guest_env.push((name, value));
                continue;
            }
            match name.as_str() {
                "WASMHTTP_LISTEN" => settings.listen = parse_listen(&name, &value)?,
                _ => {
                    let known: Vec<&str> = KNOWN.iter().map(|(n, _, _)| *n).collect();
                    return Err(SettingError {
                        variable: name,
                        value,
                        accepted: format!(
                            "no such setting; settings start with {PREFIX} and are one of: {}",
                            known.join(", ")
                        ),
                    });
                }
            }
        }
        Ok(Self {
            settings,
            guest_env,
        })
    }
}

fn accepted(name: &str) -> String {
    KNOWN
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, a, _)| a.to_string())
        .unwrap_or_default()
}

fn parse_listen(name: &str, value: &str) -> Result<SocketAddr, SettingError> {
    let error = || SettingError {
        variable: name.into(),
        value: value.into(),
        accepted: accepted(name),
    };
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let port: u16 = value.parse().map_err(|_| error())?;
    Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_settings() {
        let env = Environment::from_entries(&["PATH=/bin", "GREETING=hi"]).unwrap();
        assert_eq!(env.settings.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(
            env.guest_env,
            vec![
                ("PATH".into(), "/bin".into()),
                ("GREETING".into(), "hi".into())
            ]
        );
    }

    #[test]
    fn settings_are_taken_out_of_the_guest_env() {
        let env = Environment::from_entries(&["WASMHTTP_LISTEN=127.0.0.1:9000", "A=b=c", "EMPTY"])
            .unwrap();
        assert_eq!(env.settings.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(
            env.guest_env,
            vec![("A".into(), "b=c".into()), ("EMPTY".into(), String::new())]
        );
    }

    #[test]
    fn listen_accepts_ipv6_and_bare_ports() {
        let v6 = Environment::from_entries(&["WASMHTTP_LISTEN=[::1]:81"]).unwrap();
        assert_eq!(v6.settings.listen, "[::1]:81".parse().unwrap());
        let port = Environment::from_entries(&["WASMHTTP_LISTEN=9090"]).unwrap();
        assert_eq!(port.settings.listen, "0.0.0.0:9090".parse().unwrap());
    }

    #[test]
    fn bad_listen_names_variable_value_and_what_is_accepted() {
        let err = Environment::from_entries(&["WASMHTTP_LISTEN=localhost:http"]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("WASMHTTP_LISTEN"), "{message}");
        assert!(message.contains("\"localhost:http\""), "{message}");
        assert!(message.contains("socket address"), "{message}");
        assert!(Environment::from_entries(&["WASMHTTP_LISTEN=70000"]).is_err());
    }

    #[test]
    fn unknown_settings_are_refused_not_ignored() {
        let err = Environment::from_entries(&["WASMHTTP_LISTNE=:80"]).unwrap_err();
        assert_eq!(err.variable, "WASMHTTP_LISTNE");
        assert!(err.to_string().contains("WASMHTTP_LISTEN"), "{err}");
    }
}
