//! An image's manifest, index and config as a registry serves them: parsed
//! with the oci-spec types the shim's containerd client uses, then
//! classified the way it does (platform, layer media types). Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_spec::image::{Arch, ImageConfiguration, ImageIndex, ImageManifest, Platform};
use wasmhttp::precompile;

fuzz_target!(|input: (&[u8], &[u8])| {
    let (document, config) = input;
    if let Ok(manifest) = serde_json::from_slice::<ImageManifest>(document) {
        let _read: Vec<bool> = manifest
            .layers()
            .iter()
            .map(|layer| precompile::LAYER_TYPES.contains(&layer.media_type().to_string().as_str()))
            .collect();
        let _ = manifest.config().digest().to_string();
    }
    if let Ok(index) = serde_json::from_slice::<ImageIndex>(document) {
        for manifest in index.manifests() {
            let _ = manifest.platform().as_ref().map(|p| p.architecture() == &Arch::Wasm);
        }
    }
    if let Ok(platform) = serde_json::from_slice::<Platform>(config) {
        let _wasm = *platform.architecture() == Arch::Wasm;
    }
    if let Ok(image) = serde_json::from_slice::<ImageConfiguration>(config) {
        // the entrypoint and command become the container's args
        let _ = image.config().as_ref().map(|c| (c.entrypoint().clone(), c.cmd().clone()));
    }
});
