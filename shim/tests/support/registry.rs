//! A container registry on 127.0.0.1 for pulls: `tests/registry`, go-containerregistry's
//! registry package (the OCI distribution API, blobs in memory), built by
//! `make setup` into `build/tools/bin/test-registry`. Killed when dropped.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`, the registry host of the references pushed to it.
    pub address: String,
}

impl Registry {
    pub fn start() -> Self {
        let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/tools/bin/test-registry");
        let mut child = Command::new(&binary)
            .args(["-address", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "the test registry {} does not start ({e}): `make setup` builds it from tests/registry",
                    binary.display()
                )
            });
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line.trim().to_string();
        assert!(
            address.starts_with("127.0.0.1:"),
            "the test registry said {line:?}"
        );
        Registry { child, address }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
