//! wasmhttp: serve `wasi:http/proxy` components as containers.
//!
//! The engine (`settings`, `world`, `engine`, `guest`, `http`, `app`,
//! `program`, `runner`) knows nothing of containerd; `shim` adapts it to
//! runwasi's traits and `image` packages components for containerd.
//! `wasmhttp serve` and the shim both go through [`runner::run`].
//!
//! Without the default `runtime` feature only the parsers of untrusted input
//! are built (settings, component detection, image layers): what the fuzz
//! targets in `fuzz/` exercise, without wasmtime or containerd.

// parsers of what users and images hand the shim
pub mod footprint;
pub mod image;
pub mod output;
pub mod precompile;
pub mod routes;
pub mod settings;
pub mod world;

#[cfg(feature = "runtime")]
pub mod app;
#[cfg(feature = "runtime")]
pub mod cleanup;
#[cfg(feature = "runtime")]
pub mod engine;
#[cfg(feature = "runtime")]
pub mod guest;
#[cfg(feature = "runtime")]
pub mod http;
#[cfg(feature = "runtime")]
pub mod metrics;
#[cfg(feature = "runtime")]
pub mod platform;
#[cfg(feature = "runtime")]
pub mod program;
#[cfg(feature = "runtime")]
pub mod runner;
#[cfg(feature = "runtime")]
pub mod shim;
#[cfg(feature = "runtime")]
pub mod shutdown;
