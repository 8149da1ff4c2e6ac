//! The shim under a real containerd (Debian's 1.6), driven with `ctr` and
//! containerd's gRPC API exactly as a user would, over real HTTP on loopback.
//!
//! One private containerd serves every case and is always torn down, so this
//! suite has its own small harness (`harness = false`): cases run in order,
//! a failing case does not stop the others, and the summary line is libtest's.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use support::containerd::{self, Suite, Version, run_suite};
use support::eventually::{eventually, until};
use support::grpc::UnpackLess;
use support::harness;
use support::http::{self, Connection, free_port, wait_until_serving};
use support::images::{self, Platform};
use support::limits;
use support::platform::{
    count_exactly_across, from_clients, mounted, ok, outage, round_trip, send,
};
use support::redis::Redis;

const CASES: &[harness::Case<Suite>] = &[
    (
        "wasmhttp_image_serves_body_headers_env_and_args",
        wasmhttp_image_serves_body_headers_env_and_args,
    ),
    (
        "guest_stdout_is_the_task_stdout",
        guest_stdout_is_the_task_stdout,
    ),
    (
        "log_uris_receive_the_guests_output",
        log_uris_receive_the_guests_output,
    ),
    (
        "a_log_reader_that_stops_reading_costs_lines_never_requests",
        a_log_reader_that_stops_reading_costs_lines_never_requests,
    ),
    (
        "trap_answers_500_and_the_next_request_200",
        trap_answers_500_and_the_next_request_200,
    ),
    (
        "returning_without_a_response_is_a_500",
        returning_without_a_response_is_a_500,
    ),
    (
        "second_start_uses_the_precompiled_cache",
        second_start_uses_the_precompiled_cache,
    ),
    (
        "a_memory_limit_that_cannot_hold_the_component_fails_naming_it",
        a_memory_limit_that_cannot_hold_the_component_fails_naming_it,
    ),
    (
        "an_app_image_serves_each_route_from_the_precompiled_layer",
        an_app_image_serves_each_route_from_the_precompiled_layer,
    ),
    (
        "the_example_apps_middleware_and_in_process_calls_hold_in_a_container",
        the_example_apps_middleware_and_in_process_calls_hold_in_a_container,
    ),
    (
        "runwasi_component_layer_image_runs",
        runwasi_component_layer_image_runs,
    ),
    (
        "ctr_refuses_the_wasm_oci_artifact_with_the_reason",
        ctr_refuses_the_wasm_oci_artifact_with_the_reason,
    ),
    (
        "buildx_wasi_rootfs_image_runs",
        buildx_wasi_rootfs_image_runs,
    ),
    (
        "linux_rootfs_image_with_a_wasm_entrypoint_runs",
        linux_rootfs_image_with_a_wasm_entrypoint_runs,
    ),
    (
        "command_components_exit_with_their_code",
        command_components_exit_with_their_code,
    ),
    (
        "unrunnable_images_fail_to_start_with_the_reason",
        unrunnable_images_fail_to_start_with_the_reason,
    ),
    (
        "a_stuck_delete_answers_at_its_bound_and_the_next_one_completes",
        a_stuck_delete_answers_at_its_bound_and_the_next_one_completes,
    ),
    (
        "bad_setting_fails_to_start_naming_the_variable",
        bad_setting_fails_to_start_naming_the_variable,
    ),
    (
        "sigterm_drains_requests_in_flight",
        sigterm_drains_requests_in_flight,
    ),
    (
        "sigterm_under_load_loses_no_accepted_request",
        sigterm_under_load_loses_no_accepted_request,
    ),
    (
        "the_container_memory_limit_caps_each_instance",
        the_container_memory_limit_caps_each_instance,
    ),
    (
        "bind_mounts_are_the_guests_directories",
        bind_mounts_are_the_guests_directories,
    ),
    (
        "missing_content_and_a_busy_port_fail_with_the_cause",
        missing_content_and_a_busy_port_fail_with_the_cause,
    ),
    (
        "layers_the_shim_cannot_read_or_load_fail_with_the_cause",
        layers_the_shim_cannot_read_or_load_fail_with_the_cause,
    ),
    (
        "collected_precompiled_content_is_said_and_compiled_again",
        collected_precompiled_content_is_said_and_compiled_again,
    ),
    (
        "pods_keep_serving_while_containerd_restarts",
        pods_keep_serving_while_containerd_restarts,
    ),
    (
        "a_killed_shim_is_reported_and_cleaned_up",
        a_killed_shim_is_reported_and_cleaned_up,
    ),
    (
        "cgi_programs_answer_requests_in_both_forms",
        cgi_programs_answer_requests_in_both_forms,
    ),
    (
        "limits_hold_for_fixtures_and_real_guests",
        limits_hold_for_fixtures_and_real_guests,
    ),
    (
        "keyvalue_on_a_real_redis_through_the_shim",
        keyvalue_on_a_real_redis_through_the_shim,
    ),
    (
        "memory_store_config_and_logging_through_the_shim",
        memory_store_config_and_logging_through_the_shim,
    ),
];

/// What only the shim decides, whichever containerd runs it, at a minute or
/// more a case: on containerd 1.6 and 2.1, not again on 1.7 between them.
const OLDEST_AND_NEWEST_ONLY: &[&str] = &[
    "a_log_reader_that_stops_reading_costs_lines_never_requests",
    "limits_hold_for_fixtures_and_real_guests",
    "keyvalue_on_a_real_redis_through_the_shim",
    "the_example_apps_middleware_and_in_process_calls_hold_in_a_container",
];

fn main() {
    run_suite(
        "suite",
        &containerd::versions(),
        CASES,
        OLDEST_AND_NEWEST_ONLY,
    )
}

impl Suite {
    /// Imports a `wasmhttp image` of fixture `name` as `docker.io/wasmhttp-test/NAME:1`.
    fn import_fixture(&self, name: &str) -> String {
        let reference = format!("wasmhttp-test/{name}:1");
        let wasm = images::fixture(&self.work, name);
        let tar = images::wasmhttp_image(&self.work, &wasm, &reference);
        self.import(&tar, &[]);
        format!("docker.io/{reference}")
    }

    fn import(&self, tar: &Path, flags: &[&str]) {
        let mut args = vec!["images", "import"];
        args.extend_from_slice(flags);
        args.push(tar.to_str().unwrap());
        self.containerd.ctr_ok(&args);
    }

    /// The manifest digest an image reference points at.
    fn image_digest(&self, reference: &str) -> String {
        let listing = self.containerd.ctr_ok(&["images", "ls"]);
        let line = listing
            .lines()
            .find(|l| l.starts_with(&format!("{reference} ")))
            .expect("image is listed");
        line.split_whitespace()
            .find(|w| w.starts_with("sha256:"))
            .expect("digest column")
            .to_string()
    }

    /// The digest of the first layer of `reference`'s (linux/amd64 or only) manifest.
    fn first_layer(&self, reference: &str) -> String {
        let get = |digest: &str| -> serde_json::Value {
            serde_json::from_str(&self.containerd.ctr_ok(&["content", "get", digest])).unwrap()
        };
        let mut document = get(&self.image_digest(reference));
        if let Some(manifests) = document["manifests"].as_array() {
            let digest = manifests[0]["digest"].as_str().unwrap().to_string();
            document = get(&digest);
        }
        document["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `ctr run` of a container that must fail to start (within 60 s) and
    /// leave nothing behind; returns what ctr and the container printed.
    fn start_fails(
        &self,
        id: &str,
        image: &str,
        env: &[(&str, &str)],
        flags: &[&str],
        args: &[&str],
    ) -> String {
        let mut task = self.containerd.run(id, image, env, flags, args);
        let status = task
            .wait(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{id} did not fail fast\n{}", task.output()));
        assert!(!status.success(), "{id} started\n{}", task.output());
        self.containerd.assert_cleaned_up(id);
        task.output()
    }

    fn stop(&self, task: &mut support::containerd::Task) {
        self.containerd
            .ctr_ok(&["tasks", "kill", "--signal", "SIGTERM", &task.id]);
        let status = task
            .wait(Duration::from_secs(15))
            .unwrap_or_else(|| panic!("{} ignored SIGTERM\n{}", task.id, task.output()));
        assert!(
            status.success(),
            "{} exited with {status} after SIGTERM\n{}",
            task.id,
            task.output()
        );
        self.containerd.assert_cleaned_up(&task.id);
    }
}

/// Fails unless `output` (a failed start's) says every one of `expected`.
fn assert_says(output: &str, expected: &[&str]) {
    let missing: Vec<_> = expected
        .iter()
        .filter(|text| !output.contains(**text))
        .collect();
    assert!(missing.is_empty(), "{missing:?} not said in:\n{output}");
}

/// A container of the limits table (support/limits.rs), run with `ctr`.
struct CtrServer<'a> {
    suite: &'a Suite,
    task: support::containerd::Task,
    addr: SocketAddr,
}

impl limits::Server for CtrServer<'_> {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn output(&self) -> String {
        self.task.output()
    }

    fn stop(mut self: Box<Self>) {
        self.suite.stop(&mut self.task);
    }
}

/// The limits table through the shim: the WAT fixture, and the Python and
/// JavaScript examples, each in its own container with the table's settings.
fn limits_hold_for_fixtures_and_real_guests(s: &Suite) {
    let guests = limits::guests(
        images::fixture(&s.work, "slow"),
        images::fixture(&s.work, "cgi"),
        images::fixture(&s.work, "cgi-component"),
    );
    for guest in guests {
        let reference = format!("wasmhttp-test/limits-{}:1", guest.name);
        s.import(
            &images::wasmhttp_image(&s.work, &guest.component, &reference),
            &[],
        );
        let (addr, listen) = loopback();
        let mut env = vec![("WASMHTTP_LISTEN", listen.as_str())];
        env.extend_from_slice(limits::SETTINGS);
        env.extend_from_slice(guest.settings);
        let mut task = s.containerd.run(
            &format!("limits-{}", guest.name),
            &format!("docker.io/{reference}"),
            &env,
            &[],
            &[],
        );
        serving(addr, &mut task);
        limits::run_table(
            &guest,
            Box::new(CtrServer {
                suite: s,
                task,
                addr,
            }),
        );
    }
}

fn loopback() -> (SocketAddr, String) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    (addr, addr.to_string())
}

/// Waits for the container to answer on `addr`; fails at once if it exits.
fn serving(addr: SocketAddr, task: &mut support::containerd::Task) {
    eventually(Duration::from_secs(60), &format!("{addr} answers"), || {
        if wait_until_serving(addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        assert!(
            task.is_running(),
            "{} exited before serving\n{}",
            task.id,
            task.output()
        );
        Err(task.output())
    });
}

fn wasmhttp_image_serves_body_headers_env_and_args(s: &Suite) {
    let image = s.import_fixture("echo");
    let (addr, listen) = loopback();
    let mut task = s.containerd.run(
        "echo-1",
        &image,
        &[
            ("WASMHTTP_LISTEN", &listen),
            ("GREETING", "hello from the pod"),
        ],
        &[],
        &["/component.wasm", "first", "second arg"],
    );
    serving(addr, &mut task);

    let mut connection = Connection::open(addr).unwrap();
    let response = connection
        .send(
            "POST",
            "/items?id=7",
            &[("x-request-id", "abc-123")],
            b"payload bytes",
        )
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"payload bytes");
    assert_eq!(response.header("x-echo-method"), Some("POST"));
    assert_eq!(response.header("x-echo-path"), Some("/items?id=7"));
    assert!(
        response
            .all("x-echo-header")
            .contains(&"x-request-id: abc-123"),
        "{:?}",
        response.headers
    );
    let env = response.all("x-echo-env");
    assert!(env.contains(&"GREETING=hello from the pod"), "{env:?}");
    assert!(
        !env.iter().any(|e| e.starts_with("WASMHTTP_")),
        "the shim's settings leaked into the guest: {env:?}"
    );
    assert_eq!(
        response.all("x-echo-arg"),
        vec!["/component.wasm", "first", "second arg"]
    );

    // HTTP/1.1 keep-alive: a second request on the same connection
    let again = connection.send("GET", "/again", &[], b"").unwrap();
    assert_eq!(again.status, 200);
    assert_eq!(again.header("x-echo-path"), Some("/again"));

    let stopping = Instant::now();
    s.stop(&mut task);
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "SIGTERM took {:?}",
        stopping.elapsed()
    );
}

fn guest_stdout_is_the_task_stdout(s: &Suite) {
    let image = s.import_fixture("hello");
    let (addr, listen) = loopback();
    let mut task = s.containerd.run(
        "hello-log",
        &image,
        &[("WASMHTTP_LISTEN", &listen)],
        &[],
        &[],
    );
    serving(addr, &mut task);
    let response = http::get(addr, "/").unwrap();
    assert_eq!(response.status, 200);
    assert!(response.text().contains("Hello"), "{}", response.text());
    until(
        Duration::from_secs(5),
        "the guest's log line reaches the task's stdout",
        || task.stdout().contains("hello fixture: handling a request"),
        || task.output(),
    );
    until(
        Duration::from_secs(10),
        "serving is said on the task's stderr",
        || task.stderr().contains("serving HTTP on"),
        || task.output(),
    );
    s.stop(&mut task);
}

/// Waits (10 s at most) until the file at `path` contains `text`.
fn wait_for_file_text(path: &Path, text: &str, context: &dyn Fn() -> String) -> String {
    let what = format!("{text:?} reaches {}", path.display());
    eventually(Duration::from_secs(10), &what, || {
        let found = std::fs::read_to_string(path).unwrap_or_default();
        if found.contains(text) {
            return Ok(found);
        }
        Err(format!("{found:?}\n{}", context()))
    })
}

/// `ctr run --log-uri`: a `file://` URI gets the guest's stdout and the
/// shim's stderr lines appended to the file; a `binary://` logging binary
/// gets them on its fds 3 and 4, its arguments from the query and the
/// container's id and namespace in its environment, as with runc's shim.
fn log_uris_receive_the_guests_output(s: &Suite) {
    let image = s.import_fixture("hello");
    // a container with `--log-uri=URI` that has answered one request
    let answered_with = |id: &str, uri: &str| {
        let (addr, listen) = loopback();
        let flag = format!("--log-uri={uri}");
        let mut task = s
            .containerd
            .run(id, &image, &[("WASMHTTP_LISTEN", &listen)], &[&flag], &[]);
        serving(addr, &mut task);
        assert_eq!(http::get(addr, "/").unwrap().status, 200);
        task
    };
    let logs = s.work.join("log-uris");

    let file = logs.join("nested/hello.log");
    let mut task = answered_with("log-file", &format!("file://{}", file.display()));
    let both = wait_for_file_text(&file, "hello fixture: handling a request", &|| {
        task.output()
    });
    assert!(
        both.contains("serving HTTP on"),
        "stderr not in the file: {both}"
    );
    s.stop(&mut task);

    // a logging binary as containerd's runc shim starts it
    let logger = logs.join("logger.sh");
    let out = logs.join("binary");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        &logger,
        format!(
            "#!/bin/sh\n\
             echo \"$CONTAINER_NAMESPACE/$CONTAINER_ID $*\" > {out}/env\n\
             /bin/cat <&3 4<&- 5>&- > {out}/stdout &\n\
             /bin/cat <&4 3<&- 5>&- > {out}/stderr &\n\
             exec 3<&- 4<&- 5>&-\n\
             wait\n",
            out = out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut task = answered_with(
        "log-binary",
        &format!("binary://{}?--label=web", logger.display()),
    );
    wait_for_file_text(
        &out.join("stdout"),
        "hello fixture: handling a request",
        &|| task.output(),
    );
    wait_for_file_text(&out.join("stderr"), "serving HTTP on", &|| task.output());
    let env = std::fs::read_to_string(out.join("env")).unwrap();
    assert_eq!(env.trim(), "wasmhttp-test/log-binary --label web", "{env}");
    s.stop(&mut task);

    // a scheme nobody handles fails the start, saying so
    let output = s.start_fails(
        "log-bad",
        &image,
        &[],
        &["--log-uri=syslog://localhost/x"],
        &[],
    );
    assert!(output.contains("syslog"), "{output}");
}

/// Requests a log reader that has stopped must not wait for: each writes a
/// line on stdout, and the container's output queue holds 16 KiB.
const LOGGED_REQUESTS: usize = 3000;
const LOGGED_LINE: &str = "hello fixture: handling a request";

/// `LOGGED_REQUESTS` requests on one connection, each answered 200, within
/// a bound; the dropped-lines counter after them.
fn logged_requests_answered(
    addr: SocketAddr,
    admin: SocketAddr,
    context: &dyn Fn() -> String,
) -> f64 {
    let started = Instant::now();
    let mut connection = Connection::open(addr).unwrap();
    for n in 0..LOGGED_REQUESTS {
        let status = connection.send("GET", "/", &[], b"").map(|r| r.status);
        assert!(
            matches!(status, Ok(200)),
            "request {n}: {status:?} after {:?}\n{}",
            started.elapsed(),
            context()
        );
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "only {n} requests answered in {:?}\n{}",
            started.elapsed(),
            context()
        );
    }
    let metrics = http::get(admin, "/metrics").unwrap().text();
    support::served::metric_in(&metrics, "wasmhttp_log_lines_dropped_total")
}

/// Requests the guest answered (one line each), the readiness probe's too.
fn answered(admin: SocketAddr) -> f64 {
    let metrics = http::get(admin, "/metrics").unwrap().text();
    support::served::metric_in(&metrics, "wasmhttp_requests_total{status=\"200\"}")
}

/// A container started with `ctr run -d`, deleted when dropped.
struct Detached<'a> {
    s: &'a Suite,
    id: &'a str,
}

impl Drop for Detached<'_> {
    fn drop(&mut self) {
        let _ = self
            .s
            .containerd
            .ctr(&["tasks", "kill", "--signal", "SIGKILL", self.id]);
        let deadline = Instant::now() + Duration::from_secs(10);
        // (not `task_status`: nothing here may panic while a failure unwinds)
        let running = || {
            let listed = self.s.containerd.ctr(&["tasks", "ls"]).stdout;
            String::from_utf8_lossy(&listed).lines().any(|l| {
                let fields: Vec<_> = l.split_whitespace().collect();
                fields.first() == Some(&self.id) && fields.get(2) != Some(&"STOPPED")
            })
        };
        while running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self
            .s
            .containerd
            .ctr(&["tasks", "delete", "--force", self.id]);
        let _ = self.s.containerd.ctr(&["containers", "delete", self.id]);
    }
}

/// The guest prints a line per request and nobody reads the container's
/// log: `ctr run -d` leaves its fifos unread, and a `--log-uri` logging
/// binary reads nothing for a while. Thousands of requests are answered all
/// the same; the lines the queue cannot hold are dropped, counted, and said
/// in one line once the reader reads; the lines that do arrive are whole;
/// SIGTERM drains and the exit code is 0.
fn a_log_reader_that_stops_reading_costs_lines_never_requests(s: &Suite) {
    let image = s.import_fixture("hello");
    let buffer = ("WASMHTTP_LOG_BUFFER", "16Ki");

    // fifos nobody reads, as `ctr run -d` leaves them
    let (addr, listen) = loopback();
    let (admin, admin_listen) = loopback();
    let fifos = s.work.join("unread-fifos");
    let id = "unread-fifos";
    let container = run_detached(
        s,
        id,
        &image,
        &["--fifo-dir", fifos.to_str().unwrap()],
        &[
            ("WASMHTTP_LISTEN", &listen),
            ("WASMHTTP_ADMIN_LISTEN", &admin_listen),
            buffer,
        ],
    );
    let context = || s.containerd.log_tail();
    wait_until_serving(addr, Duration::from_secs(60)).unwrap();
    let dropped = logged_requests_answered(addr, admin, &context);
    assert!(dropped > 0.0, "no line dropped: the fifos were read?");
    let stopping = Instant::now();
    let code =
        support::grpc::signal_and_wait_for_exit(&s.containerd, id, 15, Duration::from_secs(20));
    assert_eq!(
        code,
        Some(0),
        "SIGTERM: after {:?}\n{}",
        stopping.elapsed(),
        context()
    );
    drop(container);
    s.containerd.assert_cleaned_up(id);

    // a logging binary that starts reading only when told to
    let dir = s.work.join("stalled-logger");
    std::fs::create_dir_all(&dir).unwrap();
    let logger = dir.join("logger.sh");
    let go = dir.join("go");
    std::fs::write(
        &logger,
        format!(
            "#!/bin/sh\n\
             exec 5>&-\n\
             i=0\n\
             while [ ! -e {go} ] && [ $i -lt 1800 ]; do sleep 0.1; i=$((i+1)); done\n\
             /bin/cat <&3 4<&- > {dir}/stdout &\n\
             /bin/cat <&4 3<&- > {dir}/stderr &\n\
             exec 3<&- 4<&-\n\
             wait\n",
            go = go.display(),
            dir = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (addr, listen) = loopback();
    let (admin, admin_listen) = loopback();
    let flag = format!("--log-uri=binary://{}", logger.display());
    let mut task = s.containerd.run(
        "stalled-logger",
        &image,
        &[
            ("WASMHTTP_LISTEN", &listen),
            ("WASMHTTP_ADMIN_LISTEN", &admin_listen),
            buffer,
        ],
        &[&flag],
        &[],
    );
    serving(addr, &mut task);
    let dropped = logged_requests_answered(addr, admin, &|| task.output());
    assert!(dropped > 0.0, "no line dropped: the logger read?");
    std::fs::write(&go, b"").unwrap();
    // said once the logger reads: in one line, or in more when the shim's
    // writer took a batch while the drops were happening
    let said = |text: &str| -> f64 {
        text.lines()
            .filter_map(|l| l.strip_prefix("wasmhttp: "))
            .filter_map(|l| l.strip_suffix(wasmhttp::output::DROPPED_SAID))
            .map(|n| n.parse::<f64>().unwrap())
            .sum()
    };
    eventually(Duration::from_secs(10), "the drops said on stderr", || {
        let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
        if said(&stderr) == dropped {
            return Ok(());
        }
        Err(format!("{dropped} dropped, said: {stderr}"))
    });
    let stdout = eventually(Duration::from_secs(10), "every kept line on stdout", || {
        let stdout = std::fs::read_to_string(dir.join("stdout")).unwrap_or_default();
        match stdout.lines().count() as f64 + dropped {
            total if total >= answered(admin) => Ok(stdout),
            _ => Err(format!("{} lines", stdout.lines().count())),
        }
    });
    assert!(
        stdout.lines().all(|l| l == LOGGED_LINE),
        "a line not whole:\n{stdout}"
    );
    assert_eq!(stdout.lines().count() as f64 + dropped, answered(admin));
    s.stop(&mut task);
}

fn trap_answers_500_and_the_next_request_200(s: &Suite) {
    let image = s.import_fixture("trap");
    let (addr, listen) = loopback();
    let mut task = s
        .containerd
        .run("trap-1", &image, &[("WASMHTTP_LISTEN", &listen)], &[], &[]);
    serving(addr, &mut task);
    for _ in 0..3 {
        assert_eq!(http::get(addr, "/trap").unwrap().status, 500);
        let next = http::get(addr, "/fine").unwrap();
        assert_eq!(next.status, 200, "{}", task.output());
        assert_eq!(next.text(), "trap fixture: still serving\n");
    }
    until(
        Duration::from_secs(10),
        "the trap is in the container log",
        || task.stderr().contains("wasm trap"),
        || task.output(),
    );
    s.stop(&mut task);
}

fn returning_without_a_response_is_a_500(s: &Suite) {
    let image = s.import_fixture("no-response");
    let (addr, listen) = loopback();
    let mut task = s.containerd.run(
        "no-response-1",
        &image,
        &[("WASMHTTP_LISTEN", &listen)],
        &[],
        &[],
    );
    serving(addr, &mut task);
    assert_eq!(http::get(addr, "/").unwrap().status, 500);
    assert_eq!(http::get(addr, "/again").unwrap().status, 500);
    until(
        Duration::from_secs(10),
        "the missing response is in the container log",
        || task.stderr().contains("without setting a response"),
        || task.output(),
    );
    s.stop(&mut task);
}

/// The JS example is large (13 MB) and takes seconds to compile: the second
/// start must skip that work, for our image layout and for a plain rootfs
/// image built for linux/amd64 (`FROM scratch` + `COPY`) alike.
fn second_start_uses_the_precompiled_cache(s: &Suite) {
    let js = images::example("hello-js");
    let wasmhttp_layout = images::wasmhttp_image(&s.work, &js, "wasmhttp-test/hello-js:cache");
    let rootfs_layout = images::rootfs_image(
        &s.work,
        &std::fs::read(&js).unwrap(),
        "/app/hello.wasm",
        "docker.io/wasmhttp-test/hello-js-rootfs:cache",
        Platform::LinuxAmd64,
    );
    for (tar, image) in [
        (wasmhttp_layout, "docker.io/wasmhttp-test/hello-js:cache"),
        (
            rootfs_layout,
            "docker.io/wasmhttp-test/hello-js-rootfs:cache",
        ),
    ] {
        s.import(&tar, &[]);
        starts_from_the_cache_the_second_time(s, image);
    }
}

/// The JavaScript example (its precompiled layer ~37 MB) under a 32 MiB
/// memory limit: the start fails before the container is made, naming the
/// limit and what starting takes, where it used to die while loading with
/// "waiting for init ready. BrokenChannel"; under 96 MiB it serves.
fn a_memory_limit_that_cannot_hold_the_component_fails_naming_it(s: &Suite) {
    // the image the case above precompiled (compiled here if run alone)
    let js = images::example("hello-js");
    let tar = images::wasmhttp_image(&s.work, &js, "wasmhttp-test/hello-js:cache");
    s.import(&tar, &[]);
    let image = "docker.io/wasmhttp-test/hello-js:cache";
    let output = s.start_fails(
        "js-32mi",
        image,
        &[],
        &[&format!("--memory-limit={}", 32 << 20)],
        &[],
    );
    assert_says(
        &output,
        &[
            "the container's memory limit (32.0 MiB) cannot hold its component",
            "starting it takes at least 7",
            "resources.limits.memory",
        ],
    );
    let (addr, listen) = loopback();
    let flag = format!("--memory-limit={}", 96 << 20);
    let mut task = s.containerd.run(
        "js-96mi",
        image,
        &[("WASMHTTP_LISTEN", &listen)],
        &[&flag],
        &[],
    );
    serving(addr, &mut task);
    s.stop(&mut task);
}

fn starts_from_the_cache_the_second_time(s: &Suite, image: &str) {
    let label = "runwasi.io/precompiled/wasmhttp/";
    let manifest = s.image_digest(image);
    let labelled = || {
        s.containerd
            .ctr_ok(&["content", "ls"])
            .lines()
            .any(|l| l.starts_with(&manifest) && l.contains(label))
    };
    assert!(
        !labelled(),
        "{image} is marked precompiled before its first start"
    );

    let mut timings = Vec::new();
    for start in ["first", "second"] {
        let (addr, listen) = loopback();
        let began = Instant::now();
        let id = format!("js-{start}-{}", &manifest[7..19]);
        let mut task = s
            .containerd
            .run(&id, image, &[("WASMHTTP_LISTEN", &listen)], &[], &[]);
        serving(addr, &mut task);
        timings.push(began.elapsed());
        let response = http::get(addr, "/cache").unwrap();
        assert!(
            response.text().contains("Hello from JavaScript"),
            "{}",
            response.text()
        );
        s.stop(&mut task);
    }
    assert!(
        labelled(),
        "{image}'s manifest carries no precompile label in the content store"
    );
    // the compiled artifact is read by the container's process from the
    // content store's blob file, not streamed through containerd (~70 MB/s)
    // nor piped from the shim to the container's process
    let layer = s.first_layer(image);
    let contents = s.containerd.ctr_ok(&["content", "ls"]);
    let compiled = contents
        .lines()
        .find(|l| l.starts_with(&layer))
        .and_then(|l| l.split(label).nth(1))
        .and_then(|rest| rest.split(['=', ',']).nth(1))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no label on {layer} names its compiled form\n{contents}"));
    let log = s.containerd.log();
    let root = log
        .lines()
        .find_map(|l| l.split("containerd's content store is in ").nth(1))
        .map(|rest| rest.trim_end_matches(['"', ' ']).to_string())
        .unwrap_or_else(|| panic!("the shim did not find the content store\n{log}"));
    let file = format!(
        "the container reads {compiled} from {root}/blobs/sha256/{}",
        &compiled[7..]
    );
    assert!(log.contains(&file), "no {file:?} in containerd's log");
    println!(
        "    {image}: time to first response: first start {:?}, cached start {:?}",
        timings[0], timings[1]
    );
    assert!(
        timings[1] * 3 < timings[0],
        "{image}: the cached start was not much faster: {timings:?}"
    );
}

/// The CNCF Wasm OCI artifact (`wasmhttp image --artifact`) under `ctr`: 1.6
/// cannot unpack its `application/wasm` layer; 1.7 and 2.x import it (2.x
/// through its transfer service) but `ctr run` reads only image configs. The
/// error is containerd's own, before our shim is asked; CRI runs the artifact
/// (tests/cri.rs), and `wasmhttp image` without --artifact is what ctr runs.
fn ctr_refuses_the_wasm_oci_artifact_with_the_reason(s: &Suite) {
    let reference = "docker.io/wasmhttp-test/artifact:1";
    let wasm = images::fixture(&s.work, "hello");
    let tar = images::wasm_artifact(&s.work, &wasm, reference);
    let import = s
        .containerd
        .ctr(&["images", "import", tar.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&import.stderr).into_owned();
    let refusal = if s.containerd.version == Version::V1_6 {
        assert!(!import.status.success(), "{said}");
        "mismatched image rootfs and manifest layers"
    } else {
        assert!(import.status.success(), "{said}");
        "unknown image config media type application/vnd.wasm.config.v0+json"
    };
    let output = s.start_fails("artifact", reference, &[], &[], &[]);
    assert!(output.contains(refusal), "{output}");
    assert!(
        s.containerd.shim_processes(Some("artifact")).is_empty(),
        "containerd refuses before any shim starts"
    );
    s.containerd.ctr_ok(&["images", "rm", "--sync", reference]);
}

/// An app (`wasmhttp image app.toml`): each route's component, its own env
/// over the container's, the host's 404 elsewhere; the second start reads
/// every component's compiled form from the content store.
fn an_app_image_serves_each_route_from_the_precompiled_layer(s: &Suite) {
    let dir = s.work.join("app");
    std::fs::create_dir_all(&dir).unwrap();
    images::fixture(&dir, "echo");
    images::fixture(&dir, "hello");
    let manifest = dir.join("app.toml");
    std::fs::write(
        &manifest,
        "[[route]]\npath = \"/api/...\"\ncomponent = \"echo.wasm\"\nname = \"api\"\n\
         env = [\"ROUTE_GREETING=from the route\"]\n\n\
         [[route]]\npath = \"/\"\ncomponent = \"hello.wasm\"\n",
    )
    .unwrap();
    let tar = images::wasmhttp_image(&s.work, &manifest, "wasmhttp-test/app:1");
    s.import(&tar, &[]);
    let image = "docker.io/wasmhttp-test/app:1";
    let reads = || s.containerd.log().matches("the container reads ").count();
    for start in ["first", "second"] {
        let read_before = reads();
        let (addr, listen) = loopback();
        let id = format!("app-{start}");
        let mut task = s.containerd.run(
            &id,
            image,
            &[("WASMHTTP_LISTEN", &listen), ("GREETING", "from the pod")],
            &[],
            &[],
        );
        serving(addr, &mut task);
        let api = http::get(addr, "/api/users/7").unwrap();
        assert_eq!(api.status, 200, "{api:?}\n{}", task.output());
        let seen = api.all("x-echo-header");
        for header in ["x-wasmhttp-route: api", "x-wasmhttp-path-info: /users/7"] {
            assert!(seen.contains(&header), "{header} not in {seen:?}");
        }
        let env = api.all("x-echo-env");
        for variable in ["GREETING=from the pod", "ROUTE_GREETING=from the route"] {
            assert!(env.contains(&variable), "{variable} not in {env:?}");
        }
        let hello = http::get(addr, "/").unwrap();
        assert_eq!(
            (hello.status, hello.text().as_str()),
            (
                200,
                "Hello from a WebAssembly component, served by wasmhttp!\n"
            )
        );
        let elsewhere = http::get(addr, "/elsewhere").unwrap();
        assert_eq!(elsewhere.status, 404, "{elsewhere:?}");
        s.stop(&mut task);
        if start == "second" {
            until(
                Duration::from_secs(10),
                "the second start reads the compiled components from the content store",
                || reads() > read_before,
                || s.containerd.log_tail(),
            );
        }
    }

    // an image not written by `wasmhttp image`, whose manifest names a
    // component it lacks: the start fails and says which route
    hand_made_app_fails_to_start(
        s,
        "app-broken",
        b"[[route]]\npath = \"/api/...\"\ncomponent = \"gone.wasm\"\n",
        &["route /api/... (gone)", "/gone.wasm"],
    );
}

/// An app image of `manifest` alone (no components), made by hand: its
/// container's start fails, saying each of `expected`.
fn hand_made_app_fails_to_start(s: &Suite, id: &str, manifest: &[u8], expected: &[&str]) {
    let reference = format!("docker.io/wasmhttp-test/{id}:1");
    let image = images::rootfs_image(
        &s.work,
        manifest,
        "/app.toml",
        &reference,
        Platform::LinuxAmd64,
    );
    s.import(&image, &[]);
    let output = s.start_fails(id, &reference, &[], &[], &[]);
    for text in expected {
        assert!(output.contains(text), "{text:?} not in\n{output}");
    }
}

/// The example app (examples/app/app.toml, built with `wasmhttp image`):
/// the API behind the auth middleware composed into the image, the front
/// called from it in-process, the CGI route; and an image whose manifest
/// still names middleware is refused at start, naming the route.
fn the_example_apps_middleware_and_in_process_calls_hold_in_a_container(s: &Suite) {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/app/app.toml");
    let tar = images::wasmhttp_image(&s.work, &manifest, "wasmhttp-test/example-app:1");
    s.import(&tar, &[]);
    let (addr, listen) = loopback();
    let mut task = s.containerd.run(
        "example-app",
        "docker.io/wasmhttp-test/example-app:1",
        &[
            ("WASMHTTP_LISTEN", &listen),
            ("AUTH_TOKENS", "erin=token-of-erin"),
        ],
        &[],
        &[],
    );
    serving(addr, &mut task);
    let bearer = [("authorization", "Bearer token-of-erin")];
    let refused = http::get(addr, "/api/").unwrap();
    assert_eq!(refused.status, 401, "{refused:?}\n{}", task.output());
    let user = http::request(
        addr,
        "GET",
        "/api/?header=x-authenticated-user",
        &bearer,
        b"",
    )
    .unwrap();
    assert_eq!(
        (user.status, user.text().as_str()),
        (200, "erin\n"),
        "{}",
        task.output()
    );
    let called = http::request(
        addr,
        "GET",
        "/api/?url=http://front.app.internal/",
        &bearer,
        b"",
    )
    .unwrap();
    assert!(
        called.status == 200
            && called
                .text()
                .starts_with("upstream answered 200: Hello from JavaScript"),
        "{called:?}\n{}",
        task.output()
    );
    let cgi = http::get(addr, "/cgi-bin/request").unwrap();
    assert!(
        cgi.status == 200 && cgi.text().contains("PATH_INFO=/request\n"),
        "{cgi:?}"
    );
    assert!(
        http::get(addr, "/")
            .unwrap()
            .text()
            .contains("Hello from JavaScript")
    );
    s.stop(&mut task);

    hand_made_app_fails_to_start(
        s,
        "app-uncomposed",
        b"[[route]]\npath = \"/api/...\"\ncomponent = \"api.wasm\"\nmiddleware = [\"auth.wasm\"]\n",
        &[
            "route /api/... (api) names middleware (auth.wasm)",
            "wasmhttp image",
        ],
    );
}

fn runwasi_component_layer_image_runs(s: &Suite) {
    let wasm = images::fixture(&s.work, "echo");
    let tar = images::runwasi_image(
        &s.work,
        &wasm,
        "echo",
        "docker.io/wasmhttp-test/runwasi-echo:1",
    );
    // containerd 1.6 cannot unpack wasm layers; newer ones skip them, as UnpackLess does.
    s.import(&tar, &["--all-platforms", "--no-unpack"]);
    let (addr, listen) = loopback();
    let container = UnpackLess::start(
        &s.containerd,
        "runwasi-echo",
        "docker.io/wasmhttp-test/runwasi-echo:1",
        &["echo.wasm"],
        &[("WASMHTTP_LISTEN", &listen), ("LAYOUT", "runwasi")],
    );
    if let Err(err) = wait_until_serving(addr, Duration::from_secs(60)) {
        panic!("{err}\n{}", container.output());
    }
    let response = http::request(addr, "PUT", "/layer", &[], b"from a component layer").unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"from a component layer");
    assert!(response.all("x-echo-env").contains(&"LAYOUT=runwasi"));
    let manifest = s.image_digest("docker.io/wasmhttp-test/runwasi-echo:1");
    let content = s.containerd.ctr_ok(&["content", "ls"]);
    assert!(
        content
            .lines()
            .any(|l| l.starts_with(&manifest) && l.contains("runwasi.io/precompiled/wasmhttp/")),
        "the component layer was not precompiled"
    );
    assert_eq!(container.stop(), 0, "{}", container.output());
    s.containerd.assert_cleaned_up("runwasi-echo");
}

fn buildx_wasi_rootfs_image_runs(s: &Suite) {
    let wasm = wasmhttp_fixtures::build("echo").unwrap();
    let tar = images::rootfs_image(
        &s.work,
        &wasm,
        "/app/server.wasm",
        "docker.io/wasmhttp-test/buildx-echo:1",
        Platform::WasiWasm,
    );
    s.import(&tar, &["--all-platforms"]);
    let (addr, listen) = loopback();
    let mut task = s.containerd.run(
        "buildx-echo",
        "docker.io/wasmhttp-test/buildx-echo:1",
        &[("WASMHTTP_LISTEN", &listen)],
        &["--platform", "wasi/wasm"],
        &[],
    );
    serving(addr, &mut task);
    let response = http::request(addr, "POST", "/", &[], b"rootfs").unwrap();
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"rootfs"[..])
    );
    assert_eq!(response.all("x-echo-arg"), vec!["/app/server.wasm"]);
    s.stop(&mut task);
}

fn linux_rootfs_image_with_a_wasm_entrypoint_runs(s: &Suite) {
    let wasm = wasmhttp_fixtures::build("hello").unwrap();
    let tar = images::rootfs_image(
        &s.work,
        &wasm,
        "/srv/hello.wasm",
        "docker.io/wasmhttp-test/linux-hello:1",
        Platform::LinuxAmd64,
    );
    s.import(&tar, &[]);
    let (addr, listen) = loopback();
    let mut task = s.containerd.run(
        "linux-hello",
        "docker.io/wasmhttp-test/linux-hello:1",
        &[("WASMHTTP_LISTEN", &listen)],
        &[],
        &[],
    );
    serving(addr, &mut task);
    assert!(http::get(addr, "/").unwrap().text().contains("Hello"));
    s.stop(&mut task);
}

fn command_components_exit_with_their_code(s: &Suite) {
    for (fixture, expected) in [("command", 0), ("command-fails", 1)] {
        let image = s.import_fixture(fixture);
        let id = format!("{fixture}-run");
        let mut task = s
            .containerd
            .run(&id, &image, &[], &[], &["/component.wasm", "--flag"]);
        let status = task
            .wait(Duration::from_secs(60))
            .unwrap_or_else(|| panic!("{fixture} did not exit\n{}", task.output()));
        assert_eq!(status.code(), Some(expected), "{}", task.output());
        assert!(
            task.stdout()
                .contains("command fixture: hello from wasi:cli/run"),
            "{}",
            task.output()
        );
        assert!(
            task.stdout().contains("command fixture: arg --flag"),
            "{}",
            task.output()
        );
        s.containerd.assert_cleaned_up(&id);
    }

    // Killing a task that has exited answers "not found", as runc's shim
    // does: containerd may kill a container whose exit it has not processed
    // yet (CRI's StopContainer, StopPodSandbox), and only "not found" means
    // "already stopped" to it; anything else fails the pod's stop.
    let image = s.import_fixture("command");
    let id = "command-exited";
    s.containerd.ctr_ok(&[
        "run",
        "-d",
        "--null-io",
        "--runtime",
        support::containerd::RUNTIME,
        &image,
        id,
        "/component.wasm",
    ]);
    wait_for_task_status(s, id, "STOPPED");
    let status = support::grpc::kill(&s.containerd, id, 15).expect_err("killed an exited task");
    // (1.x appends the code's name to the message)
    assert!(
        status.code() == containerd_client::tonic::Code::NotFound
            && status.message().starts_with("process already finished"),
        "{status:?}"
    );
    s.containerd.ctr_ok(&["tasks", "delete", id]);
    s.containerd.ctr_ok(&["containers", "delete", id]);
    s.containerd.assert_cleaned_up(id);
}

fn unrunnable_images_fail_to_start_with_the_reason(s: &Suite) {
    let core = wasmhttp_fixtures::build("core-module").unwrap();
    let other = wasmhttp_fixtures::build("other-world").unwrap();
    let hello = wasmhttp_fixtures::build("hello").unwrap();
    let leases = s.containerd.leases();
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "text",
            b"this is a text file, not wasm\n",
            "not WebAssembly",
        ),
        ("core", &core, "WASMHTTP_MODE=cgi"),
        ("other", &other, "exports wasmhttp:fixtures/unrelated"),
        (
            "truncated",
            &hello[..hello.len() / 2],
            "malformed WebAssembly component",
        ),
    ];
    for (name, content, reason) in cases {
        for (platform, flags) in [
            (Platform::LinuxAmd64, &[][..]),
            (Platform::WasiWasm, &["--platform", "wasi/wasm"][..]),
        ] {
            let suffix = if flags.is_empty() { "linux" } else { "wasi" };
            let reference = format!("docker.io/wasmhttp-test/bad-{name}-{suffix}:1");
            let tar =
                images::rootfs_image(&s.work, content, "/component.wasm", &reference, platform);
            s.import(&tar, &["--all-platforms"]);
            let id = format!("bad-{name}-{suffix}");
            let output = s.start_fails(&id, &reference, &[], flags, &[]);
            assert!(
                output.contains(reason),
                "{id}: the reason {reason:?} is not shown\n{output}"
            );
            assert!(
                output.contains("wasmhttp: cannot start this container"),
                "{output}"
            );
            // ctr's own error (containerd's answer to task creation) names it too
            assert!(
                output.contains("wasmhttp executor can't handle spec: "),
                "{output}"
            );
        }
    }
    // an entrypoint that is not in the image
    let image = s.import_fixture("hello");
    let output = s.start_fails("missing-entrypoint", &image, &[], &[], &["/missing.wasm"]);
    assert!(output.contains("/missing.wasm"), "{output}");
    assert_eq!(s.containerd.leases(), leases, "a failed start left a lease");
}

fn missing_content_and_a_busy_port_fail_with_the_cause(s: &Suite) {
    let leases = s.containerd.leases();
    // a manifest whose layer is not in the content store (an interrupted pull)
    // (a layer of its own: one shared with an image unpacked before would be
    // in the snapshotter already)
    let hello = wasmhttp_fixtures::build("hello").unwrap();
    let reference = "docker.io/wasmhttp-test/missing-layer:1";
    let tar = images::rootfs_image(
        &s.work,
        &hello,
        "/missing-layer.wasm",
        reference,
        Platform::LinuxAmd64,
    );
    s.import(&tar, &["--no-unpack"]);
    let layer = s.first_layer(reference);
    s.containerd.ctr_ok(&["content", "rm", &layer]);
    let output = s.start_fails("missing-layer", reference, &[], &[], &[]);
    assert!(
        output.contains(&layer) && output.contains("not found"),
        "the missing digest is not named\n{output}"
    );

    // the listen port is taken
    let image = s.import_fixture("hello");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = s.start_fails("busy-port", &image, &[("WASMHTTP_LISTEN", &addr)], &[], &[]);
    assert!(
        output.contains(&format!("cannot listen on {addr}"))
            && output.contains("Address already in use"),
        "{output}"
    );
    assert_eq!(s.containerd.leases(), leases, "a failed start left a lease");
}

/// The compiled form of an image's layer is content like any other: when
/// it is gone (collected, or removed by hand) the next start says so in
/// containerd's log and compiles the layer again, and the start after that
/// is served from the new compiled content without another word.
fn collected_precompiled_content_is_said_and_compiled_again(s: &Suite) {
    // a layer of its own: other cases' hello images share theirs (and its
    // compiled content) by digest; a custom section makes this one unique
    let mut hello = wasmhttp_fixtures::build("hello").unwrap();
    let name = b"wasmhttp-test-collected";
    hello.extend_from_slice(&[0, name.len() as u8 + 1, name.len() as u8]);
    hello.extend_from_slice(name);
    let wasm = s.work.join("collected.wasm");
    std::fs::write(&wasm, &hello).unwrap();
    let reference = "docker.io/wasmhttp-test/collected:1";
    let tar = images::wasmhttp_image(&s.work, &wasm, "wasmhttp-test/collected:1");
    s.import(&tar, &[]);
    let layer = s.first_layer(reference);
    // the layer's label names its compiled content
    let compiled = || -> Option<String> {
        let listing = s.containerd.ctr_ok(&["content", "ls"]);
        let line = listing.lines().find(|l| l.starts_with(&layer))?.to_string();
        let label = line
            .split([',', ' ', '\t'])
            .find(|w| w.starts_with("runwasi.io/precompiled/wasmhttp/"))?;
        Some(label.split_once('=')?.1.to_string())
    };
    let exists = |digest: &str| {
        s.containerd
            .ctr_ok(&["content", "ls", "-q"])
            .lines()
            .any(|l| l == digest)
    };
    let said = "failed to load precompiled layer";
    // containerd's log lines that say a layer's compiled content did not load
    let said_lines = || -> Vec<String> {
        let log = s.containerd.log();
        log.lines()
            .filter(|l| l.contains(said))
            .map(str::to_string)
            .collect()
    };
    let start = |id: &str| {
        let (addr, listen) = loopback();
        let mut task = s
            .containerd
            .run(id, reference, &[("WASMHTTP_LISTEN", &listen)], &[], &[]);
        serving(addr, &mut task);
        assert_eq!(http::get(addr, "/").unwrap().status, 200);
        s.stop(&mut task);
    };

    start("collected-1");
    let first = compiled().expect("the layer is labelled with its compiled content");
    assert!(exists(&first));
    s.containerd.ctr_ok(&["content", "rm", &first]);
    assert!(!exists(&first));
    let before = said_lines().len();

    start("collected-2");
    let new = &said_lines()[before..];
    assert!(
        new.len() == 1 && !new[0].contains("precompiled layer not found"),
        "the missing compiled content is not in containerd's log: {new:?}\n{}",
        s.containerd.log_tail()
    );
    let again = compiled().expect("compiled again and labelled");
    assert!(
        exists(&again),
        "the label names {again}, which is not there"
    );

    start("collected-3");
    let after = said_lines().len();
    assert_eq!(
        after,
        before + 1,
        "the third start did not use the new compiled content"
    );
}

fn layers_the_shim_cannot_read_or_load_fail_with_the_cause(s: &Suite) {
    let leases = s.containerd.leases();
    // a wasm image whose one layer has a media type no wasm shim reads
    let wasm = images::fixture(&s.work, "hello");
    let reference = "docker.io/wasmhttp-test/odd-layer:1";
    let tar = images::runwasi_image_with_layer_type(
        &s.work,
        &wasm,
        "hello",
        reference,
        "application/vnd.example.unknown.v1",
    );
    s.import(&tar, &["--all-platforms", "--no-unpack"]);
    let error =
        UnpackLess::start_fails(&s.containerd, "odd-layer", reference, &["hello.wasm"], &[]);
    assert!(
        error.contains("none of its layers has a media type wasmhttp reads")
            && error.contains("found [\"application/vnd.example.unknown.v1\"]")
            && error.contains("application/wasm"),
        "{error}"
    );
    s.containerd.assert_cleaned_up("odd-layer");

    // a layer without a media type: containerd refuses to unpack it (so
    // `ctr run`, and CRI, never reach the shim) ...
    let hello = wasmhttp_fixtures::build("hello").unwrap();
    let reference = "docker.io/wasmhttp-test/untyped-layer:1";
    let tar = images::rootfs_image_with_layer_type(
        &s.work,
        &hello,
        "/untyped.wasm",
        reference,
        Platform::WasiWasm,
        Some(""),
    );
    s.import(&tar, &["--all-platforms", "--no-unpack"]);
    let output = s.start_fails(
        "untyped-layer",
        reference,
        &[],
        &["--platform", "wasi/wasm"],
        &[],
    );
    let refusal = if s.containerd.version == Version::V1_6 {
        "no processor for media-type"
    } else {
        "mismatched image rootfs and manifest layers"
    };
    assert!(output.contains(refusal), "{output}");
    // ... and the shim, handed it without unpacking, names it
    let error = UnpackLess::start_fails(
        &s.containerd,
        "untyped-layer",
        reference,
        &["/untyped.wasm"],
        &[],
    );
    assert!(error.contains("found [\"\"]"), "{error}");
    s.containerd.assert_cleaned_up("untyped-layer");

    // a 300 MiB component (its gzipped layer is a few hundred KB)
    let mut huge = wasmhttp_fixtures::build("hello").unwrap();
    huge.resize(300 << 20, 0);
    let reference = "docker.io/wasmhttp-test/huge-component:1";
    let tar = images::rootfs_image(
        &s.work,
        &huge,
        "/component.wasm",
        reference,
        Platform::LinuxAmd64,
    );
    drop(huge);
    s.import(&tar, &[]);
    let _ = std::fs::remove_file(&tar);
    let output = s.start_fails("huge-component", reference, &[], &[], &[]);
    assert!(
        output.contains(
            "the entrypoint /component.wasm is 314572800 bytes; wasmhttp loads components of up to 256 MiB"
        ),
        "{output}"
    );
    s.containerd.ctr_ok(&["images", "rm", "--sync", reference]);
    assert_eq!(s.containerd.leases(), leases, "a failed start left a lease");
}

/// `ctr run -d --net-host` with `io` (`--null-io`, `--fifo-dir DIR`): a
/// container that outlives the ctr command, as a pod's does, killed and
/// deleted when the guard drops. Its admin port is a free one unless `env`
/// names it.
fn run_detached<'a>(
    s: &'a Suite,
    id: &'a str,
    image: &str,
    io: &[&str],
    env: &[(&str, &str)],
) -> Detached<'a> {
    let mut args = vec![
        "run",
        "-d",
        "--net-host",
        "--runtime",
        support::containerd::RUNTIME,
    ];
    args.extend_from_slice(io);
    let mut env: Vec<String> = env
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    if !env.iter().any(|e| e.starts_with("WASMHTTP_ADMIN_LISTEN=")) {
        env.push(format!("WASMHTTP_ADMIN_LISTEN={}", loopback().1));
    }
    for variable in &env {
        args.extend(["--env", variable]);
    }
    args.extend([image, id]);
    s.containerd.ctr_ok(&args);
    Detached { s, id }
}

/// The task's status as `ctr tasks ls` shows it (`None` once it is gone).
fn task_status(s: &Suite, id: &str) -> Option<String> {
    s.containerd
        .ctr_ok(&["tasks", "ls"])
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
}

fn wait_for_task_status(s: &Suite, id: &str, wanted: &str) {
    until(
        Duration::from_secs(15),
        &format!("{id} is {wanted}"),
        || task_status(s, id).as_deref() == Some(wanted),
        || format!("{:?}\n{}", task_status(s, id), s.containerd.log_tail()),
    );
}

fn pods_keep_serving_while_containerd_restarts(s: &Suite) {
    let image = s.import_fixture("hello");
    let (addr, listen) = loopback();
    let _container = run_detached(
        s,
        "survives-restart",
        &image,
        &["--null-io"],
        &[("WASMHTTP_LISTEN", &listen)],
    );
    let answer = wait_until_serving(addr, Duration::from_secs(60)).unwrap();
    assert_eq!(answer.status, 200);
    let mut connection = Connection::open(addr).unwrap();
    s.containerd.restart(|| {
        // containerd is down: the pod serves on, on old and new connections
        for _ in 0..20 {
            assert_eq!(connection.send("GET", "/", &[], b"").unwrap().status, 200);
            assert_eq!(http::get(addr, "/").unwrap().status, 200);
        }
    });
    assert_eq!(connection.send("GET", "/", &[], b"").unwrap().status, 200);
    // the restarted containerd has found its shim again: stop, delete work
    wait_for_task_status(s, "survives-restart", "RUNNING");
    s.containerd
        .ctr_ok(&["tasks", "kill", "--signal", "SIGTERM", "survives-restart"]);
    wait_for_task_status(s, "survives-restart", "STOPPED");
    s.containerd
        .ctr_ok(&["tasks", "delete", "survives-restart"]);
    s.containerd
        .ctr_ok(&["containers", "delete", "survives-restart"]);
    s.containerd.assert_cleaned_up("survives-restart");
    assert!(
        http::get(addr, "/").is_err(),
        "the stopped pod still answers"
    );
}

fn a_killed_shim_is_reported_and_cleaned_up(s: &Suite) {
    let image = s.import_fixture("hello");
    let (addr, listen) = loopback();
    let _container = run_detached(
        s,
        "killed-shim",
        &image,
        &["--null-io"],
        &[("WASMHTTP_LISTEN", &listen)],
    );
    wait_until_serving(addr, Duration::from_secs(60)).unwrap();
    // the container's processes are forks of the shim, with its command line
    let processes = s.containerd.shim_processes(Some("killed-shim"));
    let shims: Vec<_> = processes
        .iter()
        .filter(|(pid, _)| {
            let parent = parent_pid(*pid);
            !processes.iter().any(|(other, _)| *other == parent)
        })
        .collect();
    assert_eq!(shims.len(), 1, "{processes:?}");
    // "ID:CONTROLLERS:PATH" lines; v2's has no controllers
    let cgroup = processes
        .iter()
        .filter_map(|(pid, _)| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok())
        .flat_map(|text| text.lines().map(str::to_string).collect::<Vec<_>>())
        .find_map(|line| {
            let mut fields = line.splitn(3, ':').skip(1);
            let controllers = fields.next()?.split(',').next()?.to_string();
            let path = fields.next()?.trim_start_matches('/').to_string();
            path.contains("killed-shim").then(|| {
                Path::new("/sys/fs/cgroup")
                    .join(controllers.trim_start_matches("name="))
                    .join(path)
            })
        })
        .expect("the container has a cgroup of its own");
    assert!(cgroup.exists(), "{}", cgroup.display());
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &shims[0].0.to_string()])
            .status()
            .unwrap()
            .success()
    );
    // containerd notices the dead shim, runs its binary's delete action,
    // publishes the exit and drops the task; nothing serves on
    until(
        Duration::from_secs(15),
        "containerd drops the task of a dead shim",
        || task_status(s, "killed-shim").is_none(),
        || s.containerd.log_tail(),
    );
    assert!(
        s.containerd
            .log_tail()
            .contains("cleaning up after shim disconnected"),
        "{}",
        s.containerd.log_tail()
    );
    until(
        Duration::from_secs(10),
        "the container ends with its shim",
        || http::get(addr, "/").is_err(),
        || format!("{addr} still answers"),
    );
    s.containerd
        .ctr_ok(&["containers", "delete", "killed-shim"]);
    s.containerd.assert_cleaned_up("killed-shim");
    until(
        Duration::from_secs(10),
        "the container's cgroup is removed",
        || !cgroup.exists(),
        || format!("{} is still there", cgroup.display()),
    );
}

/// Stops processes with SIGSTOP, and lets them run again (SIGCONT) when
/// dropped, however the case ends.
struct Stopped(Vec<u32>);

impl Stopped {
    fn signal(&self, signal: &str) {
        for pid in &self.0 {
            let _ = std::process::Command::new("kill")
                .args([signal, &pid.to_string()])
                .status();
        }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        self.signal("-CONT");
    }
}

/// containerd's `delete` of a task whose deletion cannot finish: the shim's
/// zygotes stopped with SIGSTOP stand in for a process stuck in the kernel.
/// Before, the delete held containerd's call (and `ctr`) for as long as they
/// were stopped; now the shim answers at its bound with the reason, and
/// once they run again the next delete completes and the shim exits.
fn a_stuck_delete_answers_at_its_bound_and_the_next_one_completes(s: &Suite) {
    use containerd_shimkit::sandbox::shim::DELETE_BOUND;
    let image = s.import_fixture("hello");
    let (addr, listen) = loopback();
    let id = "stuck-delete";
    let _container = run_detached(
        s,
        id,
        &image,
        &["--null-io"],
        &[("WASMHTTP_LISTEN", &listen)],
    );
    wait_until_serving(addr, Duration::from_secs(60)).unwrap();
    s.containerd
        .ctr_ok(&["tasks", "kill", "--signal", "SIGTERM", id]);
    wait_for_task_status(s, id, "STOPPED");
    // the container has exited: what is left with the shim's command line is
    // the shim and the zygotes it forked
    let processes = s.containerd.shim_processes(Some(id));
    let zygotes: Vec<u32> = processes
        .iter()
        .map(|(pid, _)| *pid)
        .filter(|pid| {
            processes
                .iter()
                .any(|(other, _)| *other == parent_pid(*pid))
        })
        .collect();
    assert!(!zygotes.is_empty(), "no zygote among {processes:?}");
    let stopped = Stopped(zygotes);
    stopped.signal("-STOP");

    let started = Instant::now();
    let mut delete = s
        .containerd
        .ctr_command()
        .args(["tasks", "delete", id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let held = DELETE_BOUND + Duration::from_secs(20);
    let status = eventually(held, "ctr tasks delete answers", || {
        delete
            .try_wait()
            .unwrap()
            .ok_or_else(|| format!("still waiting after {:?}", started.elapsed()))
    });
    let took = started.elapsed();
    let said = delete.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&said.stderr).into_owned();
    assert!(
        !status.success(),
        "a delete that could not finish succeeded: {said}"
    );
    assert!(
        said.contains(&format!(
            "deleting container {id} did not finish within {} s",
            DELETE_BOUND.as_secs()
        )),
        "ctr says: {said}"
    );
    assert!(took >= DELETE_BOUND, "answered before the bound: {took:?}");
    assert_eq!(task_status(s, id).as_deref(), Some("STOPPED"));

    drop(stopped);
    s.containerd.ctr_ok(&["tasks", "delete", id]);
    s.containerd.ctr_ok(&["containers", "delete", id]);
    s.containerd.assert_cleaned_up(id);
}

fn bad_setting_fails_to_start_naming_the_variable(s: &Suite) {
    let image = s.import_fixture("hello");
    let output = s.start_fails(
        "bad-listen",
        &image,
        &[("WASMHTTP_LISTEN", "not-an-address")],
        &[],
        &[],
    );
    assert!(
        output.contains("WASMHTTP_LISTEN") && output.contains("not-an-address"),
        "{output}"
    );
    assert!(
        output.contains("socket address"),
        "the accepted values are not named\n{output}"
    );

    // settings that leave the program's instances no room fail the start
    // too: refused when the container starts (the cache knew the
    // footprint), not by a process that started and exited
    let output = s.start_fails(
        "too-little-memory",
        &image,
        &[("WASMHTTP_MAX_INSTANCE_MEMORY", "64Ki")],
        &[],
        &[],
    );
    assert_says(
        &output,
        &[
            "can't handle spec",
            "largest linear memory starts at",
            "WASMHTTP_MAX_INSTANCE_MEMORY=64 KiB",
        ],
    );
}

fn sigterm_drains_requests_in_flight(s: &Suite) {
    let image = s.import_fixture("slow");
    let (addr, listen) = loopback();
    let (admin, admin_listen) = loopback();
    let mut task = s.containerd.run(
        "drain-1",
        &image,
        &[
            ("WASMHTTP_LISTEN", &listen),
            ("WASMHTTP_ADMIN_LISTEN", &admin_listen),
        ],
        &[],
        &[],
    );
    serving(addr, &mut task);
    assert_eq!(http::get(admin, "/readyz").unwrap().status, 200);
    let in_flight = http::in_flight(addr, "/sleep/800", 3);
    std::thread::sleep(Duration::from_millis(300));
    let stopping = Instant::now();
    s.stop(&mut task);
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "draining requests that needed < 1 s took {:?}",
        stopping.elapsed()
    );
    http::assert_all_answered(in_flight, 200, "slow fixture: done\n", &task.output());
    assert!(task.stderr().contains("drained"), "{}", task.output());
}

/// SIGTERM while clients keep sending (keep-alive and fresh connections):
/// every request the server accepted (one access-log line each) reached its
/// client complete; the ones it did not accept were refused or closed before
/// any response byte.
fn sigterm_under_load_loses_no_accepted_request(s: &Suite) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let image = s.import_fixture("slow");
    let (addr, listen) = loopback();
    let mut task = s.containerd.run(
        "drain-load",
        &image,
        &[
            ("WASMHTTP_LISTEN", &listen),
            ("WASMHTTP_ACCESS_LOG", "json"),
        ],
        &[],
        &[],
    );
    serving(addr, &mut task);
    let stop = Arc::new(AtomicBool::new(false));
    let complete = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..6)
        .map(|client| {
            let (stop, complete) = (stop.clone(), complete.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    let Ok(mut connection) = Connection::open(addr) else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    // odd clients keep connections alive, even ones don't
                    for _ in 0..(if client % 2 == 1 { 5 } else { 1 }) {
                        match connection.send("GET", "/sleep/40", &[], b"") {
                            Ok(r) if r.status == 200 && r.text() == "slow fixture: done\n" => {
                                complete.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(r) => panic!("an incomplete or wrong response: {r:?}"),
                            Err(_) => break,
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let before = complete.load(Ordering::SeqCst);
    s.stop(&mut task);
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().expect("a client saw a broken response");
    }
    let accepted = task
        .stderr()
        .lines()
        .filter(|l| l.starts_with('{') && l.contains("\"path\":\"/sleep/40\""))
        .count();
    let complete = complete.load(Ordering::SeqCst);
    assert!(
        before >= 20,
        "the load was too light to mean anything: {before}"
    );
    assert_eq!(
        accepted, complete,
        "the server answered {accepted} requests, clients got {complete} complete responses"
    );
}

/// With `--memory-limit` (what Kubernetes' `resources.limits.memory` sets in
/// the OCI spec) and no WASMHTTP_MAX_INSTANCE_MEMORY, a guest that grows
/// without end fails its own request instead of getting the container killed.
fn the_container_memory_limit_caps_each_instance(s: &Suite) {
    let image = s.import_fixture("grow-memory");
    let (addr, listen) = loopback();
    let mut task = s.containerd.run(
        "memory-1",
        &image,
        &[("WASMHTTP_LISTEN", &listen)],
        &["--memory-limit", &(128u64 << 20).to_string()],
        &[],
    );
    serving(addr, &mut task);
    for _ in 0..3 {
        assert_eq!(http::get(addr, "/").unwrap().status, 500);
        assert!(task.is_running(), "the container died\n{}", task.output());
    }
    until(
        Duration::from_secs(10),
        "the trap is in the container log",
        || task.stderr().contains("wasm trap"),
        || task.output(),
    );
    s.stop(&mut task);
}

/// `ctr run --mount`: the spec's bind mounts become the guest's directories at
/// the same paths; a read-only mount stays read-only; nothing else is seen.
fn bind_mounts_are_the_guests_directories(s: &Suite) {
    let wasm = images::example("files-py");
    let tar = images::wasmhttp_image(&s.work, &wasm, "wasmhttp-test/files-py:1");
    s.import(&tar, &[]);
    let data = s.work.join("mounts/data");
    let config = s.work.join("mounts/config");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(data.join("hello.txt"), "from a bind mount\n").unwrap();
    std::fs::write(config.join("app.conf"), "read only\n").unwrap();
    let (addr, listen) = loopback();
    let data_mount = format!(
        "type=bind,src={},dst=/data,options=rbind:rw",
        data.display()
    );
    let config_mount = format!(
        "type=bind,src={},dst=/config,options=rbind:ro",
        config.display()
    );
    let mut task = s.containerd.run(
        "mounts-1",
        "docker.io/wasmhttp-test/files-py:1",
        &[("WASMHTTP_LISTEN", &listen)],
        &["--mount", &data_mount, "--mount", &config_mount],
        &[],
    );
    serving(addr, &mut task);
    let read = http::get(addr, "/data/hello.txt").unwrap();
    assert_eq!(
        (read.status, read.text().as_str()),
        (200, "from a bind mount\n"),
        "{}",
        task.output()
    );
    let written = http::request(addr, "PUT", "/data/out.txt", &[], b"from the guest\n").unwrap();
    assert_eq!(written.status, 201, "{}", written.text());
    assert_eq!(
        std::fs::read_to_string(data.join("out.txt")).unwrap(),
        "from the guest\n"
    );
    assert_eq!(
        http::get(addr, "/config/app.conf").unwrap().text(),
        "read only\n"
    );
    let refused = http::request(addr, "PUT", "/config/app.conf", &[], b"changed\n").unwrap();
    assert_eq!(refused.status, 403, "{}", refused.text());
    // the image's own files and the container's system mounts are not the guest's
    for path in [
        "/component.wasm",
        "/proc/self/status",
        "/etc/hostname",
        "/data/../component.wasm",
    ] {
        assert_ne!(
            http::get(addr, path).unwrap().status,
            200,
            "{path} is visible"
        );
    }
    until(
        Duration::from_secs(10),
        "the read-only volume is said",
        || task.stderr().contains("volume /config (read-only)"),
        || task.output(),
    );
    s.stop(&mut task);
}

fn parent_pid(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // the fields after the command name, which is in parentheses
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    after
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// WASMHTTP_MODE=cgi in a container: the C program of tests/fixtures/c/cgi.c
/// as a preview 1 module and as a component, each in a `wasmhttp image`,
/// with a read-only bind mount for its files.
fn cgi_programs_answer_requests_in_both_forms(s: &Suite) {
    let data = s.work.join("cgi-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("greeting.txt"), "hello from a bind mount\n").unwrap();
    let mount = format!(
        "type=bind,src={},dst=/data,options=rbind:ro",
        data.display()
    );
    for form in ["cgi", "cgi-component"] {
        let image = s.import_fixture(form);
        let (addr, listen) = loopback();
        let id = format!("{form}-1");
        let mut task = s.containerd.run(
            &id,
            &image,
            &[
                ("WASMHTTP_MODE", "cgi"),
                ("WASMHTTP_LISTEN", &listen),
                ("GREETING", "hello from the pod"),
            ],
            &["--mount", &mount],
            &[],
        );
        serving(addr, &mut task);
        let echo = http::request(
            addr,
            "PUT",
            "/items/7?x=1",
            &[("x-test", "yes")],
            b"payload",
        )
        .unwrap();
        let text = echo.text();
        assert_eq!(echo.status, 201, "{form}: {text}\n{}", task.output());
        assert_eq!(echo.header("x-cgi-program"), Some("wasmhttp-test"));
        for expected in [
            "REQUEST_METHOD=PUT",
            "PATH_INFO=/items/7",
            "QUERY_STRING=x=1",
            "HTTP_X_TEST=yes",
            "CONTENT_LENGTH=7",
            "GREETING=hello from the pod",
            "body=payload",
        ] {
            assert!(
                text.lines().any(|l| l == expected),
                "{form}: {expected} not in\n{text}"
            );
        }
        let env = http::get(addr, "/env").unwrap().text();
        assert!(
            !env.contains("WASMHTTP_"),
            "{form}: the shim's settings leaked: {env}"
        );
        let file = http::get(addr, "/file?name=greeting.txt").unwrap();
        assert_eq!(
            (file.status, file.text().as_str()),
            (200, "hello from a bind mount\n"),
            "{form}"
        );
        assert_eq!(http::get(addr, "/write").unwrap().text(), "refused\n");
        assert_eq!(http::get(addr, "/malformed").unwrap().status, 502);
        assert_eq!(http::get(addr, "/trap").unwrap().status, 500);
        assert_eq!(http::get(addr, "/exit").unwrap().status, 502);
        assert_eq!(
            http::get(addr, "/").unwrap().status,
            201,
            "{form}: still serving"
        );
        // the program's stderr and the shim's reasons are the container log
        let logged = [
            "cgi fixture: PUT /items/7",
            "is not a header",
            "the program trapped",
            "without writing a response",
        ];
        until(
            Duration::from_secs(5),
            &format!("{form}: {logged:?} are in the container log"),
            || logged.iter().all(|line| task.stderr().contains(line)),
            || task.output(),
        );
        s.stop(&mut task);
        // compiled in the shim at the first start, like any component
        let manifest = s.image_digest(&image);
        assert!(
            s.containerd
                .ctr_ok(&["content", "ls"])
                .lines()
                .any(|l| l.starts_with(&manifest) && l.contains("runwasi.io/precompiled/wasmhttp/")),
            "{form}: the program was not precompiled"
        );
    }
}

impl Suite {
    /// The counter-py example (wasi:keyvalue, wasi:config, wasi:logging) as
    /// a wasmhttp image.
    fn import_counter(&self) -> &'static str {
        let wasm = images::example("counter-py");
        let tar = images::wasmhttp_image(&self.work, &wasm, "wasmhttp-test/counter-py:1");
        self.import(&tar, &[]);
        "docker.io/wasmhttp-test/counter-py:1"
    }
}

/// Two containers on one real Redis (password from the environment, as a
/// Secret gives it): every operation, 2,000 increments counted exactly, one
/// connection each; Redis stopped under load is the guest's own 503 while
/// the shim serves on, and back, it serves again without a restart.
fn keyvalue_on_a_real_redis_through_the_shim(s: &Suite) {
    let image = s.import_counter();
    let mut redis = Redis::start(Some("pw-of-the-containerd-case"));
    let url = redis.url();
    let mut containers: Vec<(SocketAddr, SocketAddr, support::containerd::Task)> = (0..2)
        .map(|i| {
            let (addr, listen) = loopback();
            let (admin, admin_listen) = loopback();
            let env = [
                ("WASMHTTP_LISTEN", listen.as_str()),
                ("WASMHTTP_ADMIN_LISTEN", admin_listen.as_str()),
                ("WASMHTTP_KEYVALUE", url.as_str()),
                ("WASMHTTP_KEYVALUE_PASSWORD", "pw-of-the-containerd-case"),
                ("WASMHTTP_REQUEST_TIMEOUT", "10s"),
            ];
            let task = s
                .containerd
                .run(&format!("counter-redis-{i}"), image, &env, &[], &[]);
            (addr, admin, task)
        })
        .collect();
    for (addr, _, task) in &mut containers {
        serving(*addr, task);
    }
    let (first, first_admin) = (containers[0].0, containers[0].1);
    round_trip(first, Some(&redis));
    count_exactly_across(&[first, containers[1].0], &redis);
    outage(first, first_admin, &mut redis, || containers[0].2.stderr());
    for (_, _, task) in &mut containers {
        assert!(
            !task.output().contains("pw-of-the-containerd-case"),
            "the password is in {}'s log\n{}",
            task.id,
            task.output()
        );
        s.stop(task);
    }
}

/// One container: the memory store shared by its instances and held to its
/// limit, wasi:config from bind-mounted directories (laid out as kubelet
/// mounts a ConfigMap and a Secret) and the container's variables,
/// wasi:logging lines in the container log at their level; then a config
/// directory that is not there fails the start.
fn memory_store_config_and_logging_through_the_shim(s: &Suite) {
    let image = s.import_counter();
    let config = s.work.join("platform/config");
    let secret = s.work.join("platform/secret");
    mounted(&config, &[("greeting", "Servus")], "2026_12_03_01");
    mounted(
        &secret,
        &[("token", "t0ken-of-the-containerd-case")],
        "2026_12_03_01",
    );
    let (addr, listen) = loopback();
    let mounts = [
        format!(
            "type=bind,src={},dst=/etc/app/config,options=rbind:ro",
            config.display()
        ),
        format!(
            "type=bind,src={},dst=/etc/app/secret,options=rbind:ro",
            secret.display()
        ),
    ];
    let env = [
        ("WASMHTTP_LISTEN", listen.as_str()),
        ("WASMHTTP_CONFIG_DIRS", "/etc/app/config,/etc/app/secret"),
        ("WASMHTTP_CONFIG_ENV_PREFIX", "APP_"),
        ("APP_region", "eu-central"),
        ("WASMHTTP_KEYVALUE_MEMORY_LIMIT", "4Ki"),
        ("WASMHTTP_INSTANCE_REUSE", "4"),
        ("WASMHTTP_ACCESS_LOG", "json"),
    ];
    let mut task = s.containerd.run(
        "counter-memory",
        image,
        &env,
        &["--mount", &mounts[0], "--mount", &mounts[1]],
        &[],
    );
    serving(addr, &mut task);
    assert_eq!(ok(addr, "GET", "/config/greeting", b""), "Servus");
    assert_eq!(ok(addr, "GET", "/config/region", b""), "eu-central");
    assert_eq!(
        ok(addr, "GET", "/config", b""),
        "[\"greeting\", \"region\", \"token\"]\n"
    );
    let private = |token: &str| {
        http::request(addr, "GET", "/private", &[("x-token", token)], b"")
            .unwrap()
            .status
    };
    assert_eq!(private("t0ken-of-the-containerd-case"), 200);
    assert_eq!(private("a guess"), 403);
    // kubelet's update of the mounted ConfigMap, seen at the next call
    mounted(&config, &[("greeting", "Grüß Gott")], "2026_12_03_02");
    assert_eq!(ok(addr, "GET", "/config/greeting", b""), "Grüß Gott");
    // one store for every instance: 4 clients × 25 increments, instances
    // fresh and reused
    from_clients(addr, 4, 25, "POST", "/incr/shared");
    assert_eq!(ok(addr, "GET", "/kv/shared", b""), "100");
    let full = send(addr, "PUT", "/kv/big", &[b'x'; 8 << 10]);
    assert_eq!(full.status, 503, "{}", task.output());
    assert!(
        full.text().contains("WASMHTTP_KEYVALUE_MEMORY_LIMIT"),
        "{}",
        full.text()
    );
    assert_eq!(
        send(addr, "POST", "/incr/n?bucket=elsewhere", b"").text(),
        "no-such-store\n"
    );
    ok(
        addr,
        "GET",
        "/log?level=warn&context=billing&msg=card+declined",
        b"",
    );
    ok(addr, "GET", "/log?level=debug&msg=not+at+info", b"");
    until(
        Duration::from_secs(10),
        "the wasi:logging line is in the container log",
        || task.stderr().contains("[warn] billing: card declined"),
        || task.output(),
    );
    let output = task.output();
    assert!(!output.contains("not at info"), "{output}");
    assert!(!output.contains("t0ken-of-the-containerd-case"), "{output}");
    s.stop(&mut task);
    // a directory that is not mounted fails the start, saying which (the
    // component is compiled by now: the refusal is not held up by that)
    let (_, listen) = loopback();
    let refused = s.start_fails(
        "counter-no-config",
        image,
        &[
            ("WASMHTTP_LISTEN", &listen),
            ("WASMHTTP_CONFIG_DIRS", "/etc/app/not-mounted"),
        ],
        &[],
        &[],
    );
    assert!(
        refused.contains("WASMHTTP_CONFIG_DIRS names /etc/app/not-mounted"),
        "{refused}"
    );
}
