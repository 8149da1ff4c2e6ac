//! wasmhttp: serve `wasi:http/proxy` components as containers.
//!
//! The engine (`config`, `world`, `engine`, `guest`, `serve`, `command`,
//! `runner`) knows nothing of containerd; `shim` adapts it to runwasi's traits
//! and `image` packages components for containerd. `wasmhttp serve` and the
//! shim both go through [`runner::run`].

pub mod admin;
pub mod cleanup;
pub mod command;
pub mod config;
pub mod connection;
pub mod engine;
pub mod guest;
pub mod image;
pub mod metrics;
pub mod precompile;
pub mod runner;
pub mod serve;
pub mod shim;
pub mod world;
