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

use std::io::Write;

use anyhow::{Context, Result, bail};
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, RootFsBuilder, Sha256Digest,
};
use serde::Serialize;

use crate::precompile::sha256_hex;
use crate::world::{self, World};

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
    let reference = normalize_reference(reference)?;
    let mut archive = OciArchive::new(out);

    let layer_tar = single_file_tar(COMPONENT_PATH, wasm)?;
    let diff_id = sha256_hex(&layer_tar);
    let layer = archive.add_blob(MediaType::ImageLayerGzip, &gzip(&layer_tar)?)?;

    let config = ImageConfigurationBuilder::default()
        .architecture(Arch::Wasm)
        .os(Os::Other(
            match world {
                World::Wasip1Command => "wasip1",
                World::HttpHandler | World::Command => "wasip2",
            }
            .into(),
        ))
        .config(
            ConfigBuilder::default()
                .entrypoint(vec![COMPONENT_PATH.to_string()])
                .labels(std::collections::HashMap::from([(
                    "io.wasmhttp.world".to_string(),
                    world_label(world).to_string(),
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

    archive.finish(&reference, manifest, &config, &[layer])?;
    Ok(ImageSummary {
        reference,
        manifest_digest,
        world,
    })
}

fn world_label(world: World) -> &'static str {
    match world {
        World::HttpHandler => "wasi:http/proxy",
        World::Command => "wasi:cli/command",
        World::Wasip1Command => "wasi_snapshot_preview1/command",
    }
}

/// An OCI image layout, written as a tar stream, with a Docker-style
/// `manifest.json` too so `docker load` accepts the same file.
pub struct OciArchive<W: Write> {
    tar: tar::Builder<W>,
}

impl<W: Write> OciArchive<W> {
    pub fn new(out: W) -> Self {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Deterministic);
        Self { tar }
    }

    /// Adds a content-addressed blob and returns its descriptor.
    pub fn add_blob(&mut self, media_type: MediaType, content: &[u8]) -> Result<Descriptor> {
        let hex = sha256_hex(content);
        append_file(&mut self.tar, &format!("blobs/sha256/{hex}"), content)?;
        let digest: Sha256Digest = hex.parse()?;
        Ok(DescriptorBuilder::default()
            .media_type(media_type)
            .size(content.len() as u64)
            .digest(digest)
            .build()?)
    }

    /// Writes `index.json` (pointing at `manifest` under `reference`),
    /// `oci-layout` and Docker's `manifest.json`, and ends the archive.
    pub fn finish(
        mut self,
        reference: &str,
        manifest: Descriptor,
        config: &Descriptor,
        layers: &[Descriptor],
    ) -> Result<W> {
        let tag = reference
            .rsplit_once(':')
            .map(|(_, t)| t)
            .unwrap_or("latest");
        let mut manifest = manifest;
        manifest.set_annotations(Some(
            [
                (
                    "io.containerd.image.name".to_string(),
                    reference.to_string(),
                ),
                (
                    "org.opencontainers.image.ref.name".to_string(),
                    tag.to_string(),
                ),
            ]
            .into(),
        ));
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![manifest])
            .build()?;
        append_file(&mut self.tar, "index.json", &canonical_json(&index)?)?;
        append_file(
            &mut self.tar,
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;

        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct DockerManifest {
            config: String,
            repo_tags: Vec<String>,
            layers: Vec<String>,
        }
        let blob_path = |d: &Descriptor| format!("blobs/sha256/{}", d.digest().digest());
        let docker = [DockerManifest {
            config: blob_path(config),
            repo_tags: vec![reference.to_string()],
            layers: layers.iter().map(blob_path).collect(),
        }];
        append_file(&mut self.tar, "manifest.json", &canonical_json(&docker)?)?;
        Ok(self.tar.into_inner()?)
    }
}

/// JSON with sorted object keys: oci-spec keeps labels and annotations in
/// `HashMap`s, whose order changes from run to run, and digests must not.
fn canonical_json(value: &impl Serialize) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(&serde_json::to_value(value)?)?)
}

fn append_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, content: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, content)
        .with_context(|| format!("writing {path}"))?;
    Ok(())
}

/// A layer tar holding one file at an absolute rootfs path.
pub fn single_file_tar(path: &str, content: &[u8]) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    append_file(&mut tar, path.trim_start_matches('/'), content)?;
    Ok(tar.into_inner()?)
}

/// Gzip with a fixed header, so equal input gives equal layers (and digests).
pub fn gzip(content: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    encoder.write_all(content)?;
    Ok(encoder.finish()?)
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
mod tests {
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

    fn read_archive(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
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
    fn image_config(archive: &[u8]) -> serde_json::Value {
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
