//! An image layer of any media type the shim reads (bare component, tar,
//! gzipped tar) and a precompiled bundle as the content store hands it back:
//! reading them never panics, and a bundle that decodes encodes back to the
//! same bundle.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmhttp::precompile::{self, Bundle};

fuzz_target!(|input: (u8, &[u8])| {
    let (pick, content) = input;
    let media_type = precompile::LAYER_TYPES[pick as usize % precompile::LAYER_TYPES.len()];
    if let Ok(found) = precompile::components_in_layer(media_type, content) {
        for component in found {
            assert!(component.wasm.len() as u64 <= precompile::MAX_COMPONENT_BYTES);
            assert!(component.path.is_none_or(|p| p.starts_with('/')));
        }
    }
    if Bundle::is_bundle(content)
        && let Ok(bundle) = Bundle::decode(content)
    {
        assert_eq!(Bundle::decode(&bundle.encode()).unwrap(), bundle);
    }
});
