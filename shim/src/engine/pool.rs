//! The pooling allocator's sizes, from what one instance of the program
//! takes (its [`Footprint`]) and what the settings allow at once.

use anyhow::Result;
use wasmtime::PoolingAllocationConfig;

use super::Code;
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
    pub(super) const ANY: Footprint = Footprint {
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
        Self::sized_sharing(footprint, concurrency, memory, 1)
    }

    /// As [`Pool::sized`], for one of `pools` pools in the process (the
    /// routes of an app), which share the address space the pool may reserve.
    pub fn sized_sharing(
        footprint: Footprint,
        concurrency: usize,
        memory: u64,
        pools: u32,
    ) -> Result<Self, PoolTooSmall> {
        let budget = ADDRESS_SPACE_BUDGET / u64::from(pools.max(1));
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
        if reserved > budget {
            // the largest concurrency that fits, for the message
            let fits = (1..instances)
                .rev()
                .find(|&fewer| {
                    Pool {
                        instances: fewer,
                        ..pool
                    }
                    .address_space()
                        <= budget
                })
                .unwrap_or(0);
            return Err(PoolTooSmall(format!(
                "WASMHTTP_MAX_CONCURRENCY={concurrency} with a program of {} linear memories \
                 needs {} GiB of address space for the instance pool, {} GiB more than the {} GiB \
                 it may reserve; at most {fits} concurrent instances fit",
                footprint.memories,
                reserved >> 30,
                (reserved - budget) >> 30,
                budget >> 30,
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
pub fn human_size(bytes: u64) -> String {
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

pub(super) fn pooling_config(pool: Pool) -> PoolingAllocationConfig {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{compile, move_to, new_engine, new_engine_with};

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
            app: Default::default(),
            volumes: vec![],
            sockets: false,
            platform: std::sync::Arc::new(crate::platform::Platform::unconfigured()),
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
}
