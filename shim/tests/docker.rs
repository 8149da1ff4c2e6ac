//! Docker Engine 28 runs our images: `docker run --runtime
//! io.containerd.wasmhttp.v1`, `docker logs`, `docker stop` (the shim drains,
//! exit 0) and `docker rm`, against a private dockerd with the containerd
//! image store on a private containerd 2.1 (Debian sid's docker.io goes with
//! sid's containerd). Containers use `--network host` and listen on loopback:
//! no request leaves 127.0.0.1. Its own small harness, like the containerd
//! suite's: cases in order, teardown always, leaks reported.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::containerd::{PrivateContainerd, RUNTIME, Version};
use support::docker::{Container, PrivateDocker};
use support::eventually::eventually;
use support::harness;
use support::http::{self, free_port, wait_until_serving};
use support::images;

/// What `wasmhttp image` labels its images with; `docker run` warns, and
/// runs them anyway, without it.
const PLATFORM: &str = "wasip2/wasm";

const CASES: &[harness::Case<Suite>] = &[
    (
        "docker_run_logs_stop_and_rm_drive_the_shim",
        docker_run_logs_stop_and_rm_drive_the_shim,
    ),
    (
        "the_javascript_example_serves_under_docker",
        the_javascript_example_serves_under_docker,
    ),
    (
        "a_container_docker_cannot_start_says_why",
        a_container_docker_cannot_start_says_why,
    ),
];

struct Suite {
    containerd: PrivateContainerd,
    docker: PrivateDocker,
    work: PathBuf,
}

struct DockerOn(Version);

impl std::fmt::Display for DockerOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Docker 28 on {}", self.0)
    }
}

fn main() {
    harness::run(
        &[DockerOn(Version::V2_1)],
        CASES,
        &[],
        |on| {
            let work =
                std::env::temp_dir().join(format!("wasmhttp-docker-work-{}", std::process::id()));
            std::fs::create_dir_all(&work).unwrap();
            let containerd = PrivateContainerd::start(on.0);
            let docker = PrivateDocker::start(&containerd);
            Suite {
                containerd,
                docker,
                work,
            }
        },
        |s| {
            format!(
                "{}\n--- containerd\n{}",
                s.docker.log_tail(),
                s.containerd.log_tail()
            )
        },
        |s| {
            let mut leaks = s.docker.stop();
            leaks.extend(s.containerd.stop());
            let _ = std::fs::remove_dir_all(&s.work);
            leaks
        },
    )
}

impl Suite {
    /// `docker load` of an image archive; returns the reference it loaded.
    fn load(&self, tar: &Path) -> String {
        let said = self
            .docker
            .docker_ok(&["load", "--input", tar.to_str().unwrap()]);
        said.lines()
            .find_map(|l| l.strip_prefix("Loaded image: "))
            .unwrap_or_else(|| panic!("docker load said {said:?}"))
            .trim()
            .to_string()
    }

    /// `docker run --detach --runtime io.containerd.wasmhttp.v1 --network host`
    /// of `image` named `name`, listening on loopback; returns the container
    /// (removed when dropped), its address and `docker run`'s whole output.
    fn run_detached(
        &self,
        name: &str,
        image: &str,
        env: &[(&str, &str)],
    ) -> (Container<'_>, SocketAddr, std::process::Output) {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin = format!("127.0.0.1:{}", free_port());
        let mut command = self.docker.command();
        command.args([
            "run",
            "--detach",
            "--name",
            name,
            "--runtime",
            RUNTIME,
            "--platform",
            PLATFORM,
            "--network",
            "host",
        ]);
        command
            .arg("--env")
            .arg(format!("WASMHTTP_LISTEN={addr}"))
            .arg("--env")
            .arg(format!("WASMHTTP_ADMIN_LISTEN={admin}"));
        for (variable, value) in env {
            command.arg("--env").arg(format!("{variable}={value}"));
        }
        let output = command.arg(image).output().expect("running docker run");
        let container = Container {
            docker: &self.docker,
            name: name.to_string(),
        };
        (container, addr, output)
    }

    /// `docker load` of a `wasmhttp image` of `component` as `reference`,
    /// then [`Self::run_detached`] as `name`, waiting (up to 60 s) until it
    /// serves; returns the container, its address and its id.
    fn serving(
        &self,
        name: &str,
        component: &Path,
        reference: &str,
    ) -> (Container<'_>, SocketAddr, String) {
        let image = self.load(&images::wasmhttp_image(&self.work, component, reference));
        let (container, addr, run) = self.run_detached(name, &image, &[]);
        assert!(run.status.success(), "docker run failed: {}", said(&run));
        wait_until_serving(addr, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}\n{}", self.docker.logs(name)));
        (container, addr, stdout_of(&run))
    }

    /// What `docker logs` says once it says `text` (within 10 s).
    fn logs_once_they_say(&self, name: &str, text: &str) -> String {
        eventually(
            Duration::from_secs(10),
            &format!("docker logs {name} says {text:?}"),
            || {
                let logs = self.docker.logs(name);
                if logs.contains(text) {
                    Ok(logs)
                } else {
                    Err(logs)
                }
            },
        )
    }

    /// After `docker rm`: docker lists nothing of `id`, containerd has no
    /// container of it, and no shim process or mount of it is left.
    fn assert_removed(&self, id: &str) {
        let listed = self
            .docker
            .docker_ok(&["ps", "--all", "--quiet", "--no-trunc"]);
        assert!(!listed.contains(id), "docker still lists {id}: {listed}");
        eventually(
            Duration::from_secs(10),
            "containerd forgets the container",
            || {
                let containers = self.containerd.ctr_ok_in(
                    support::docker::NAMESPACE,
                    &["containers", "list", "--quiet"],
                );
                if containers.contains(id) {
                    Err(containers)
                } else {
                    Ok(())
                }
            },
        );
        self.containerd.assert_no_shim_or_mount_of(id);
    }
}

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn said(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn docker_run_logs_stop_and_rm_drive_the_shim(s: &Suite) {
    let slow = images::fixture(&s.work, "slow");
    let (container, addr, id) = s.serving("slow", &slow, "wasmhttp-test/slow:1");
    let answer = http::get(addr, "/sleep/10").unwrap();
    assert_eq!(
        (answer.status, answer.text().as_str()),
        (200, "slow fixture: done\n")
    );
    // our shim serves it, not runc
    assert_eq!(s.docker.inspect("slow", "{{.HostConfig.Runtime}}"), RUNTIME);
    assert!(
        !s.containerd.shim_processes(Some(&id)).is_empty(),
        "no containerd-shim-wasmhttp-v1 for {id}"
    );
    assert_eq!(s.docker.inspect("slow", "{{.State.Status}}"), "running");

    // docker logs: the shim's lines and the guest's, whole
    s.logs_once_they_say("slow", &format!("wasmhttp: serving HTTP on {addr}"));
    s.logs_once_they_say(
        "slow",
        "slow fixture: a line begun before sleeping and ended after",
    );

    // docker stop: SIGTERM, the requests in flight are answered, exit 0
    let in_flight = http::in_flight(addr, "/sleep/800", 3);
    std::thread::sleep(Duration::from_millis(300));
    let stopping = Instant::now();
    s.docker.docker_ok(&["stop", "--time", "20", "slow"]);
    let took = stopping.elapsed();
    http::assert_all_answered(
        in_flight,
        200,
        "slow fixture: done\n",
        &s.docker.logs("slow"),
    );
    assert!(
        took < Duration::from_secs(5),
        "docker stop of a container draining requests that needed < 1 s took {took:?}"
    );
    assert_eq!(
        s.docker.inspect(
            "slow",
            "{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}"
        ),
        "exited 0 false"
    );
    let logs = s.logs_once_they_say("slow", "wasmhttp: drained");
    assert!(logs.contains("draining 3 request(s) in flight"), "{logs}");
    assert!(
        http::get(addr, "/").is_err(),
        "still answering after docker stop"
    );

    s.docker.docker_ok(&["rm", "slow"]);
    s.assert_removed(&id);
    drop(container);
}

fn the_javascript_example_serves_under_docker(s: &Suite) {
    let js = images::example("hello-js");
    let (container, addr, id) = s.serving("hello-js", &js, "wasmhttp-test/hello-js:1");
    for path in ["/", "/from/docker"] {
        let answer = http::get(addr, path).unwrap();
        assert_eq!(answer.status, 200);
        assert!(
            answer.text().ends_with(&format!(
                "running as a WebAssembly component in wasmhttp! You asked for {path}\n"
            )),
            "{:?}",
            answer.text()
        );
    }
    s.logs_once_they_say("hello-js", "hello-js: GET /from/docker");

    s.docker.docker_ok(&["rm", "--force", "hello-js"]);
    s.assert_removed(&id);
    drop(container);
}

fn a_container_docker_cannot_start_says_why(s: &Suite) {
    let wasm = images::fixture(&s.work, "hello");
    let image = s.load(&images::wasmhttp_image(
        &s.work,
        &wasm,
        "wasmhttp-test/hello:1",
    ));
    let (container, _, run) = s.run_detached(
        "bad-setting",
        &image,
        &[("WASMHTTP_MAX_CONCURRENCY", "lots")],
    );
    assert!(
        !run.status.success(),
        "docker run of a bad setting started: {}",
        said(&run)
    );
    let told = said(&run);
    assert!(
        told.contains("WASMHTTP_MAX_CONCURRENCY") && told.contains("lots"),
        "docker run does not name the setting: {told}"
    );
    assert!(
        s.docker
            .logs("bad-setting")
            .contains("cannot start this container"),
        "docker logs: {}",
        s.docker.logs("bad-setting")
    );
    let id = s.docker.inspect("bad-setting", "{{.Id}}");
    s.docker.docker_ok(&["rm", "bad-setting"]);
    s.assert_removed(&id);
    drop(container);
}
