//! `wasmhttp`: the user's CLI.
//!
//! - `wasmhttp serve COMPONENT` serves a component locally through exactly the
//!   code path the shim uses in a pod (same settings, same env handling).
//! - `wasmhttp image COMPONENT --name REF -o FILE` packages it as an OCI image
//!   archive for `ctr images import`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use wasmhttp::config::{Environment, Limits, PREFIX};
use wasmhttp::guest::Volume;
use wasmhttp::runner::{self, ComponentCode, Prepared};
use wasmhttp::{image, world};

#[derive(Parser)]
#[command(
    name = "wasmhttp",
    version,
    about = "Serve wasi:http components, locally or as containerd containers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a component over HTTP (or run a wasi:cli command component) as the shim would in a pod.
    ///
    /// Settings come from WASMHTTP_* variables in this process's environment, as they
    /// would from the container's; the guest sees only the --env variables, as it would
    /// see only the container's.
    Serve {
        /// The component (.wasm).
        component: PathBuf,
        /// Listen address; overrides WASMHTTP_LISTEN.
        #[arg(long)]
        listen: Option<String>,
        /// An environment variable for the guest (repeatable).
        #[arg(long = "env", short = 'e', value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// A directory for the guest, as a container volume would be (repeatable).
        #[arg(long = "volume", short = 'v', value_name = "HOST_DIR:GUEST_PATH[:ro]")]
        volumes: Vec<Volume>,
        /// Arguments for the guest, after `--`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Package a component as an OCI image archive (for `ctr images import`).
    Image {
        /// The component (.wasm).
        component: PathBuf,
        /// Image reference, e.g. hello:1.0 or ghcr.io/acme/hello:1.0.
        #[arg(long)]
        name: String,
        /// Where to write the archive.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            eprintln!("wasmhttp: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Serve {
            component,
            listen,
            env,
            volumes,
            args,
        } => serve(component, listen, env, volumes, args),
        Command::Image {
            component,
            name,
            output,
        } => {
            let wasm = read(&component)?;
            let file = std::fs::File::create(&output)
                .with_context(|| format!("creating {}", output.display()))?;
            let summary = image::write_image(&wasm, &name, std::io::BufWriter::new(file))?;
            eprintln!(
                "wasmhttp: wrote {} ({}, {}) to {}",
                summary.reference,
                summary.world,
                summary.manifest_digest,
                output.display()
            );
            Ok(0)
        }
    }
}

fn serve(
    component: PathBuf,
    listen: Option<String>,
    guest_env: Vec<String>,
    volumes: Vec<Volume>,
    guest_args: Vec<String>,
) -> Result<i32> {
    // The shim's settings come from this process's WASMHTTP_* variables; the
    // guest gets the --env list, like a container's env, and never the host's.
    let mut entries: Vec<String> = std::env::vars()
        .filter(|(name, _)| name.starts_with(PREFIX))
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    if let Some(listen) = listen {
        entries.push(format!("WASMHTTP_LISTEN={listen}"));
    }
    for entry in &guest_env {
        anyhow::ensure!(
            !entry.starts_with(PREFIX),
            "--env {entry}: {PREFIX}* variables are settings, not guest variables; export them instead"
        );
        anyhow::ensure!(entry.contains('='), "--env {entry}: expected NAME=VALUE");
    }
    entries.extend(guest_env);
    // no container here: defaults do not follow any resource limits
    let env = Environment::from_entries(&entries, &Limits::default())?;

    let wasm = read(&component)?;
    let world =
        world::detect(&wasm).with_context(|| format!("{} is not runnable", component.display()))?;
    let mut args = vec![component.display().to_string()];
    args.extend(guest_args);
    let prepared = Prepared::new(world, ComponentCode::Wasm(wasm), env, args, volumes)
        .with_context(|| format!("{} cannot run", component.display()))?;

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(runner::run(prepared))
}

fn read(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}
