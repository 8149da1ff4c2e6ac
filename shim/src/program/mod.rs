//! WASI commands: `wasi:cli/run` components and preview 1 core modules that
//! export `_start`. Each run goes from start to exit in a store of its own:
//! once as the container's process (its exit code is the container's), or
//! once per request as a CGI program (see [`cgi`] and [`crate::app::cgi`]).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wasmtime::InstancePre;
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::engine::Code;
use crate::guest::{self, Deadline, GuestConfig, GuestState, MemoryBudget};

pub mod cgi;

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
    /// exit code. `deadline` stops it, computing or waiting, with
    /// [`guest::TimedOut`]; a trap is an error. `instantiated` hears how long
    /// making the instance took.
    pub async fn run(
        &self,
        wasi: WasiCtxBuilder,
        guest: &GuestConfig,
        deadline: Option<Deadline>,
        instantiated: impl FnOnce(Duration) + Send,
    ) -> Result<i32> {
        let run = async {
            let mut wasi = wasi;
            let started = Instant::now();
            match self {
                Command::Component(pre) => {
                    let mut state = GuestState::with_wasi(wasi.build(), guest);
                    state.deadline = deadline;
                    let mut store =
                        guest::limited_store(pre.engine(), state, |state| &mut state.memory);
                    if let Some(deadline) = &deadline {
                        deadline.arm(&mut store);
                    }
                    let command = pre.instantiate_async(&mut store).await?;
                    instantiated(started.elapsed());
                    command
                        .wasi_cli_run()
                        .call_run(&mut store)
                        .await
                        .map(|ran| if ran.is_ok() { 0 } else { 1 })
                }
                Command::Module(pre) => {
                    let state = ModuleState {
                        wasi: wasi.build_p1(),
                        memory: MemoryBudget::new(guest.max_memory),
                    };
                    let engine = pre.module().engine();
                    let mut store = guest::limited_store(engine, state, |state| &mut state.memory);
                    if let Some(deadline) = &deadline {
                        deadline.arm(&mut store);
                    }
                    let instance = pre.instantiate_async(&mut store).await?;
                    instantiated(started.elapsed());
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await.map(|()| 0)
                }
            }
        };
        let ran = match deadline {
            Some(deadline) => deadline.bound(run).await?,
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

/// Runs the command once as the container's process: its stdio is the
/// container's, and it sees the container's environment. Its output is what
/// it is run for, so it is written straight to the container's fds, not
/// through the output queue that may drop lines: a reader that stops reading
/// pauses the program, as it would any process.
pub async fn run_once(code: &Code, guest: &GuestConfig) -> Result<i32> {
    let command = Command::new(code)?;
    let mut wasi = guest::wasi_builder(guest, &guest.env)?;
    wasi.inherit_stdout().inherit_stderr();
    command.run(wasi, guest, None, |_| {}).await
}
