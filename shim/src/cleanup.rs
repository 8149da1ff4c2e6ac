//! The `delete` action of the shim binary, which containerd runs when a shim
//! process has died (OOM-killed, `kill -9`, a crash) to clean up after it.
//!
//! runwasi's own answer only reports the exit: the container's processes,
//! which are forks of the dead shim, would serve on as orphans, holding the
//! pod's port, cgroup and rootfs mount. Here the container is found in the
//! runtime's state directory and deleted by force first, as `runc delete
//! --force` does for runc's containers.

use std::path::{Path, PathBuf};

/// Where runwasi keeps youki's container state unless the runtime options
/// name another root (`/run/containerd/<shim name>/<namespace>/<id>`).
const DEFAULT_ROOT: &str = "/run/containerd/wasmhttp";

/// If `args` (the shim binary's command line) is containerd's `delete`
/// action, kills and deletes what is left of that container. Never fails:
/// whatever it cannot do is logged on stderr, which containerd logs.
pub fn delete_orphaned_container(args: &[String]) {
    if args.last().map(String::as_str) != Some("delete") {
        return;
    }
    let flag = |name: &str| {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (Some(namespace), Some(id)) = (flag("-namespace"), flag("-id")) else {
        return;
    };
    // containerd runs the delete action in the bundle directory
    let bundle = flag("-bundle")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_default();
    let state = runtime_root(&bundle).join(namespace).join(&id);
    if !state.join("state.json").exists() {
        return;
    }
    match libcontainer::container::Container::load(state) {
        Ok(mut container) => {
            if let Err(err) = container.delete(true) {
                eprintln!("wasmhttp: cannot delete the orphaned container {id}: {err}");
            }
        }
        Err(err) => eprintln!("wasmhttp: cannot load the state of container {id}: {err}"),
    }
}

/// The `root` of the runtime options containerd wrote for this bundle, if any.
fn runtime_root(bundle: &Path) -> PathBuf {
    #[derive(serde::Deserialize)]
    struct Options {
        root: Option<PathBuf>,
    }
    std::fs::read(bundle.join("options.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Options>(&bytes).ok())
        .and_then(|options| options.root)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
}
