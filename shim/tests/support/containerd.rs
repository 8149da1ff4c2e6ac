//! A private containerd for the test suite: its own root, state and socket
//! under a temp dir, our shim on its PATH, the config shared with the demo
//! (`tests/containerd/config-v*.toml.in`). Driven through `ctr`, as a user
//! would. The suites run on every [`Version`] in turn.

use super::eventually::{eventually, until};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const RUNTIME: &str = "io.containerd.wasmhttp.v1";
pub const NAMESPACE: &str = "wasmhttp-test";

/// The containerd releases the suites run on: the host's own (Debian
/// bookworm's 1.6) and the two that `scripts/debian-extras.sh` fetches
/// into `build/containerd/` (Debian trixie's 1.7, sid's 2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1_6,
    V1_7,
    V2_1,
}

impl Version {
    pub const ALL: [Version; 3] = [Version::V1_6, Version::V1_7, Version::V2_1];

    pub fn name(self) -> &'static str {
        match self {
            Version::V1_6 => "1.6",
            Version::V1_7 => "1.7",
            Version::V2_1 => "2.1",
        }
    }

    /// containerd 2 reads config version 3, with the CRI plugin split in
    /// `io.containerd.cri.v1.runtime` and `io.containerd.cri.v1.images`.
    pub fn is_2x(self) -> bool {
        self == Version::V2_1
    }

    /// Where this release's `containerd`, `ctr` and runc shim are.
    pub fn bin_dir(self) -> PathBuf {
        match self {
            Version::V1_6 => PathBuf::from("/usr/bin"),
            other => Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../build/containerd")
                .join(other.name())
                .join("usr/bin"),
        }
    }

    pub fn containerd(self) -> PathBuf {
        self.bin_dir().join("containerd")
    }

    pub fn ctr(self) -> PathBuf {
        self.bin_dir().join("ctr")
    }

    fn config_template(self) -> &'static str {
        if self.is_2x() {
            include_str!("../../../tests/containerd/config-v3.toml.in")
        } else {
            include_str!("../../../tests/containerd/config-v2.toml.in")
        }
    }

    /// The TOML table that holds CRI's runtimes in this release's config.
    pub fn runtimes_table(self) -> &'static str {
        if self.is_2x() {
            "plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes"
        } else {
            "plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes"
        }
    }

    /// Fails, saying how to get it, when this release is not on the machine.
    fn check_installed(self) {
        let version = Command::new(self.containerd()).arg("--version").output();
        let said = version
            .as_ref()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        assert!(
            said.contains(&format!(" {}.", self.name())),
            "containerd {} is not at {} ({}): `make setup` installs it (scripts/debian-extras.sh)",
            self.name(),
            self.containerd().display(),
            version.map_or_else(|e| e.to_string(), |_| format!("it says {said:?}"))
        );
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "containerd {}", self.name())
    }
}

/// The releases to run on: all, or those `WASMHTTP_CONTAINERD` names
/// (comma-separated, e.g. `2.1` or `1.6,2.1`) for a quicker run by hand.
pub fn versions() -> Vec<Version> {
    match std::env::var("WASMHTTP_CONTAINERD") {
        Ok(wanted) if !wanted.trim().is_empty() => wanted
            .split(',')
            .map(|name| {
                *Version::ALL
                    .iter()
                    .find(|v| v.name() == name.trim())
                    .unwrap_or_else(|| {
                        panic!("WASMHTTP_CONTAINERD={wanted}: each of 1.6, 1.7 or 2.1")
                    })
            })
            .collect(),
        _ => Version::ALL.to_vec(),
    }
}

pub struct PrivateContainerd {
    pub dir: PathBuf,
    pub version: Version,
    // behind a lock so that a case can play containerd's supervisor
    daemon: std::sync::Mutex<Child>,
}

impl PrivateContainerd {
    pub fn start(version: Version) -> Self {
        assert!(
            nix_is_root(),
            "the containerd suite drives a real containerd and must run as root"
        );
        version.check_installed();
        let dir = std::env::temp_dir().join(format!(
            "wasmhttp-containerd-{}-{}",
            std::process::id(),
            version.name()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.join("cni")).unwrap();
        // containerd finds `containerd-shim-wasmhttp-v1` for io.containerd.wasmhttp.v1 on its PATH.
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_containerd-shim-wasmhttp-v1"),
            bin.join("containerd-shim-wasmhttp-v1"),
        )
        .unwrap();
        let config = version
            .config_template()
            .replace("@DIR@", dir.to_str().unwrap())
            .replace("@SANDBOX_IMAGE@", "docker.io/wasmhttp/pause:local");
        std::fs::write(dir.join("config.toml"), config).unwrap();
        // Pods get their own network namespace with one address on a private
        // bridge that this suite creates and deletes; tests only ever reach a
        // pod by entering its namespace and connecting to 127.0.0.1.
        let conflist = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": "wasmhttp-test",
            "plugins": [{
                "type": "bridge",
                "bridge": bridge_name(),
                "isGateway": false,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": "10.213.77.0/24" }]],
                    "dataDir": dir.join("cni-ipam"),
                },
            }],
        });
        std::fs::write(
            dir.join("cni/10-wasmhttp-test.conflist"),
            conflist.to_string(),
        )
        .unwrap();
        std::fs::File::create(dir.join("containerd.log")).unwrap();
        let daemon = spawn_daemon(
            version,
            &dir.join("containerd.log"),
            &dir.join("config.toml"),
            &bin,
        );
        let containerd = Self {
            dir,
            version,
            daemon: std::sync::Mutex::new(daemon),
        };
        containerd.wait_until_up();
        containerd
    }

    fn wait_until_up(&self) {
        until(
            Duration::from_secs(15),
            "containerd comes up",
            || self.ctr(&["version"]).status.success(),
            || self.log_tail(),
        );
    }

    /// The running daemon's process ID.
    pub fn pid(&self) -> u32 {
        self.daemon.lock().unwrap().id()
    }

    /// The suite's config file, as rendered from the shared template.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// A supervisor's job: waits (up to `timeout`) until containerd has been
    /// stopped by someone else, then starts it again reading `config`, with
    /// `bin` first on its PATH. Returns the exit status it saw.
    pub fn restart_after_exit(&self, config: &Path, bin: &Path, timeout: Duration) -> ExitStatus {
        let mut daemon = self.daemon.lock().unwrap();
        let status = eventually(timeout, "containerd is stopped", || {
            daemon.try_wait().unwrap().ok_or_else(|| "running".into())
        });
        *daemon = spawn_daemon(self.version, &self.dir.join("containerd.log"), config, bin);
        drop(daemon);
        self.wait_until_up();
        status
    }

    /// Stops containerd (SIGTERM, as a service manager would) and starts it
    /// again with the same config; its shims keep running meanwhile.
    /// `while_down` runs in between.
    pub fn restart(&self, while_down: impl FnOnce()) {
        let mut daemon = self.daemon.lock().unwrap();
        let _ = Command::new("kill").arg(daemon.id().to_string()).status();
        eventually(
            Duration::from_secs(10),
            "containerd stops at SIGTERM",
            || daemon.try_wait().unwrap().ok_or_else(|| "running".into()),
        );
        while_down();
        *daemon = spawn_daemon(
            self.version,
            &self.dir.join("containerd.log"),
            &self.config(),
            &self.dir.join("bin"),
        );
        drop(daemon);
        self.wait_until_up();
    }

    /// containerd's leases (runwasi takes one while it writes precompiled
    /// content); a failed start must not leave one behind.
    pub fn leases(&self) -> Vec<String> {
        self.ctr_ok(&["leases", "ls", "--quiet"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// containerd's whole log (its shims' lines included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        log.lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn ctr_command(&self) -> Command {
        self.ctr_command_in(NAMESPACE)
    }

    /// ctr in another containerd namespace (`k8s.io` is CRI's).
    pub fn ctr_command_in(&self, namespace: &str) -> Command {
        let mut command = Command::new(self.version.ctr());
        command
            .arg("--address")
            .arg(self.socket())
            .arg("--namespace")
            .arg(namespace);
        command
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_command().args(args).output().expect("running ctr")
    }

    /// Runs ctr and returns its stdout; panics with everything ctr said if it fails.
    pub fn ctr_ok(&self, args: &[&str]) -> String {
        self.ctr_ok_in(NAMESPACE, args)
    }

    /// [`Self::ctr_ok`] in another containerd namespace.
    pub fn ctr_ok_in(&self, namespace: &str, args: &[&str]) -> String {
        let output = self
            .ctr_command_in(namespace)
            .args(args)
            .output()
            .expect("running ctr");
        assert!(
            output.status.success(),
            "ctr {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `ctr run --rm --net-host --runtime io.containerd.wasmhttp.v1 …` in the
    /// foreground, as a child process: its exit code is the task's, and its
    /// stdout/stderr are the container's.
    pub fn run(
        &self,
        id: &str,
        image: &str,
        env: &[(&str, &str)],
        extra_flags: &[&str],
        args: &[&str],
    ) -> Task {
        let stdout = self.dir.join(format!("{id}.stdout"));
        let stderr = self.dir.join(format!("{id}.stderr"));
        let mut command = self.ctr_command();
        command
            .args(["run", "--rm", "--net-host", "--runtime", RUNTIME])
            .args(extra_flags);
        for (name, value) in env {
            command.arg("--env").arg(format!("{name}={value}"));
        }
        // with --net-host every container shares the host's ports: give each
        // its own admin port unless the case chose one
        if !env.iter().any(|(name, _)| *name == "WASMHTTP_ADMIN_LISTEN") {
            command.arg("--env").arg(format!(
                "WASMHTTP_ADMIN_LISTEN=127.0.0.1:{}",
                super::http::free_port()
            ));
        }
        command.arg(image).arg(id).args(args);
        let child = command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("running ctr run");
        Task {
            id: id.to_string(),
            child: Some(child),
            stdout,
            stderr,
            ctr: self.ctr_command(),
        }
    }

    /// Shim processes of this containerd (for container `id`, or all): pid and command line.
    pub fn shim_processes(&self, id: Option<&str>) -> Vec<(u32, String)> {
        let socket = self.socket().display().to_string();
        processes()
            .into_iter()
            .filter(|(_, cmdline)| {
                cmdline.contains("containerd-shim-wasmhttp-v1") && cmdline.contains(&socket)
            })
            .filter(|(_, cmdline)| id.is_none_or(|id| cmdline.contains(&format!("-id {id} "))))
            .collect()
    }

    /// Mounts under this containerd's state that belong to container `id`.
    pub fn mounts_of(&self, id: &str) -> Vec<String> {
        let needle = format!("/{NAMESPACE}/{id}/");
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(self.dir.to_str().unwrap()) && l.contains(&needle))
            .map(str::to_string)
            .collect()
    }

    /// Waits until nothing of container or sandbox `id` is running or mounted (any namespace).
    pub fn assert_no_shim_or_mount_of(&self, id: &str) {
        eventually(Duration::from_secs(10), &format!("{id} is gone"), || {
            let shims = self.shim_processes(Some(id));
            let mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(id))
                .map(str::to_string)
                .collect();
            if shims.is_empty() && mounts.is_empty() {
                return Ok(());
            }
            Err(format!("shims {shims:?}, mounts {mounts:?}"))
        });
    }

    /// Waits until container `id` has no shim process and no mount left.
    pub fn assert_cleaned_up(&self, id: &str) {
        eventually(
            Duration::from_secs(10),
            &format!("container {id} is gone"),
            || {
                let shims = self.shim_processes(Some(id));
                let mounts = self.mounts_of(id);
                let containers = self.ctr_ok(&["containers", "list", "--quiet"]);
                let listed = containers.lines().any(|l| l == id);
                if shims.is_empty() && mounts.is_empty() && !listed {
                    return Ok(());
                }
                Err(format!(
                    "shims {shims:?}, mounts {mounts:?}, still listed: {listed}"
                ))
            },
        );
    }

    /// Tears everything down. Returns the shims that were still running when
    /// it began: after every case has cleaned up, any of those is a leak.
    pub fn stop(mut self) -> Vec<String> {
        let leftovers: Vec<String> = self
            .shim_processes(None)
            .into_iter()
            .map(|(_, cmdline)| cmdline)
            .collect();
        for line in self
            .ctr(&["tasks", "list", "--quiet"])
            .stdout
            .split(|b| *b == b'\n')
        {
            let id = String::from_utf8_lossy(line).trim().to_string();
            if !id.is_empty() {
                let _ = self.ctr(&["tasks", "kill", "--signal", "SIGKILL", &id]);
                let _ = self.ctr(&["tasks", "delete", "--force", &id]);
            }
        }
        for line in self
            .ctr(&["containers", "list", "--quiet"])
            .stdout
            .split(|b| *b == b'\n')
        {
            let id = String::from_utf8_lossy(line).trim().to_string();
            if !id.is_empty() {
                let _ = self.ctr(&["containers", "delete", &id]);
            }
        }
        for (pid, _) in self.shim_processes(None) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        let daemon = self.daemon.get_mut().unwrap();
        let _ = Command::new("kill").arg(daemon.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while daemon.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = daemon.kill();
        let _ = daemon.wait();
        unmount_below(&self.dir);
        let _ = Command::new("ip")
            .args(["link", "delete", &bridge_name()])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
        // runwasi keeps its per-namespace container state here.
        let _ = std::fs::remove_dir(Path::new("/run/containerd/wasmhttp").join(NAMESPACE));
        leftovers
    }
}

/// containerd `version` reading `config` (appending to the suite's log),
/// with `bin` first on its PATH: containerd finds `containerd-shim-wasmhttp-v1`
/// for io.containerd.wasmhttp.v1 there, and the release's own runc shim next.
fn spawn_daemon(version: Version, log: &Path, config: &Path, bin: &Path) -> Child {
    let log = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        version.bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(version.containerd())
        .arg("--config")
        .arg(config)
        .env("PATH", path)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting containerd")
}

/// Every process's pid and command line (arguments joined by spaces, with a trailing space).
/// The CNI bridge of this test process (interface names have at most 15 bytes).
pub fn bridge_name() -> String {
    format!("whtest{}", std::process::id() % 100_000)
}

/// Every process on the machine: pid and command line.
pub fn processes() -> Vec<(u32, String)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !cmdline.is_empty() {
            all.push((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
    }
    all
}

/// Lazily unmounts everything mounted below `dir`, deepest first.
pub fn unmount_below(dir: &Path) {
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(dir.to_str().unwrap()))
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in mounts {
        let _ = Command::new("umount").arg("-l").arg(&mount).status();
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc_geteuid() == 0 }
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// A container started with `ctr run` in the foreground. Dropped while it
/// still runs (a case that failed half-way), it is killed through
/// containerd and removed, so it never fails the next case or the teardown.
pub struct Task {
    pub id: String,
    child: Option<Child>,
    stdout: PathBuf,
    stderr: PathBuf,
    /// ctr for this task's containerd and namespace, to kill it with
    ctr: Command,
}

impl Task {
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Everything the container and ctr printed, for assertion messages.
    pub fn output(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout(), self.stderr())
    }

    /// Waits for `ctr run` to exit; `None` on timeout.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if !self.is_running() {
            return;
        }
        let program = self.ctr.get_program().to_owned();
        let base: Vec<_> = self.ctr.get_args().map(|a| a.to_owned()).collect();
        let ctr = |args: &[&str]| {
            let mut command = Command::new(&program);
            command.args(&base).args(args);
            let _ = command.stdout(Stdio::null()).stderr(Stdio::null()).status();
        };
        let id = self.id.clone();
        // `ctr run --rm` removes the container once its task is gone
        ctr(&["tasks", "kill", "--signal", "SIGKILL", &id]);
        if self.wait(Duration::from_secs(10)).is_none() {
            if let Some(child) = self.child.as_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
            ctr(&["tasks", "delete", "--force", &id]);
            ctr(&["containers", "delete", &id]);
        }
    }
}

/// What the suites on a private containerd share: the daemon and a work
/// directory for the images they build.
pub struct Suite {
    pub containerd: PrivateContainerd,
    pub work: PathBuf,
}

/// Runs `cases` against a private containerd of each of `versions` in turn,
/// each torn down at the end (see [`super::harness::run`]).
pub fn run_suite(
    name: &str,
    versions: &[Version],
    cases: &[super::harness::Case<Suite>],
    ends_only: &[&str],
) -> ! {
    super::harness::run(
        versions,
        cases,
        ends_only,
        |version| {
            let work = std::env::temp_dir().join(format!(
                "wasmhttp-{name}-{}-{}",
                std::process::id(),
                version.name()
            ));
            std::fs::create_dir_all(&work).unwrap();
            Suite {
                containerd: PrivateContainerd::start(*version),
                work,
            }
        },
        |suite| suite.containerd.log_tail(),
        |suite| {
            let leaks = suite.containerd.stop();
            let _ = std::fs::remove_dir_all(&suite.work);
            leaks
        },
    )
}
