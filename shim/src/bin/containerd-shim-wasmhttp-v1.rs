//! The containerd shim: containerd runs it for `io.containerd.wasmhttp.v1`.

use containerd_shim_wasm::shim::Cli;
use wasmhttp::shim::WasmHttpShim;

fn main() {
    WasmHttpShim::run(None);
}
