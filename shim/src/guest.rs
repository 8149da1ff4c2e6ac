//! What a guest instance sees of the world: its environment, arguments and
//! stdio, the container's volumes, outbound HTTP to the allowed hosts, and
//! nothing else. Capabilities are deny-by-default: no other directories, no
//! sockets, no name lookups, none of the host's environment.

use std::sync::Arc;

use anyhow::Context as _;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::config::HostPattern;

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
    /// Directories the guest sees (the container's volumes).
    pub volumes: Vec<Volume>,
    /// wasi:sockets and name lookups in the container's network namespace.
    pub sockets: bool,
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
}

/// The guest's WASI context as the container defines it: `env` (the
/// container's, or a CGI request's), the container's args and volumes, stdout
/// and stderr to the container log, sockets if allowed. Callers may replace
/// stdio before building.
pub fn wasi_builder(
    config: &GuestConfig,
    env: &[(String, String)],
) -> anyhow::Result<WasiCtxBuilder> {
    let mut wasi = WasiCtxBuilder::new();
    // Guest stdout/stderr are the container's: `ctr` and `kubectl logs` show them.
    wasi.inherit_stdout().inherit_stderr();
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
            },
            memory: MemoryBudget::new(config.max_memory),
        }
    }
}

impl GuestState {
    /// No resource of an earlier request (request, response, body, stream)
    /// is left in the instance, so it can serve the next one.
    pub fn is_idle(&self) -> bool {
        self.table.is_empty()
    }
}

/// `WASMHTTP_MAX_INSTANCE_MEMORY` for one instance: the sum of its linear
/// memories (a componentize-js guest has several). Growth past it fails the
/// way running out of memory does in wasm (`memory.grow` returns -1), so the
/// guest fails its own request instead of the kernel killing the container.
pub struct MemoryBudget {
    limit: usize,
    used: usize,
}

impl MemoryBudget {
    pub fn new(limit: u64) -> Self {
        Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            used: 0,
        }
    }

    pub fn used(&self) -> usize {
        self.used
    }
}

impl wasmtime::ResourceLimiter for MemoryBudget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let after = self.used - current + desired;
        if after > self.limit {
            return Ok(false);
        }
        self.used = after;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// A store for one guest instance, with its memory budget enforced.
pub fn new_store(
    engine: &wasmtime::Engine,
    config: &GuestConfig,
) -> anyhow::Result<wasmtime::Store<GuestState>> {
    Ok(limited_store(engine, GuestState::new(config)?, |state| {
        &mut state.memory
    }))
}

/// A store whose linear memories are held to the budget `memory` finds in it.
pub fn limited_store<T: 'static>(
    engine: &wasmtime::Engine,
    data: T,
    memory: fn(&mut T) -> &mut MemoryBudget,
) -> wasmtime::Store<T> {
    let mut store = wasmtime::Store::new(engine, data);
    store.limiter(move |state| memory(state));
    // The engine interrupts guests by epoch (request timeouts); a store that
    // sets no deadline of its own runs without one.
    store.set_epoch_deadline(NO_DEADLINE);
    store
}

/// Epoch ticks no process lives to see (about 146 years of 10 ms ticks).
const NO_DEADLINE: u64 = 1 << 62;

/// A guest stopped by its epoch deadline (WASMHTTP_REQUEST_TIMEOUT).
#[derive(Debug)]
pub struct TimedOut;

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the guest was stopped at the request timeout")
    }
}

impl std::error::Error for TimedOut {}

/// No room was left in the instance pool for another instance (all its
/// slots held by requests, warm instances, or guests still being stopped):
/// the request is shed like one over WASMHTTP_MAX_CONCURRENCY.
#[derive(Debug)]
pub struct PoolExhausted(pub String);

impl std::fmt::Display for PoolExhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no room for another instance: {}", self.0)
    }
}

impl std::error::Error for PoolExhausted {}

/// Turns a guest call's error into [`TimedOut`] when the epoch deadline
/// stopped it (callers answer 504 rather than 500), and into
/// [`PoolExhausted`] when no instance could be made (503, not 500).
pub fn classify(err: wasmtime::Error) -> anyhow::Error {
    if err.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
        anyhow::Error::new(TimedOut)
    } else if let Some(full) = err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        anyhow::Error::new(PoolExhausted(full.to_string()))
    } else {
        anyhow::Error::from(err)
    }
}

/// Whether `err` is a guest's own failure (a trap, an error it returned):
/// not its timeout, and not a request it never got to run.
pub fn is_guest_fault(err: &anyhow::Error) -> bool {
    !err.is::<TimedOut>() && !err.is::<PoolExhausted>()
}

/// Links all of WASI 0.2 (so componentize-js/py guests, which import more than
/// the proxy world, instantiate) plus wasi:http.
pub fn linker(engine: &wasmtime::Engine) -> anyhow::Result<Linker<GuestState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
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

/// Outbound HTTP goes only to the allowed hosts (over TLS with the bundled
/// webpki root certificates for https, so a `FROM scratch` image needs no CA
/// files); anything else is refused with wasi:http's own error code, so a
/// guest sees a clean `HTTP-request-denied` instead of a hang or a trap.
struct OutboundPolicy {
    allowed: Arc<Vec<HostPattern>>,
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>
    {
        let uri = request.uri();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let allowed = uri
            .host()
            .is_some_and(|host| self.allowed.iter().any(|p| p.matches(host, port)));
        if !allowed {
            eprintln!(
                "wasmhttp: outbound request to {} denied (not in WASMHTTP_ALLOWED_OUTBOUND_HOSTS)",
                uri.authority().map(|a| a.as_str()).unwrap_or("?")
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as IoFuture,
            ))
        })
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
