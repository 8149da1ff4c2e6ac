//! `wasmhttp image`: packages a component as an OCI image archive that
//! `ctr images import` (and `docker load`, `k3d image import`) accept.
//!
//! The layout: an OCI image whose config says `wasip2/wasm` (`wasip1/wasm` for
//! a preview 1 module), with one gzipped
//! tar layer holding `/component.wasm`, which is also the image's entrypoint.
//! The wasm-native layout `wkg oci push` writes (config
//! `application/vnd.wasm.config.v0+json`, one `application/wasm` layer) would
//! be preferable, but containerd before 1.6.25/1.7.7 cannot unpack an image
//! whose layers are not tar archives: `ctr images import` and `ctr run` fail
//! with "mismatched image rootfs and manifest layers". A tar layer unpacks on
//! every containerd, and the shim still precompiles and caches it (see
//! `precompile`), so nothing is lost. The index entry carries no platform and
//! the image target is the manifest itself, so containerd runs it without
//! `--platform` flags on any node architecture.
//!
//! `wasmhttp image --artifact` writes that wasm-native layout instead, the
//! CNCF Wasm OCI artifact, exactly as `wkg oci push` lays it out (see
//! [`write_artifact`]; an app as [`write_app_artifact`]), for containerd 1.7
//! and 2 with CRI and for registries that
//! index components.

use std::io::Write;

use anyhow::{Context, Result, bail};
use oci_spec::image::{
    Arch, ConfigBuilder, ImageConfigurationBuilder, ImageManifestBuilder, MediaType, Os,
    RootFsBuilder,
};

use crate::precompile::sha256_hex;
use crate::world::{self, World};

mod app;
mod archive;
mod artifact;
pub mod middleware;

pub use app::{AppComponents, AppSummary, write_app_artifact, write_app_image};
pub use archive::{OciArchive, gzip, single_file_tar};
use archive::{canonical_json, files_tar};
pub use artifact::{
    ARTIFACT_CONFIG_MEDIA_TYPE, ARTIFACT_LAYER_MEDIA_TYPE, ArtifactMetadata, write_artifact,
};

/// Where the component sits in the image's rootfs, and the image's entrypoint.
pub const COMPONENT_PATH: &str = "/component.wasm";

/// What `write_image` produced.
#[derive(Debug)]
pub struct ImageSummary {
    /// The fully qualified reference containerd will list (`docker.io/library/x:latest`).
    pub reference: String,
    pub manifest_digest: String,
    pub world: World,
}

/// Writes the image archive for `wasm` to `out`. Refuses anything the shim
/// would refuse to run, so a bad component is caught at build time.
pub fn write_image(wasm: &[u8], reference: &str, out: impl Write) -> Result<ImageSummary> {
    let world = world::detect(wasm)?;
    let (reference, manifest_digest) = write_rootfs_image(
        &[(COMPONENT_PATH, wasm)],
        world_os(world),
        world_label(world),
        reference,
        out,
    )?;
    Ok(ImageSummary {
        reference,
        manifest_digest,
        world,
    })
}

/// An image whose one gzipped tar layer holds `files` (rootfs paths), the
/// first of which is its entrypoint; `os` is the config's, `label` its
/// `io.wasmhttp.world` label. Returns the qualified reference and the
/// manifest's digest.
pub(crate) fn write_rootfs_image(
    files: &[(&str, &[u8])],
    os: &str,
    label: &str,
    reference: &str,
    out: impl Write,
) -> Result<(String, String)> {
    let reference = normalize_reference(reference)?;
    let mut archive = OciArchive::new(out);

    let layer_tar = files_tar(files)?;
    let diff_id = sha256_hex(&layer_tar);
    let layer = archive.add_blob(MediaType::ImageLayerGzip, &gzip(&layer_tar)?)?;

    let config = ImageConfigurationBuilder::default()
        .architecture(Arch::Wasm)
        .os(Os::Other(os.into()))
        .config(
            ConfigBuilder::default()
                .entrypoint(vec![files[0].0.to_string()])
                .labels(std::collections::HashMap::from([(
                    "io.wasmhttp.world".to_string(),
                    label.to_string(),
                )]))
                .build()?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![format!("sha256:{diff_id}")])
                .build()?,
        )
        .build()?;
    let config = archive.add_blob(MediaType::ImageConfig, &canonical_json(&config)?)?;

    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config.clone())
        .layers(vec![layer.clone()])
        .build()?;
    let manifest = archive.add_blob(MediaType::ImageManifest, &canonical_json(&manifest)?)?;
    let manifest_digest = manifest.digest().to_string();

    archive.finish(&reference, manifest, Some((&config, &[layer])))?;
    Ok((reference, manifest_digest))
}

/// The config's `os` for a program of `world`.
fn world_os(world: World) -> &'static str {
    match world {
        World::Wasip1Command => "wasip1",
        World::HttpHandler | World::Command => "wasip2",
        World::HttpService => "wasip3",
    }
}

/// The component's world: its imports and exports by their WIT names
/// (`wasi:http/incoming-handler@0.2.0`), in the world's order.
pub(super) fn world_items(wasm: &[u8]) -> Result<(Vec<String>, Vec<String>)> {
    let wit_component::DecodedWasm::Component(resolve, world) =
        wit_component::decode(wasm).context("decoding the component's world")?
    else {
        bail!("a WIT package, not a component");
    };
    let world = &resolve.worlds[world];
    let names = |items: &wit_parser::IndexMap<wit_parser::WorldKey, wit_parser::WorldItem>| {
        items
            .keys()
            .map(|key| resolve.name_world_key(key))
            .collect()
    };
    Ok((names(&world.imports), names(&world.exports)))
}

fn world_label(world: World) -> &'static str {
    match world {
        World::HttpHandler => "wasi:http/proxy",
        World::HttpService => "wasi:http/service",
        World::Command => "wasi:cli/command",
        World::Wasip1Command => "wasi_snapshot_preview1/command",
    }
}

/// `hello` → `docker.io/library/hello:latest`, the name containerd lists and
/// Kubernetes resolves; fully qualified references are kept as they are.
pub fn normalize_reference(reference: &str) -> Result<String> {
    let valid = !reference.is_empty()
        && reference.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b"._-/:".contains(&b)
                || b.is_ascii_uppercase()
        })
        && !reference.contains('@');
    if !valid {
        bail!(
            "invalid image reference {reference:?}: expected NAME[:TAG], for example hello-js:1.0 or ghcr.io/acme/hello:1.0 (digests are not accepted)"
        );
    }
    let (first, rest) = reference.split_once('/').unwrap_or(("", reference));
    let has_registry =
        !first.is_empty() && (first.contains('.') || first.contains(':') || first == "localhost");
    let qualified = match (has_registry, first.is_empty()) {
        (true, _) => reference.to_string(),
        (false, true) => format!("docker.io/library/{rest}"),
        (false, false) => format!("docker.io/{reference}"),
    };
    let last = qualified.rsplit('/').next().unwrap_or_default();
    let tagged = if last.contains(':') {
        qualified
    } else {
        format!("{qualified}:latest")
    };
    if tagged
        .split('/')
        .skip(1)
        .any(|part| part.bytes().any(|b| b.is_ascii_uppercase()))
    {
        bail!("invalid image reference {reference:?}: repository names must be lowercase");
    }
    Ok(tagged)
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::HashMap;
    use std::io::Read;

    use super::*;

    #[test]
    fn references_are_qualified_like_containerd_does() {
        assert_eq!(
            normalize_reference("hello").unwrap(),
            "docker.io/library/hello:latest"
        );
        assert_eq!(
            normalize_reference("hello:1.0").unwrap(),
            "docker.io/library/hello:1.0"
        );
        assert_eq!(
            normalize_reference("acme/hello").unwrap(),
            "docker.io/acme/hello:latest"
        );
        assert_eq!(
            normalize_reference("ghcr.io/acme/hello:2").unwrap(),
            "ghcr.io/acme/hello:2"
        );
        assert_eq!(
            normalize_reference("localhost:5000/hello").unwrap(),
            "localhost:5000/hello:latest"
        );
        assert!(normalize_reference("Hello").is_err());
        assert!(normalize_reference("hello@sha256:abc").is_err());
        assert!(normalize_reference("").is_err());
    }

    pub(super) fn read_archive(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
        let mut files = HashMap::new();
        for entry in tar::Archive::new(bytes).entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().to_string();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            files.insert(path, content);
        }
        files
    }

    /// The config blob of a one-image archive.
    pub(super) fn image_config(archive: &[u8]) -> serde_json::Value {
        let files = read_archive(archive);
        let blob = |digest: &str| {
            &files[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))]
        };
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let manifest: serde_json::Value =
            serde_json::from_slice(blob(index["manifests"][0]["digest"].as_str().unwrap()))
                .unwrap();
        serde_json::from_slice(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap()
    }

    #[test]
    fn image_layout_is_wasm_config_with_one_tar_layer() {
        let wasm = wasmhttp_fixtures::build("hello").unwrap();
        let mut out = Vec::new();
        let summary = write_image(&wasm, "hello:1", &mut out).unwrap();
        assert_eq!(summary.reference, "docker.io/library/hello:1");
        assert_eq!(summary.world, World::HttpHandler);

        let files = read_archive(&out);
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let entry = &index["manifests"][0];
        assert_eq!(
            entry["annotations"]["io.containerd.image.name"],
            "docker.io/library/hello:1"
        );
        assert!(
            entry.get("platform").is_none(),
            "no platform, so any node runs it"
        );
        let blob = |digest: &str| {
            &files[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))]
        };
        let manifest: serde_json::Value =
            serde_json::from_slice(blob(entry["digest"].as_str().unwrap())).unwrap();
        assert_eq!(
            format!(
                "sha256:{}",
                sha256_hex(blob(entry["digest"].as_str().unwrap()))
            ),
            summary.manifest_digest
        );
        let config: serde_json::Value =
            serde_json::from_slice(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip2");
        assert_eq!(config["config"]["Entrypoint"][0], COMPONENT_PATH);
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(
            layers[0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );

        // the layer unpacks to the component, and its diff_id matches
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&blob(layers[0]["digest"].as_str().unwrap())[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            format!("sha256:{}", sha256_hex(&tar))
        );
        let inner = read_archive(&tar);
        assert_eq!(inner["component.wasm"], wasm);
        assert!(files.contains_key("manifest.json") && files.contains_key("oci-layout"));
    }

    #[test]
    fn images_are_reproducible() {
        let wasm = wasmhttp_fixtures::build("hello").unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_image(&wasm, "hello", &mut a).unwrap();
        write_image(&wasm, "hello", &mut b).unwrap();
        assert!(a == b, "two archives of the same component differ");
    }

    #[test]
    fn unrunnable_components_are_refused() {
        let library = wasmhttp_fixtures::build("library-module").unwrap();
        let err = write_image(&library, "x", Vec::new()).unwrap_err();
        assert!(err.to_string().contains("core WebAssembly module"), "{err}");
    }

    #[test]
    fn preview_1_programs_are_labelled_as_such() {
        let cgi = wasmhttp_fixtures::build("cgi").unwrap();
        let mut out = Vec::new();
        let summary = write_image(&cgi, "cgi", &mut out).unwrap();
        assert_eq!(summary.world, World::Wasip1Command);
        let config = image_config(&out);
        assert_eq!(config["os"], "wasip1");
        assert_eq!(
            config["config"]["Labels"]["io.wasmhttp.world"],
            "wasi_snapshot_preview1/command"
        );
    }
}
