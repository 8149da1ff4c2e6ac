//! Defaults that follow the container's resource limits (Kubernetes'
//! `resources.limits`, found in the OCI spec).

use super::{MAX_INSTANCES, WASM32_MEMORY};

/// What the container may use, from its OCI spec (`linux.resources`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    /// `memory.limit` in bytes.
    pub memory: Option<u64>,
    /// `cpu.quota / cpu.period`.
    pub cpus: Option<f64>,
}

impl Limits {
    pub(super) fn default_max_instance_memory(&self) -> u64 {
        // Leave half the limit to the shim, the compiled code and other
        // instances' pages, so one guest fails its allocation (a 500) before
        // the kernel kills the whole container. The JavaScript and Python
        // examples run under 32 MiB and 16 MiB.
        match self.memory {
            Some(limit) => (limit / 2).clamp(1 << 20, WASM32_MEMORY),
            None => WASM32_MEMORY,
        }
    }

    pub(super) fn default_max_concurrency(&self) -> usize {
        let by_cpu = match self.cpus {
            Some(cpus) => ((cpus * 64.0).ceil() as usize).max(16),
            None => MAX_INSTANCES,
        };
        // a fresh instance costs at least its dirty pages; 2 MiB is a small one
        let by_memory = match self.memory {
            Some(limit) => ((limit >> 21) as usize).max(1),
            None => MAX_INSTANCES,
        };
        by_cpu.min(by_memory).min(MAX_INSTANCES)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Environment;
    use super::*;

    #[test]
    fn defaults_follow_the_container_limits() {
        let pod = Limits {
            memory: Some(128 << 20),
            cpus: Some(0.5),
        };
        let env = Environment::from_entries(&["A=b"], &pod).unwrap();
        assert_eq!(env.settings.max_instance_memory, 64 << 20);
        // 0.5 CPU: 32 by CPU, raised to the floor of 16; memory allows 64
        assert_eq!(env.settings.max_concurrency, 32);
        let tiny = Limits {
            memory: Some(16 << 20),
            cpus: Some(4.0),
        };
        assert_eq!(tiny.default_max_concurrency(), 8);
        // an explicit value wins over the derived one
        let env = Environment::from_entries(&["WASMHTTP_MAX_CONCURRENCY=3"], &pod).unwrap();
        assert_eq!(env.settings.max_concurrency, 3);
    }
}
