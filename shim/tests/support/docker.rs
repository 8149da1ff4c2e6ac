//! A private Docker Engine for the docker suite: Debian sid's `dockerd`
//! (fetched into `build/docker/` by `scripts/debian-extras.sh docker`) with
//! its own data root, exec root and socket under a temp dir, the containerd
//! image store on, and a private containerd of ours under it, so `docker run
//! --runtime io.containerd.wasmhttp.v1` starts our shim from that containerd's
//! PATH. It makes no bridge and touches no iptables: containers use `--network
//! host` and listen on loopback only. Driven with Debian's `docker` CLI, as a
//! user would.

use super::containerd::{self, PrivateContainerd};
use super::eventually::until;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The containerd namespace dockerd keeps its containers and images in.
pub const NAMESPACE: &str = "moby";

fn extracted(package: &str, path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../build/docker")
        .join(package)
        .join(path)
}

pub struct PrivateDocker {
    pub dir: PathBuf,
    daemon: Child,
}

impl PrivateDocker {
    /// Starts dockerd on `containerd` and waits (up to 30 s) until it answers.
    pub fn start(containerd: &PrivateContainerd) -> Self {
        let dockerd = extracted("engine", "usr/sbin/dockerd");
        let cli = extracted("cli", "usr/bin/docker");
        for binary in [&dockerd, &cli] {
            assert!(
                binary.exists(),
                "{} is missing: `make setup` fetches Docker Engine 28 (scripts/debian-extras.sh docker)",
                binary.display()
            );
        }
        let dir = std::env::temp_dir().join(format!("wasmhttp-docker-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // No default bridge and no iptables rules: nothing of the host's
        // network changes, and no container gets an address outside loopback.
        let config = serde_json::json!({
            "features": { "containerd-snapshotter": true },
            "bridge": "none",
            "iptables": false,
            "ip6tables": false,
            "userland-proxy": false,
        });
        std::fs::write(dir.join("daemon.json"), config.to_string()).unwrap();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let daemon = Command::new(&dockerd)
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--containerd")
            .arg(containerd.socket())
            .args(["--containerd-namespace", NAMESPACE])
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", dir.join("docker.sock").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let docker = Self { dir, daemon };
        until(
            Duration::from_secs(30),
            "dockerd answers",
            || docker.docker(&["version"]).status.success(),
            || docker.log_tail(),
        );
        docker
    }

    /// The `docker` CLI for this daemon.
    pub fn command(&self) -> Command {
        let mut command = Command::new(extracted("cli", "usr/bin/docker"));
        command
            .arg("--host")
            .arg(format!("unix://{}", self.dir.join("docker.sock").display()))
            // the CLI's own state (contexts, auth) stays out of the host's ~/.docker
            .env("DOCKER_CONFIG", self.dir.join("cli"));
        command
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running docker")
    }

    /// Runs docker and returns its stdout; panics with everything it said if it fails.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let output = self.docker(args);
        assert!(
            output.status.success(),
            "docker {args:?} failed:\n{}{}\n--- dockerd log (tail)\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log_tail()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `docker logs NAME`: the container's stdout and stderr.
    pub fn logs(&self, name: &str) -> String {
        let output = self.docker(&["logs", name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }

    /// One field of `docker inspect NAME` (a Go template, `{{.State.ExitCode}}`).
    pub fn inspect(&self, name: &str, template: &str) -> String {
        self.docker_ok(&["inspect", "--format", template, name])
            .trim()
            .to_string()
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Removes every container, stops dockerd (SIGTERM, then SIGKILL after
    /// 10 s) and its directory. Returns the containers that were still there
    /// when it began: after every case has cleaned up, any of those is a leak.
    pub fn stop(mut self) -> Vec<String> {
        let leftovers: Vec<String> = self
            .docker(&["ps", "--all", "--quiet"])
            .stdout
            .split(|b| *b == b'\n')
            .map(|id| String::from_utf8_lossy(id).trim().to_string())
            .filter(|id| !id.is_empty())
            .collect();
        for id in &leftovers {
            let _ = self.docker(&["rm", "--force", id]);
        }
        let _ = Command::new("kill")
            .arg(self.daemon.id().to_string())
            .status();
        let stopped = (0..500).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            self.daemon.try_wait().ok().flatten().is_some()
        });
        if !stopped {
            let _ = self.daemon.kill();
        }
        let _ = self.daemon.wait();
        containerd::unmount_below(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
        leftovers
            .into_iter()
            .map(|id| format!("docker container {id}"))
            .collect()
    }
}

/// A container `docker run -d` started: removed with `docker rm --force`
/// when the case ends, however it ends.
pub struct Container<'a> {
    pub docker: &'a PrivateDocker,
    pub name: String,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.docker.docker(&["rm", "--force", &self.name]);
    }
}
