//! The shim's settings: every `WASMHTTP_*` variable of the container (or of the
//! `wasmhttp serve` process) parsed once into [`Settings`]. Everything else in
//! the container's environment belongs to the guest.
//!
//! Some defaults follow the container's resource limits (Kubernetes'
//! `resources.limits`, found in the OCI spec): see [`Limits`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

mod limits;
pub mod table;
mod values;

pub use limits::Limits;
pub use values::{HostPattern, RedisAddress, Secret};

/// Variables with this prefix configure the shim and are never shown to the guest.
pub const PREFIX: &str = "WASMHTTP_";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// What the program is run as (see [`Mode`]).
    pub mode: Mode,
    /// Where the HTTP listener binds, inside the container's network namespace.
    pub listen: SocketAddr,
    /// Where /healthz, /readyz and /metrics are served; `None` when `off`.
    pub admin_listen: Option<SocketAddr>,
    pub drain_timeout: Duration,
    pub request_timeout: Duration,
    /// Bytes one instance's linear memories may grow to, in total.
    pub max_instance_memory: u64,
    pub max_concurrency: usize,
    pub max_body: u64,
    pub header_timeout: Duration,
    /// How long a keep-alive connection may wait between requests.
    pub idle_timeout: Duration,
    pub access_log: AccessLog,
    /// Where the guest may send HTTP requests; empty denies all.
    pub allowed_outbound_hosts: Vec<HostPattern>,
    /// The guest may open sockets and look up names (wasi:sockets).
    pub allow_sockets: bool,
    /// Requests one instance serves in sequence before it is dropped; 1 keeps
    /// every request in an instance of its own.
    pub instance_reuse: u32,
    /// Requests one wasi:http 0.3 instance serves at the same time.
    pub instance_concurrency: usize,
    /// wasi:config: directories whose files are keys, first wins.
    pub config_dirs: Vec<std::path::PathBuf>,
    /// wasi:config: the container's variables with this prefix are keys too.
    pub config_env_prefix: Option<String>,
    /// wasi:keyvalue's store.
    pub keyvalue: KeyvalueBackend,
    /// wasi:keyvalue: the buckets a guest may open.
    pub keyvalue_buckets: Vec<String>,
    /// Bytes the `memory` store's keys and values may take.
    pub keyvalue_memory_limit: u64,
    pub keyvalue_password: Option<Secret>,
    /// The least wasi:logging level written to the container log.
    pub guest_log_level: GuestLogLevel,
    /// Bytes of output lines held while the container log's reader is behind.
    pub log_buffer: u64,
}

/// WASMHTTP_KEYVALUE: where wasi:keyvalue's buckets live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyvalueBackend {
    /// No store: every `open` is `no-such-store`.
    Off,
    /// One store in the container's memory.
    Memory,
    /// A Redis (or Valkey) server.
    Redis(RedisAddress),
}

/// wasi:logging's levels, least first, and `Off` above them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GuestLogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
    Off,
}

impl GuestLogLevel {
    pub fn name(self) -> &'static str {
        match self {
            GuestLogLevel::Trace => "trace",
            GuestLogLevel::Debug => "debug",
            GuestLogLevel::Info => "info",
            GuestLogLevel::Warn => "warn",
            GuestLogLevel::Error => "error",
            GuestLogLevel::Critical => "critical",
            GuestLogLevel::Off => "off",
        }
    }
}

impl std::str::FromStr for GuestLogLevel {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, ()> {
        [
            GuestLogLevel::Trace,
            GuestLogLevel::Debug,
            GuestLogLevel::Info,
            GuestLogLevel::Warn,
            GuestLogLevel::Error,
            GuestLogLevel::Critical,
            GuestLogLevel::Off,
        ]
        .into_iter()
        .find(|level| level.name() == value.to_ascii_lowercase())
        .ok_or(())
    }
}

/// WASMHTTP_MODE: how the program is run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// By what it exports: an HTTP handler is served, a command runs once.
    #[default]
    Auto,
    /// An HTTP handler, served; anything else refuses to start.
    Proxy,
    /// A command (component or preview 1 module), run once.
    Command,
    /// A command (component or preview 1 module) run once per request as a
    /// CGI/1.1 program: the request in its environment and stdin, the
    /// response from its stdout.
    Cgi,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Auto => "auto",
            Mode::Proxy => "proxy",
            Mode::Command => "command",
            Mode::Cgi => "cgi",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessLog {
    Off,
    Json,
}

/// The pooling allocator's slots: more instances than this cannot exist at once.
pub const MAX_INSTANCES: usize = 1000;
/// WASMHTTP_INSTANCE_REUSE's upper bound: high enough for any benefit, low enough
/// that a slow leak in a guest is eventually reset.
pub const MAX_INSTANCE_REUSE: u32 = 100_000;
/// The most a 32-bit linear memory can hold.
pub const WASM32_MEMORY: u64 = 4 << 30;

impl Settings {
    /// The idle limits of a connection, on both listeners.
    #[cfg(feature = "runtime")]
    pub fn idle_limits(&self) -> crate::http::connection::IdleLimits {
        crate::http::connection::IdleLimits {
            first_request: self.header_timeout,
            between_requests: self.idle_timeout,
        }
    }

    /// Every setting at its default (see [`table::TABLE`]), some of which
    /// follow `limits`.
    fn defaults(limits: &Limits) -> Self {
        let mut settings = Self {
            mode: Mode::Auto,
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            admin_listen: None,
            drain_timeout: Duration::ZERO,
            request_timeout: Duration::ZERO,
            max_instance_memory: 0,
            max_concurrency: 0,
            max_body: 0,
            header_timeout: Duration::ZERO,
            idle_timeout: Duration::ZERO,
            access_log: AccessLog::Off,
            allowed_outbound_hosts: Vec::new(),
            allow_sockets: false,
            instance_reuse: 0,
            instance_concurrency: 0,
            config_dirs: Vec::new(),
            config_env_prefix: None,
            keyvalue: KeyvalueBackend::Off,
            keyvalue_buckets: Vec::new(),
            keyvalue_memory_limit: 0,
            keyvalue_password: None,
            guest_log_level: GuestLogLevel::Off,
            log_buffer: 0,
        };
        for setting in table::TABLE {
            let value = setting.default_value(limits);
            (setting.apply)(&mut settings, &value)
                .unwrap_or_else(|_| panic!("the default {}={value:?} is refused", setting.name));
        }
        settings
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::defaults(&Limits::default())
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
    pub fn from_entries<S: AsRef<str>>(
        entries: &[S],
        limits: &Limits,
    ) -> Result<Self, SettingError> {
        let pairs = entries.iter().map(|entry| {
            let entry = entry.as_ref();
            match entry.split_once('=') {
                Some((name, value)) => (name.to_string(), value.to_string()),
                None => (entry.to_string(), String::new()),
            }
        });
        Self::from_pairs(pairs, limits)
    }

    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
        limits: &Limits,
    ) -> Result<Self, SettingError> {
        let mut env = Self {
            settings: Settings::defaults(limits),
            guest_env: Vec::new(),
        };
        env.apply(pairs, false)?;
        Ok(env)
    }

    /// The environment of one route of an app: this (the container's), with
    /// the route's `NAME=VALUE` entries over it: `WASMHTTP_*` ones as route
    /// settings (only those the table marks `per_route`), the rest as the
    /// component's variables, replacing the container's of the same name.
    pub fn for_route<S: AsRef<str>>(&self, entries: &[S]) -> Result<Self, SettingError> {
        let mut env = self.clone();
        let pairs = entries.iter().map(|entry| {
            let (name, value) = entry
                .as_ref()
                .split_once('=')
                .unwrap_or((entry.as_ref(), ""));
            (name.to_string(), value.to_string())
        });
        env.apply(pairs, true)?;
        Ok(env)
    }

    fn apply(
        &mut self,
        pairs: impl IntoIterator<Item = (String, String)>,
        route: bool,
    ) -> Result<(), SettingError> {
        let settings = &mut self.settings;
        for (name, value) in pairs {
            if !name.starts_with(PREFIX) {
                if route {
                    self.guest_env.retain(|(existing, _)| *existing != name);
                }
                self.guest_env.push((name, value));
                continue;
            }
            let Some(setting) = table::find(&name) else {
                let known: Vec<&str> = table::TABLE.iter().map(|s| s.name).collect();
                return Err(SettingError {
                    variable: name,
                    value,
                    accepted: format!(
                        "no such setting; settings start with {PREFIX} and are one of: {}",
                        known.join(", ")
                    ),
                });
            };
            // a secret's value never reaches an error message
            let shown = if setting.secret {
                "<redacted>".to_string()
            } else {
                value.clone()
            };
            if route && !setting.per_route {
                let per_route: Vec<&str> = table::TABLE
                    .iter()
                    .filter(|s| s.per_route)
                    .map(|s| s.name)
                    .collect();
                return Err(SettingError {
                    variable: name,
                    value: shown,
                    accepted: format!(
                        "a setting of the container, not of one route; a route may set {}",
                        per_route.join(", ")
                    ),
                });
            }
            if let Err(detail) = (setting.apply)(settings, value.trim()) {
                let accepted = match detail {
                    Some(detail) => format!("{} ({detail})", setting.accepted),
                    None => setting.accepted.to_string(),
                };
                return Err(SettingError {
                    variable: name,
                    value: shown,
                    accepted,
                });
            }
        }
        if settings.mode == Mode::Cgi && settings.instance_reuse > 1 {
            // each request runs the program from its start: there is no
            // instance to hand a second request to
            return Err(SettingError {
                variable: "WASMHTTP_INSTANCE_REUSE".into(),
                value: settings.instance_reuse.to_string(),
                accepted: "1 with WASMHTTP_MODE=cgi, which runs the program once per request"
                    .into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use values::{parse_duration, parse_size};

    fn parse(entries: &[&str]) -> Result<Environment, SettingError> {
        Environment::from_entries(entries, &Limits::default())
    }

    #[test]
    fn a_route_sets_its_own_limits_and_variables_over_the_containers() {
        let container = parse(&["WASMHTTP_REQUEST_TIMEOUT=10s", "GREETING=hi", "LANG=C"]).unwrap();
        let route = container
            .for_route(&["WASMHTTP_REQUEST_TIMEOUT=2s", "GREETING=hello", "ROUTE=api"])
            .unwrap();
        assert_eq!(route.settings.request_timeout, Duration::from_secs(2));
        assert_eq!(route.settings.listen, container.settings.listen);
        assert_eq!(
            route.guest_env,
            vec![
                ("LANG".into(), "C".into()),
                ("GREETING".into(), "hello".into()),
                ("ROUTE".into(), "api".into())
            ]
        );
        let err = container.for_route(&["WASMHTTP_LISTEN=9000"]).unwrap_err();
        assert!(err.to_string().contains("not of one route"), "{err}");
        assert!(
            err.to_string().contains("WASMHTTP_REQUEST_TIMEOUT"),
            "{err}"
        );
        let err = container
            .for_route(&["WASMHTTP_KEYVALUE_PASSWORD=hunter2"])
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = container
            .for_route(&["WASMHTTP_REQUEST_TIMEOUT=never"])
            .unwrap_err();
        assert!(err.to_string().contains("\"never\""), "{err}");
        let err = container
            .for_route(&["WASMHTTP_MODE=cgi", "WASMHTTP_INSTANCE_REUSE=4"])
            .unwrap_err();
        assert_eq!(err.variable, "WASMHTTP_INSTANCE_REUSE");
    }

    #[test]
    fn defaults_without_settings() {
        let env = parse(&["PATH=/bin", "GREETING=hi"]).unwrap();
        assert_eq!(env.settings, Settings::default());
        assert_eq!(env.settings.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(
            env.settings.admin_listen,
            Some("0.0.0.0:9090".parse().unwrap())
        );
        assert_eq!(env.settings.drain_timeout, Duration::from_secs(25));
        assert_eq!(env.settings.request_timeout, Duration::from_secs(30));
        assert_eq!(env.settings.max_instance_memory, 4 << 30);
        assert_eq!(env.settings.max_concurrency, MAX_INSTANCES);
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
        let env = parse(&["WASMHTTP_LISTEN=127.0.0.1:9000", "A=b=c", "EMPTY"]).unwrap();
        assert_eq!(env.settings.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(
            env.guest_env,
            vec![("A".into(), "b=c".into()), ("EMPTY".into(), String::new())]
        );
    }

    #[test]
    fn listen_accepts_ipv6_and_bare_ports() {
        let v6 = parse(&["WASMHTTP_LISTEN=[::1]:81"]).unwrap();
        assert_eq!(v6.settings.listen, "[::1]:81".parse().unwrap());
        let port = parse(&["WASMHTTP_LISTEN=9090"]).unwrap();
        assert_eq!(port.settings.listen, "0.0.0.0:9090".parse().unwrap());
        let off = parse(&["WASMHTTP_ADMIN_LISTEN=off"]).unwrap();
        assert_eq!(off.settings.admin_listen, None);
    }

    #[test]
    fn bad_values_name_variable_value_and_what_is_accepted() {
        let err = parse(&["WASMHTTP_LISTEN=localhost:http"]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("WASMHTTP_LISTEN"), "{message}");
        assert!(message.contains("\"localhost:http\""), "{message}");
        assert!(message.contains("socket address"), "{message}");
        assert!(parse(&["WASMHTTP_LISTEN=70000"]).is_err());
        for (entry, says) in [
            ("WASMHTTP_DRAIN_TIMEOUT=soon", "duration"),
            ("WASMHTTP_REQUEST_TIMEOUT=0s", "duration"),
            ("WASMHTTP_MAX_INSTANCE_MEMORY=8Gi", "between 64Ki and 4Gi"),
            ("WASMHTTP_MAX_INSTANCE_MEMORY=lots", "size"),
            ("WASMHTTP_MAX_CONCURRENCY=0", "at most 1000"),
            ("WASMHTTP_MAX_CONCURRENCY=5000", "at most 1000"),
            ("WASMHTTP_MAX_BODY=1Ti", "size"),
            ("WASMHTTP_ACCESS_LOG=yaml", "json"),
            ("WASMHTTP_ADMIN_LISTEN=no", "off"),
            ("WASMHTTP_ALLOW_SOCKETS=yes", "`0` or `1`"),
            ("WASMHTTP_INSTANCE_REUSE=0", "from 1 to 100000"),
            ("WASMHTTP_INSTANCE_REUSE=many", "from 1 to 100000"),
        ] {
            let message = parse(&[entry]).unwrap_err().to_string();
            let (name, value) = entry.split_once('=').unwrap();
            assert!(
                message.contains(name)
                    && message.contains(&format!("{value:?}"))
                    && message.contains(says),
                "{entry}: {message}"
            );
        }
    }

    #[test]
    fn instances_are_fresh_per_request_unless_reuse_is_asked_for() {
        assert_eq!(parse(&[]).unwrap().settings.instance_reuse, 1);
        let reuse = parse(&["WASMHTTP_INSTANCE_REUSE=500"]).unwrap();
        assert_eq!(reuse.settings.instance_reuse, 500);
        assert!(parse(&["WASMHTTP_INSTANCE_REUSE=100001"]).is_err());
    }

    #[test]
    fn modes_and_what_cgi_excludes() {
        assert_eq!(parse(&[]).unwrap().settings.mode, Mode::Auto);
        for (value, mode) in [
            ("auto", Mode::Auto),
            ("proxy", Mode::Proxy),
            ("command", Mode::Command),
            ("cgi", Mode::Cgi),
        ] {
            let env = parse(&[&format!("WASMHTTP_MODE={value}")]).unwrap();
            assert_eq!(env.settings.mode, mode);
            assert_eq!(mode.to_string(), value);
        }
        let err = parse(&["WASMHTTP_MODE=fastcgi"]).unwrap_err();
        assert_eq!(err.variable, "WASMHTTP_MODE");
        assert!(err.to_string().contains("`cgi`"), "{err}");
        // reuse has no meaning when every request starts the program afresh
        let err = parse(&["WASMHTTP_INSTANCE_REUSE=8", "WASMHTTP_MODE=cgi"]).unwrap_err();
        assert_eq!(err.variable, "WASMHTTP_INSTANCE_REUSE");
        assert!(err.to_string().contains("WASMHTTP_MODE=cgi"), "{err}");
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_size("64Mi"), Some(64 << 20));
        assert_eq!(parse_size("500M"), Some(500_000_000));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("1.5Gi"), None);
        let env = parse(&["WASMHTTP_IDLE_TIMEOUT=5s"]).unwrap();
        assert_eq!(env.settings.idle_timeout, Duration::from_secs(5));
        let err = parse(&["WASMHTTP_IDLE_TIMEOUT=0"]).unwrap_err();
        assert_eq!(err.variable, "WASMHTTP_IDLE_TIMEOUT");
    }

    #[test]
    fn outbound_host_patterns() {
        let env = parse(&[
            "WASMHTTP_ALLOWED_OUTBOUND_HOSTS=api.example.com, *.svc.cluster.local ,127.0.0.1:8080,[::1]:9000",
        ])
        .unwrap();
        let allowed = |host: &str, port: u16| {
            env.settings
                .allowed_outbound_hosts
                .iter()
                .any(|p| p.matches(host, port))
        };
        assert!(allowed("api.example.com", 443));
        assert!(allowed("API.Example.com", 80));
        assert!(!allowed("example.com", 443));
        assert!(!allowed("evil-api.example.com", 443));
        assert!(allowed("db.default.svc.cluster.local", 5432));
        assert!(
            !allowed("svc.cluster.local", 80),
            "a wildcard covers subdomains only"
        );
        assert!(allowed("127.0.0.1", 8080));
        assert!(!allowed("127.0.0.1", 8081));
        assert!(allowed("[::1]", 9000));
        assert!(
            !parse(&["A=b"])
                .unwrap()
                .settings
                .allowed_outbound_hosts
                .iter()
                .any(|p| p.matches("x", 1))
        );
        let any = parse(&["WASMHTTP_ALLOWED_OUTBOUND_HOSTS=*"]).unwrap();
        assert!(any.settings.allowed_outbound_hosts[0].matches("anything.at.all", 1));
        let err = parse(&["WASMHTTP_ALLOWED_OUTBOUND_HOSTS=ok.com,bad host,x:port"]).unwrap_err();
        assert!(err.to_string().contains("\"bad host\""), "{err}");
    }

    #[test]
    fn platform_settings_and_what_they_refuse() {
        let env = parse(&[
            "WASMHTTP_KEYVALUE=redis://10.0.0.7:6380/2",
            "WASMHTTP_KEYVALUE_PASSWORD=hunter2",
            "WASMHTTP_KEYVALUE_BUCKETS=default, sessions",
            "WASMHTTP_CONFIG_DIRS=/etc/app/config,/etc/app/secret",
            "WASMHTTP_CONFIG_ENV_PREFIX=APP_",
            "WASMHTTP_GUEST_LOG_LEVEL=WARN",
        ])
        .unwrap();
        let settings = &env.settings;
        assert_eq!(
            settings.keyvalue,
            KeyvalueBackend::Redis(RedisAddress {
                host: "10.0.0.7".into(),
                port: 6380,
                db: 2
            })
        );
        assert_eq!(settings.keyvalue_buckets, ["default", "sessions"]);
        assert_eq!(
            settings.keyvalue_password.as_ref().unwrap().expose(),
            "hunter2"
        );
        assert!(!format!("{settings:?}").contains("hunter2"), "{settings:?}");
        assert_eq!(settings.config_dirs.len(), 2);
        assert_eq!(settings.config_env_prefix.as_deref(), Some("APP_"));
        assert_eq!(settings.guest_log_level, GuestLogLevel::Warn);
        let defaults = Settings::default();
        assert_eq!(defaults.keyvalue, KeyvalueBackend::Memory);
        assert_eq!(defaults.keyvalue_buckets, ["default"]);
        assert_eq!(defaults.keyvalue_memory_limit, 16 << 20);
        assert_eq!(defaults.guest_log_level, GuestLogLevel::Info);
        assert!(defaults.config_dirs.is_empty() && defaults.config_env_prefix.is_none());
        let v6 = parse(&["WASMHTTP_KEYVALUE=redis://[::1]:6379"]).unwrap();
        assert_eq!(
            v6.settings.keyvalue,
            KeyvalueBackend::Redis(RedisAddress {
                host: "::1".into(),
                port: 6379,
                db: 0
            })
        );
        // an address with a password is refused, and the error never shows it
        let err = parse(&["WASMHTTP_KEYVALUE=redis://:hunter2@redis:6379"]).unwrap_err();
        let message = err.to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(
            message.contains("<redacted>") && message.contains("WASMHTTP_KEYVALUE_PASSWORD"),
            "{message}"
        );
        for (entry, says) in [
            ("WASMHTTP_KEYVALUE=postgres://db:5432", "redis://"),
            ("WASMHTTP_KEYVALUE=redis://redis", ":PORT"),
            ("WASMHTTP_KEYVALUE=redis://redis:6379/x", "database"),
            ("WASMHTTP_KEYVALUE_BUCKETS=a b", "\"a b\""),
            ("WASMHTTP_KEYVALUE_MEMORY_LIMIT=lots", "size"),
            ("WASMHTTP_CONFIG_DIRS=relative/dir", "absolute"),
            ("WASMHTTP_CONFIG_ENV_PREFIX=WASMHTTP_", "the shim's own"),
            ("WASMHTTP_GUEST_LOG_LEVEL=loud", "`critical`"),
        ] {
            let message = parse(&[entry]).unwrap_err().to_string();
            let name = entry.split_once('=').unwrap().0;
            assert!(
                message.contains(name) && message.contains(says),
                "{entry}: {message}"
            );
        }
    }

    #[test]
    fn unknown_settings_are_refused_not_ignored() {
        let err = parse(&["WASMHTTP_LISTNE=:80"]).unwrap_err();
        assert_eq!(err.variable, "WASMHTTP_LISTNE");
        assert!(err.to_string().contains("WASMHTTP_LISTEN"), "{err}");
    }
}
