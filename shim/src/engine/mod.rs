//! The one wasmtime [`Engine`] of a process, and how components get into it:
//! compiled from wasm, or loaded from an artifact that [`precompile`] made with
//! an identically configured engine.
//!
//! [`precompile`]: crate::precompile

use std::hash::Hasher;
use std::time::Duration;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module, Precompiled};

mod pool;

use pool::pooling_config;
pub use pool::{Footprint, Pool, PoolTooSmall, human_size};

/// Bumped whenever the way we configure the engine or pack artifacts changes
/// in a way wasmtime's own compatibility hash cannot see.
const ARTIFACT_FORMAT: u32 = 2;

/// wasmtime's version, as locked in Cargo.lock (see build.rs).
pub const WASMTIME_VERSION: &str = env!("LOCKED_WASMTIME_VERSION");

/// Builds an engine with the pool for any program (for compiling and
/// precompiling).
pub fn new_engine() -> Result<Engine> {
    new_engine_with(Pool::any_program())
}

/// Builds the engine shared by every request of this process. The pool's
/// sizes do not change the compiled code, so artifacts precompiled with
/// [`new_engine`] load here (a test checks that).
pub fn new_engine_with(pool: Pool) -> Result<Engine> {
    let mut config = Config::new();
    // Instantiation per request must be cheap: pre-reserved slots instead of
    // mmap/munmap per instance, and linear memories initialised copy-on-write
    // from the component's data segments instead of copied.
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(pool)));
    config.memory_init_cow(true);
    // WASMHTTP_REQUEST_TIMEOUT must stop a guest that never yields (an
    // infinite loop): compiled code checks an epoch counter that
    // `start_epoch_ticker` advances. Part of the artifact's compatibility hash.
    config.epoch_interruption(true);
    // WASI 0.3 (`wasi:http/service` guests): async functions, streams, futures.
    config.wasm_component_model_async(true);
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("configuring wasmtime")
}

/// How often the epoch advances: the granularity of request timeouts.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The epoch deadline that matches `timeout`, rounded up.
pub fn epoch_ticks(timeout: Duration) -> u64 {
    (timeout.as_nanos() / EPOCH_TICK.as_nanos()) as u64 + 1
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] for as long as it exists.
pub fn start_epoch_ticker(engine: &Engine) {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("wasmhttp-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("starting the epoch thread");
}

/// A stable identifier of everything that decides whether an artifact can be
/// loaded by this engine: our format, wasmtime's version, and wasmtime's own
/// hash of the engine's compiler settings and features. It is a SHA-256, so it
/// is the same across builds and processes (unlike `DefaultHasher`).
pub fn cache_key(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    hasher.write(b"wasmhttp-artifact\0");
    hasher.write_u32(ARTIFACT_FORMAT);
    hasher.write(WASMTIME_VERSION.as_bytes());
    hasher.write(std::env::consts::ARCH.as_bytes());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    hex::encode(hasher.0.finalize())
}

/// Feeds everything a `Hash` impl writes into SHA-256.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        unreachable!("only the SHA-256 digest is read")
    }
}

/// Hands memory that compiling or loading freed back to the kernel. glibc
/// keeps freed heap in its per-thread arenas; after Cranelift compiled a
/// componentize-js guest on every core that was 300 MB of the process' RSS,
/// counted against the pod's memory limit for its whole life.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused heap pages; it has no preconditions.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Compiled guest code: a component, or a WASI preview 1 core module.
#[derive(Clone)]
pub enum Code {
    Component(Component),
    Module(Module),
}

/// Compiles a component or core module with Cranelift (the slow path a
/// cache hit avoids).
pub fn compile(engine: &Engine, wasm: &[u8]) -> Result<Code> {
    if wasmparser::Parser::is_component(wasm) {
        Component::new(engine, wasm)
            .map(Code::Component)
            .map_err(anyhow::Error::from)
            .context("compiling the component")
    } else {
        Module::new(engine, wasm)
            .map(Code::Module)
            .map_err(anyhow::Error::from)
            .context("compiling the module")
    }
}

/// Produces the machine-code artifact of a component or module, for the cache.
pub fn precompile(engine: &Engine, wasm: &[u8]) -> Result<Vec<u8>> {
    if wasmparser::Parser::is_component(wasm) {
        engine.precompile_component(wasm)
    } else {
        engine.precompile_module(wasm)
    }
    .map_err(anyhow::Error::from)
    .context("precompiling the program")
}

/// The same program in another engine (one whose pool differs; the machine
/// code does not).
pub fn move_to(engine: &Engine, code: &Code) -> Result<Code> {
    let artifact = match code {
        Code::Component(component) => component.serialize(),
        Code::Module(module) => module.serialize(),
    }
    .map_err(anyhow::Error::from)
    .context("serializing the loaded program")?;
    load_precompiled(engine, &artifact)
}

/// Loads an artifact made by [`precompile`].
///
/// Only call this with bytes this program wrote itself: wasmtime artifacts are
/// machine code and are trusted as such. wasmtime still checks that the
/// artifact matches this engine's version and settings.
pub fn load_precompiled(engine: &Engine, artifact: &[u8]) -> Result<Code> {
    // SAFETY (both): the artifact comes from our own precompile cache (the
    // containerd content store, written by this shim), see the function's contract.
    match Engine::detect_precompiled(artifact) {
        Some(Precompiled::Module) => {
            unsafe { Module::deserialize(engine, artifact) }.map(Code::Module)
        }
        _ => unsafe { Component::deserialize(engine, artifact) }.map(Code::Component),
    }
    .map_err(anyhow::Error::from)
    .context("loading the precompiled program")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_is_stable_and_hex() {
        let a = cache_key(&new_engine().unwrap());
        let b = cache_key(&new_engine().unwrap());
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn cache_key_changes_with_engine_settings() {
        let ours = cache_key(&new_engine().unwrap());
        let mut config = Config::new();
        config.cranelift_opt_level(wasmtime::OptLevel::None);
        let other = cache_key(&Engine::new(&config).unwrap());
        assert_ne!(ours, other);
    }

    #[test]
    fn pool_sizes_do_not_change_the_artifacts() {
        let precompiling = new_engine().unwrap();
        let serving = new_engine_with(Pool::sized(Footprint::ANY, 8, 64 << 20).unwrap()).unwrap();
        assert_eq!(cache_key(&precompiling), cache_key(&serving));
        let wasm = wasmhttp_fixtures::build("hello").unwrap();
        let artifact = precompile(&precompiling, &wasm).unwrap();
        load_precompiled(&serving, &artifact).unwrap();
    }

    #[test]
    fn precompiled_artifacts_load_and_foreign_ones_are_refused() {
        let engine = new_engine().unwrap();
        let wasm = wasmhttp_fixtures::build("hello").unwrap();
        let artifact = precompile(&engine, &wasm).unwrap();
        load_precompiled(&engine, &artifact).unwrap();

        // a different memory layout makes the machine code incompatible
        let mut config = Config::new();
        config.memory_reservation(1 << 24);
        let other = Engine::new(&config).unwrap();
        assert!(load_precompiled(&other, &artifact).is_err());
    }
}
