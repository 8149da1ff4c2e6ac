//! The containerd shim: containerd runs it for `io.containerd.wasmhttp.v1`.

use containerd_shim_wasm::shim::Cli;
use wasmhttp::shim::WasmHttpShim;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    wasmhttp::cleanup::delete_orphaned_container(&args);
    wasmhttp::shutdown::bound_the_exit();
    WasmHttpShim::run(None);
}
