//! Deciding what a file from an image is (a component of a world we run, a
//! core module, something else): never panics, and a verdict of "runnable"
//! holds for the bytes wasmparser accepts as a component.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmhttp::world;

fuzz_target!(|bytes: &[u8]| {
    let verdict = world::detect(bytes);
    // the explanation of a refusal is always printable
    if let Err(why) = &verdict {
        let _ = why.to_string();
    }
    // deterministic
    assert_eq!(verdict, world::detect(bytes));
});
