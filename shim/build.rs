//! Records the exact wasmtime version from Cargo.lock: it is part of the
//! precompile cache key, because wasmtime artifacts only load in the very
//! version that produced them.

fn main() {
    let lock = std::fs::read_to_string("../Cargo.lock")
        .expect("Cargo.lock next to the workspace manifest");
    let mut lines = lock.lines();
    let mut version = None;
    while let Some(line) = lines.next() {
        if line == "name = \"wasmtime\"" {
            version = lines
                .next()
                .and_then(|l| l.strip_prefix("version = \""))
                .map(|v| v.trim_end_matches('"'));
            break;
        }
    }
    let version = version.expect("wasmtime is in Cargo.lock");
    println!("cargo:rustc-env=LOCKED_WASMTIME_VERSION={version}");
    println!("cargo:rerun-if-changed=../Cargo.lock");
}
