//! Ahead-of-time compilation of the components found in image layers.
//!
//! The shim precompiles in its own process (outside the container's cgroup, so
//! a pod's memory limit never has to fit Cranelift) when an image is first
//! started; runwasi stores the result in containerd's content store, labelled
//! with our cache key, and hands it back on every later start.
//!
//! A layer may be a bare component (runwasi's and wkg's layouts) or a tar
//! layer holding `.wasm` files (what `wasmhttp image` and `FROM scratch`
//! Dockerfiles produce). Either way the result is a [`Bundle`]: the artifacts
//! of every runnable component in the layer, each under its path in the
//! rootfs, so the container later picks the one its entrypoint names.

use std::io::Read;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
#[cfg(feature = "runtime")]
use wasmtime::Engine;

#[cfg(feature = "runtime")]
use crate::engine;
#[cfg(feature = "runtime")]
use crate::footprint::Footprint;
use crate::world::{self, World};

mod bundle;

pub use bundle::{Bundle, Entry};

/// Layer media types whose content is a component itself.
pub const RAW_WASM_LAYERS: &[&str] = &[
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
    "application/wasm",
];
/// Layer media types that are (optionally gzipped) tar archives.
pub const TAR_LAYERS: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar",
];
pub const TAR_GZIP_LAYERS: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
];

/// Every layer type the shim asks runwasi for: components, tar layers, and
/// an app's manifest in the Wasm OCI artifact layout (which holds no code).
pub const LAYER_TYPES: &[&str] = &[
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
    "application/wasm",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    crate::routes::MANIFEST_MEDIA_TYPE,
];

/// The largest component the shim loads. Real ones are far smaller (the
/// Python example, with its interpreter, is 40 MB); the cap keeps a
/// gzip bomb or a mislabelled disk image in a layer from filling the shim's
/// memory, since components are read whole.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// The error for a component over [`MAX_COMPONENT_BYTES`].
pub fn too_large(what: &str, size: u64) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} is {size} bytes; wasmhttp loads components of up to {} MiB",
        MAX_COMPONENT_BYTES >> 20
    )
}

/// A runnable component found in a layer, before compilation.
#[derive(Debug)]
pub struct Found {
    pub path: Option<String>,
    pub world: World,
    pub wasm: Vec<u8>,
}

/// Finds the runnable components of one layer. Files that are not components
/// with a world we run are skipped here; the container start reports them if
/// its entrypoint names one.
pub fn components_in_layer(media_type: &str, content: &[u8]) -> Result<Vec<Found>> {
    if RAW_WASM_LAYERS.contains(&media_type) {
        if content.len() as u64 > MAX_COMPONENT_BYTES {
            return Ok(vec![]);
        }
        return Ok(match world::detect(content) {
            Ok(world) => vec![Found {
                path: None,
                world,
                wasm: content.to_vec(),
            }],
            Err(_) => vec![],
        });
    }
    if TAR_GZIP_LAYERS.contains(&media_type) {
        return components_in_tar(flate2::read::GzDecoder::new(content));
    }
    if TAR_LAYERS.contains(&media_type) {
        return components_in_tar(content);
    }
    if media_type == crate::routes::MANIFEST_MEDIA_TYPE {
        // runwasi hands it on as it is
        return Ok(vec![]);
    }
    bail!("layer media type {media_type} is not one the shim reads")
}

fn components_in_tar(reader: impl Read) -> Result<Vec<Found>> {
    let mut archive = tar::Archive::new(reader);
    let mut found = Vec::new();
    for entry in archive.entries().context("reading the layer as tar")? {
        let mut entry = entry.context("reading the layer as tar")?;
        if !entry.header().entry_type().is_file() || entry.size() < 8 {
            continue;
        }
        let mut magic = [0u8; 4];
        if entry.read_exact(&mut magic).is_err() || magic != *b"\0asm" {
            continue;
        }
        let path = rootfs_path(&entry.path()?.to_string_lossy());
        if entry.size() > MAX_COMPONENT_BYTES {
            // not read: the container start says so if its entrypoint names it
            log::warn!("wasmhttp: {:#}", too_large(&path, entry.size()));
            continue;
        }
        let mut wasm = magic.to_vec();
        entry.read_to_end(&mut wasm)?;
        if let Ok(world) = world::detect(&wasm) {
            found.push(Found {
                path: Some(path),
                world,
                wasm,
            });
        }
    }
    Ok(found)
}

/// `./app/x.wasm`, `app/x.wasm` and `/app/x.wasm` all name `/app/x.wasm`.
pub fn rootfs_path(path: &str) -> String {
    let trimmed = path.trim_start_matches("./").trim_start_matches('/');
    format!("/{trimmed}")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Compiles every runnable component of a layer. `Ok(None)` when the layer
/// holds none (runwasi then keeps the original layer).
#[cfg(feature = "runtime")]
pub fn precompile_layer(
    engine: &Engine,
    media_type: &str,
    content: &[u8],
) -> Result<Option<Vec<u8>>> {
    let found = components_in_layer(media_type, content)?;
    if found.is_empty() {
        return Ok(None);
    }
    let mut entries = Vec::with_capacity(found.len());
    for Found { path, world, wasm } in found {
        let artifact = engine::precompile(engine, &wasm).with_context(|| {
            format!(
                "precompiling {}",
                path.as_deref().unwrap_or("the component layer")
            )
        })?;
        // counted here, once per image, so that container starts need not
        let footprint = engine::load_precompiled(engine, &artifact)
            .map(|code| Footprint::of(&code))
            .ok();
        entries.push(Entry {
            path,
            world,
            footprint,
            artifact,
        });
    }
    Ok(Some(
        Bundle {
            cache_key: engine::cache_key(engine),
            entries,
        }
        .encode(),
    ))
}

#[cfg(all(test, feature = "runtime"))]
mod tests {
    use super::*;

    fn tar_with(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *content).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn tar_layers_yield_their_components_by_rootfs_path() {
        let hello = wasmhttp_fixtures::build("hello").unwrap();
        let command = wasmhttp_fixtures::build("command").unwrap();
        let core = wasmhttp_fixtures::build("core-module").unwrap();
        let library = wasmhttp_fixtures::build("library-module").unwrap();
        let layer = tar_with(&[
            ("./app/hello.wasm", &hello),
            ("bin/tool.wasm", &command),
            ("core.wasm", &core),
            ("lib.wasm", &library),
            ("README", b"not wasm at all"),
        ]);
        let found = components_in_layer("application/vnd.oci.image.layer.v1.tar", &layer).unwrap();
        let summary: Vec<_> = found
            .iter()
            .map(|f| (f.path.clone().unwrap(), f.world))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("/app/hello.wasm".into(), World::HttpHandler),
                ("/bin/tool.wasm".into(), World::Command),
                // a preview 1 program: precompiled too, for WASMHTTP_MODE=cgi
                ("/core.wasm".into(), World::Wasip1Command),
            ]
        );

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &layer).unwrap();
        let gz = gz.finish().unwrap();
        let found =
            components_in_layer("application/vnd.oci.image.layer.v1.tar+gzip", &gz).unwrap();
        assert_eq!(found.len(), 3);
    }

    #[test]
    fn raw_layers_are_components_without_a_path() {
        let hello = wasmhttp_fixtures::build("hello").unwrap();
        let found = components_in_layer(RAW_WASM_LAYERS[0], &hello).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, None);
        assert!(
            components_in_layer(RAW_WASM_LAYERS[1], b"garbage")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn precompiled_layers_load_in_the_same_engine() {
        let engine = engine::new_engine().unwrap();
        let hello = wasmhttp_fixtures::build("hello").unwrap();
        let layer = tar_with(&[("component.wasm", &hello)]);
        let bytes = precompile_layer(&engine, TAR_LAYERS[0], &layer)
            .unwrap()
            .unwrap();
        let bundle = Bundle::decode(&bytes).unwrap();
        assert_eq!(bundle.cache_key, engine::cache_key(&engine));
        assert_eq!(bundle.entries[0].path.as_deref(), Some("/component.wasm"));
        let loaded = engine::load_precompiled(&engine, &bundle.entries[0].artifact).unwrap();
        assert!(matches!(loaded, engine::Code::Component(_)));
        assert_eq!(bundle.entries[0].footprint, Some(Footprint::of(&loaded)));

        // a preview 1 module becomes a module artifact, and loads as one
        let cgi = wasmhttp_fixtures::build("cgi").unwrap();
        let layer = tar_with(&[("cgi.wasm", &cgi)]);
        let bytes = precompile_layer(&engine, TAR_LAYERS[0], &layer)
            .unwrap()
            .unwrap();
        let bundle = Bundle::decode(&bytes).unwrap();
        assert_eq!(bundle.entries[0].world, World::Wasip1Command);
        assert!(matches!(
            engine::load_precompiled(&engine, &bundle.entries[0].artifact).unwrap(),
            engine::Code::Module(_)
        ));
        let empty = tar_with(&[("etc/passwd", b"root:x:0:0")]);
        assert_eq!(
            precompile_layer(&engine, TAR_LAYERS[0], &empty).unwrap(),
            None
        );
    }
}
