//! A guest's store: its linear memories held to WASMHTTP_MAX_INSTANCE_MEMORY.

use super::{GuestConfig, GuestState};

/// `WASMHTTP_MAX_INSTANCE_MEMORY` for one instance: the sum of its linear
/// memories (a componentize-js guest has several). Growth past it fails the
/// way running out of memory does in wasm (`memory.grow` returns -1), so the
/// guest fails its own request instead of the kernel killing the container.
pub struct MemoryBudget {
    limit: usize,
    used: usize,
}

impl MemoryBudget {
    pub fn new(limit: u64) -> Self {
        Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            used: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryBudget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let after = self.used - current + desired;
        if after > self.limit {
            return Ok(false);
        }
        self.used = after;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// A store for one guest instance, with its memory budget enforced.
pub fn new_store(
    engine: &wasmtime::Engine,
    config: &GuestConfig,
) -> anyhow::Result<wasmtime::Store<GuestState>> {
    Ok(limited_store(engine, GuestState::new(config)?, |state| {
        &mut state.memory
    }))
}

/// A store whose linear memories are held to the budget `memory` finds in it.
pub fn limited_store<T: 'static>(
    engine: &wasmtime::Engine,
    data: T,
    memory: fn(&mut T) -> &mut MemoryBudget,
) -> wasmtime::Store<T> {
    let mut store = wasmtime::Store::new(engine, data);
    store.limiter(move |state| memory(state));
    // The engine interrupts guests by epoch (request timeouts); a store that
    // is given no Deadline runs without one.
    store.set_epoch_deadline(NO_DEADLINE);
    store
}

/// Epoch ticks no process lives to see (about 146 years of 10 ms ticks).
const NO_DEADLINE: u64 = 1 << 62;

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn the_budget_is_shared_by_all_of_an_instances_memories() {
        let mut budget = MemoryBudget::new(10 << 20);
        // two memories of 4 MiB each fit; growing one of them past the rest does not
        assert!(budget.memory_growing(0, 4 << 20, None).unwrap());
        assert!(budget.memory_growing(0, 4 << 20, None).unwrap());
        assert!(!budget.memory_growing(4 << 20, 7 << 20, None).unwrap());
        assert!(budget.memory_growing(4 << 20, 6 << 20, None).unwrap());
        assert!(!budget.memory_growing(0, 1, None).unwrap());
    }
}
