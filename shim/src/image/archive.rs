//! OCI image layout archives (what `ctr images import` reads), and the tar
//! and gzip they are made of.

use std::io::Write;

use anyhow::{Context, Result};
use oci_spec::image::{Descriptor, DescriptorBuilder, ImageIndexBuilder, MediaType, Sha256Digest};
use serde::Serialize;

use crate::precompile::sha256_hex;

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
pub(super) fn canonical_json(value: &impl Serialize) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(&serde_json::to_value(value)?)?)
}

pub(super) fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    content: &[u8],
) -> Result<()> {
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
    files_tar(&[(path, content)])
}

/// A layer tar holding files at absolute rootfs paths (their directories
/// implied, as `FROM scratch` + `COPY` layers often leave them).
pub fn files_tar(files: &[(&str, &[u8])]) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in files {
        append_file(&mut tar, path.trim_start_matches('/'), content)?;
    }
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
