//! The one path from "a component and its container settings" to a running
//! guest, shared by the containerd shim and `wasmhttp serve`.

use std::sync::Arc;
use std::time::Instant;

use crate::engine::{self, Code};
use crate::guest::{AppCalls, GuestConfig, Volume};
use crate::http::admin;
use crate::http::{HttpServer, Served, ServerState};
use crate::output;
use crate::platform::Platform;
use crate::platform::config::ConfigSource;
use crate::program;
use crate::routes::{self, Route, RouteTable};
use crate::settings::{Environment, Settings};
use crate::world::{self, Plan, World};
use anyhow::{Context, Result, bail};
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

/// Everything needed to start a container's program, checked before
/// anything runs: one component, or an app of several under routes.
pub struct Prepared {
    /// The container's environment: the listeners' settings, and each
    /// part's unless its route sets its own.
    pub env: Environment,
    /// What to serve (or run): one part, or one per route in the table's order.
    pub parts: Vec<Part>,
    /// The app's routes; `None`: the one part answers every path.
    pub routes: Option<RouteTable>,
    /// The container's volumes; those that turn out not to be directories
    /// (file mounts) are skipped with a note.
    pub volumes: Vec<Volume>,
}

/// One component and how it is run.
pub struct Part {
    pub world: World,
    /// How WASMHTTP_MODE says to run it.
    pub plan: Plan,
    pub code: ComponentCode,
    /// Its environment: the container's, with its route's entries over it.
    pub env: Environment,
    /// The guest's arguments, program name first.
    pub args: Vec<String>,
    /// Which of the container's volumes it sees (by guest path); `None`: all.
    pub volumes: Option<Vec<String>>,
}

impl Part {
    /// Checks that WASMHTTP_MODE can run a program of `world`, that the
    /// configuration directories are there, and, when the precompile cache
    /// knows the program's footprint, that the settings leave its instances
    /// room (so a container that could not serve fails its start, with the
    /// reason, rather than exiting once started). `pools` is how many
    /// components share the process.
    fn new(
        world: World,
        code: ComponentCode,
        env: Environment,
        args: Vec<String>,
        pools: u32,
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
            engine::Pool::sized_sharing(
                *footprint,
                settings.max_concurrency,
                settings.max_instance_memory,
                pools,
            )?;
        }
        Ok(Self {
            world,
            plan,
            code,
            env,
            args,
            volumes: None,
        })
    }
}

/// Where an app's component is, for [`Prepared::app`]: its world, code and
/// the name it runs under (its path in the image).
pub type Located = (World, ComponentCode, String);

impl Prepared {
    /// One component for every path (or a command to run once).
    pub fn new(
        world: World,
        code: ComponentCode,
        env: Environment,
        args: Vec<String>,
        volumes: Vec<Volume>,
    ) -> Result<Self> {
        let part = Part::new(world, code, env.clone(), args, 1)?;
        Ok(Self {
            env,
            parts: vec![part],
            routes: None,
            volumes,
        })
    }

    /// An app: each route's component, found by `locate`, checked with its
    /// route's settings; every error names the route.
    pub fn app(
        routes: RouteTable,
        env: Environment,
        volumes: Vec<Volume>,
        mut locate: impl FnMut(&Route) -> Result<Located>,
    ) -> Result<Self> {
        let pools = routes.routes.len() as u32;
        let mut parts = Vec::with_capacity(routes.routes.len());
        for route in &routes.routes {
            let part = (|| {
                let (world, code, arg0) = locate(route)?;
                let (route_env, _) = routes::plan_route(route, &env, world)?;
                if let Some(wanted) = &route.volumes {
                    for guest in wanted {
                        if !volumes.iter().any(|volume| volume.guest == *guest) {
                            let have: Vec<&str> =
                                volumes.iter().map(|v| v.guest.as_str()).collect();
                            bail!(
                                "volume {guest:?} is not one of the container's ({})",
                                if have.is_empty() {
                                    "it has none".into()
                                } else {
                                    have.join(", ")
                                }
                            );
                        }
                    }
                }
                let mut args = vec![arg0];
                args.extend(route.args.iter().cloned());
                let mut part = Part::new(world, code, route_env, args, pools)?;
                part.volumes = route.volumes.clone();
                Ok(part)
            })()
            .with_context(|| route.describe())?;
            parts.push(part);
        }
        Ok(Self {
            env,
            parts,
            routes: Some(routes),
            volumes,
        })
    }
}

/// Loads the program and runs it: HTTP handlers and CGI programs are
/// served until SIGTERM or SIGINT (exit code 0); a command runs to
/// completion (its exit code). What stops it early is said on stderr (exit
/// code 1). Returns once the container's output is written, or given up
/// after [`output::FINISH_BOUND`].
pub async fn run(prepared: Prepared) -> i32 {
    output::set_capacity(prepared.env.settings.log_buffer);
    let code = serve(prepared).await.unwrap_or_else(|err| {
        crate::say!("wasmhttp: {err:#}");
        1
    });
    // the last lines (why it stopped, the drops) before the process exits
    output::finish();
    code
}

async fn serve(prepared: Prepared) -> Result<i32> {
    let Prepared {
        env,
        parts,
        routes,
        volumes,
    } = prepared;
    let settings = env.settings;
    let mut stops = stop_signals()?;
    let state = Arc::new(ServerState::default());
    let serves_http = parts.iter().all(|part| part.plan != Plan::Command);
    // The admin endpoints come first: /healthz answers (and /readyz says
    // "starting") while a large component is still being compiled.
    if let (true, Some(addr)) = (serves_http, settings.admin_listen) {
        let bound = admin::start(addr, state.clone(), settings.idle_limits()).await?;
        crate::say!("wasmhttp: /healthz, /readyz and /metrics on {bound}");
    }
    let volumes = usable_volumes(volumes);
    // the container's services; an app's routes share its store
    let mut container_platform = Some(Platform::new(
        &settings,
        &env.guest_env,
        state.metrics.store_calls.clone(),
    )?);
    let pools = parts.len() as u32;
    // one for the app: the HTTP side serves its routes' calls to each other
    let app_calls = Arc::new(AppCalls::default());
    let mut served = Vec::with_capacity(parts.len());
    // routes naming the same bytes (one component under several paths, or
    // one handler behind the same middleware) are compiled once
    let mut compiled = Compiled::default();
    for (index, part) in parts.into_iter().enumerate() {
        let route = routes.as_ref().map(|table| &table.routes[index]);
        let named = route.map_or(String::new(), |route| format!("{}: ", route.describe()));
        let started = Instant::now();
        let described = named.trim_end_matches(": ").to_string();
        let (code, pool, shared) = load_for_serving(
            part.code,
            &part.env.settings,
            pools,
            &mut compiled,
            &described,
        )
        .with_context(|| described.clone())?;
        engine::release_freed_memory();
        let shared = shared.map_or(String::new(), |first| {
            format!(" (compiled once, for {first})")
        });
        crate::say!(
            "wasmhttp: {named}{} loaded in {:.1} ms{shared}; {pool}",
            part.world,
            started.elapsed().as_secs_f64() * 1e3
        );
        let platform = match (route, container_platform.as_ref()) {
            (Some(_), Some(shared)) => shared.for_route(&part.env.settings, &part.env.guest_env)?,
            _ => container_platform
                .take()
                .context("one component without routes has the container's services")?,
        };
        if route.is_none() || index == 0 {
            crate::say!("wasmhttp: {named}{}", platform.describe());
        }
        let part_settings = part.env.settings;
        let guest = GuestConfig {
            platform: Arc::new(platform),
            env: part.env.guest_env,
            args: part.args,
            max_memory: part_settings.max_instance_memory,
            outbound: Arc::new(part_settings.allowed_outbound_hosts.clone()),
            app: app_calls.clone(),
            volumes: volumes
                .iter()
                .filter(|volume| {
                    part.volumes
                        .as_ref()
                        .is_none_or(|wanted| wanted.contains(&volume.guest))
                })
                .cloned()
                .collect(),
            sockets: part_settings.allow_sockets,
        };
        served.push(Served {
            route: route.cloned(),
            code,
            plan: part.plan,
            guest,
            settings: part_settings,
        });
    }
    drop(container_platform);

    if !serves_http {
        let part = served.pop().expect("a command is one part");
        return tokio::select! {
            code = program::run_once(&part.code, &part.guest) => code,
            Some(signal) = stops.recv() => Ok(128 + signal),
        };
    }
    let cgi_only = served.iter().all(|part| part.plan == Plan::Cgi);
    let server = HttpServer::bind(served, routes, &settings, state, &app_calls).await?;
    let what = if cgi_only {
        " (CGI: one run of the program per request)"
    } else {
        ""
    };
    crate::say!("wasmhttp: serving HTTP on {}{what}", server.local_addr());
    server.run(&mut stops).await?;
    crate::say!("wasmhttp: stopped");
    Ok(0)
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
                crate::say!("wasmhttp: volume {} ({mode})", volume.guest);
            } else {
                crate::say!(
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
fn load_for_serving(
    code: ComponentCode,
    settings: &Settings,
    pools: u32,
    compiled: &mut Compiled,
    described: &str,
) -> Result<(Code, engine::Pool, Option<String>)> {
    let sized = |footprint| {
        let pool = engine::Pool::sized_sharing(
            footprint,
            settings.max_concurrency,
            settings.max_instance_memory,
            pools,
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
        return Ok((load(&serving, code)?, pool, None));
    }
    let (loaded, shared) = match &code {
        ComponentCode::Wasm(wasm) => {
            let digest = crate::precompile::sha256_hex(wasm);
            match compiled.0.get(&digest) {
                Some((loaded, first)) => (loaded.clone(), Some(first.clone())),
                None => {
                    let loaded = load(&engine::new_engine()?, code)?;
                    compiled
                        .0
                        .insert(digest, (loaded.clone(), described.to_string()));
                    (loaded, None)
                }
            }
        }
        ComponentCode::Precompiled { .. } => (load(&engine::new_engine()?, code)?, None),
    };
    let (serving, pool) = sized(engine::Footprint::of(&loaded))?;
    Ok((engine::move_to(&serving, &loaded)?, pool, shared))
}

/// The code compiled so far from wasm, by the wasm's SHA-256, with the
/// route it was compiled for.
#[derive(Default)]
struct Compiled(std::collections::HashMap<String, (Code, String)>);

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
                    crate::say!("wasmhttp: {err:#}; compiling from the wasm instead");
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
