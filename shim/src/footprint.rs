//! What one instance of a program takes from the instance pool. wasmtime
//! counts it once the program is loaded (see `engine::Footprint::of`); the
//! precompile cache keeps it beside the machine code, so a container start
//! can size its pool before loading the program, and load it once.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Footprint {
    pub memories: u32,
    pub tables: u32,
    /// The initial size of its largest linear memory, in bytes.
    pub largest_initial_memory: u64,
    /// The initial size of its largest table, in elements.
    pub largest_initial_table: u64,
}
