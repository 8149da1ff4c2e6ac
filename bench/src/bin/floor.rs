//! The floor of `make bench`'s memory rows: a runwasi shim with no engine at
//! all. Its sandbox binds the container's port and answers every connection
//! with a fixed `200`, so what it costs is what containerd-shim-wasm and youki
//! cost by themselves; wasmhttp's memory is reported against it.
//!
//! containerd runs it for the runtime `io.containerd.floor.v1`; it listens on
//! the container's WASMHTTP_LISTEN (default 0.0.0.0:8080), like wasmhttp.

use anyhow::{Context, Result};
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::sandbox::context::RuntimeContext;
use containerd_shim_wasm::shim::{Cli, Shim, Version, version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

struct FloorShim;

impl Shim for FloorShim {
    fn name() -> &'static str {
        "floor"
    }

    fn version() -> Version {
        version!()
    }

    type Sandbox = FloorSandbox;

    // The same images as wasmhttp's: runwasi refuses to start a wasm image
    // none of whose layers the shim declares.
    fn supported_layers_types() -> &'static [&'static str] {
        wasmhttp::precompile::LAYER_TYPES
    }
}

#[derive(Default)]
struct FloorSandbox;

const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nfloor\n";

impl Sandbox for FloorSandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> Result<i32> {
        let listen = ctx
            .envs()
            .iter()
            .find_map(|entry| entry.strip_prefix("WASMHTTP_LISTEN="))
            .unwrap_or("0.0.0.0:8080")
            .to_string();
        let listener = TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let mut terminate = signal(SignalKind::terminate())?;
        loop {
            let (mut stream, _) = tokio::select! {
                accepted = listener.accept() => accepted?,
                _ = terminate.recv() => return Ok(0),
            };
            tokio::spawn(async move {
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request).await;
                let _ = stream.write_all(ANSWER).await;
            });
        }
    }
}

fn main() {
    FloorShim::run(None);
}
