//! The one path from "a component and its container settings" to a running
//! guest, shared by the containerd shim and `wasmhttp serve`.

use std::sync::Arc;
use std::time::Instant;

use crate::engine::{self, Code};
use crate::guest::{GuestConfig, Volume};
use crate::http::admin;
use crate::http::{HttpServer, ServerState};
use crate::platform::Platform;
use crate::platform::config::ConfigSource;
use crate::program;
use crate::settings::{Environment, Settings};
use crate::world::{self, Plan, World};
use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// Where the component's code comes from.
pub enum ComponentCode {
    /// Plain wasm: compiled here, with Cranelift.
    Wasm(Vec<u8>),
    /// A precompiled artifact from the shim's cache, plus the wasm to fall back
    /// to should the artifact not load (it names another wasmtime, say).
    Precompiled {
        artifact: Vec<u8>,
        /// The engine it was made by ([`engine::cache_key`]): machine code
        /// is trusted only from an engine identical to ours.
        cache_key: String,
        /// What one instance takes from the pool, when the cache kept it.
        footprint: Option<engine::Footprint>,
        fallback: Option<Box<dyn FnOnce() -> Result<Vec<u8>> + Send>>,
    },
}

/// Everything needed to start a guest, checked before anything runs.
pub struct Prepared {
    pub world: World,
    /// How WASMHTTP_MODE says to run it.
    pub plan: Plan,
    pub code: ComponentCode,
    pub env: Environment,
    /// The guest's arguments, program name first.
    pub args: Vec<String>,
    /// Directories to map into the guest; those that turn out not to be
    /// directories (file mounts) are skipped with a note.
    pub volumes: Vec<Volume>,
}

impl Prepared {
    /// Checks that WASMHTTP_MODE can run a program of `world`, that the
    /// configuration directories are there, and, when the
    /// precompile cache knows the program's footprint, that the settings
    /// leave its instances room (so a container that could not serve fails
    /// its start, with the reason, rather than exiting once started).
    pub fn new(
        world: World,
        code: ComponentCode,
        env: Environment,
        args: Vec<String>,
        volumes: Vec<Volume>,
    ) -> Result<Self> {
        let plan = world::plan(env.settings.mode, world)?;
        // a misspelt mount would otherwise look like an empty configuration
        ConfigSource::check(&env.settings.config_dirs)?;
        if let ComponentCode::Precompiled {
            footprint: Some(footprint),
            ..
        } = &code
        {
            let settings = &env.settings;
            engine::Pool::sized(
                *footprint,
                settings.max_concurrency,
                settings.max_instance_memory,
            )?;
        }
        Ok(Self {
            world,
            plan,
            code,
            env,
            args,
            volumes,
        })
    }
}

/// Loads the program and runs it: an HTTP handler or a CGI program is
/// served until SIGTERM or SIGINT (exit code 0); a command runs to
/// completion (its exit code).
pub async fn run(prepared: Prepared) -> Result<i32> {
    let Prepared {
        world,
        plan,
        code,
        env,
        args,
        volumes,
    } = prepared;
    let settings = env.settings;
    let mut stops = stop_signals()?;
    let state = Arc::new(ServerState::default());
    // The admin endpoints come first: /healthz answers (and /readyz says
    // "starting") while a large component is still being compiled.
    if let (Plan::Proxy | Plan::Service | Plan::Cgi, Some(addr)) = (plan, settings.admin_listen) {
        let bound = admin::start(addr, state.clone(), settings.idle_limits()).await?;
        eprintln!("wasmhttp: /healthz, /readyz and /metrics on {bound}");
    }
    let started = Instant::now();
    let (code, pool) = load_for_serving(code, &settings)?;
    engine::release_freed_memory();
    eprintln!(
        "wasmhttp: {world} loaded in {:.1} ms; {pool}",
        started.elapsed().as_secs_f64() * 1e3
    );
    let platform = Platform::new(&settings, &env.guest_env, state.metrics.store_calls.clone())?;
    eprintln!("wasmhttp: {}", platform.describe());
    let guest = GuestConfig {
        platform: Arc::new(platform),
        env: env.guest_env,
        args,
        max_memory: settings.max_instance_memory,
        outbound: Arc::new(settings.allowed_outbound_hosts.clone()),
        volumes: usable_volumes(volumes),
        sockets: settings.allow_sockets,
    };

    match plan {
        Plan::Proxy | Plan::Service | Plan::Cgi => {
            let server = HttpServer::bind(&code, plan, guest, &settings, state).await?;
            let what = if plan == Plan::Cgi {
                " (CGI: one run of the program per request)"
            } else {
                ""
            };
            eprintln!("wasmhttp: serving HTTP on {}{what}", server.local_addr());
            server.run(&mut stops).await?;
            eprintln!("wasmhttp: stopped");
            Ok(0)
        }
        Plan::Command => tokio::select! {
            code = program::run_once(&code, &guest) => code,
            Some(signal) = stops.recv() => Ok(128 + signal),
        },
    }
}

/// Volumes that are directories; WASI maps only directories, so a file
/// mount (a configMap `subPath`, say) is left out, and said so.
fn usable_volumes(volumes: Vec<Volume>) -> Vec<Volume> {
    volumes
        .into_iter()
        .filter(|volume| {
            let is_dir = volume.host.is_dir();
            if is_dir {
                let mode = if volume.read_only { "read-only" } else { "read-write" };
                eprintln!("wasmhttp: volume {} ({mode})", volume.guest);
            } else {
                eprintln!(
                    "wasmhttp: {} is not a directory; WASI maps directories only, so the guest does not see it",
                    volume.host.display()
                );
            }
            is_dir
        })
        .collect()
}

/// Loads the program into the engine that serves it, whose instance pool
/// fits the program and the settings. The pool's sizes are fixed when an
/// engine is built. A precompiled program's footprint is in the cache, so
/// the pool is sized first and the program loaded once; otherwise it is
/// loaded first into an engine with room for any program, and its machine
/// code then moved into the sized one (the code is the same).
fn load_for_serving(code: ComponentCode, settings: &Settings) -> Result<(Code, engine::Pool)> {
    let sized = |footprint| {
        let pool = engine::Pool::sized(
            footprint,
            settings.max_concurrency,
            settings.max_instance_memory,
        )?;
        let serving = engine::new_engine_with(pool)?;
        engine::start_epoch_ticker(&serving);
        anyhow::Ok((serving, pool))
    };
    if let ComponentCode::Precompiled {
        footprint: Some(footprint),
        ..
    } = code
    {
        let (serving, pool) = sized(footprint)?;
        return Ok((load(&serving, code)?, pool));
    }
    let loaded = load(&engine::new_engine()?, code)?;
    let (serving, pool) = sized(engine::Footprint::of(&loaded))?;
    Ok((engine::move_to(&serving, &loaded)?, pool))
}

fn load(engine: &wasmtime::Engine, code: ComponentCode) -> Result<Code> {
    match code {
        ComponentCode::Wasm(wasm) => engine::compile(engine, &wasm),
        ComponentCode::Precompiled {
            artifact,
            cache_key,
            fallback,
            ..
        } => {
            let ours = engine::cache_key(engine);
            let loaded = if cache_key == ours {
                engine::load_precompiled(engine, &artifact)
            } else {
                Err(anyhow::anyhow!(
                    "the precompiled component was made by another engine (cache key {cache_key}, this engine's is {ours})"
                ))
            };
            match loaded {
                Ok(component) => Ok(component),
                Err(err) => {
                    let Some(fallback) = fallback else {
                        return Err(err.context(
                            "the precompiled component does not load and there is no wasm to fall back to",
                        ));
                    };
                    eprintln!("wasmhttp: {err:#}; compiling from the wasm instead");
                    engine::compile(engine, &fallback()?)
                }
            }
        }
    }
}

/// Every SIGTERM and SIGINT, as its signal number: the first one starts the
/// drain, a second one ends it.
fn stop_signals() -> Result<mpsc::Receiver<i32>> {
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let (sender, receiver) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let signal = tokio::select! {
                _ = terminate.recv() => libc_signal::SIGTERM,
                _ = interrupt.recv() => libc_signal::SIGINT,
            };
            if sender.send(signal).await.is_err() {
                break;
            }
        }
    });
    Ok(receiver)
}

mod libc_signal {
    pub const SIGINT: i32 = nix::sys::signal::Signal::SIGINT as i32;
    pub const SIGTERM: i32 = nix::sys::signal::Signal::SIGTERM as i32;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn precompiled(artifact: Vec<u8>, cache_key: String, wasm: Option<Vec<u8>>) -> ComponentCode {
        ComponentCode::Precompiled {
            artifact,
            cache_key,
            footprint: None,
            fallback: wasm.map(|wasm| {
                Box::new(move || Ok(wasm)) as Box<dyn FnOnce() -> Result<Vec<u8>> + Send>
            }),
        }
    }

    #[test]
    fn machine_code_of_another_engine_is_never_loaded_but_compiled_anew() {
        let engine = engine::new_engine().unwrap();
        let ours = engine::cache_key(&engine);
        let wasm = wasmhttp_fixtures::build("hello").unwrap();
        let artifact = engine::precompile(&engine, &wasm).unwrap();
        assert!(load(&engine, precompiled(artifact.clone(), ours.clone(), None)).is_ok());

        // another key: not deserialized, even though these bytes would load
        let err = load(
            &engine,
            precompiled(artifact.clone(), "0f".repeat(32), None),
        )
        .err()
        .expect("refused without wasm to compile");
        assert!(
            format!("{err:#}").contains("made by another engine"),
            "{err:#}"
        );
        // and with the wasm at hand, compiled from it
        let code = load(
            &engine,
            precompiled(artifact, "0f".repeat(32), Some(wasm.clone())),
        );
        assert!(matches!(code, Ok(Code::Component(_))));

        // our key but bytes that are no artifact: wasmtime's own check refuses them
        let err = load(&engine, precompiled(b"junk".to_vec(), ours, None))
            .err()
            .unwrap();
        assert!(!format!("{err:#}").contains("another engine"), "{err:#}");
    }
}
