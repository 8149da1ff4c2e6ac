//! The installer against a fake host root, and the config it writes against
//! the real containerd.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp(name: &str) -> Dir {
    let dir =
        std::env::temp_dir().join(format!("wasmhttp-installer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Dir(dir)
}

fn installer(args: &[&str], root: &Path, shim: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmhttp-node-installer"));
    command
        .args(args)
        .arg("--host-root")
        .arg(root)
        .arg("--no-restart");
    if let Some(shim) = shim {
        command.arg("--shim").arg(shim);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn default_containerd_config() -> String {
    let output = Command::new("containerd")
        .args(["config", "default"])
        .output()
        .expect("containerd is installed (make setup)");
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn installs_idempotently_and_uninstalls_on_a_containerd_node() {
    let dir = temp("containerd");
    let root = dir.0.join("host");
    let default = default_containerd_config();
    std::fs::create_dir_all(root.join("etc/containerd")).unwrap();
    std::fs::write(root.join("etc/containerd/config.toml"), &default).unwrap();
    let shim = dir.0.join("shim-binary");
    std::fs::write(&shim, b"\x7fELF pretend shim").unwrap();

    let first = stdout(&installer(&["install"], &root, Some(&shim)));
    assert!(
        first.contains("changed") && first.contains("config.toml"),
        "{first}"
    );
    let installed = root.join("opt/wasmhttp/bin/containerd-shim-wasmhttp-v1");
    assert_eq!(std::fs::read(&installed).unwrap(), b"\x7fELF pretend shim");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let link = root.join("usr/local/bin/containerd-shim-wasmhttp-v1");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("/opt/wasmhttp/bin/containerd-shim-wasmhttp-v1")
    );
    let config = std::fs::read_to_string(root.join("etc/containerd/config.toml")).unwrap();
    assert!(
        config.contains("runtimes.wasmhttp]") && config.contains("io.containerd.wasmhttp.v1"),
        "{config}"
    );
    assert!(
        config.starts_with(default.lines().next().unwrap()),
        "the operator's config must stay in front"
    );

    let second = stdout(&installer(&["install"], &root, Some(&shim)));
    assert!(second.contains("nothing to change"), "{second}");

    // a new shim version is copied again; the config stays
    std::fs::write(&shim, b"\x7fELF pretend shim v2").unwrap();
    let upgrade = stdout(&installer(&["install"], &root, Some(&shim)));
    assert!(
        upgrade.contains("opt/wasmhttp/bin") && !upgrade.contains("config.toml"),
        "{upgrade}"
    );

    let removed = stdout(&installer(&["uninstall"], &root, None));
    assert!(removed.contains("config.toml"), "{removed}");
    assert!(!installed.exists() && std::fs::symlink_metadata(&link).is_err());
    assert!(
        !std::fs::read_to_string(root.join("etc/containerd/config.toml"))
            .unwrap()
            .contains("wasmhttp")
    );
    assert!(stdout(&installer(&["uninstall"], &root, None)).contains("nothing to change"));
}

#[test]
fn k3s_nodes_get_a_template_that_extends_the_base() {
    let dir = temp("k3s");
    let root = dir.0.join("host");
    let config_dir = root.join("var/lib/rancher/k3s/agent/etc/containerd");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.toml"),
        "version = 3\n[plugins.'io.containerd.cri.v1.images']\n  snapshotter = 'overlayfs'\n",
    )
    .unwrap();
    let shim = dir.0.join("shim-binary");
    std::fs::write(&shim, b"shim").unwrap();

    installer(&["install"], &root, Some(&shim));
    let template = std::fs::read_to_string(config_dir.join("config.toml.tmpl")).unwrap();
    assert!(
        template.starts_with("{{ template \"base\" . }}"),
        "{template}"
    );
    assert!(
        template
            .contains("[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.wasmhttp]"),
        "{template}"
    );
    assert!(stdout(&installer(&["install"], &root, Some(&shim))).contains("nothing to change"));
    installer(&["uninstall"], &root, None);
    assert!(
        !config_dir.join("config.toml.tmpl").exists(),
        "a template that was only ours is removed"
    );
}

/// The config the installer writes, loaded by the real containerd: the CRI
/// plugin must load (it refuses when runc is not declared next to an added
/// runtime) and list the wasmhttp runtime.
#[test]
fn containerd_loads_the_written_config_with_cri_and_the_runtime() {
    let dir = temp("real");
    let root = dir.0.join("host");
    std::fs::create_dir_all(root.join("etc/containerd")).unwrap();
    // a node whose containerd runs on defaults has no config file at all
    let shim = dir.0.join("shim-binary");
    std::fs::write(&shim, b"shim").unwrap();
    installer(&["install"], &root, Some(&shim));
    let state = dir.0.join("containerd");
    std::fs::create_dir_all(&state).unwrap();
    // the written config, plus one line that keeps containerd's `opt` plugin
    // inside the test's directory instead of creating /opt/containerd
    let written = std::fs::read_to_string(root.join("etc/containerd/config.toml")).unwrap();
    let config = state.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "{written}\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{}\"\n",
            state.join("opt").display()
        ),
    )
    .unwrap();
    let socket = state.join("containerd.sock");
    let log = std::fs::File::create(state.join("log")).unwrap();
    let mut daemon = Command::new("containerd")
        .arg("--config")
        .arg(&config)
        .arg("--root")
        .arg(state.join("root"))
        .arg("--state")
        .arg(state.join("state"))
        .arg("--address")
        .arg(&socket)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let plugins = loop {
        let output = Command::new("ctr")
            .arg("--address")
            .arg(&socket)
            .args(["plugins", "ls"])
            .output()
            .unwrap();
        if output.status.success() {
            break String::from_utf8_lossy(&output.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "containerd did not start with the written config"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = daemon.kill();
    let _ = daemon.wait();
    let containerd_log = std::fs::read_to_string(state.join("log")).unwrap();
    let cri = plugins
        .lines()
        .find(|l| l.contains("io.containerd.grpc.v1") && l.contains(" cri "))
        .expect("CRI is listed");
    assert!(
        cri.trim_end().ends_with("ok"),
        "the CRI plugin did not load: {cri}\n{containerd_log}"
    );
    assert!(
        containerd_log.contains("wasmhttp:{Type:io.containerd.wasmhttp.v1"),
        "CRI does not list the wasmhttp runtime:\n{containerd_log}"
    );
}
