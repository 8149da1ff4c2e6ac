//! wasmhttp: serve `wasi:http/proxy` components as containers.
//!
//! The engine (`config`, `world`, `engine`, `guest`, `serve`, `command`,
//! `cgi`, `runner`) knows nothing of containerd; `shim` adapts it to runwasi's traits
//! and `image` packages components for containerd. `wasmhttp serve` and the
//! shim both go through [`runner::run`].
//!
//! Without the default `runtime` feature only the parsers of untrusted input
//! are built (settings, component detection, image layers): what the fuzz
//! targets in `fuzz/` exercise, without wasmtime or containerd.

// parsers of what users and images hand the shim
pub mod config;
pub mod footprint;
pub mod image;
pub mod precompile;
pub mod world;

#[cfg(feature = "runtime")]
pub mod admin;
#[cfg(feature = "runtime")]
pub mod cgi;
#[cfg(feature = "runtime")]
pub mod cleanup;
#[cfg(feature = "runtime")]
pub mod command;
#[cfg(feature = "runtime")]
pub mod connection;
#[cfg(feature = "runtime")]
pub mod engine;
#[cfg(feature = "runtime")]
pub mod guest;
#[cfg(feature = "runtime")]
pub mod metrics;
#[cfg(feature = "runtime")]
pub mod runner;
#[cfg(feature = "runtime")]
pub mod serve;
#[cfg(feature = "runtime")]
pub mod shim;
