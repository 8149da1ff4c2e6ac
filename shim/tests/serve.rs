//! `wasmhttp serve`: the CLI runs the same serving path as the shim, so the
//! same guarantees are checked here against the real binary, over loopback.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::http::{self, free_port, wait_until_serving};

struct Served {
    child: Child,
    addr: std::net::SocketAddr,
    stderr: PathBuf,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("wasmhttp-serve-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn wasmhttp() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wasmhttp"));
    // Only what a test sets explicitly reaches the CLI's settings.
    command.env_remove("WASMHTTP_LISTEN");
    command
}

/// Starts `wasmhttp serve COMPONENT` on a free loopback port.
fn serve(name: &str, component: &Path, extra: &[&str], env: &[(&str, &str)]) -> Served {
    let dir = temp_dir(name);
    let port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let stderr = dir.0.join("stderr");
    let child = wasmhttp()
        .arg("serve")
        .arg(component)
        .args(["--listen", &addr.to_string()])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut served = Served {
        child,
        addr,
        stderr,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while wait_until_serving(addr, Duration::from_millis(200)).is_err() {
        assert!(
            served.child.try_wait().unwrap().is_none(),
            "wasmhttp serve exited:\n{}",
            served.log()
        );
        assert!(
            Instant::now() < deadline,
            "wasmhttp serve never answered:\n{}",
            served.log()
        );
    }
    served
}

impl Served {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn terminate(mut self) -> ExitStatus {
        nix_kill(self.child.id(), 15);
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

fn nix_kill(pid: u32, signal: i32) {
    assert!(
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap()
            .success()
    );
}

fn fixture(dir: &TempDir, name: &str) -> PathBuf {
    let path = dir.0.join(format!("{name}.wasm"));
    std::fs::write(&path, wasmhttp_fixtures::build(name).unwrap()).unwrap();
    path
}

fn example(name: &str) -> PathBuf {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/{name}/build/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: `make examples` builds it (make test does)",
        path.display()
    );
    path
}

#[test]
fn serves_the_javascript_example() {
    let served = serve("js", &example("hello-js"), &[], &[]);
    let response = http::get(served.addr, "/from-test").unwrap();
    assert_eq!(response.status, 200);
    assert!(
        response.text().contains("Hello from JavaScript"),
        "{}",
        response.text()
    );
    assert!(
        response.text().contains("/from-test"),
        "{}",
        response.text()
    );
    assert!(served.terminate().success());
}

#[test]
fn serves_the_python_example() {
    let served = serve("py", &example("hello-py"), &[], &[]);
    let response = http::get(served.addr, "/from-test").unwrap();
    assert_eq!(response.status, 200);
    assert!(
        response.text().contains("Hello from Python"),
        "{}",
        response.text()
    );
    assert!(served.terminate().success());
}

#[test]
fn guest_sees_only_its_env_and_args() {
    let dir = temp_dir("echo-fixture");
    let served = serve(
        "echo",
        &fixture(&dir, "echo"),
        &["--env", "GREETING=hi there", "--", "one", "two"],
        &[("HOST_SECRET", "must not leak")],
    );
    let response =
        http::request(served.addr, "POST", "/x?y=1", &[("x-test", "yes")], b"body").unwrap();
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"body"[..])
    );
    assert_eq!(response.all("x-echo-env"), vec!["GREETING=hi there"]);
    let args = response.all("x-echo-arg");
    assert_eq!(&args[1..], ["one", "two"]);
    assert!(args[0].ends_with("echo.wasm"));
    assert!(served.terminate().success());
}

#[test]
fn traps_and_missing_responses_are_500s_and_serving_goes_on() {
    let dir = temp_dir("faults");
    let trap = serve("trap", &fixture(&dir, "trap"), &[], &[]);
    assert_eq!(http::get(trap.addr, "/trap").unwrap().status, 500);
    assert_eq!(http::get(trap.addr, "/ok").unwrap().status, 200);
    assert!(trap.log().contains("wasm trap"), "{}", trap.log());

    let silent = serve("no-response", &fixture(&dir, "no-response"), &[], &[]);
    assert_eq!(http::get(silent.addr, "/").unwrap().status, 500);
    assert_eq!(http::get(silent.addr, "/").unwrap().status, 500);
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_exits_zero() {
    let dir = temp_dir("slow");
    let served = serve("slow", &fixture(&dir, "slow"), &[], &[]);
    let addr = served.addr;
    let in_flight = std::thread::spawn(move || http::get(addr, "/sleep/700"));
    std::thread::sleep(Duration::from_millis(200));
    let status = served.terminate();
    assert!(status.success(), "{status}");
    let response = in_flight.join().unwrap().unwrap();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "slow fixture: done\n")
    );
    assert!(
        http::get(addr, "/").is_err(),
        "still accepting after SIGTERM"
    );
}

#[test]
fn settings_come_from_wasmhttp_variables() {
    let dir = temp_dir("settings");
    let hello = fixture(&dir, "hello");
    let port = free_port();
    let mut child = wasmhttp()
        .arg("serve")
        .arg(&hello)
        .env("WASMHTTP_LISTEN", format!("127.0.0.1:{port}"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let answered = wait_until_serving(addr, Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answered.unwrap().status, 200);
}

fn fails_with(args: &[&str], env: &[(&str, &str)], expected: &[&str]) {
    let output = wasmhttp()
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(!output.status.success(), "{args:?} succeeded");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for text in expected {
        assert!(
            stderr.contains(text),
            "{args:?}: {text:?} not in:\n{stderr}"
        );
    }
}

#[test]
fn unrunnable_input_and_bad_settings_are_explained() {
    let dir = temp_dir("bad");
    let core = fixture(&dir, "core-module");
    let other = fixture(&dir, "other-world");
    let hello = fixture(&dir, "hello");
    let text = dir.0.join("notes.wasm");
    std::fs::write(&text, "plain text\n").unwrap();
    fails_with(
        &["serve", core.to_str().unwrap()],
        &[],
        &["core WebAssembly module", "wasi:http/incoming-handler"],
    );
    fails_with(
        &["serve", other.to_str().unwrap()],
        &[],
        &["wasmhttp:fixtures/unrelated"],
    );
    fails_with(
        &["serve", text.to_str().unwrap()],
        &[],
        &["not WebAssembly", "plain text"],
    );
    fails_with(
        &["serve", "/no/such/file.wasm"],
        &[],
        &["/no/such/file.wasm"],
    );
    fails_with(
        &["serve", hello.to_str().unwrap()],
        &[("WASMHTTP_LISTEN", "nowhere")],
        &["WASMHTTP_LISTEN", "\"nowhere\""],
    );
    fails_with(
        &["serve", hello.to_str().unwrap()],
        &[("WASMHTTP_LISTNE", ":1")],
        &["WASMHTTP_LISTNE", "WASMHTTP_LISTEN"],
    );
    fails_with(
        &[
            "serve",
            hello.to_str().unwrap(),
            "--env",
            "WASMHTTP_LISTEN=:1",
        ],
        &[],
        &["settings, not guest variables"],
    );
    fails_with(
        &[
            "image",
            core.to_str().unwrap(),
            "--name",
            "x",
            "-o",
            "/dev/null",
        ],
        &[],
        &["core WebAssembly module"],
    );
}

#[test]
fn a_busy_port_is_named() {
    let dir = temp_dir("busy");
    let hello = fixture(&dir, "hello");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    fails_with(
        &["serve", hello.to_str().unwrap(), "--listen", &addr],
        &[],
        &["cannot listen on", &addr],
    );
}

#[test]
fn commands_exit_with_their_code() {
    let dir = temp_dir("command");
    for (name, code) in [("command", 0), ("command-fails", 1)] {
        let output = wasmhttp()
            .arg("serve")
            .arg(fixture(&dir, name))
            .args(["--", "--flag"])
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("command fixture: arg --flag"), "{stdout}");
    }
}
