//! What a guest instance sees of the world: its environment, arguments and
//! stdio, the container's volumes, outbound HTTP to the allowed hosts, and
//! nothing else. Capabilities are deny-by-default: no other directories, no
//! sockets, no name lookups, none of the host's environment.

use std::sync::Arc;

use anyhow::Context as _;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::output::Stream;
use crate::platform::{self, Platform, PlatformView};
use crate::settings::HostPattern;

mod deadline;
mod fault;
mod outbound;
mod stdio;
mod store;

pub use deadline::Deadline;
pub use fault::{PoolExhausted, TimedOut, classify, is_guest_fault};
use outbound::OutboundPolicy;
pub use outbound::{AppCall, AppCalls, RouteCalls};
use stdio::GuestOutput;
pub use store::{MemoryBudget, limited_store, new_store};

/// The guest's view of the container, shared by every instance of a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestConfig {
    /// The container's environment minus the shim's `WASMHTTP_*` settings.
    pub env: Vec<(String, String)>,
    /// The container's `process.args`, program name first.
    pub args: Vec<String>,
    /// Bytes all of one instance's linear memories may take together.
    pub max_memory: u64,
    /// Hosts the guest may send HTTP requests to (WASMHTTP_ALLOWED_OUTBOUND_HOSTS).
    pub outbound: Arc<Vec<HostPattern>>,
    /// The other components of its app, at `http://<route>.app.internal/`.
    pub app: Arc<AppCalls>,
    /// Directories the guest sees (the container's volumes).
    pub volumes: Vec<Volume>,
    /// wasi:sockets and name lookups in the container's network namespace.
    pub sockets: bool,
    /// wasi:config, wasi:keyvalue and wasi:logging, one for the container.
    pub platform: Arc<Platform>,
}

/// A directory of the container mapped into the guest as a WASI preopen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    /// Where it is in the shim's view (inside the container: the mount point).
    pub host: std::path::PathBuf,
    /// Where the guest finds it.
    pub guest: String,
    pub read_only: bool,
}

impl std::str::FromStr for Volume {
    type Err = String;

    /// `HOST:GUEST` or `HOST:GUEST:ro` (as `wasmhttp serve --volume` takes it).
    fn from_str(value: &str) -> Result<Self, String> {
        let (rest, read_only) = match value.strip_suffix(":ro") {
            Some(rest) => (rest, true),
            None => (value.strip_suffix(":rw").unwrap_or(value), false),
        };
        match rest.split_once(':') {
            Some((host, guest)) if !host.is_empty() && guest.starts_with('/') => Ok(Volume {
                host: host.into(),
                guest: guest.into(),
                read_only,
            }),
            _ => Err(format!(
                "{value:?}: expected HOST_DIR:GUEST_PATH[:ro], the guest path absolute"
            )),
        }
    }
}

/// The `T` of every `Store<T>`: one per request (or per command run).
pub struct GuestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: OutboundPolicy,
    pub memory: MemoryBudget,
    platform: Arc<Platform>,
    /// The deadline of the one request this store serves, if it serves one:
    /// it bounds the platform's calls.
    pub deadline: Option<Deadline>,
}

/// The guest's WASI context as the container defines it: `env` (the
/// container's, or a CGI request's), the container's args and volumes, stdout
/// and stderr to the container log (whole lines, through its output queue),
/// sockets if allowed. Callers may replace stdio before building.
pub fn wasi_builder(
    config: &GuestConfig,
    env: &[(String, String)],
) -> anyhow::Result<WasiCtxBuilder> {
    let mut wasi = WasiCtxBuilder::new();
    // Guest stdout/stderr are the container's (`ctr` and `kubectl logs` show
    // them), queued: a log reader that falls behind never stalls a request.
    wasi.stdout(GuestOutput::new(Stream::Stdout))
        .stderr(GuestOutput::new(Stream::Stderr));
    wasi.envs(env).args(&config.args);
    if config.sockets {
        // the container's network namespace is the sandbox here, as it is
        // for any process in the pod
        wasi.inherit_network()
            .allow_tcp(true)
            .allow_udp(true)
            .allow_ip_name_lookup(true);
    }
    for volume in &config.volumes {
        let perms = if volume.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        // WASI resolves every path inside the preopen: `..` cannot climb out
        wasi.preopened_dir(&volume.host, &volume.guest, perms)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("opening the volume {}", volume.host.display()))?;
    }
    Ok(wasi)
}

impl GuestState {
    pub fn new(config: &GuestConfig) -> anyhow::Result<Self> {
        Ok(Self::with_wasi(
            wasi_builder(config, &config.env)?.build(),
            config,
        ))
    }

    pub fn with_wasi(wasi: WasiCtx, config: &GuestConfig) -> Self {
        Self {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: OutboundPolicy {
                allowed: config.outbound.clone(),
                app: config.app.clone(),
            },
            memory: MemoryBudget::new(config.max_memory),
            platform: config.platform.clone(),
            deadline: None,
        }
    }
}

impl GuestState {
    /// No HTTP resource of an earlier request (request, response, body,
    /// outbound request) is left in the instance, so it can serve the next
    /// one. Other resources may stay: a language runtime keeps its stdout and
    /// stderr streams open for its instance's life (componentize-py does), and
    /// a stream of a request's body cannot outlive its body (the body is its
    /// parent in the table), so it is caught with the body.
    pub fn is_idle(&mut self) -> bool {
        use wasmtime_wasi_http::p2::body::{
            HostFutureTrailers, HostIncomingBody, HostOutgoingBody,
        };
        use wasmtime_wasi_http::p2::types::{
            HostFutureIncomingResponse, HostIncomingRequest, HostIncomingResponse,
            HostOutgoingRequest, HostOutgoingResponse, HostResponseOutparam,
        };
        !self.table.iter_mut().any(|entry| {
            entry.is::<HostIncomingRequest>()
                || entry.is::<HostIncomingBody>()
                || entry.is::<HostFutureTrailers>()
                || entry.is::<HostResponseOutparam>()
                || entry.is::<HostOutgoingResponse>()
                || entry.is::<HostOutgoingBody>()
                || entry.is::<HostOutgoingRequest>()
                || entry.is::<HostFutureIncomingResponse>()
                || entry.is::<HostIncomingResponse>()
        })
    }
}

/// Links all of WASI 0.2 (so componentize-js/py guests, which import more than
/// the proxy world, instantiate) plus wasi:http and the platform's services
/// ([`platform`]).
pub fn linker(engine: &wasmtime::Engine) -> anyhow::Result<Linker<GuestState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    platform::add_to_linker(&mut linker, |state: &mut GuestState| PlatformView {
        table: &mut state.table,
        platform: &state.platform,
        deadline: state.deadline,
    })?;
    Ok(linker)
}

/// [`linker`] plus WASI 0.3 and wasi:http 0.3, for `wasi:http/service`
/// components (which may import 0.2 interfaces too).
pub fn service_linker(engine: &wasmtime::Engine) -> anyhow::Result<Linker<GuestState>> {
    let mut linker = linker(engine)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    Ok(linker)
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
