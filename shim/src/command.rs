//! WASI commands: `wasi:cli/run` components and preview 1 core modules that
//! export `_start`. Each run goes from start to exit in a store of its own:
//! once as the container's process (its exit code is the container's), or
//! once per request as a CGI program (see [`crate::cgi`]).

use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::InstancePre;
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::engine::{self, Code};
use crate::guest::{self, GuestConfig, GuestState, MemoryBudget};

/// A command linked against WASI, ready to run any number of times.
#[derive(Clone)]
pub enum Command {
    Component(CommandPre<GuestState>),
    Module(InstancePre<ModuleState>),
}

/// The `T` of a preview 1 module's store.
pub struct ModuleState {
    wasi: WasiP1Ctx,
    memory: MemoryBudget,
}

impl Command {
    /// Links the program; fails, with what is missing, when it imports
    /// something WASI does not provide.
    pub fn new(code: &Code) -> Result<Self> {
        match code {
            Code::Component(component) => guest::linker(component.engine())?
                .instantiate_pre(component)
                .and_then(CommandPre::new)
                .map(Command::Component)
                .map_err(anyhow::Error::from)
                .context("the component's imports cannot be satisfied by WASI 0.2"),
            Code::Module(module) => {
                let mut linker = wasmtime::Linker::new(module.engine());
                wasmtime_wasi::p1::add_to_linker_async(&mut linker, |state: &mut ModuleState| {
                    &mut state.wasi
                })?;
                linker
                    .instantiate_pre(module)
                    .map(Command::Module)
                    .map_err(anyhow::Error::from)
                    .context(
                        "the module's imports cannot be satisfied by WASI preview 1 \
                         (wasi_snapshot_preview1)",
                    )
            }
        }
    }

    /// Runs the program once with the WASI context `wasi` and returns its
    /// exit code. `timeout` stops it, computing or waiting, with
    /// [`guest::TimedOut`]; a trap is an error.
    pub async fn run(
        &self,
        wasi: WasiCtxBuilder,
        guest: &GuestConfig,
        timeout: Option<Duration>,
    ) -> Result<i32> {
        let run = async {
            match self {
                Command::Component(pre) => {
                    let mut wasi = wasi;
                    let state = GuestState::with_wasi(wasi.build(), guest);
                    let mut store =
                        guest::limited_store(pre.engine(), state, |state| &mut state.memory);
                    set_deadline(&mut store, timeout);
                    let command = pre.instantiate_async(&mut store).await?;
                    command
                        .wasi_cli_run()
                        .call_run(&mut store)
                        .await
                        .map(|ran| if ran.is_ok() { 0 } else { 1 })
                }
                Command::Module(pre) => {
                    let mut wasi = wasi;
                    let state = ModuleState {
                        wasi: wasi.build_p1(),
                        memory: MemoryBudget::new(guest.max_memory),
                    };
                    let engine = pre.module().engine();
                    let mut store = guest::limited_store(engine, state, |state| &mut state.memory);
                    set_deadline(&mut store, timeout);
                    let instance = pre.instantiate_async(&mut store).await?;
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await.map(|()| 0)
                }
            }
        };
        let ran = match timeout {
            // waiting on a host call (a sleep, a stream): the epoch deadline
            // only stops programs that compute
            Some(timeout) => tokio::time::timeout(timeout, run)
                .await
                .map_err(|_| anyhow::Error::new(guest::TimedOut))?,
            None => run.await,
        };
        match ran {
            Ok(code) => Ok(code),
            // wasi:cli/exit and proc_exit unwind as an error carrying the code
            Err(err) => match err.downcast_ref::<I32Exit>() {
                Some(exit) => Ok(exit.0),
                None => {
                    let err = guest::classify(err);
                    if guest::is_guest_fault(&err) {
                        Err(err.context("the program trapped"))
                    } else {
                        Err(err)
                    }
                }
            },
        }
    }
}

fn set_deadline<T>(store: &mut wasmtime::Store<T>, timeout: Option<Duration>) {
    if let Some(timeout) = timeout {
        store.set_epoch_deadline(engine::epoch_ticks(timeout));
        store.epoch_deadline_trap();
    }
}

/// Runs the command once as the container's process: its stdio is the
/// container's, and it sees the container's environment.
pub async fn run_once(code: &Code, guest: &GuestConfig) -> Result<i32> {
    let command = Command::new(code)?;
    command
        .run(guest::wasi_builder(guest, &guest.env)?, guest, None)
        .await
}
