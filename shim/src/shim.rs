//! containerd plumbing: the runwasi traits that turn the serving engine into
//! `containerd-shim-wasmhttp-v1`.
//!
//! runwasi runs the shim process, the container (through youki's
//! libcontainer) and the precompile cache; we provide three small pieces:
//! - [`WasmHttpShim`]: the shim's name and the image layers it reads;
//! - [`Precompiler`]: compiles those layers in the shim process, outside the
//!   container's cgroup, once per image;
//! - [`WasmHttpSandbox`]: inside the container, finds the component the
//!   entrypoint names and hands it to [`runner::run`].

use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::sandbox::context::{RuntimeContext, Source, WasmLayer};
use containerd_shim_wasm::shim::{Compiler, Shim, Version, version};
use wasmtime::Engine;

use crate::engine;
use crate::guest::Volume;
use crate::precompile::{self, Bundle, RAW_WASM_LAYERS};
use crate::routes::{self, Route, RouteTable};
use crate::runner::{self, ComponentCode, Prepared};
use crate::settings::{Environment, Limits};
use crate::world::{self, World};

pub struct WasmHttpShim;

impl Shim for WasmHttpShim {
    fn name() -> &'static str {
        "wasmhttp"
    }

    fn version() -> Version {
        version!()
    }

    type Sandbox = WasmHttpSandbox;

    async fn compiler() -> Option<impl Compiler> {
        match engine::new_engine() {
            Ok(engine) => Some(Precompiler { engine }),
            Err(err) => {
                log::error!("wasmhttp: precompilation disabled: {err:#}");
                None
            }
        }
    }

    fn supported_layers_types() -> &'static [&'static str] {
        precompile::LAYER_TYPES
    }

    fn check_memory_limit(limit: u64, layers: &[WasmLayer]) -> std::result::Result<(), String> {
        memory_limit_holds(limit, layers.iter().map(WasmLayer::size).sum())
    }
}

/// Whether a container whose memory limit is `limit` can load layers of
/// `read` bytes in all. Its process reads each layer, then maps a precompiled
/// one as machine code (or compiles a bare component, which takes far more):
/// twice their size at once, at the least. Below that the kernel kills it
/// while it starts (the JavaScript example's 37 MB precompiled layer: killed
/// under 72 MiB, started under 80 MiB).
fn memory_limit_holds(limit: u64, read: u64) -> std::result::Result<(), String> {
    let needed = read.saturating_mul(2);
    if limit >= needed {
        return Ok(());
    }
    Err(format!(
        "the container's memory limit ({}) cannot hold its component: starting it takes at least {} \
         (its layers, {}, are read and then loaded, twice their size at once), and more to serve; \
         raise the memory limit (Kubernetes: resources.limits.memory) above {}",
        engine::human_size(limit),
        engine::human_size(needed),
        engine::human_size(read),
        engine::human_size(needed),
    ))
}

pub struct Precompiler {
    engine: Engine,
}

impl Compiler for Precompiler {
    fn cache_key(&self) -> impl Hash {
        engine::cache_key(&self.engine)
    }

    async fn compile(&self, layers: &[WasmLayer]) -> Result<Vec<Option<Vec<u8>>>> {
        let engine = self.engine.clone();
        let layers = layers.to_vec();
        // Cranelift is CPU-bound: keep it off the shim's async workers.
        tokio::task::spawn_blocking(move || {
            layers
                .iter()
                .map(|layer| {
                    let media_type = layer.config.media_type().to_string();
                    precompile::precompile_layer(&engine, &media_type, &layer.layer).unwrap_or_else(
                        |err| {
                            log::warn!(
                                "wasmhttp: layer {} not precompiled: {err:#}",
                                layer.config.digest()
                            );
                            None
                        },
                    )
                })
                .collect::<Vec<_>>()
        })
        .await
        // the shim process lives as long as the pod: don't keep Cranelift's heap
        .inspect(|_| engine::release_freed_memory())
        .context("the precompile task panicked")
    }
}

/// Lives in the container process; runwasi calls `can_handle` when the
/// container is created and `run_wasi` when it is started.
#[derive(Default)]
pub struct WasmHttpSandbox {
    prepared: Mutex<Option<Prepared>>,
}

impl Sandbox for WasmHttpSandbox {
    async fn can_handle(&self, ctx: &impl RuntimeContext) -> Result<()> {
        // Everything that can be wrong with the image or the settings is found
        // here, before the container counts as started, and said on its stderr
        // (the container log) as well as in the error.
        match prepare(ctx) {
            Ok(prepared) => {
                *self.prepared.lock().unwrap() = Some(prepared);
                Ok(())
            }
            Err(err) => {
                crate::say!("wasmhttp: cannot start this container: {err:#}");
                // said before the process exits
                crate::output::finish();
                Err(err)
            }
        }
    }

    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> Result<i32> {
        let prepared = self.prepared.lock().unwrap().take();
        let prepared = match prepared {
            Some(prepared) => prepared,
            None => prepare(ctx)?,
        };
        Ok(runner::run(prepared).await)
    }
}

/// Reads the settings and finds the component: a precompiled artifact for the
/// entrypoint if the cache has one, else a bare component layer, else the
/// entrypoint's file in the rootfs. An app is found by its manifest: a layer
/// of its own in the Wasm OCI artifact layout, else the entrypoint's file.
fn prepare(ctx: &impl RuntimeContext) -> Result<Prepared> {
    let env = Environment::from_entries(ctx.envs(), &limits_of(ctx.spec()))?;
    let layers = match ctx.entrypoint().source {
        Source::Oci(layers) => layers,
        Source::File(_) => &[],
    };
    if let Some(manifest) = layers.iter().find(|layer| is_manifest_layer(layer)) {
        return prepare_artifact_app(ctx, manifest, layers, env);
    }
    let args: Vec<String> = ctx.args().to_vec();
    let entrypoint = args
        .first()
        .map(|arg0| arg0.split('#').next().unwrap_or_default())
        .filter(|p| !p.is_empty());
    let entrypoint_path = entrypoint.map(absolute_in_container);
    if let Some(manifest) = entrypoint_path
        .as_deref()
        .filter(|path| is_app_manifest(path))
    {
        return prepare_rootfs_app(ctx, manifest, layers, env);
    }

    let (world, code) = match component_from_layers(layers, entrypoint_path.as_deref())? {
        Some(found) => found,
        None => {
            let path = entrypoint_path.context(
                "the container names no entrypoint: the image's entrypoint or command (or the pod's command) \
                 must be the path of the .wasm file, or the image must carry a wasm layer",
            )?;
            let wasm = read_component_file(&path)?;
            let world = world::detect(&wasm)
                .with_context(|| format!("{} is not runnable", path.display()))?;
            (world, ComponentCode::Wasm(wasm))
        }
    };
    Prepared::new(world, code, env, args, volumes_of(ctx.spec()))
}

/// An entrypoint naming a TOML file is an app's manifest (`wasmhttp image`
/// writes `/app.toml`).
fn is_app_manifest(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "toml")
}

fn is_manifest_layer(layer: &WasmLayer) -> bool {
    layer.config.media_type().to_string() == routes::MANIFEST_MEDIA_TYPE
}

/// An app whose manifest is `text` (read from `from`), each route's
/// component found by `locate`, all checked with the container's settings.
fn prepare_app(
    ctx: &impl RuntimeContext,
    text: &str,
    from: &str,
    env: Environment,
    locate: impl FnMut(&Route) -> Result<runner::Located>,
) -> Result<Prepared> {
    let table = RouteTable::parse(text).with_context(|| from.to_string())?;
    table.check_composed().with_context(|| from.to_string())?;
    Prepared::app(table, env, volumes_of(ctx.spec()), locate)
}

/// An app in the image layout: the manifest from the container's
/// filesystem, each route's component from the precompiled layer (by its
/// path in the rootfs) or, failing that, from the file.
fn prepare_rootfs_app(
    ctx: &impl RuntimeContext,
    manifest: &Path,
    layers: &[WasmLayer],
    env: Environment,
) -> Result<Prepared> {
    let text = std::fs::read_to_string(manifest).with_context(|| {
        format!(
            "cannot read the app manifest {} in the container's filesystem (the image must contain it)",
            manifest.display()
        )
    })?;
    let base = manifest.parent().unwrap_or(Path::new("/")).to_path_buf();
    prepare_app(ctx, &text, &manifest.display().to_string(), env, |route| {
        let path = base.join(&route.component);
        let (world, code) = match precompiled_at(layers, &path)? {
            Some(found) => found,
            None => {
                let wasm = read_component_file(&path)?;
                let world = world::detect(&wasm)
                    .with_context(|| format!("{} is not runnable", path.display()))?;
                (world, ComponentCode::Wasm(wasm))
            }
        };
        Ok((world, code, path.display().to_string()))
    })
}

/// An app in the Wasm OCI artifact layout: the manifest is a layer, and
/// names each route's component by the `sha256:` digest of its layer
/// (`wasmhttp image --artifact`); the component's argv[0] is its layer's
/// title.
fn prepare_artifact_app(
    ctx: &impl RuntimeContext,
    manifest: &WasmLayer,
    layers: &[WasmLayer],
    env: Environment,
) -> Result<Prepared> {
    let from = format!("the app manifest layer {}", manifest.config.digest());
    let text = std::str::from_utf8(&manifest.layer)
        .with_context(|| format!("{from} is not UTF-8 text"))?;
    prepare_app(ctx, text, &from, env, |route| {
        let layer = layers
            .iter()
            .find(|layer| {
                !is_manifest_layer(layer) && layer.config.digest().to_string() == route.component
            })
            .with_context(|| {
                format!(
                    "component {:?} is not a layer of the image (the artifact's manifest names each \
                     component by its layer's sha256: digest)",
                    route.component
                )
            })?;
        let mut found = bare_components(layer)?;
        let (world, code) = match (found.pop(), found.is_empty()) {
            (Some(one), true) => one,
            (None, _) => bail!("the image's layer {} holds no component", route.component),
            (Some(_), false) => bail!(
                "the image's layer {} holds several components",
                route.component
            ),
        };
        let title = layer
            .config
            .annotations()
            .as_ref()
            .and_then(|a| a.get("org.opencontainers.image.title").cloned())
            .unwrap_or_else(|| route.component.clone());
        Ok((world, code, title))
    })
}

/// The component at `path` in the rootfs, from the precompiled layers.
fn precompiled_at(layers: &[WasmLayer], path: &Path) -> Result<Option<(World, ComponentCode)>> {
    let wanted = precompile::rootfs_path(&path.to_string_lossy());
    for layer in layers {
        if !(layer.precompiled && Bundle::is_bundle(&layer.layer)) {
            continue;
        }
        let bundle = Bundle::decode(&layer.layer)?;
        let cache_key = bundle.cache_key;
        if let Some(entry) = bundle
            .entries
            .into_iter()
            .find(|entry| entry.path.as_ref() == Some(&wanted))
        {
            let path = path.to_path_buf();
            let fallback = Box::new(move || read_component_file(&path))
                as Box<dyn FnOnce() -> Result<Vec<u8>> + Send>;
            return Ok(Some((
                entry.world,
                ComponentCode::Precompiled {
                    artifact: entry.artifact,
                    cache_key,
                    footprint: entry.footprint,
                    fallback: Some(fallback),
                },
            )));
        }
    }
    Ok(None)
}

/// The container's volumes: the spec's mounts minus the ones every Linux
/// container gets (/proc, /sys, /dev, and CRI's /etc/hosts-style files),
/// each at its own path in the guest, read-only when mounted `ro`.
fn volumes_of(spec: &oci_spec::runtime::Spec) -> Vec<Volume> {
    const SYSTEM: &[&str] = &["/proc", "/sys", "/dev"];
    const CRI_FILES: &[&str] = &["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];
    let Some(mounts) = spec.mounts() else {
        return Vec::new();
    };
    mounts
        .iter()
        .filter(|mount| {
            let destination = mount.destination();
            !SYSTEM.iter().any(|system| destination.starts_with(system))
                && !CRI_FILES.iter().any(|file| destination == Path::new(file))
        })
        .map(|mount| Volume {
            host: mount.destination().clone(),
            guest: mount.destination().display().to_string(),
            read_only: mount
                .options()
                .as_ref()
                .is_some_and(|options| options.iter().any(|o| o == "ro")),
        })
        .collect()
}

/// The container's resource limits (Kubernetes `resources.limits`), which
/// some settings' defaults follow.
fn limits_of(spec: &oci_spec::runtime::Spec) -> Limits {
    let resources = spec
        .linux()
        .as_ref()
        .and_then(|linux| linux.resources().as_ref());
    let memory = resources
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
        .filter(|limit| *limit > 0)
        .map(|limit| limit as u64);
    let cpus = resources
        .and_then(|r| r.cpu().as_ref())
        .and_then(|cpu| Some((cpu.quota()?, cpu.period()?)))
        .filter(|(quota, period)| *quota > 0 && *period > 0)
        .map(|(quota, period)| quota as f64 / period as f64);
    Limits { memory, cpus }
}

fn absolute_in_container(entrypoint: &str) -> PathBuf {
    let path = Path::new(entrypoint);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    }
}

fn read_component_file(path: &Path) -> Result<Vec<u8>> {
    let cannot_read = || {
        format!(
            "cannot read the entrypoint {} in the container's filesystem (the image must contain it)",
            path.display()
        )
    };
    let size = std::fs::metadata(path).with_context(cannot_read)?.len();
    if size > precompile::MAX_COMPONENT_BYTES {
        return Err(precompile::too_large(
            &format!("the entrypoint {}", path.display()),
            size,
        ));
    }
    std::fs::read(path).with_context(cannot_read)
}

fn component_from_layers(
    layers: &[WasmLayer],
    entrypoint: Option<&Path>,
) -> Result<Option<(World, ComponentCode)>> {
    // the entrypoint's own entry wins over any other layer
    if let Some(entrypoint) = entrypoint
        && let Some(found) = precompiled_at(layers, entrypoint)?
    {
        return Ok(Some(found));
    }
    let mut bare = Vec::new();
    for layer in layers {
        bare.extend(bare_components(layer)?);
    }
    match bare.len() {
        0 => Ok(None),
        1 => Ok(bare.pop()),
        n => bail!("the image has {n} component layers; wasmhttp runs images with exactly one"),
    }
}

/// The components a layer holds as itself rather than as files of a
/// rootfs: a component layer, or its precompiled bundle.
fn bare_components(layer: &WasmLayer) -> Result<Vec<(World, ComponentCode)>> {
    if layer.precompiled && Bundle::is_bundle(&layer.layer) {
        let bundle = Bundle::decode(&layer.layer)?;
        let cache_key = bundle.cache_key;
        return Ok(bundle
            .entries
            .into_iter()
            .filter(|entry| entry.path.is_none())
            .map(|entry| {
                (
                    entry.world,
                    ComponentCode::Precompiled {
                        artifact: entry.artifact,
                        cache_key: cache_key.clone(),
                        footprint: entry.footprint,
                        fallback: None,
                    },
                )
            })
            .collect());
    }
    if !RAW_WASM_LAYERS.contains(&layer.config.media_type().to_string().as_str()) {
        return Ok(vec![]);
    }
    let size = layer.layer.len() as u64;
    if size > precompile::MAX_COMPONENT_BYTES {
        return Err(precompile::too_large(
            &format!("the image's wasm layer {}", layer.config.digest()),
            size,
        ));
    }
    let world = world::detect(&layer.layer).with_context(|| {
        format!(
            "the image's wasm layer {} is not runnable",
            layer.config.digest()
        )
    })?;
    Ok(vec![(world, ComponentCode::Wasm(layer.layer.clone()))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_limit_must_hold_the_layers_twice() {
        assert!(memory_limit_holds(80 << 20, 37 << 20).is_ok());
        let refused = memory_limit_holds(64 << 20, 37 << 20).unwrap_err();
        assert!(
            refused.contains("memory limit (64.0 MiB)") && refused.contains("at least 74.0 MiB"),
            "{refused}"
        );
    }
}
