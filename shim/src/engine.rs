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
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, Module, PoolingAllocationConfig, Precompiled,
};

/// Bumped whenever the way we configure the engine or pack artifacts changes
/// in a way wasmtime's own compatibility hash cannot see.
const ARTIFACT_FORMAT: u32 = 1;

/// wasmtime's version, as locked in Cargo.lock (see build.rs).
pub const WASMTIME_VERSION: &str = env!("LOCKED_WASMTIME_VERSION");

/// Components from componentize-js and componentize-py contain a dozen or
/// more core instances, several memories and large tables; wasmtime refuses,
/// when loading, a component that needs more than these per instance.
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 50;
const MAX_MEMORIES_PER_COMPONENT: u32 = 20;
const MAX_TABLES_PER_COMPONENT: u32 = 50;
/// Elements a table may grow to (funcref tables of the JavaScript engine
/// grow past 100,000).
const TABLE_ELEMENTS: u64 = 200_000;

/// What one pool slot of a linear memory reserves of the address space:
/// wasmtime's 4 GiB reservation for 32-bit memories (what lets compiled code
/// skip bounds checks; changing it would change the artifacts), or the
/// memory's own maximum if larger, plus its guard region.
const MEMORY_RESERVATION: u64 = 4 << 30;
const MEMORY_GUARD: u64 = 32 << 20;
/// What the pool may reserve of the process' 128 TiB of address space,
/// leaving the rest to the shim, its compiled code and the kernel's layout.
const ADDRESS_SPACE_BUDGET: u64 = 64 << 40;

pub use crate::footprint::Footprint;

impl Footprint {
    /// The program whose footprint is not known yet: engines that compile,
    /// precompile or find a footprint out never instantiate, so their pool's
    /// totals hardly matter (what a component may have per instance is
    /// bounded by the per-component maxima above, the same in every engine).
    const ANY: Footprint = Footprint {
        memories: 2,
        tables: 4,
        largest_initial_memory: 0,
        largest_initial_table: 0,
    };

    pub fn of(code: &Code) -> Self {
        let required = match code {
            Code::Component(component) => component.resources_required(),
            Code::Module(module) => Some(module.resources_required()),
        };
        match required {
            Some(required) => Footprint {
                memories: required.num_memories,
                tables: required.num_tables,
                largest_initial_memory: required.max_initial_memory_size.unwrap_or(0) * WASM_PAGE,
                largest_initial_table: required.max_initial_table_size.unwrap_or(0),
            },
            // a component that imports core modules: wasmtime cannot tell
            // before instantiating, so assume the most it admits
            None => Footprint {
                memories: MAX_MEMORIES_PER_COMPONENT,
                tables: MAX_TABLES_PER_COMPONENT,
                largest_initial_memory: 0,
                largest_initial_table: 0,
            },
        }
    }
}

const WASM_PAGE: u64 = 64 << 10;

/// The pooling allocator's sizes: room for `instances` concurrent instances
/// of a program with `footprint`, each allowed `memory` bytes of linear
/// memory (WASMHTTP_MAX_CONCURRENCY and WASMHTTP_MAX_INSTANCE_MEMORY).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    instances: u32,
    memory: u64,
    footprint: Footprint,
}

/// Why a pool cannot serve a program with the settings given: which limit,
/// and by how much.
#[derive(Debug, PartialEq, Eq)]
pub struct PoolTooSmall(pub String);

impl std::fmt::Display for PoolTooSmall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PoolTooSmall {}

impl Pool {
    /// The pool engines get before a program is loaded: compiling and
    /// precompiling, and finding out a program's [`Footprint`].
    pub fn any_program() -> Self {
        Pool {
            instances: crate::settings::MAX_INSTANCES as u32,
            memory: crate::settings::WASM32_MEMORY,
            footprint: Footprint::ANY,
        }
    }

    /// The pool for `concurrency` instances of a program with `footprint`,
    /// or why they cannot have one.
    pub fn sized(
        footprint: Footprint,
        concurrency: usize,
        memory: u64,
    ) -> Result<Self, PoolTooSmall> {
        if footprint.largest_initial_memory > memory {
            return Err(PoolTooSmall(format!(
                "the program's largest linear memory starts at {}, more than \
                 WASMHTTP_MAX_INSTANCE_MEMORY={} allows (by {}): every request would fail; \
                 raise WASMHTTP_MAX_INSTANCE_MEMORY to at least {}",
                human_size(footprint.largest_initial_memory),
                human_size(memory),
                human_size(footprint.largest_initial_memory - memory),
                human_size(footprint.largest_initial_memory),
            )));
        }
        let instances = u32::try_from(concurrency).unwrap_or(u32::MAX);
        let pool = Pool {
            instances,
            memory,
            footprint,
        };
        let reserved = pool.address_space();
        if reserved > ADDRESS_SPACE_BUDGET {
            // the largest concurrency that fits, for the message
            let fits = (1..instances)
                .rev()
                .find(|&fewer| {
                    Pool {
                        instances: fewer,
                        ..pool
                    }
                    .address_space()
                        <= ADDRESS_SPACE_BUDGET
                })
                .unwrap_or(0);
            return Err(PoolTooSmall(format!(
                "WASMHTTP_MAX_CONCURRENCY={concurrency} with a program of {} linear memories \
                 needs {} GiB of address space for the instance pool, {} GiB more than the {} GiB \
                 it may reserve; at most {fits} concurrent instances fit",
                footprint.memories,
                reserved >> 30,
                (reserved - ADDRESS_SPACE_BUDGET) >> 30,
                ADDRESS_SPACE_BUDGET >> 30,
            )));
        }
        Ok(pool)
    }

    /// Instances the pool has room for. A quarter more than the concurrency
    /// cap: a guest stopped at its timeout may still hold its slot for a
    /// moment after its request's permit went to the next request, and warm
    /// instances (WASMHTTP_INSTANCE_REUSE) wait outside the cap.
    fn slots(&self) -> u32 {
        self.instances.saturating_add(self.instances / 4 + 2)
    }

    fn table_elements(&self) -> u64 {
        TABLE_ELEMENTS.max(self.footprint.largest_initial_table)
    }

    /// Bytes of address space the pool reserves up front: linear memories
    /// and tables (instances and their core instances are only counted).
    fn address_space(&self) -> u64 {
        let slots = u64::from(self.slots());
        let memories = slots * u64::from(self.footprint.memories.max(1));
        let tables = slots * u64::from(self.footprint.tables.max(1));
        let memory_slot = MEMORY_RESERVATION.max(self.memory) + MEMORY_GUARD;
        memories * memory_slot + tables * self.table_elements() * 8
    }
}

impl std::fmt::Display for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let footprint = &self.footprint;
        let count =
            |n: u32, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        write!(
            f,
            "instance pool: {}, each with {} and {}",
            count(self.slots(), "instance", "instances"),
            count(footprint.memories, "linear memory", "linear memories"),
            count(footprint.tables, "table", "tables"),
        )
    }
}

/// `64 KiB`, `1.1 MiB`, `4.0 GiB`: sizes as the settings write them.
fn human_size(bytes: u64) -> String {
    let (unit, scale) = match bytes {
        0..0x10_0000 => ("KiB", 1u64 << 10),
        0x10_0000..0x4000_0000 => ("MiB", 1 << 20),
        _ => ("GiB", 1 << 30),
    };
    let scaled = bytes as f64 / scale as f64;
    if unit == "KiB" {
        format!("{scaled:.0} {unit}")
    } else {
        format!("{scaled:.1} {unit}")
    }
}

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
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("configuring wasmtime")
}

fn pooling_config(pool: Pool) -> PoolingAllocationConfig {
    let mut pooling = PoolingAllocationConfig::default();
    let slots = pool.slots();
    let footprint = pool.footprint;
    pooling.total_component_instances(slots);
    // Core instances are only counted, never reserved: room for the most any
    // loadable component has, so a component never runs out of them before
    // it runs out of component instances.
    pooling.total_core_instances(slots.saturating_mul(MAX_CORE_INSTANCES_PER_COMPONENT));
    pooling.total_memories(slots.saturating_mul(footprint.memories.max(1)));
    pooling.total_tables(slots.saturating_mul(footprint.tables.max(1)));
    // every instance runs its calls on a fiber stack of its own
    pooling.total_stacks(slots);
    pooling.max_memory_size(usize::try_from(pool.memory).unwrap_or(usize::MAX));
    pooling.max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT);
    pooling.max_memories_per_component(MAX_MEMORIES_PER_COMPONENT);
    pooling.max_tables_per_component(MAX_TABLES_PER_COMPONENT);
    pooling.table_elements(usize::try_from(pool.table_elements()).unwrap_or(usize::MAX));
    pooling.max_core_instance_size(16 << 20);
    pooling.max_component_instance_size(16 << 20);
    // Returning a slot with madvise costs a TLB shootdown on every core the
    // process runs on, and the next instance then page-faults its memory in
    // again; per request, that was a third of the CPU time. Instead, the
    // pages an instance dirtied (found with PAGEMAP_SCAN where the kernel has
    // it) are reset in place with memcpy, up to KEEP_RESIDENT per memory:
    // about 1.6x the requests/s for the WAT hello and 2x for the JavaScript
    // example, measured here. The price: a slot's dirtied pages stay resident
    // while the slot is unused, so memory is not handed back after a burst
    // (the burst's peak counted them all the same).
    pooling.linear_memory_keep_resident(KEEP_RESIDENT);
    pooling.table_keep_resident(KEEP_RESIDENT);
    pooling.pagemap_scan(wasmtime::Enabled::Auto);
    pooling
}

/// Per linear memory and table: what a slot keeps mapped between instances.
/// 16 MiB covers what a componentize-js guest dirties per request; beyond it
/// the rest of the memory is given back with madvise as before.
const KEEP_RESIDENT: usize = 16 << 20;

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

    const ONE_MEMORY: Footprint = Footprint {
        memories: 1,
        tables: 1,
        largest_initial_memory: 1 << 20,
        largest_initial_table: 10,
    };

    #[test]
    fn the_pool_says_what_it_reserved() {
        let pool = Pool::sized(ONE_MEMORY, 16, 64 << 20).unwrap();
        assert_eq!(
            pool.to_string(),
            "instance pool: 22 instances, each with 1 linear memory and 1 table"
        );
    }

    #[test]
    fn a_memory_larger_than_the_instance_cap_is_refused_by_how_much() {
        let wants_16m = Footprint {
            largest_initial_memory: 16 << 20,
            ..ONE_MEMORY
        };
        let err = Pool::sized(wants_16m, 4, 4 << 20).unwrap_err().to_string();
        assert!(
            err.contains("WASMHTTP_MAX_INSTANCE_MEMORY=4.0 MiB"),
            "{err}"
        );
        assert!(err.contains("by 12.0 MiB"), "{err}");
        assert!(err.contains("at least 16.0 MiB"), "{err}");
        assert!(Pool::sized(wants_16m, 4, 16 << 20).is_ok());
    }

    #[test]
    fn a_concurrency_whose_memories_do_not_fit_says_what_does() {
        let many_memories = Footprint {
            memories: 20,
            ..ONE_MEMORY
        };
        let err = Pool::sized(many_memories, 1000, 4 << 30)
            .unwrap_err()
            .to_string();
        assert!(err.contains("WASMHTTP_MAX_CONCURRENCY=1000"), "{err}");
        assert!(err.contains("20 linear memories"), "{err}");
        let fits: usize = err
            .rsplit("at most ")
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number that fits in: {err}"));
        assert!(Pool::sized(many_memories, fits, 4 << 30).is_ok(), "{err}");
        assert!(
            Pool::sized(many_memories, fits + 1, 4 << 30).is_err(),
            "{err}"
        );
        // the most a setting allows, with the examples' few memories, fits
        assert!(
            Pool::sized(
                Footprint {
                    memories: 4,
                    ..ONE_MEMORY
                },
                1000,
                4 << 30
            )
            .is_ok()
        );
    }

    /// The pool holds exactly its slots' worth of instances; one more is
    /// [`crate::guest::PoolExhausted`] (answered 503), not a plain error.
    #[tokio::test]
    async fn a_full_pool_is_pool_exhaustion() {
        use wasmtime_wasi_http::p2::bindings::ProxyPre;
        let probe = new_engine().unwrap();
        let wasm = wasmhttp_fixtures::build("hello").unwrap();
        let loaded = compile(&probe, &wasm).unwrap();
        let footprint = Footprint::of(&loaded);
        assert_eq!(
            (footprint.memories, footprint.tables),
            (1, 1),
            "{footprint:?}"
        );
        let pool = Pool::sized(footprint, 2, 16 << 20).unwrap();
        let engine = new_engine_with(pool).unwrap();
        let Code::Component(component) = move_to(&engine, &loaded).unwrap() else {
            panic!("the hello fixture is a component")
        };
        let pre = ProxyPre::new(
            crate::guest::linker(&engine)
                .unwrap()
                .instantiate_pre(&component)
                .unwrap(),
        )
        .unwrap();
        let guest = crate::guest::GuestConfig {
            env: vec![],
            args: vec![],
            max_memory: 16 << 20,
            outbound: Default::default(),
            volumes: vec![],
            sockets: false,
        };
        let mut live = Vec::new();
        for _ in 0..pool.slots() {
            let mut store = crate::guest::new_store(&engine, &guest).unwrap();
            pre.instantiate_async(&mut store).await.unwrap();
            live.push(store);
        }
        let mut store = crate::guest::new_store(&engine, &guest).unwrap();
        let Err(err) = pre.instantiate_async(&mut store).await else {
            panic!("an instance beyond the pool's {} slots", pool.slots());
        };
        let err = crate::guest::classify(err);
        assert!(err.is::<crate::guest::PoolExhausted>(), "{err:#}");
        drop(live);
        let mut store = crate::guest::new_store(&engine, &guest).unwrap();
        pre.instantiate_async(&mut store).await.unwrap();
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
