//! Apps of several components: the manifest that names them (`app.toml`)
//! and the table that routes a request path to one of them.
//!
//! ```toml
//! [[route]]
//! path = "/api/..."          # a prefix: /api, /api/ and /api/anything
//! component = "api.wasm"     # relative to the manifest
//! name = "api"               # optional: the component file's stem
//! env = ["WASMHTTP_REQUEST_TIMEOUT=2s", "GREETING=hi"]
//! args = ["--verbose"]       # a CGI program's arguments after its name
//! volumes = ["/data"]        # optional: which of the container's volumes it sees
//!
//! [[route]]
//! path = "/health"           # exact
//! component = "health.wasm"
//!
//! [[route]]
//! path = "/..."              # catch-all
//! component = "front.wasm"
//! ```
//!
//! The longest match wins (an exact route before a prefix of the same path);
//! a path no route matches is answered 404 by the host. Paths are compared
//! after percent-decoding the unreserved characters (RFC 3986 §6.2.2.2), so
//! `/%61pi/x` is `/api/x`; an encoded slash (`%2F`) stays part of its
//! segment, and a path with `.` or `..` segments is refused rather than
//! guessed at. This module is the parser of untrusted input; the fuzz targets
//! reach it without the runtime.

use std::collections::HashMap;
use std::fmt;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::settings::Environment;
use crate::world::{self, Plan, World};

/// Where `wasmhttp image` puts the manifest in an image's rootfs, and the
/// image's entrypoint.
pub const MANIFEST_PATH: &str = "/app.toml";
/// Where `wasmhttp image` puts each route's component: `/app/<name>.wasm`.
pub const COMPONENT_DIR: &str = "/app";
/// The manifest's layer in the Wasm OCI artifact layout, beside one
/// `application/wasm` layer per component (named there by digest).
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.wasmhttp.app.v1+toml";
/// Host names under this domain are the app's own components
/// (`http://api.app.internal/...`); a request from outside naming one is
/// refused.
pub const INTERNAL_DOMAIN: &str = "app.internal";

/// The headers a routed component learns its route from (any a client sends
/// are removed first).
pub const ROUTE_NAME_HEADER: &str = "x-wasmhttp-route";
/// The matched route's fixed part, `/api` for `/api/...` (empty for `/...`).
pub const ROUTE_BASE_HEADER: &str = "x-wasmhttp-route-base";
/// The rest of the path after it, `/users/7` for `/api/users/7`.
pub const PATH_INFO_HEADER: &str = "x-wasmhttp-path-info";

/// `app.toml`, as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Middleware in front of every route (before a route's own): files
    /// relative to the manifest, the first one meeting a request first.
    /// (Before the routes: TOML writes plain values before tables.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub middleware: Vec<String>,
    #[serde(rename = "route", default)]
    pub routes: Vec<RouteEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    pub path: String,
    /// A file relative to the manifest (or, in the artifact layout, the
    /// `sha256:` digest of its layer).
    pub component: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `NAME=VALUE`: `WASMHTTP_*` route settings over the container's, the
    /// rest variables for this component over the container's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Guest paths of the container's volumes this component sees; absent:
    /// all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<String>>,
    /// Middleware in front of this route's component, after the manifest's
    /// own: `wasi:http/middleware@0.3.0` components composed with it by
    /// `wasmhttp image` (an image's manifest names none: they are inside
    /// the route's component).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub middleware: Vec<String>,
}

/// A route's path, parsed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// `/health`: this path only.
    Exact(String),
    /// `/api/...`: `/api` and everything under it (`/` for `/...`: every path).
    Prefix(String),
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err("a route's path starts with `/`".into());
        }
        let (fixed, prefix) = match text.strip_suffix("/...") {
            Some(fixed) => (fixed, true),
            None => (text, false),
        };
        if fixed.contains("...") {
            return Err(
                "`...` may only end a route's path, as `/...` after its last segment".into(),
            );
        }
        if fixed.contains('*') {
            return Err(
                "`*` cannot appear in a route's path: a prefix route ends in `/...` (`/api/...`)"
                    .into(),
            );
        }
        if let Some(bad) = fixed
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-._~!$&'()+,;=:@/%".contains(*c)))
        {
            return Err(format!(
                "{bad:?} cannot appear in a route's path (no wildcards, queries or spaces; \
                 percent-encode other characters)"
            ));
        }
        let normal =
            normalize(if fixed.is_empty() { "/" } else { fixed }).map_err(|why| why.to_string())?;
        if normal.contains("//") {
            return Err("a route's path has no empty segments (`//`)".into());
        }
        if normal.len() > 1 && normal.ends_with('/') && !prefix {
            return Err(
                "an exact route does not end with `/` (write `/docs` for that path, `/docs/...` for all under it)"
                    .into(),
            );
        }
        Ok(if prefix {
            Pattern::Prefix(normal.trim_end_matches('/').to_string())
        } else {
            Pattern::Exact(normal)
        })
    }

    /// The fixed part a match of this route consumes from a path.
    fn base(&self) -> &str {
        match self {
            Pattern::Exact(path) | Pattern::Prefix(path) => path,
        }
    }

    /// The rest of `path` after this route, if it matches.
    fn matches<'p>(&self, path: &'p str) -> Option<&'p str> {
        match self {
            Pattern::Exact(exact) => (path == exact).then_some(""),
            Pattern::Prefix(base) => {
                let rest = path.strip_prefix(base.as_str())?;
                (rest.is_empty() || rest.starts_with('/')).then_some(rest)
            }
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(path) => f.write_str(path),
            Pattern::Prefix(base) => write!(f, "{base}/..."),
        }
    }
}

/// Why a request path cannot be routed (400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadPath {
    /// `.` or `..` segments: which route they mean depends on who resolves them.
    DotSegment,
    /// A `%` not followed by two hex digits.
    BadEscape,
}

impl fmt::Display for BadPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadPath::DotSegment => "the path has `.` or `..` segments",
            BadPath::BadEscape => "the path has a `%` that is not followed by two hex digits",
        })
    }
}

/// `path` with percent-encoded unreserved characters decoded and the other
/// escapes' hex digits in upper case: two spellings of one resource become
/// one string. Dot segments (also encoded ones) are refused.
pub fn normalize(path: &str) -> Result<String, BadPath> {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let byte = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or(BadPath::BadEscape)?;
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                out.push(byte as char);
            } else {
                out.push_str(&format!("%{byte:02X}"));
            }
            i += 3;
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    if out
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(BadPath::DotSegment);
    }
    Ok(out)
}

/// A route as the server runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    pub pattern: Pattern,
    pub component: String,
    pub env: Vec<String>,
    pub args: Vec<String>,
    pub volumes: Option<Vec<String>>,
    /// The manifest's middleware, then the route's: the first meets a
    /// request first.
    pub middleware: Vec<String>,
}

impl Route {
    /// How errors and the start-up lines name it.
    pub fn describe(&self) -> String {
        format!("route {} ({})", self.pattern, self.name)
    }
}

/// A request's route: which one, and how the path splits around it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched {
    pub index: usize,
    /// The route's fixed part (`/api`), as the client spelled it.
    pub base: String,
    /// The rest of the path (`/users/7`), as the client spelled it.
    pub rest: String,
}

/// Routes, checked: valid paths, no two alike, unique names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTable {
    pub routes: Vec<Route>,
}

impl RouteTable {
    /// Parses and checks `app.toml`; every error names the route.
    pub fn parse(text: &str) -> Result<Self> {
        let manifest: Manifest = toml::from_str(text).context("the app manifest is not valid")?;
        Self::from_manifest(manifest)
    }

    pub fn from_manifest(manifest: Manifest) -> Result<Self> {
        if manifest.routes.is_empty() {
            bail!("the app manifest has no routes: add a [[route]] with a path and a component");
        }
        let mut routes: Vec<Route> = Vec::with_capacity(manifest.routes.len());
        for (number, entry) in manifest.routes.into_iter().enumerate() {
            let which = || format!("route {} ({:?})", number + 1, entry.path);
            let pattern =
                Pattern::parse(&entry.path).map_err(|why| anyhow::anyhow!("{}: {why}", which()))?;
            if entry.component.trim().is_empty() {
                bail!("{}: names no component", which());
            }
            let name = match &entry.name {
                Some(name) => name.clone(),
                None => default_name(&entry.component),
            };
            check_name(&name)
                .map_err(|why| anyhow::anyhow!("{}: name {name:?}: {why}", which()))?;
            if let Some(other) = routes.iter().find(|route| route.pattern == pattern) {
                bail!(
                    "{}: the same path as {} (each path has one route)",
                    which(),
                    other.describe()
                );
            }
            if let Some(other) = routes.iter().find(|route| route.name == name) {
                bail!(
                    "{}: the name {name:?} is {}'s already (set `name` to tell them apart)",
                    which(),
                    other.describe()
                );
            }
            for entry in &entry.env {
                if !entry.contains('=') {
                    bail!("{}: env {entry:?}: expected NAME=VALUE", which());
                }
            }
            let middleware: Vec<String> = manifest
                .middleware
                .iter()
                .chain(&entry.middleware)
                .cloned()
                .collect();
            if middleware.iter().any(|file| file.trim().is_empty()) {
                bail!("{}: names an empty middleware file", which());
            }
            routes.push(Route {
                name,
                pattern,
                component: entry.component,
                env: entry.env,
                args: entry.args,
                volumes: entry.volumes,
                middleware,
            });
        }
        Ok(Self { routes })
    }

    /// The manifest that says this table, with each component as `locate`
    /// names it (in an image: where it was put).
    pub fn to_manifest(&self, locate: impl Fn(&Route) -> String) -> Manifest {
        Manifest {
            middleware: Vec::new(),
            routes: self
                .routes
                .iter()
                .map(|route| RouteEntry {
                    path: route.pattern.to_string(),
                    component: locate(route),
                    name: Some(route.name.clone()),
                    env: route.env.clone(),
                    args: route.args.clone(),
                    volumes: route.volumes.clone(),
                    middleware: route.middleware.clone(),
                })
                .collect(),
        }
    }

    /// The route of `path` (a request's, percent-encoded as sent): the
    /// longest match; `Ok(None)` when none matches.
    pub fn find(&self, path: &str) -> Result<Option<Matched>, BadPath> {
        let normal = normalize(path)?;
        let mut best: Option<(usize, usize, bool, &str)> = None;
        for (index, route) in self.routes.iter().enumerate() {
            let Some(rest) = route.pattern.matches(&normal) else {
                continue;
            };
            let length = route.pattern.base().len();
            let exact = matches!(route.pattern, Pattern::Exact(_));
            let better = match best {
                None => true,
                Some((_, best_length, best_exact, _)) => {
                    length > best_length || (length == best_length && exact && !best_exact)
                }
            };
            if better {
                best = Some((index, length, exact, rest));
            }
        }
        Ok(best.map(|(index, _, _, rest)| {
            let (base, rest) = split_as_sent(path, &normal, rest.len());
            Matched { index, base, rest }
        }))
    }

    /// That no route names middleware still to compose: an image's
    /// manifest, whose routes' middleware `wasmhttp image` composed into
    /// their components, names none.
    pub fn check_composed(&self) -> Result<()> {
        if let Some(route) = self.routes.iter().find(|r| !r.middleware.is_empty()) {
            bail!(
                "{} names middleware ({}) in the image's manifest, but middleware is composed \
                 into a route's component when the image is built: build the image from this \
                 manifest with `wasmhttp image`",
                route.describe(),
                route.middleware.join(", ")
            );
        }
        Ok(())
    }

    /// The route called `name` (an in-process call's host).
    pub fn named(&self, name: &str) -> Option<usize> {
        self.routes.iter().position(|route| route.name == name)
    }
}

/// Splits the path as sent where its normalized form leaves `rest_len`
/// bytes: the client's own spelling goes to the component.
fn split_as_sent(sent: &str, normal: &str, rest_len: usize) -> (String, String) {
    if sent.len() == normal.len() {
        let at = sent.len() - rest_len;
        return (sent[..at].to_string(), sent[at..].to_string());
    }
    // walk both: an escape in `sent` may be one byte in `normal`
    let normal_at = normal.len() - rest_len;
    let (mut s, mut n) = (0, 0);
    let bytes = sent.as_bytes();
    while n < normal_at && s < bytes.len() {
        if bytes[s] == b'%' {
            let decoded_len = if normal.as_bytes()[n] == b'%' { 3 } else { 1 };
            s += 3;
            n += decoded_len;
        } else {
            s += 1;
            n += 1;
        }
    }
    (sent[..s].to_string(), sent[s..].to_string())
}

/// What `route`'s settings make of its component of `world`, in the
/// container's environment `env`: the route's environment and how it is
/// run. Image building and container start check a route by this alone.
pub fn plan_route(route: &Route, env: &Environment, world: World) -> Result<(Environment, Plan)> {
    let route_env = env.for_route(&route.env)?;
    let plan = world::plan(route_env.settings.mode, world)?;
    if plan == Plan::Command {
        bail!(
            "{world} is a command, which runs once, and a route serves requests: \
             set WASMHTTP_MODE=cgi in its env to run it once per request"
        );
    }
    Ok((route_env, plan))
}

/// `web/front-end.wasm` → `front-end`.
fn default_name(component: &str) -> String {
    let file = component.rsplit('/').next().unwrap_or(component);
    let stem = file.strip_suffix(".wasm").unwrap_or(file);
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .to_string()
}

/// A route's name is a DNS label: it is a host name under [`INTERNAL_DOMAIN`].
fn check_name(name: &str) -> Result<(), &'static str> {
    let valid = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(
            "a route's name is 1 to 63 of a-z, 0-9 and `-`, not starting or ending with `-` (it is a host name)",
        )
    }
}

/// The route a `Host` (or authority) names under [`INTERNAL_DOMAIN`], if it
/// does: `api.app.internal:80` → `api`. Anything else under the domain is
/// `Some("")`, which no route is called.
pub fn internal_host(host: &str) -> Option<&str> {
    let host = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    let host = host.strip_suffix('.').unwrap_or(host);
    let lower = host.to_ascii_lowercase();
    if lower == INTERNAL_DOMAIN {
        return Some("");
    }
    let name = lower.strip_suffix(INTERNAL_DOMAIN)?.strip_suffix('.')?;
    Some(&host[..name.len()])
}

/// How `--route PATH=COMPONENT[,KEY=VALUE...]` on the command line reads.
pub fn route_flag(text: &str) -> Result<RouteEntry> {
    let mut parts = text.split(',');
    let first = parts.next().unwrap_or_default();
    let (path, component) = first.split_once('=').with_context(|| {
        format!("--route {text:?}: expected PATH=COMPONENT, e.g. /api/...=api.wasm")
    })?;
    let mut entry = RouteEntry {
        path: path.to_string(),
        component: component.to_string(),
        name: None,
        env: Vec::new(),
        args: Vec::new(),
        volumes: None,
        middleware: Vec::new(),
    };
    let mut seen = HashMap::new();
    for part in parts {
        let (key, value) = part
            .split_once('=')
            .with_context(|| format!("--route {text:?}: {part:?} is not KEY=VALUE"))?;
        match key {
            "name" => entry.name = Some(value.to_string()),
            "env" => entry.env.push(value.to_string()),
            "arg" => entry.args.push(value.to_string()),
            "middleware" => entry.middleware.push(value.to_string()),
            _ => bail!(
                "--route {text:?}: unknown key {key:?} (name=, env=NAME=VALUE, arg=, middleware=)"
            ),
        }
        *seen.entry(key).or_insert(0) += 1;
    }
    if seen.get("name").copied().unwrap_or(0) > 1 {
        bail!("--route {text:?}: name= given twice");
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, &str)]) -> RouteTable {
        RouteTable::from_manifest(Manifest {
            routes: routes
                .iter()
                .map(|(path, name)| RouteEntry {
                    path: path.to_string(),
                    component: format!("{name}.wasm"),
                    name: None,
                    env: vec![],
                    args: vec![],
                    volumes: None,
                    middleware: vec![],
                })
                .collect(),
            ..Manifest::default()
        })
        .unwrap()
    }

    fn route_of(table: &RouteTable, path: &str) -> Option<(String, String, String)> {
        table
            .find(path)
            .unwrap()
            .map(|m| (table.routes[m.index].name.clone(), m.base, m.rest))
    }

    fn owned(name: &str, base: &str, rest: &str) -> Option<(String, String, String)> {
        Some((name.into(), base.into(), rest.into()))
    }

    #[test]
    fn the_longest_match_wins_and_exact_beats_prefix() {
        let t = table(&[
            ("/...", "front"),
            ("/api/...", "api"),
            ("/api/admin/...", "admin"),
            ("/api/admin", "admin-root"),
            ("/health", "health"),
        ]);
        assert_eq!(route_of(&t, "/"), owned("front", "", "/"));
        assert_eq!(
            route_of(&t, "/index.html"),
            owned("front", "", "/index.html")
        );
        assert_eq!(route_of(&t, "/api"), owned("api", "/api", ""));
        assert_eq!(route_of(&t, "/api/"), owned("api", "/api", "/"));
        assert_eq!(
            route_of(&t, "/api/users/7"),
            owned("api", "/api", "/users/7")
        );
        // a prefix ends at a segment boundary
        assert_eq!(route_of(&t, "/apix"), owned("front", "", "/apix"));
        assert_eq!(
            route_of(&t, "/api/admin"),
            owned("admin-root", "/api/admin", "")
        );
        assert_eq!(
            route_of(&t, "/api/admin/x"),
            owned("admin", "/api/admin", "/x")
        );
        assert_eq!(route_of(&t, "/health"), owned("health", "/health", ""));
        // exact is exact: a trailing slash is another path
        assert_eq!(route_of(&t, "/health/"), owned("front", "", "/health/"));
    }

    #[test]
    fn no_match_without_a_catch_all() {
        let t = table(&[("/api/...", "api"), ("/health", "health")]);
        assert_eq!(route_of(&t, "/"), None);
        assert_eq!(route_of(&t, "/healthz"), None);
        assert_eq!(route_of(&t, "/ap"), None);
    }

    #[test]
    fn encoded_paths_route_by_what_they_mean() {
        let t = table(&[("/...", "front"), ("/api/...", "api")]);
        // %61 is `a`: the same resource, the same route, the client's spelling kept
        assert_eq!(route_of(&t, "/%61pi/x%41"), owned("api", "/%61pi", "/x%41"));
        // an encoded slash is part of its segment, not a separator
        assert_eq!(route_of(&t, "/api%2Fx"), owned("front", "", "/api%2Fx"));
        assert_eq!(route_of(&t, "/api/a%2fb"), owned("api", "/api", "/a%2fb"));
        for dots in ["/api/../secret", "/./api", "/api/%2e%2E/x", "/api/."] {
            assert_eq!(t.find(dots), Err(BadPath::DotSegment), "{dots}");
        }
        assert_eq!(t.find("/api/%zz"), Err(BadPath::BadEscape));
    }

    #[test]
    fn bad_paths_and_duplicates_are_refused_naming_the_route() {
        let parse = |text: &str| RouteTable::parse(text).unwrap_err().to_string();
        let one = |path: &str| format!("[[route]]\npath = {path:?}\ncomponent = \"a.wasm\"\n");
        for (path, says) in [
            ("api", "starts with `/`"),
            ("/api/*", "cannot appear"),
            ("/a/.../b", "may only end"),
            ("/a?b", "cannot appear"),
            ("/a//b", "empty segments"),
            ("/docs/", "does not end with `/`"),
            ("/a/../b", "`.` or `..`"),
        ] {
            let message = parse(&one(path));
            assert!(
                message.contains(&format!("{path:?}")) && message.contains(says),
                "{path}: {message}"
            );
        }
        let twice = "[[route]]\npath = \"/api/...\"\ncomponent = \"a.wasm\"\n\
                     [[route]]\npath = \"/%61pi/...\"\ncomponent = \"b.wasm\"\n";
        let message = parse(twice);
        assert!(
            message.contains("route 2") && message.contains("the same path as route /api/... (a)"),
            "{message}"
        );
        let named = "[[route]]\npath = \"/a\"\ncomponent = \"x/api.wasm\"\n\
                     [[route]]\npath = \"/b\"\ncomponent = \"y/api.wasm\"\n";
        assert!(parse(named).contains("the name \"api\" is route /a (api)'s already"));
        assert!(parse("").contains("no routes"));
        assert!(
            parse("[[route]]\npath = \"/\"\ncomponent = \"a.wasm\"\nmiddle = 1\n")
                .contains("not valid")
        );
        let bad_name = "[[route]]\npath = \"/\"\ncomponent = \"a.wasm\"\nname = \"Front_End\"\n";
        assert!(parse(bad_name).contains("host name"), "{}", parse(bad_name));
        let bad_env = "[[route]]\npath = \"/\"\ncomponent = \"a.wasm\"\nenv = [\"GREETING\"]\n";
        assert!(parse(bad_env).contains("NAME=VALUE"));
    }

    #[test]
    fn a_manifest_written_reads_back_the_same() {
        let t = RouteTable::parse(
            "[[route]]\npath = \"/api/...\"\ncomponent = \"build/api.wasm\"\nenv = [\"WASMHTTP_REQUEST_TIMEOUT=2s\"]\n\
             [[route]]\npath = \"/cgi-bin/...\"\ncomponent = \"cgi.wasm\"\nargs = [\"-v\"]\nvolumes = [\"/data\"]\n",
        )
        .unwrap();
        assert_eq!(t.routes[0].name, "api");
        let written =
            toml::to_string(&t.to_manifest(|route| format!("/app/{}.wasm", route.name))).unwrap();
        let read = RouteTable::parse(&written).unwrap();
        assert_eq!(read.routes[1].component, "/app/cgi.wasm");
        assert_eq!(read.routes[1].args, ["-v"]);
        assert_eq!(read.routes[0].env, ["WASMHTTP_REQUEST_TIMEOUT=2s"]);
        assert_eq!(read.routes[0].pattern, Pattern::Prefix("/api".into()));
    }

    #[test]
    fn internal_hosts_are_recognised_in_any_spelling() {
        assert_eq!(internal_host("api.app.internal"), Some("api"));
        assert_eq!(internal_host("API.App.Internal:8080"), Some("API"));
        assert_eq!(internal_host("api.app.internal."), Some("api"));
        assert_eq!(internal_host("app.internal"), Some(""));
        assert_eq!(internal_host("a.b.app.internal"), Some("a.b"));
        assert_eq!(internal_host("example.com"), None);
        assert_eq!(internal_host("myapp.internal"), None);
        assert_eq!(internal_host("127.0.0.1:8080"), None);
    }

    #[test]
    fn route_flags_read_like_manifest_entries() {
        let entry =
            route_flag("/cgi-bin/...=cgi.wasm,name=cgi,arg=-v,env=WASMHTTP_MODE=cgi").unwrap();
        assert_eq!(entry.path, "/cgi-bin/...");
        assert_eq!(entry.component, "cgi.wasm");
        assert_eq!(entry.name.as_deref(), Some("cgi"));
        assert_eq!(entry.args, ["-v"]);
        assert_eq!(entry.env, ["WASMHTTP_MODE=cgi"]);
        assert!(route_flag("cgi.wasm").is_err());
        assert!(route_flag("/=a.wasm,colour=red").is_err());
        let entry =
            route_flag("/api/...=api.wasm,middleware=auth.wasm,middleware=log.wasm").unwrap();
        assert_eq!(entry.middleware, ["auth.wasm", "log.wasm"]);
    }

    #[test]
    fn the_manifests_middleware_comes_before_a_routes_own() {
        let t = RouteTable::parse(
            "middleware = [\"log.wasm\"]\n\
             [[route]]\npath = \"/api/...\"\ncomponent = \"api.wasm\"\nmiddleware = [\"auth.wasm\"]\n\
             [[route]]\npath = \"/...\"\ncomponent = \"front.wasm\"\n",
        )
        .unwrap();
        assert_eq!(t.routes[0].middleware, ["log.wasm", "auth.wasm"]);
        assert_eq!(t.routes[1].middleware, ["log.wasm"]);
        // written back, each route names its whole chain and the manifest none
        let written = toml::to_string(&t.to_manifest(|route| route.component.clone())).unwrap();
        assert_eq!(RouteTable::parse(&written).unwrap(), t);
        let err = t.check_composed().unwrap_err().to_string();
        assert!(
            err.contains("route /api/... (api) names middleware (log.wasm, auth.wasm)"),
            "{err}"
        );
        assert!(err.contains("wasmhttp image"), "{err}");
        assert!(table(&[("/...", "front")]).check_composed().is_ok());
        let err = RouteTable::parse(
            "[[route]]\npath = \"/x\"\ncomponent = \"x.wasm\"\nmiddleware = [\" \"]\n",
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("route 1 (\"/x\"): names an empty middleware file"),
            "{err:#}"
        );
    }
}
