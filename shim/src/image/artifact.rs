//! The CNCF Wasm OCI artifact, laid out as `wkg oci push` writes it.

use std::io::Write;

use anyhow::{Result, bail};
use oci_spec::image::MediaType;
use serde::Serialize;

use crate::world::{self, World};

use super::{ImageSummary, OciArchive, normalize_reference, world_items};

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
    let (imports, exports) = world_items(wasm)?;
    let (reference, manifest_digest) = write_layers(
        &[ArtifactLayer {
            media_type: ARTIFACT_LAYER_MEDIA_TYPE,
            content: wasm,
            title: &metadata.title,
        }],
        Some(ArtifactComponent {
            exports,
            imports,
            target: None,
        }),
        reference,
        metadata,
        out,
    )?;
    Ok(ImageSummary {
        reference,
        manifest_digest,
        world,
    })
}

/// One layer of an artifact, titled (`org.opencontainers.image.title`).
pub(super) struct ArtifactLayer<'a> {
    pub media_type: &'a str,
    pub content: &'a [u8],
    pub title: &'a str,
}

/// The config's `component`: the world's imports and exports by WIT name.
#[derive(Serialize)]
pub(super) struct ArtifactComponent {
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    pub target: Option<String>,
}

/// Writes an artifact of `layers` (the config's `os` is `wasip2` when it
/// describes a component, `wasip1` otherwise, as oci-wasm has it). Returns
/// the qualified reference and the manifest's digest.
pub(super) fn write_layers(
    layers: &[ArtifactLayer],
    component: Option<ArtifactComponent>,
    reference: &str,
    metadata: &ArtifactMetadata,
    out: impl Write,
) -> Result<(String, String)> {
    let reference = normalize_reference(reference)?;
    let mut archive = OciArchive::new(out);
    let mut descriptors = Vec::with_capacity(layers.len());
    for layer in layers {
        descriptors
            .push(archive.add_blob(MediaType::Other(layer.media_type.into()), layer.content)?);
    }
    // field order is wkg's (oci-wasm's WasmConfig), so equal input gives its digest
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ArtifactConfig<'a> {
        created: &'a str,
        author: &'a Option<String>,
        architecture: &'a str,
        os: &'a str,
        layer_digests: Vec<String>,
        component: Option<ArtifactComponent>,
    }
    let config = ArtifactConfig {
        created: &metadata.created,
        author: &metadata.author,
        architecture: "wasm",
        os: if component.is_some() {
            "wasip2"
        } else {
            "wasip1"
        },
        layer_digests: descriptors.iter().map(|d| d.digest().to_string()).collect(),
        component,
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
        layers: Vec<Blob<'a>>,
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
        layers: layers
            .iter()
            .zip(&descriptors)
            .map(|(layer, descriptor)| Blob {
                media_type: layer.media_type,
                digest: descriptor.digest().to_string(),
                size: descriptor.size(),
                annotations: Some([("org.opencontainers.image.title", layer.title)].into()),
            })
            .collect(),
        annotations: (!metadata.annotations.is_empty()).then_some(&metadata.annotations),
    };
    let manifest = archive.add_blob(MediaType::ImageManifest, &serde_json::to_vec(&manifest)?)?;
    let manifest_digest = manifest.digest().to_string();
    archive.finish(&reference, manifest, None)?;
    Ok((reference, manifest_digest))
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;

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
}
