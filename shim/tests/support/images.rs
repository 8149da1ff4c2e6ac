//! The three image layouts the shim must run, built for tests:
//! - `wasmhttp image` output (the CLI itself);
//! - runwasi's layout: one `application/vnd.bytecodealliance.wasm.component.layer.v0+wasm`
//!   layer, made with runwasi's own `oci-tar-builder`;
//! - a plain rootfs image holding the `.wasm` named by its entrypoint, as
//!   `docker buildx build --platform wasi/wasm` of a `FROM scratch` Dockerfile gives.

use std::path::{Path, PathBuf};
use std::process::Command;

use oci_spec::image::{
    Arch, ConfigBuilder, ImageConfigurationBuilder, ImageManifestBuilder, MediaType, Os,
    PlatformBuilder, RootFsBuilder,
};
use wasmhttp::image::{OciArchive, gzip, single_file_tar};
use wasmhttp::precompile::sha256_hex;

/// The component `make examples` built for `examples/NAME`.
pub fn example(name: &str) -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/{name}/build/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: `make examples` builds it (make test does)",
        path.display()
    );
    path
}

/// How many requests the service-py example's instance was serving at once
/// when it answered ("... this instance has served N, K at once").
pub fn service_py_at_once(answer: &str) -> usize {
    answer
        .rsplit(", ")
        .next()
        .and_then(|tail| tail.strip_suffix(" at once\n"))
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("not an answer of service-py: {answer:?}"))
}

/// Writes fixture `name` to `dir/name.wasm`.
pub fn fixture(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, wasmhttp_fixtures::build(name).unwrap()).unwrap();
    path
}

/// `wasmhttp image COMPONENT --name REFERENCE -o dir/…tar`; returns the archive.
pub fn wasmhttp_image(dir: &Path, component: &Path, reference: &str) -> PathBuf {
    wasmhttp_image_with(dir, component, reference, &[])
}

/// The CNCF Wasm OCI artifact of `component`: `wasmhttp image --artifact`.
pub fn wasm_artifact(dir: &Path, component: &Path, reference: &str) -> PathBuf {
    wasmhttp_image_with(dir, component, reference, &["--artifact"])
}

/// An app as a CNCF Wasm OCI artifact: `wasmhttp image --artifact` of
/// `--route` flags (`PATH=FILE[,...]`, files as absolute paths).
pub fn app_artifact(dir: &Path, routes: &[String], reference: &str) -> PathBuf {
    run_wasmhttp_image(dir, reference, |command| {
        command.arg("--artifact");
        for route in routes {
            command.args(["--route", route]);
        }
    })
}

/// A hand-made Wasm OCI artifact (config `application/vnd.wasm.config.v0+json`,
/// architecture `wasm`) of `layers` (media type, content), as another tool
/// might write one: for the start-time checks `wasmhttp image` would not let
/// through.
pub fn hand_made_artifact(dir: &Path, layers: &[(&str, &[u8])], reference: &str) -> PathBuf {
    let out = dir.join(format!("{}.tar", reference.replace([':', '/'], "_")));
    let mut archive = OciArchive::new(std::fs::File::create(&out).unwrap());
    let descriptors: Vec<_> = layers
        .iter()
        .map(|(media_type, content)| {
            archive
                .add_blob(MediaType::Other(media_type.to_string()), content)
                .unwrap()
        })
        .collect();
    let config = serde_json::json!({
        "architecture": "wasm",
        "os": "wasip2",
        "layerDigests": descriptors.iter().map(|d| d.digest().to_string()).collect::<Vec<_>>(),
    });
    let config = archive
        .add_blob(
            MediaType::Other("application/vnd.wasm.config.v0+json".into()),
            &serde_json::to_vec(&config).unwrap(),
        )
        .unwrap();
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(descriptors)
        .build()
        .unwrap();
    let manifest = archive
        .add_blob(
            MediaType::ImageManifest,
            &serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
    archive.finish(reference, manifest, None).unwrap();
    out
}

fn wasmhttp_image_with(dir: &Path, component: &Path, reference: &str, flags: &[&str]) -> PathBuf {
    run_wasmhttp_image(dir, reference, |command| {
        command.args(flags).arg(component);
    })
}

/// `wasmhttp image` with what `add` gives it, `--name REFERENCE` and an
/// archive in `dir`, which it returns.
fn run_wasmhttp_image(dir: &Path, reference: &str, add: impl FnOnce(&mut Command)) -> PathBuf {
    let out = dir.join(format!("{}.tar", reference.replace([':', '/'], "_")));
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmhttp"));
    command.arg("image");
    add(&mut command);
    let output = command
        .args(["--name", reference, "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "wasmhttp image failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// runwasi's layout, as its `oci-tar-builder` writes it (config `wasip1/wasm`,
/// empty rootfs, one component layer, entrypoint `NAME.wasm`).
pub fn runwasi_image(dir: &Path, component: &Path, name: &str, reference: &str) -> PathBuf {
    runwasi_image_with_layer_type(
        dir,
        component,
        name,
        reference,
        oci_tar_builder::WASM_LAYER_MEDIA_TYPE,
    )
}

/// [`runwasi_image`] with the layer labelled `layer_type`.
pub fn runwasi_image_with_layer_type(
    dir: &Path,
    component: &Path,
    name: &str,
    reference: &str,
    layer_type: &str,
) -> PathBuf {
    use oci_spec_06::image as spec06;
    let mut builder = oci_tar_builder::Builder::default();
    builder.add_layer_with_media_type(&component.to_path_buf(), layer_type.to_string());
    let config = spec06::ConfigBuilder::default()
        .entrypoint(vec![format!("{name}.wasm")])
        .build()
        .unwrap();
    let image = spec06::ImageConfigurationBuilder::default()
        .config(config)
        .os("wasip1")
        .architecture(spec06::Arch::Wasm)
        .rootfs(
            spec06::RootFsBuilder::default()
                .diff_ids(vec![])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    builder.add_config(image, reference.to_string());
    let out = dir.join(format!("{name}-runwasi.tar"));
    builder.build(std::fs::File::create(&out).unwrap()).unwrap();
    out
}

/// Where a rootfs image's config says it runs.
pub enum Platform {
    /// `wasi/wasm`, as `docker buildx build --platform wasi/wasm` labels it
    /// (Docker media types, platform in the index).
    WasiWasm,
    /// `linux/amd64`: a plain image that happens to hold a `.wasm` file.
    LinuxAmd64,
}

/// A one-layer rootfs image with `content` at `path`, which is also its command.
pub fn rootfs_image(
    dir: &Path,
    content: &[u8],
    path: &str,
    reference: &str,
    platform: Platform,
) -> PathBuf {
    rootfs_image_with_layer_type(dir, content, path, reference, platform, None)
}

/// [`rootfs_image`] with its layer's media type set to `layer_type`.
pub fn rootfs_image_with_layer_type(
    dir: &Path,
    content: &[u8],
    path: &str,
    reference: &str,
    platform: Platform,
    layer_type: Option<&str>,
) -> PathBuf {
    let tar = single_file_tar(path, content).unwrap();
    let process = ConfigBuilder::default()
        .cmd(vec![path.to_string()])
        .build()
        .unwrap();
    let out = dir.join(format!("{}.tar", reference.replace([':', '/'], "_")));
    one_layer_image(&out, reference, &tar, platform, process, layer_type);
    out
}

/// The pod sandbox ("pause") image, built here from Debian's busybox-static
/// because no registry is reachable: it only has to sit in the pod's
/// namespaces until it is killed.
pub fn pause_image(dir: &Path, reference: &str) -> PathBuf {
    busybox_image(dir, reference, &[], &["sleep", "2147483647"])
}

/// A native Linux image: the static `/bin/busybox`, `files` beside it, and
/// `busybox ARGS…` as its entrypoint.
pub fn busybox_image(
    dir: &Path,
    reference: &str,
    files: &[(&str, &[u8])],
    args: &[&str],
) -> PathBuf {
    let busybox =
        std::fs::read("/bin/busybox").expect("busybox-static is installed by `make setup`");
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content, mode) in std::iter::once(("bin/busybox", busybox.as_slice(), 0o755))
        .chain(files.iter().map(|(path, content)| (*path, *content, 0o644)))
    {
        let mut header = tar::Header::new_ustar();
        header.set_size(content.len() as u64);
        header.set_mode(mode);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, content).unwrap();
    }
    let tar = tar.into_inner().unwrap();
    let entrypoint = std::iter::once("/bin/busybox")
        .chain(args.iter().copied())
        .map(String::from)
        .collect::<Vec<_>>();
    let process = ConfigBuilder::default()
        .entrypoint(entrypoint)
        .build()
        .unwrap();
    let out = dir.join(format!("{}.tar", reference.replace([':', '/'], "_")));
    one_layer_image(&out, reference, &tar, Platform::LinuxAmd64, process, None);
    out
}

/// Writes an image archive with one gzipped layer `tar` and the process `process`.
fn one_layer_image(
    out: &Path,
    reference: &str,
    tar: &[u8],
    platform: Platform,
    process: oci_spec::image::Config,
    layer_type: Option<&str>,
) {
    let docker = matches!(platform, Platform::WasiWasm);
    let media_type = |docker_type: &str, oci: MediaType| {
        if docker {
            MediaType::Other(docker_type.into())
        } else {
            oci
        }
    };
    let mut archive = OciArchive::new(std::fs::File::create(out).unwrap());
    let layer_type = match layer_type {
        Some(layer_type) => MediaType::Other(layer_type.into()),
        None => media_type(
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            MediaType::ImageLayerGzip,
        ),
    };
    let layer = archive.add_blob(layer_type, &gzip(tar).unwrap()).unwrap();
    let (os, arch) = match platform {
        Platform::WasiWasm => (Os::Other("wasi".into()), Arch::Wasm),
        Platform::LinuxAmd64 => (Os::Linux, Arch::Amd64),
    };
    let config = ImageConfigurationBuilder::default()
        .architecture(arch.clone())
        .os(os.clone())
        .config(process)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![format!("sha256:{}", sha256_hex(tar))])
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let config_type = media_type(
        "application/vnd.docker.container.image.v1+json",
        MediaType::ImageConfig,
    );
    let config = archive
        .add_blob(config_type, &serde_json::to_vec(&config).unwrap())
        .unwrap();
    let manifest_type = media_type(
        "application/vnd.docker.distribution.manifest.v2+json",
        MediaType::ImageManifest,
    );
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(manifest_type.clone())
        .config(config.clone())
        .layers(vec![layer.clone()])
        .build()
        .unwrap();
    let mut manifest = archive
        .add_blob(manifest_type, &serde_json::to_vec(&manifest).unwrap())
        .unwrap();
    if docker {
        // buildx puts the platform in the index entry
        manifest.set_platform(Some(
            PlatformBuilder::default()
                .os(os)
                .architecture(arch)
                .build()
                .unwrap(),
        ));
    }
    archive
        .finish(reference, manifest, Some((&config, &[layer])))
        .unwrap();
}
