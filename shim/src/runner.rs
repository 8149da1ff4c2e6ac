//! The one path from "a component and its container settings" to a running
//! guest, shared by the containerd shim and `wasmhttp serve`.

use std::time::Instant;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use wasmtime::component::Component;

use crate::command;
use crate::config::Environment;
use crate::engine;
use crate::guest::GuestConfig;
use crate::serve::HttpServer;
use crate::world::World;

/// Where the component's code comes from.
pub enum ComponentCode {
    /// Plain wasm: compiled here, with Cranelift.
    Wasm(Vec<u8>),
    /// A precompiled artifact from the shim's cache, plus the wasm to fall back
    /// to should the artifact not load (it names another wasmtime, say).
    Precompiled {
        artifact: Vec<u8>,
        fallback: Option<Box<dyn FnOnce() -> Result<Vec<u8>> + Send>>,
    },
}

/// Everything needed to start a guest, checked before anything runs.
pub struct Prepared {
    pub world: World,
    pub code: ComponentCode,
    pub env: Environment,
    /// The guest's arguments, program name first.
    pub args: Vec<String>,
}

/// Loads the component and runs it: an HTTP handler is served until SIGTERM
/// or SIGINT (exit code 0); a command runs to completion (its exit code).
pub async fn run(prepared: Prepared) -> Result<i32> {
    let Prepared {
        world,
        code,
        env,
        args,
    } = prepared;
    let engine = engine::new_engine()?;
    let started = Instant::now();
    let component = load(&engine, code)?;
    eprintln!(
        "wasmhttp: {world} loaded in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let guest = GuestConfig {
        env: env.guest_env,
        args,
    };

    match world {
        World::HttpHandler => {
            let server = HttpServer::bind(&component, guest, env.settings.listen).await?;
            eprintln!("wasmhttp: serving HTTP on {}", server.local_addr());
            server
                .run(async {
                    stop_signal().await.ok();
                })
                .await?;
            eprintln!("wasmhttp: stopped");
            Ok(0)
        }
        World::Command => tokio::select! {
            code = command::run(&component, &guest) => code,
            signal = stop_signal() => Ok(128 + signal?),
        },
    }
}

fn load(engine: &wasmtime::Engine, code: ComponentCode) -> Result<Component> {
    match code {
        ComponentCode::Wasm(wasm) => engine::compile(engine, &wasm),
        ComponentCode::Precompiled { artifact, fallback } => {
            match engine::load_precompiled(engine, &artifact) {
                Ok(component) => Ok(component),
                Err(err) => {
                    let fallback = fallback.context("the precompiled component does not load and there is no wasm to fall back to")?;
                    eprintln!("wasmhttp: {err:#}; compiling from the wasm instead");
                    engine::compile(engine, &fallback()?)
                }
            }
        }
    }
}

/// Resolves with the signal number of the first SIGTERM or SIGINT.
pub async fn stop_signal() -> Result<i32> {
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(tokio::select! {
        _ = terminate.recv() => libc_signal::SIGTERM,
        _ = interrupt.recv() => libc_signal::SIGINT,
    })
}

mod libc_signal {
    pub const SIGINT: i32 = nix::sys::signal::Signal::SIGINT as i32;
    pub const SIGTERM: i32 = nix::sys::signal::Signal::SIGTERM as i32;
}
