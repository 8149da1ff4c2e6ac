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
fn k3s_and_rke2_nodes_get_a_template_that_extends_the_base() {
    // k3s 1.32+ and rke2 generate version 3, older k3s version 2
    for (flavour, version, table) in [
        (
            "k3s",
            3,
            "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.wasmhttp]",
        ),
        (
            "k3s",
            2,
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wasmhttp]",
        ),
        (
            "rke2",
            3,
            "[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.wasmhttp]",
        ),
    ] {
        let dir = temp(&format!("{flavour}-v{version}"));
        let root = dir.0.join("host");
        let config_dir = root.join(format!("var/lib/rancher/{flavour}/agent/etc/containerd"));
        std::fs::create_dir_all(&config_dir).unwrap();
        let generated = format!(
            "version = {version}\n[plugins.'io.containerd.cri.v1.images']\n  snapshotter = 'overlayfs'\n"
        );
        std::fs::write(config_dir.join("config.toml"), &generated).unwrap();
        let shim = dir.0.join("shim-binary");
        std::fs::write(&shim, b"shim").unwrap();

        let said = stdout(&installer(&["install"], &root, Some(&shim)));
        assert!(said.contains(&format!("flavour: {flavour}")), "{said}");
        let template = std::fs::read_to_string(config_dir.join("config.toml.tmpl")).unwrap();
        assert!(
            template.starts_with("{{ template \"base\" . }}"),
            "{template}"
        );
        assert!(template.contains(table), "{flavour} v{version}: {template}");
        assert_eq!(
            std::fs::read_to_string(config_dir.join("config.toml")).unwrap(),
            generated,
            "the generated config.toml is k3s's to write, not ours"
        );
        assert!(stdout(&installer(&["install"], &root, Some(&shim))).contains("nothing to change"));
        installer(&["uninstall"], &root, None);
        assert!(
            !config_dir.join("config.toml.tmpl").exists(),
            "a template that was only ours is removed"
        );
    }
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

/// A stand-in for the Kubernetes API server (none can run here): TLS on
/// loopback with a certificate for `kubernetes.default.svc`, answering every
/// request with `status` and recording what it got.
struct StandInApiServer {
    port: u16,
    ca_pem: String,
    requests: std::sync::mpsc::Receiver<String>,
}

fn stand_in_api_server(status: u16, connections: usize) -> StandInApiServer {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::Arc;
    let certified =
        rcgen::generate_simple_self_signed(vec!["kubernetes.default.svc".into()]).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![certified.cert.der().clone()],
        rustls_pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into()),
    )
    .unwrap();
    let config = Arc::new(config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, requests) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for socket in listener.incoming().take(connections) {
            let socket = socket.unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let connection = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut reader = BufReader::new(rustls::StreamOwned::new(connection, socket));
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = reader.into_inner();
            write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            )
            .unwrap();
            stream.flush().unwrap();
            stream.conn.send_close_notify();
            let _ = stream.flush();
            sender
                .send(format!("{head}\r\n{}", String::from_utf8_lossy(&body)))
                .unwrap();
        }
    });
    StandInApiServer {
        port,
        ca_pem: certified.cert.pem(),
        requests,
    }
}

fn labelling_installer(
    command: &str,
    root: &Path,
    shim: &Path,
    api: &StandInApiServer,
    accounts: &Path,
) -> Output {
    std::fs::create_dir_all(accounts).unwrap();
    std::fs::write(accounts.join("token"), "test-token\n").unwrap();
    std::fs::write(accounts.join("ca.crt"), &api.ca_pem).unwrap();
    Command::new(env!("CARGO_BIN_EXE_wasmhttp-node-installer"))
        .arg(command)
        .arg("--host-root")
        .arg(root)
        .arg("--shim")
        .arg(shim)
        .args(["--restart", "never", "--service-account-dir"])
        .arg(accounts)
        .env("NODE_NAME", "node-a")
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", api.port.to_string())
        .output()
        .unwrap()
}

#[test]
fn labels_the_node_through_the_api_server_and_unlabels_on_uninstall() {
    let dir = temp("label");
    let root = dir.0.join("host");
    std::fs::create_dir_all(root.join("etc/containerd")).unwrap();
    let shim = dir.0.join("shim-binary");
    std::fs::write(&shim, b"shim").unwrap();
    let accounts = dir.0.join("serviceaccount");
    let api = stand_in_api_server(200, 3);

    for (command, label_value) in [
        ("install", r#""wasmhttp.dev/ready":"true""#),
        // a second install changes no file but still makes sure of the label
        ("install", r#""wasmhttp.dev/ready":"true""#),
        ("uninstall", r#""wasmhttp.dev/ready":null"#),
    ] {
        let output = labelling_installer(command, &root, &shim, &api, &accounts);
        assert!(
            output.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let request = api
            .requests
            .recv_timeout(Duration::from_secs(10))
            .expect("the installer called the API server");
        assert!(
            request.starts_with("PATCH /api/v1/nodes/node-a HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("Authorization: Bearer test-token\r\n"),
            "{request}"
        );
        assert!(
            request.contains("Content-Type: application/merge-patch+json\r\n"),
            "{request}"
        );
        assert!(request.contains(label_value), "{command}: {request}");
    }

    // without the RBAC to patch nodes the installer fails and says so
    let forbidden = stand_in_api_server(403, 1);
    let output = labelling_installer("install", &root, &shim, &forbidden, &accounts);
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("403") && said.contains("patch") && said.contains("nodes"),
        "{said}"
    );
}

#[test]
fn bad_options_name_the_value_and_what_is_accepted() {
    let output = Command::new(env!("CARGO_BIN_EXE_wasmhttp-node-installer"))
        .args(["install", "--restart", "sometimes"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("sometimes") && said.contains("auto, systemd, signal or never"),
        "{said}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_wasmhttp-node-installer"))
        .args(["install", "--flavour", "microk8s"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("microk8s") && said.contains("containerd, k3s"),
        "{said}"
    );
}
