//! Components that export `wasi:cli/run` instead of an HTTP handler run once,
//! like a process: their exit code becomes the container's.

use anyhow::{Context, Result};
use wasmtime::component::Component;
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::guest::{self, GuestConfig};

/// Runs the command to completion and returns its exit code.
pub async fn run(component: &Component, guest: &GuestConfig) -> Result<i32> {
    let engine = component.engine();
    let pre = guest::linker(engine)?
        .instantiate_pre(component)
        .and_then(CommandPre::new)
        .map_err(anyhow::Error::from)
        .context("the component's imports cannot be satisfied by WASI 0.2")?;
    let mut store = guest::new_store(engine, guest)?;
    let command = pre
        .instantiate_async(&mut store)
        .await
        .map_err(anyhow::Error::from)
        .context("instantiating the command")?;
    match command.wasi_cli_run().call_run(&mut store).await {
        Ok(Ok(())) => Ok(0),
        Ok(Err(())) => Ok(1),
        // wasi:cli/exit unwinds as an error carrying the code.
        Err(err) => match err.downcast_ref::<I32Exit>() {
            Some(exit) => Ok(exit.0),
            None => Err(anyhow::Error::from(err).context("the command trapped")),
        },
    }
}
