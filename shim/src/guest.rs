//! What a guest instance sees of the world: its environment, arguments and
//! stdio, and nothing else. Capabilities are deny-by-default: no preopened
//! directories, no sockets, no name lookups, no outbound HTTP, none of the
//! host's environment.

use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// The guest's view of the container, shared by every instance of a process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestConfig {
    /// The container's environment minus the shim's `WASMHTTP_*` settings.
    pub env: Vec<(String, String)>,
    /// The container's `process.args`, program name first.
    pub args: Vec<String>,
}

/// The `T` of every `Store<T>`: one per request (or per command run).
pub struct GuestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: DenyOutbound,
}

impl GuestState {
    pub fn new(config: &GuestConfig) -> Self {
        let mut wasi = WasiCtxBuilder::new();
        // Guest stdout/stderr are the container's: `ctr` and `kubectl logs` show them.
        wasi.inherit_stdout().inherit_stderr();
        wasi.envs(&config.env).args(&config.args);
        Self {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: DenyOutbound,
        }
    }
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

/// Outbound HTTP is refused with wasi:http's own error code, so a guest sees a
/// clean `HTTP-request-denied` instead of a hang or a trap.
struct DenyOutbound;

impl WasiHttpHooks for DenyOutbound {
    fn send_request(
        &mut self,
        _request: http::Request<WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>
    {
        Box::new(async { Err(HttpError::HttpRequestDenied) })
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
