//! `wasmhttp serve` run as a test subject: started on free loopback ports,
//! with its stdout and stderr kept, stopped when the test ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use super::http::{self, free_port};

pub struct Served {
    pub child: Child,
    pub addr: std::net::SocketAddr,
    pub admin: std::net::SocketAddr,
    pub stderr: PathBuf,
    pub stdout: PathBuf,
    _dir: TempDir,
}

pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("wasmhttp-serve-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

pub fn wasmhttp() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmhttp"));
    // Only what a test sets explicitly reaches the CLI's settings; the admin
    // listener is off unless a test asks for it (tests run in parallel, and
    // its default port is fixed).
    for (name, _) in std::env::vars() {
        if name.starts_with("WASMHTTP_") {
            command.env_remove(name);
        }
    }
    command.env("WASMHTTP_ADMIN_LISTEN", "off");
    command
}

/// Starts `wasmhttp serve COMPONENT` on a free loopback port, with the admin
/// listener on another, and waits until /readyz says ready (so that no
/// request of the helper's reaches the guest or its metrics).
pub fn serve(name: &str, component: &Path, extra: &[&str], env: &[(&str, &str)]) -> Served {
    start(name, Some(component), extra, env)
}

/// Starts `wasmhttp serve` of an app given by `--route` flags in `extra`
/// (or of the manifest `serve` is given as its component).
pub fn serve_routes(name: &str, extra: &[&str], env: &[(&str, &str)]) -> Served {
    start(name, None, extra, env)
}

fn start(name: &str, what: Option<&Path>, extra: &[&str], env: &[(&str, &str)]) -> Served {
    let dir = temp_dir(name);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let stderr = dir.0.join("stderr");
    let stdout = dir.0.join("stdout");
    let child = wasmhttp()
        .arg("serve")
        .args(what)
        .args(["--listen", &addr.to_string()])
        .args(extra)
        .env("WASMHTTP_ADMIN_LISTEN", admin.to_string())
        .envs(env.iter().copied())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut served = Served {
        child,
        addr,
        admin,
        stderr,
        stdout,
        _dir: dir,
    };
    // an app of several Python components compiles for a minute or more on
    // a busy 2-core machine
    let deadline = Instant::now() + Duration::from_secs(300);
    while !http::get(admin, "/readyz").is_ok_and(|r| r.status == 200) {
        assert!(
            served.child.try_wait().unwrap().is_none(),
            "wasmhttp serve exited:\n{}",
            served.log()
        );
        assert!(
            Instant::now() < deadline,
            "wasmhttp serve never became ready:\n{}",
            served.log()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    served
}

impl Served {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// What its guests wrote on stdout.
    pub fn out(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Waits (10 s at most) for `text` in the log: lines are written by the
    /// container's output thread, a moment after the request that caused
    /// them was answered.
    pub fn wait_for_log(&self, text: &str, context: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "{context}: {text:?} not in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn terminate(self) -> ExitStatus {
        nix_kill(self.child.id(), 15);
        self.terminate_wait()
    }

    /// Waits for the exit a signal already asked for.
    pub fn terminate_wait(mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "wasmhttp serve ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn nix_kill(pid: u32, signal: i32) {
    assert!(
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success()
    );
}

pub fn fixture(dir: &TempDir, name: &str) -> PathBuf {
    let path = dir.0.join(format!("{name}.wasm"));
    std::fs::write(&path, wasmhttp_fixtures::build(name).unwrap()).unwrap();
    path
}

pub fn example(name: &str) -> PathBuf {
    super::images::example(name)
}

pub fn metric(admin: std::net::SocketAddr, line_start: &str) -> f64 {
    metric_in(&http::get(admin, "/metrics").unwrap().text(), line_start)
}

/// The value of the metric line that starts `line_start` in an exposition `text`.
pub fn metric_in(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{line_start} not in\n{text}"))
}

/// Waits until the admin endpoint's metric `name` reads `value`.
pub fn wait_for_metric(admin: std::net::SocketAddr, name: &str, value: f64) {
    super::eventually::until(
        Duration::from_secs(10),
        &format!("{name} becomes {value}"),
        || metric(admin, name) == value,
        || metric(admin, name).to_string(),
    );
}
