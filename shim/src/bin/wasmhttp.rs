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
use wasmhttp::guest::Volume;
use wasmhttp::runner::{self, ComponentCode, Prepared};
use wasmhttp::settings::{Environment, Limits, PREFIX};
use wasmhttp::{image, routes, world};

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
        /// The component (.wasm), or an app's manifest (app.toml).
        component: Option<PathBuf>,
        /// An app's route instead of a manifest (repeatable):
        /// PATH=COMPONENT[,name=NAME][,env=NAME=VALUE][,arg=ARG][,middleware=FILE].
        #[arg(long = "route", value_name = "PATH=COMPONENT[,...]")]
        routes: Vec<String>,
        /// A wasi:http/middleware@0.3.0 component composed in front of the
        /// wasi:http 0.3 handler, or of every route's (repeatable; the first
        /// meets a request first, before an app's own middleware).
        #[arg(long = "middleware", value_name = "FILE")]
        middleware: Vec<PathBuf>,
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
        /// The component (.wasm), or an app's manifest (app.toml).
        component: Option<PathBuf>,
        /// An app's route instead of a manifest (repeatable):
        /// PATH=COMPONENT[,name=NAME][,env=NAME=VALUE][,arg=ARG][,middleware=FILE].
        #[arg(long = "route", value_name = "PATH=COMPONENT[,...]")]
        routes: Vec<String>,
        /// A wasi:http/middleware@0.3.0 component composed in front of the
        /// wasi:http 0.3 handler, or of every route's (repeatable; the first
        /// meets a request first, before an app's own middleware).
        #[arg(long = "middleware", value_name = "FILE")]
        middleware: Vec<PathBuf>,
        /// Image reference, e.g. hello:1.0 or ghcr.io/acme/hello:1.0.
        #[arg(long)]
        name: String,
        /// Where to write the archive.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// Write the CNCF Wasm OCI artifact (config application/vnd.wasm.config.v0+json,
        /// one application/wasm layer), as `wkg oci push` lays it out, instead of an
        /// image with a tar layer; an app's manifest comes first as a layer of its own
        /// (application/vnd.wasmhttp.app.v1+toml). containerd 1.7 and 2 run it through
        /// CRI when the pod sets a `command`; `ctr run` refuses it (see the README's
        /// containerd versions table).
        #[arg(long)]
        artifact: bool,
        /// The artifact config's author (with --artifact; `wkg oci push --author`).
        #[arg(long, requires = "artifact")]
        author: Option<String>,
        /// An annotation of the artifact's manifest (with --artifact; repeatable;
        /// `wkg oci push --annotation`).
        #[arg(long = "annotation", value_name = "KEY=VALUE", requires = "artifact", value_parser = key_value)]
        annotations: Vec<(String, String)>,
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
            routes,
            middleware,
            listen,
            env,
            volumes,
            args,
        } => serve(
            What::of(component, &routes, &middleware)?,
            listen,
            env,
            volumes,
            args,
        ),
        Command::Image {
            component,
            routes,
            middleware,
            name,
            output,
            artifact,
            author,
            annotations,
        } => {
            let metadata = |title: String| image::ArtifactMetadata {
                created: created_now(),
                author,
                title,
                annotations: annotations.into_iter().collect(),
            };
            let (component, wasm) = match What::of(component, &routes, &middleware)? {
                What::Component { path, wasm } => (path, wasm),
                What::App(app) => {
                    let summary = if artifact {
                        let metadata = metadata(String::new());
                        write_whole(&output, |out| {
                            image::write_app_artifact(&app, &name, &metadata, out)
                        })?
                    } else {
                        write_whole(&output, |out| image::write_app_image(&app, &name, out))?
                    };
                    for (route, world) in &summary.routes {
                        eprintln!("wasmhttp: {route}: {world}");
                    }
                    eprintln!(
                        "wasmhttp: wrote {} (an app of {} routes{}, {}) to {}",
                        summary.reference,
                        summary.routes.len(),
                        if artifact { ", Wasm OCI artifact" } else { "" },
                        summary.manifest_digest,
                        output.display()
                    );
                    return Ok(0);
                }
            };
            let summary = if artifact {
                let metadata = metadata(
                    component
                        .file_name()
                        .map(|name| name.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                );
                write_whole(&output, |out| {
                    image::write_artifact(&wasm, &name, &metadata, out)
                })?
            } else {
                write_whole(&output, |out| image::write_image(&wasm, &name, out))?
            };
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

/// `KEY=VALUE`, as `wkg oci push --annotation` takes it.
fn key_value(text: &str) -> Result<(String, String)> {
    let (key, value) = text
        .split_once('=')
        .with_context(|| format!("{text:?}: expected KEY=VALUE"))?;
    Ok((key.to_string(), value.to_string()))
}

/// The artifact's creation time as `wkg` writes it: now, or
/// `SOURCE_DATE_EPOCH` (seconds) for a reproducible build.
fn created_now() -> String {
    let now = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|seconds| seconds.parse().ok())
        .and_then(|seconds| chrono::DateTime::from_timestamp(seconds, 0))
        .unwrap_or_else(chrono::Utc::now);
    now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Writes `output` through a temporary file beside it, renamed into place
/// once complete: a refused or failed write leaves no file behind (and an
/// earlier file of that name as it was). Devices and pipes (`/dev/null`,
/// `/dev/stdout`) are written directly.
fn write_whole<T>(
    output: &std::path::Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<T>,
) -> Result<T> {
    use std::io::Write;
    let creating = || format!("creating {}", output.display());
    let special = std::fs::metadata(output).is_ok_and(|meta| !meta.is_file());
    if special {
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(output).with_context(creating)?);
        let written = write(&mut out)?;
        out.flush().with_context(creating)?;
        return Ok(written);
    }
    let file_name = output.file_name().with_context(creating)?.to_string_lossy();
    let partial = output.with_file_name(format!(".{file_name}.partial-{}", std::process::id()));
    let written = (|| {
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(&partial).with_context(creating)?);
        let written = write(&mut out)?;
        out.into_inner()
            .map_err(|err| err.into_error())
            .and_then(|file| file.sync_all())
            .with_context(creating)?;
        std::fs::rename(&partial, output).with_context(creating)?;
        Ok(written)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// What `serve` and `image` were given: one component (with any
/// `--middleware` composed in front of it), or an app (a manifest, or
/// `--route` flags).
enum What {
    Component { path: PathBuf, wasm: Vec<u8> },
    App(image::AppComponents),
}

impl What {
    fn of(file: Option<PathBuf>, route_flags: &[String], middleware: &[PathBuf]) -> Result<Self> {
        let (table, base) = match (file, route_flags.is_empty()) {
            (Some(_), false) => anyhow::bail!(
                "give a component, a manifest or --route flags, not both a file and --route"
            ),
            (None, true) => {
                anyhow::bail!(
                    "give a component (.wasm), an app manifest (app.toml) or --route flags"
                )
            }
            (None, false) => {
                let entries = route_flags
                    .iter()
                    .map(|flag| routes::route_flag(flag))
                    .collect::<Result<Vec<_>>>()?;
                let table = routes::RouteTable::from_manifest(routes::Manifest {
                    routes: entries,
                    ..Default::default()
                })?;
                (table, PathBuf::from("."))
            }
            (Some(file), true) => {
                // as the shim tells them apart: an app's manifest is a .toml
                // file; anything else is a program, which `world::detect`
                // explains if it is not one
                if file.extension().is_none_or(|ext| ext != "toml") {
                    let wasm = read(&file)?;
                    if middleware.is_empty() {
                        return Ok(Self::Component { path: file, wasm });
                    }
                    let world = world::detect(&wasm)
                        .with_context(|| format!("{} is not runnable", file.display()))?;
                    let names: Vec<String> =
                        middleware.iter().map(|m| m.display().to_string()).collect();
                    let wasm = image::middleware::compose_files(
                        &wasm,
                        world,
                        &file.display().to_string(),
                        &names,
                        |name| read(&PathBuf::from(name)),
                    )?;
                    return Ok(Self::Component { path: file, wasm });
                }
                let text = String::from_utf8(read(&file)?).with_context(|| {
                    format!("{} is not an app manifest (not UTF-8 text)", file.display())
                })?;
                let table = routes::RouteTable::parse(&text)
                    .with_context(|| format!("{}", file.display()))?;
                let base = file.parent().map(PathBuf::from).unwrap_or_default();
                (table, base)
            }
        };
        // --middleware files are the caller's paths, in front of every route's own
        let mut table = table;
        let given = middleware
            .iter()
            .map(std::path::absolute)
            .collect::<std::io::Result<Vec<_>>>()
            .context("resolving --middleware")?;
        for route in &mut table.routes {
            let own = std::mem::take(&mut route.middleware);
            route.middleware = given.iter().map(|m| m.display().to_string()).collect();
            route.middleware.extend(own);
        }
        let app = image::AppComponents::load(table, |component| read(&base.join(component)))?;
        Ok(Self::App(app))
    }
}

fn serve(
    what: What,
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

    let prepared = match what {
        What::Component {
            path: component,
            wasm,
        } => {
            let world = world::detect(&wasm)
                .with_context(|| format!("{} is not runnable", component.display()))?;
            let mut args = vec![component.display().to_string()];
            args.extend(guest_args);
            Prepared::new(world, ComponentCode::Wasm(wasm), env, args, volumes)
                .with_context(|| format!("{} cannot run", component.display()))?
        }
        What::App(app) => {
            anyhow::ensure!(
                guest_args.is_empty(),
                "arguments after `--` are for one component; an app's are per route (`args` in its manifest)"
            );
            let image::AppComponents {
                table,
                mut wasm,
                worlds,
            } = app;
            let mut index = 0;
            Prepared::app(table, env, volumes, |route| {
                let code = ComponentCode::Wasm(std::mem::take(&mut wasm[index]));
                let world = worlds[index];
                index += 1;
                Ok((world, code, route.component.clone()))
            })?
        }
    };

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    Ok(runtime.block_on(runner::run(prepared)))
}

fn read(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}
