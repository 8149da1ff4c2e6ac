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
//! [`write_artifact`]), for containerd 2 with CRI and for registries that
//! index components.

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

    archive.finish(&reference, manifest, Some((&config, &[layer])))?;
    Ok(ImageSummary {
        reference,
        manifest_digest,
        world,
    })
}

/// The CNCF Wasm OCI artifact's media types
/// (<https://tag-runtime.cncf.io/wgs/wasm/deliverables/wasm-oci-artifact/>).
pub const ARTIFACT_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
pub const ARTIFACT_LAYER_MEDIA_TYPE: &str = "application/wasm";

/// What an artifact says beyond the component: what `wkg oci push` takes.
#[derive(Debug, Default)]
pub struct ArtifactMetadata {
    /// The config's `created`, RFC 3339 as `wkg` writes it (UTC, `Z`).
    pub created: String,
    /// The config's `author` (`wkg oci push --author`).
    pub author: Option<String>,
    /// The layer's `org.opencontainers.image.title`: the component's file name.
    pub title: String,
    /// The manifest's annotations (`wkg oci push --annotation`).
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// Writes `wasm` as the CNCF Wasm OCI artifact, field for field and byte for
/// byte what `wkg oci push` sends a registry: a manifest whose config is
/// `application/vnd.wasm.config.v0+json` (architecture `wasm`, os `wasip2`,
/// the layer's digest, the component's world imports and exports) and whose
/// one layer is the component itself (`application/wasm`, titled with its
/// file name). The archive's index entry names the reference and carries no
/// platform, as [`write_image`]'s does.
pub fn write_artifact(
    wasm: &[u8],
    reference: &str,
    metadata: &ArtifactMetadata,
    out: impl Write,
) -> Result<ImageSummary> {
    let world = world::detect(wasm)?;
    if world == World::Wasip1Command {
        bail!(
            "the Wasm OCI artifact holds components; this is a preview 1 module: package it without --artifact"
        );
    }
    let reference = normalize_reference(reference)?;
    let (imports, exports) = world_items(wasm)?;
    let mut archive = OciArchive::new(out);

    let layer = archive.add_blob(MediaType::Other(ARTIFACT_LAYER_MEDIA_TYPE.into()), wasm)?;
    // field order is wkg's (oci-wasm's WasmConfig), so equal input gives its digest
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ArtifactConfig<'a> {
        created: &'a str,
        author: &'a Option<String>,
        architecture: &'a str,
        os: &'a str,
        layer_digests: Vec<String>,
        component: ArtifactComponent,
    }
    #[derive(Serialize)]
    struct ArtifactComponent {
        exports: Vec<String>,
        imports: Vec<String>,
        target: Option<String>,
    }
    let config = ArtifactConfig {
        created: &metadata.created,
        author: &metadata.author,
        architecture: "wasm",
        os: "wasip2",
        layer_digests: vec![layer.digest().to_string()],
        component: ArtifactComponent {
            exports,
            imports,
            target: None,
        },
    };
    let config = archive.add_blob(
        MediaType::Other(ARTIFACT_CONFIG_MEDIA_TYPE.into()),
        &serde_json::to_vec(&config)?,
    )?;

    // the manifest in the OCI spec's field order, as registries receive it from wkg
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Manifest<'a> {
        schema_version: u8,
        media_type: &'a str,
        config: Blob<'a>,
        layers: [Blob<'a>; 1],
        #[serde(skip_serializing_if = "Option::is_none")]
        annotations: Option<&'a std::collections::BTreeMap<String, String>>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Blob<'a> {
        media_type: &'a str,
        digest: String,
        size: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        annotations: Option<std::collections::BTreeMap<&'a str, &'a str>>,
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: "application/vnd.oci.image.manifest.v1+json",
        config: Blob {
            media_type: ARTIFACT_CONFIG_MEDIA_TYPE,
            digest: config.digest().to_string(),
            size: config.size(),
            annotations: None,
        },
        layers: [Blob {
            media_type: ARTIFACT_LAYER_MEDIA_TYPE,
            digest: layer.digest().to_string(),
            size: layer.size(),
            annotations: Some([("org.opencontainers.image.title", metadata.title.as_str())].into()),
        }],
        annotations: (!metadata.annotations.is_empty()).then_some(&metadata.annotations),
    };
    let manifest = archive.add_blob(MediaType::ImageManifest, &serde_json::to_vec(&manifest)?)?;
    let manifest_digest = manifest.digest().to_string();
    archive.finish(&reference, manifest, None)?;
    Ok(ImageSummary {
        reference,
        manifest_digest,
        world,
    })
}

/// The component's world: its imports and exports by their WIT names
/// (`wasi:http/incoming-handler@0.2.0`), in the world's order.
fn world_items(wasm: &[u8]) -> Result<(Vec<String>, Vec<String>)> {
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
    /// `oci-layout` and, given an image's config and layers, Docker's
    /// `manifest.json`, and ends the archive.
    pub fn finish(
        mut self,
        reference: &str,
        manifest: Descriptor,
        docker: Option<(&Descriptor, &[Descriptor])>,
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
        if let Some((config, layers)) = docker {
            let blob_path = |d: &Descriptor| format!("blobs/sha256/{}", d.digest().digest());
            let docker = [DockerManifest {
                config: blob_path(config),
                repo_tags: vec![reference.to_string()],
                layers: layers.iter().map(blob_path).collect(),
            }];
            append_file(&mut self.tar, "manifest.json", &canonical_json(&docker)?)?;
        }
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

    /// What `wkg oci push` sends a registry, built by the crate it pushes
    /// with (oci-wasm, on oci-client), for the same component and metadata.
    fn as_wkg_pushes_it(wasm: &[u8], metadata: &ArtifactMetadata) -> (Vec<u8>, Vec<u8>) {
        use oci_wasm::ToConfig;
        let (mut config, mut layer) =
            oci_wasm::WasmConfig::from_raw_component(wasm.to_vec(), metadata.author.clone())
                .unwrap();
        config.created = metadata.created.parse().unwrap();
        layer.annotations = Some(
            [(
                "org.opencontainers.image.title".to_string(),
                metadata.title.clone(),
            )]
            .into(),
        );
        let config = config.to_config().unwrap();
        let mut manifest = oci_client::manifest::OciImageManifest::build(
            &[layer],
            &config,
            (!metadata.annotations.is_empty()).then(|| metadata.annotations.clone()),
        );
        manifest.media_type = Some(oci_wasm::WASM_MANIFEST_MEDIA_TYPE.to_string());
        (serde_json::to_vec(&manifest).unwrap(), config.data.to_vec())
    }

    #[test]
    fn the_artifact_is_byte_for_byte_what_wkg_oci_push_writes() {
        let components = [
            ("hello.wasm", wasmhttp_fixtures::build("hello").unwrap()),
            (
                "command.wasm",
                wasmhttp_fixtures::build("command-fails").unwrap(),
            ),
        ];
        for (title, wasm) in components {
            for metadata in [
                ArtifactMetadata {
                    created: "2026-12-02T07:40:00Z".into(),
                    author: None,
                    title: title.into(),
                    annotations: Default::default(),
                },
                ArtifactMetadata {
                    created: "2026-12-02T07:40:00.123456789Z".into(),
                    author: Some("wasmhttp".into()),
                    title: title.into(),
                    annotations: [
                        ("org.opencontainers.image.version".into(), "1.0".into()),
                        ("org.opencontainers.image.source".into(), "x".into()),
                    ]
                    .into(),
                },
            ] {
                let mut out = Vec::new();
                let summary = write_artifact(&wasm, "hello:1", &metadata, &mut out).unwrap();
                let files = read_archive(&out);
                let blob = |digest: &str| {
                    files[&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))].clone()
                };
                let (manifest, config) = as_wkg_pushes_it(&wasm, &metadata);
                assert_eq!(
                    String::from_utf8(blob(&summary.manifest_digest)).unwrap(),
                    String::from_utf8(manifest.clone()).unwrap(),
                    "{title}"
                );
                let parsed: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
                assert_eq!(
                    String::from_utf8(blob(parsed["config"]["digest"].as_str().unwrap())).unwrap(),
                    String::from_utf8(config).unwrap(),
                    "{title}"
                );
                assert_eq!(blob(parsed["layers"][0]["digest"].as_str().unwrap()), wasm);
                // the index names the image and, as for write_image, no platform
                let index: serde_json::Value =
                    serde_json::from_slice(&files["index.json"]).unwrap();
                let entry = &index["manifests"][0];
                assert_eq!(entry["digest"], summary.manifest_digest.as_str());
                assert_eq!(
                    entry["annotations"]["io.containerd.image.name"],
                    "docker.io/library/hello:1"
                );
                assert!(entry.get("platform").is_none());
                assert!(
                    !files.contains_key("manifest.json"),
                    "docker load cannot take it"
                );
            }
        }
        // the config lists the world, as registries index it
        let (_, config) = as_wkg_pushes_it(
            &wasmhttp_fixtures::build("hello").unwrap(),
            &ArtifactMetadata {
                created: "2026-12-02T07:40:00Z".into(),
                ..Default::default()
            },
        );
        let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip2");
        assert!(
            config["component"]["exports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e
                    .as_str()
                    .unwrap()
                    .starts_with("wasi:http/incoming-handler@")),
            "{config}"
        );
    }

    #[test]
    fn preview_1_modules_are_not_artifacts() {
        let module = wasmhttp_fixtures::build("core-module").unwrap();
        let error = write_artifact(&module, "x:1", &ArtifactMetadata::default(), Vec::new())
            .unwrap_err()
            .to_string();
        assert!(error.contains("without --artifact"), "{error}");
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
