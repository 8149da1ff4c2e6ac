//! Every setting in one table: its name, what it accepts (said in errors and
//! the README), its default (parsed like a value that was set), an example,
//! and how a value is applied. Parsing, defaults, error messages, the
//! README's configuration table and the chart's values schema all come from
//! here; tests check that the README and the schema say what this says.

use super::values::{HostPattern, parse_address, parse_duration, parse_size};
use super::values::{RedisAddress, Secret};
use super::{
    AccessLog, KeyvalueBackend, Limits, MAX_INSTANCE_REUSE, MAX_INSTANCES, Mode, Settings,
    WASM32_MEMORY,
};

pub struct Setting {
    pub name: &'static str,
    /// What values it takes, for a person: in errors and the README.
    pub accepted: &'static str,
    pub default: Default,
    /// Said after the default in the README (or instead of it, when empty).
    pub default_note: &'static str,
    pub example: &'static str,
    /// Its value is never shown (an error says `<redacted>`): it may hold a
    /// credential.
    pub secret: bool,
    /// A route of an app may set it for its component (in `app.toml`'s
    /// `env`); the others are the container's alone.
    pub per_route: bool,
    /// Sets the value on `Settings`; `Err` with more to say than `accepted`,
    /// or nothing.
    pub apply: fn(&mut Settings, &str) -> Result<(), Option<String>>,
}

pub enum Default {
    /// This value, applied as if it had been set.
    Value(&'static str),
    /// A value that follows the container's resource limits.
    FromLimits(fn(&Limits) -> String),
}

impl Setting {
    /// The value applied when the setting is absent.
    pub fn default_value(&self, limits: &Limits) -> String {
        match self.default {
            Default::Value(value) => value.into(),
            Default::FromLimits(derive) => derive(limits),
        }
    }

    /// The README's row for this setting.
    pub fn readme_row(&self) -> String {
        let default = match self.default {
            Default::Value(value) if !value.is_empty() => format!("`{value}`{}", self.default_note),
            _ => self.default_note.to_string(),
        };
        let per_route = if self.per_route { "yes" } else { "" };
        format!(
            "| `{}` | {} | {default} | {} | {per_route} |",
            self.name, self.accepted, self.example
        )
    }
}

pub fn find(name: &str) -> Option<&'static Setting> {
    TABLE.iter().find(|setting| setting.name == name)
}

fn duration(value: &str, zero_allowed: bool) -> Result<std::time::Duration, Option<String>> {
    parse_duration(value)
        .filter(|d| zero_allowed || !d.is_zero())
        .ok_or(None)
}

fn number<N: std::str::FromStr + PartialOrd>(
    value: &str,
    range: std::ops::RangeInclusive<N>,
) -> Result<N, Option<String>> {
    value.parse().ok().filter(|n| range.contains(n)).ok_or(None)
}

pub const TABLE: &[Setting] = &[
    Setting {
        name: "WASMHTTP_MODE",
        accepted: "`auto` (an HTTP handler is served, a wasi:cli command runs once), `proxy` (only an HTTP handler), `command` (run once: a wasi:cli command component or a WASI preview 1 module) or `cgi` (a wasi:cli command component or a WASI preview 1 module runs once per request, as a CGI program)",
        default: Default::Value("auto"),
        default_note: "",
        example: "`cgi`",
        secret: false,
        per_route: true,
        apply: |settings, value| {
            settings.mode = match value {
                "auto" | "" => Mode::Auto,
                "proxy" => Mode::Proxy,
                "command" => Mode::Command,
                "cgi" => Mode::Cgi,
                _ => return Err(None),
            };
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_LISTEN",
        accepted: "a socket address (`0.0.0.0:8080`, `[::]:8080`, `127.0.0.1:9000`) or a bare port (`8080`)",
        default: Default::Value("0.0.0.0:8080"),
        default_note: "",
        example: "`127.0.0.1:9000`, `[::]:8080`, `8081`",
        secret: false,
        per_route: false,
        apply: |settings, value| {
            settings.listen = parse_address(value).ok_or(None)?;
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_ADMIN_LISTEN",
        accepted: "a socket address or a bare port for /healthz, /readyz and /metrics, or `off`",
        default: Default::Value("0.0.0.0:9090"),
        default_note: "",
        example: "`9091`, `off`",
        secret: false,
        per_route: false,
        apply: |settings, value| {
            settings.admin_listen = match value {
                "off" => None,
                value => Some(parse_address(value).ok_or(None)?),
            };
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_DRAIN_TIMEOUT",
        accepted: "a duration (`25s`, `500ms`, `2m`, `1h`; a bare number is seconds) that requests in flight get after SIGTERM",
        default: Default::Value("25s"),
        default_note: " (under Kubernetes' 30 s grace period)",
        example: "`10s`",
        secret: false,
        per_route: false,
        apply: |settings, value| {
            settings.drain_timeout = duration(value, true)?;
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_REQUEST_TIMEOUT",
        accepted: "a positive duration (`30s`, `1500ms`, `1m`) after which a request is answered 504",
        default: Default::Value("30s"),
        default_note: "",
        example: "`1500ms`",
        secret: false,
        per_route: true,
        apply: |settings, value| {
            settings.request_timeout = duration(value, false)?;
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_MAX_INSTANCE_MEMORY",
        accepted: "a size between 64Ki and 4Gi (`64Mi`, `1Gi`, `500M`; `Ki`, `Mi`, `Gi`, `k`, `M`, `G` or bytes) one instance's linear memories may grow to",
        default: Default::FromLimits(|limits| limits.default_max_instance_memory().to_string()),
        default_note: "half the container's memory limit; `4Gi` without one",
        example: "`64Mi`",
        secret: false,
        per_route: true,
        apply: |settings, value| {
            settings.max_instance_memory = parse_size(value)
                .filter(|size| (1 << 16..=WASM32_MEMORY).contains(size))
                .ok_or(None)?;
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_MAX_CONCURRENCY",
        accepted: "a number of requests served at once, 1 or more and at most 1000; more are answered 503",
        default: Default::FromLimits(|limits| limits.default_max_concurrency().to_string()),
        default_note: "64 per CPU of the container's CPU limit (at least 16), at most one per 2 MiB of its memory limit, at most 1000",
        example: "`32`",
        secret: false,
        per_route: true,
        apply: |settings, value| {
            settings.max_concurrency = number(value, 1..=MAX_INSTANCES)?;
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_MAX_BODY",
        accepted: "a size (`10Mi`, `1G`, bytes) a request body may have; larger ones are answered 413",
        default: Default::Value("16Mi"),
        default_note: "",
        example: "`1Mi`",
        secret: false,
        per_route: true,
        apply: |settings, value| {
            settings.max_body = parse_size(value).ok_or(None)?;
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_HEADER_TIMEOUT",
        accepted: "a positive duration within which a client must send a request's headers (and a new connection its first request)",
        default: Default::Value("10s"),
        default_note: "",
        example: "`5s`",
        secret: false,
        per_route: false,
        apply: |settings, value| {
            settings.header_timeout = duration(value, false)?;
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_IDLE_TIMEOUT",
        accepted: "a positive duration after which a keep-alive connection without a request is closed",
        default: Default::Value("60s"),
        default_note: "",
        example: "`5s`",
        secret: false,
        per_route: false,
        apply: |settings, value| {
            settings.idle_timeout = duration(value, false)?;
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_ALLOWED_OUTBOUND_HOSTS",
        accepted: "a comma-separated list of `host`, `host:port`, `*.suffix` (any subdomain), `[v6addr]:port` or `*` (any host)",
        default: Default::Value(""),
        default_note: "empty: all outbound HTTP is denied",
        example: "`api.example.com,*.svc.cluster.local,10.0.0.5:8080`",
        secret: false,
        per_route: true,
        apply: |settings, value| {
            settings.allowed_outbound_hosts = value
                .split(',')
                .filter(|entry| !entry.trim().is_empty())
                .map(|entry| {
                    HostPattern::parse(entry).ok_or_else(|| {
                        Some(format!("the entry {:?} is none of these", entry.trim()))
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_ALLOW_SOCKETS",
        accepted: "`0` or `1`: whether the guest may use wasi:sockets (TCP/UDP, name lookups) in the container's network namespace",
        default: Default::Value("0"),
        default_note: "",
        example: "`1`",
        secret: false,
        per_route: true,
        apply: |settings, value| {
            settings.allow_sockets = match value {
                "1" | "true" => true,
                "0" | "false" | "" => false,
                _ => return Err(None),
            };
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_INSTANCE_REUSE",
        accepted: "a number from 1 to 100000: how many requests one guest instance may serve, one after another (wasi:http 0.3: also at the same time, see WASMHTTP_INSTANCE_CONCURRENCY); 1: a fresh instance for every request",
        default: Default::Value("1"),
        default_note: ": a fresh instance for every request",
        example: "`64`",
        secret: false,
        per_route: true,
        apply: |settings, value| {
            settings.instance_reuse = number(value, 1..=MAX_INSTANCE_REUSE)?;
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_INSTANCE_CONCURRENCY",
        accepted: "a number from 1 to 1000: how many requests one wasi:http 0.3 instance may serve at the same time, when WASMHTTP_INSTANCE_REUSE lets it serve more than one (0.2 handlers and CGI programs serve one at a time)",
        default: Default::Value("8"),
        default_note: "",
        example: "`32`",
        secret: false,
        per_route: true,
        apply: |settings, value| {
            settings.instance_concurrency = number(value, 1..=MAX_INSTANCES)?;
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_ACCESS_LOG",
        accepted: "`off` or `json` (one JSON line per request on stderr)",
        default: Default::Value("off"),
        default_note: "",
        example: "`json`",
        secret: false,
        per_route: false,
        apply: |settings, value| {
            settings.access_log = match value {
                "off" | "" => AccessLog::Off,
                "json" => AccessLog::Json,
                _ => return Err(None),
            };
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_CONFIG_DIRS",
        accepted: "a comma-separated list of directories whose files are wasi:config keys (file name = key, contents = value), such as a mounted ConfigMap or Secret; read at every call, so kubelet's updates are seen; a key in several: the first directory wins",
        default: Default::Value(""),
        default_note: "empty: no directory",
        example: "`/etc/app/config,/etc/app/secret`",
        secret: false,
        per_route: true,
        apply: |settings, value| {
            settings.config_dirs = value
                .split(',')
                .map(str::trim)
                .filter(|dir| !dir.is_empty())
                .map(|dir| {
                    if dir.starts_with('/') {
                        Ok(dir.into())
                    } else {
                        Err(Some(format!("{dir:?} is not an absolute path")))
                    }
                })
                .collect::<Result<_, _>>()?;
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_CONFIG_ENV_PREFIX",
        accepted: "a prefix of variable names: the container's variables that start with it are wasi:config keys too (the name without the prefix), after the directories' keys",
        default: Default::Value(""),
        default_note: "empty: no variable",
        example: "`APP_`",
        secret: false,
        per_route: true,
        apply: |settings, value| {
            if value.starts_with(super::PREFIX) {
                return Err(Some(format!(
                    "{} variables are the shim's own",
                    super::PREFIX
                )));
            }
            settings.config_env_prefix = (!value.is_empty()).then(|| value.to_string());
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_KEYVALUE",
        accepted: "`memory` (one store in the container's memory, shared by its instances, gone when it exits), `redis://HOST:PORT` or `redis://HOST:PORT/DB` (a Redis or Valkey server; the password comes from WASMHTTP_KEYVALUE_PASSWORD, never the address) or `off` (every bucket is `no-such-store`)",
        default: Default::Value("memory"),
        default_note: "",
        example: "`redis://redis.default.svc.cluster.local:6379`",
        secret: true,
        per_route: false,
        apply: |settings, value| {
            settings.keyvalue = match value {
                "off" => KeyvalueBackend::Off,
                "memory" | "" => KeyvalueBackend::Memory,
                value => KeyvalueBackend::Redis(RedisAddress::parse(value).map_err(Some)?),
            };
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_KEYVALUE_BUCKETS",
        accepted: "a comma-separated list of the bucket names a guest may `open` (letters, digits, `-`, `_`, `.`); any other is `no-such-store`; on Redis a bucket is the key prefix `BUCKET:`",
        default: Default::Value("default"),
        default_note: "",
        example: "`default,sessions`",
        secret: false,
        per_route: false,
        apply: |settings, value| {
            settings.keyvalue_buckets = value
                .split(',')
                .map(str::trim)
                .filter(|bucket| !bucket.is_empty())
                .map(|bucket| {
                    let valid = bucket
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                    if valid {
                        Ok(bucket.to_string())
                    } else {
                        Err(Some(format!("{bucket:?} has other characters")))
                    }
                })
                .collect::<Result<_, _>>()?;
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_KEYVALUE_MEMORY_LIMIT",
        accepted: "a size (`16Mi`, `1Gi`, bytes) the `memory` store's keys and values may take together; a write past it fails with the store's `other` error",
        default: Default::Value("16Mi"),
        default_note: "",
        example: "`256Mi`",
        secret: false,
        per_route: false,
        apply: |settings, value| {
            settings.keyvalue_memory_limit = parse_size(value).ok_or(None)?;
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_KEYVALUE_PASSWORD",
        accepted: "the Redis password (`AUTH`), best set from a Secret (`valueFrom.secretKeyRef`); never logged",
        default: Default::Value(""),
        default_note: "empty: no AUTH",
        example: "`s3cret` (from a Secret: `valueFrom.secretKeyRef`)",
        secret: true,
        per_route: false,
        apply: |settings, value| {
            settings.keyvalue_password = (!value.is_empty()).then(|| Secret::new(value));
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_GUEST_LOG_LEVEL",
        accepted: "`trace`, `debug`, `info`, `warn`, `error`, `critical` or `off`: the least level of wasi:logging lines written to the container log",
        default: Default::Value("info"),
        default_note: "",
        example: "`debug`",
        secret: false,
        per_route: true,
        apply: |settings, value| {
            settings.guest_log_level = value.parse().map_err(|()| None)?;
            Ok(())
        },
    },
    Setting {
        name: "WASMHTTP_LOG_BUFFER",
        accepted: "a size between 4Ki and 256Mi: the container's output (its guests' stdout and stderr, the shim's own lines) held while the log's reader is behind; when it is full, new lines are dropped and counted",
        default: Default::Value("1Mi"),
        default_note: "",
        example: "`8Mi`",
        secret: false,
        per_route: false,
        apply: |settings, value| {
            settings.log_buffer = parse_size(value)
                .filter(|size| (4 << 10..=256 << 20).contains(size))
                .ok_or(None)?;
            Ok(())
        },
    },
];

/// The chart's `settings` value: every setting by name, nothing else.
pub fn chart_schema() -> serde_json::Value {
    let properties: serde_json::Map<String, serde_json::Value> = TABLE
        .iter()
        .map(|setting| {
            let property = serde_json::json!({
                "type": ["string", "integer", "boolean"],
                "description": setting.accepted,
            });
            (setting.name.to_string(), property)
        })
        .collect();
    serde_json::json!({
        "type": "object",
        "description": "Default WASMHTTP_* settings for the release's workloads (the ConfigMap <release>-settings); see the README's Configuration.",
        "additionalProperties": false,
        "properties": properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The README's configuration table and the chart's schema say what the
    /// table says. With WASMHTTP_BLESS=1 they are rewritten to say it.
    fn check_or_bless(path: &str, current: &str, expected: &str) {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
        if current == expected {
            return;
        }
        if std::env::var_os("WASMHTTP_BLESS").is_some() {
            let whole = std::fs::read_to_string(&file).unwrap();
            std::fs::write(&file, whole.replace(current, expected)).unwrap();
            return;
        }
        panic!(
            "{path} does not say what shim/src/settings/table.rs says; run \
             `WASMHTTP_BLESS=1 cargo test -p wasmhttp --lib settings` to rewrite it.\n\
             expected:\n{expected}\nfound:\n{current}"
        );
    }

    #[test]
    fn the_readme_configuration_table_is_the_settings_table() {
        let readme = include_str!("../../../README.md");
        let header = "| variable | accepted values | default | example | per route |\n|---|---|---|---|---|\n";
        let start = readme.find(header).expect("README's configuration table") + header.len();
        let rows = &readme[start..];
        let current = &rows[..rows.find("\n\n").unwrap_or(rows.len())];
        let expected: Vec<String> = TABLE.iter().map(Setting::readme_row).collect();
        check_or_bless("README.md", current, &expected.join("\n"));
    }

    #[test]
    fn the_charts_values_schema_admits_every_setting_and_nothing_else() {
        let text = include_str!("../../../charts/wasmhttp/values.schema.json");
        let schema: serde_json::Value = serde_json::from_str(text).unwrap();
        // the block as written, to be rewritten in place (the rest of the
        // file is the chart's own)
        let start = text.find("\"settings\": {").expect("a settings property") + 12;
        let end = start + json_value_len(&text[start..]);
        let current = &text[start..end];
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(current).unwrap(),
            schema["properties"]["settings"],
            "the settings block found is the schema's settings"
        );
        let expected = if schema["properties"]["settings"] == chart_schema() {
            current.to_string()
        } else {
            let indent = text[..start].rsplit('\n').next().unwrap().len() - 12;
            serde_json::to_string_pretty(&chart_schema())
                .unwrap()
                .replace('\n', &format!("\n{}", " ".repeat(indent)))
        };
        check_or_bless("charts/wasmhttp/values.schema.json", current, &expected);
    }

    /// The length of the JSON object at the start of `text`.
    fn json_value_len(text: &str) -> usize {
        let (mut depth, mut in_string, mut escaped) = (0, false, false);
        for (i, c) in text.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_string => escaped = true,
                '"' => in_string = !in_string,
                '{' if !in_string => depth += 1,
                '}' if !in_string => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        panic!("an unterminated object");
    }

    #[test]
    fn every_default_is_a_value_its_own_parser_takes() {
        for limits in [
            Limits::default(),
            Limits {
                memory: Some(128 << 20),
                cpus: Some(0.5),
            },
            Limits {
                memory: Some(1 << 20),
                cpus: Some(64.0),
            },
        ] {
            for setting in TABLE {
                let value = setting.default_value(&limits);
                let mut settings = Settings::default();
                assert_eq!(
                    (setting.apply)(&mut settings, &value),
                    Ok(()),
                    "{}={value:?} under {limits:?}",
                    setting.name
                );
            }
        }
    }
}
