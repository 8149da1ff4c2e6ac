//! `wasmhttp serve`: the CLI runs the same serving path as the shim, so the
//! same guarantees are checked here against the real binary, over loopback.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::eventually::eventually;
use support::http::{self, free_port, wait_until_serving};
use support::served::{
    example, fixture, metric, nix_kill, serve, temp_dir, wait_for_metric, wasmhttp,
};

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

/// componentize-py keeps its stdout stream open for the instance's life;
/// that is no request's leftover, so with reuse on its instances are kept.
/// (The JS example leaves its request behind: it is never kept.)
#[test]
fn the_python_example_reuses_its_instances_with_reuse_on() {
    let served = serve(
        "py-reuse",
        &example("hello-py"),
        &[],
        &[("WASMHTTP_INSTANCE_REUSE", "3")],
    );
    for i in 0..5 {
        let response = http::get(served.addr, &format!("/r{i}")).unwrap();
        assert_eq!(response.status, 200, "{response:?}");
    }
    // 3 requests on the first instance, 2 on the second
    assert_eq!(metric(served.admin, "wasmhttp_instances_reused_total"), 3.0);
    assert_eq!(
        metric(
            served.admin,
            "wasmhttp_instantiation_duration_seconds_count"
        ),
        2.0
    );
    assert!(served.terminate().success());

    let js = serve(
        "js-reuse",
        &example("hello-js"),
        &[],
        &[("WASMHTTP_INSTANCE_REUSE", "3")],
    );
    for i in 0..3 {
        assert_eq!(http::get(js.addr, &format!("/r{i}")).unwrap().status, 200);
    }
    assert_eq!(metric(js.admin, "wasmhttp_instances_reused_total"), 0.0);
    assert!(js.terminate().success());
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

/// Issue 26: a request's id is a sane `X-Request-Id` it came with, or one
/// made for it; the guest sees it, the client gets it back, and the access
/// log and the failure lines about the request carry it.
#[test]
fn every_request_has_an_id_the_guest_the_client_and_the_log_see() {
    let dir = temp_dir("request-id");
    let echo = serve(
        "request-id",
        &fixture(&dir, "echo"),
        &[],
        &[("WASMHTTP_ACCESS_LOG", "json")],
    );
    let logged_id = |path: &str| {
        eventually(Duration::from_secs(5), "the access log line", || {
            let log = echo.log();
            log.lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .find(|entry| entry["path"] == path)
                .map(|entry| entry["request_id"].as_str().unwrap_or_default().to_string())
                .ok_or(log)
        })
    };
    let made_id = |id: &str| {
        id.split_once('-').is_some_and(|(prefix, n)| {
            prefix.len() == 16
                && prefix.bytes().all(|b| b.is_ascii_hexdigit())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_hexdigit())
        })
    };

    // none sent: one is made
    let response = http::get(echo.addr, "/none").unwrap();
    let id = response.header("x-request-id").unwrap().to_string();
    assert!(made_id(&id), "{id:?}");
    assert_eq!(response.seen_header("x-request-id"), [id.clone()]);
    assert_eq!(logged_id("/none"), id);

    // a sane one is kept, end to end
    let sent = [("x-request-id", "4bf92f3577b34da6a3ce929d0e0e4736")];
    let response = http::request(echo.addr, "GET", "/kept", &sent, b"").unwrap();
    assert_eq!(
        response.header("x-request-id"),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(
        response.seen_header("x-request-id"),
        ["4bf92f3577b34da6a3ce929d0e0e4736"]
    );
    assert_eq!(logged_id("/kept"), "4bf92f3577b34da6a3ce929d0e0e4736");

    // one that would forge a log field, or two at once, is replaced
    let too_long = "a".repeat(129);
    for (path, sent) in [
        ("/quote", vec![("x-request-id", "a\",\"status\":200")]),
        ("/long", vec![("x-request-id", too_long.as_str())]),
        (
            "/two",
            vec![("x-request-id", "one"), ("x-request-id", "two")],
        ),
    ] {
        let response = http::request(echo.addr, "GET", path, &sent, b"").unwrap();
        let id = response.header("x-request-id").unwrap().to_string();
        assert!(made_id(&id), "{path}: {id:?}");
        assert_eq!(response.seen_header("x-request-id"), [id.clone()], "{path}");
        assert_eq!(logged_id(path), id, "{path}");
    }

    // two identical requests at once are told apart
    let ids: Vec<String> = std::thread::scope(|scope| {
        let two: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| http::get(echo.addr, "/same").unwrap()))
            .collect();
        two.into_iter()
            .map(|t| {
                t.join()
                    .unwrap()
                    .header("x-request-id")
                    .unwrap()
                    .to_string()
            })
            .collect()
    });
    assert_ne!(ids[0], ids[1]);

    // a failure's log line names the request by its id
    let trap = serve("request-id-trap", &fixture(&dir, "trap"), &[], &[]);
    let sent = [("x-request-id", "trap-7")];
    let response = http::request(trap.addr, "GET", "/trap", &sent, b"").unwrap();
    assert_eq!(
        (response.status, response.header("x-request-id")),
        (500, Some("trap-7"))
    );
    eventually(
        Duration::from_secs(5),
        "the failure line with the id",
        || {
            let log = trap.log();
            log.lines()
                .any(|line| {
                    line.starts_with("wasmhttp: GET /trap [request trap-7]: the guest failed")
                })
                .then_some(())
                .ok_or(log)
        },
    );
}

/// Issue 26: a client that leaves while its guest sleeps mid-body (a 0.2
/// handler, a CGI program) frees the one concurrency slot at once, not at
/// the guest's next write or its 60 s timeout; it is counted and said as a
/// client gone, not as a failure.
#[test]
fn a_client_that_leaves_mid_body_stops_its_guest_at_once() {
    let dir = temp_dir("client-gone");
    let one_slot = [
        ("WASMHTTP_MAX_CONCURRENCY", "1"),
        ("WASMHTTP_REQUEST_TIMEOUT", "60s"),
    ];
    let handler = serve("client-gone", &fixture(&dir, "misbehave"), &[], &one_slot);
    leaves_mid_body(&handler, "client-gone-1");
    let cgi_env = [one_slot[0], one_slot[1], ("WASMHTTP_MODE", "cgi")];
    let program = serve("client-gone-cgi", &fixture(&dir, "cgi"), &[], &cgi_env);
    leaves_mid_body(&program, "client-gone-2");
}

fn leaves_mid_body(served: &support::served::Served, id: &str) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(served.addr).unwrap();
    write!(
        stream,
        "GET /stall HTTP/1.1\r\nhost: x\r\nx-request-id: {id}\r\n\r\n"
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // the head and the first bytes of the body
    let body_started = |seen: &[u8]| {
        seen.windows(4)
            .position(|w| w == b"\r\n\r\n")
            .is_some_and(|head| seen.len() > head + 4)
    };
    while !body_started(&seen) {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the body began: {seen:?}");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(seen.starts_with(b"HTTP/1.1 200"), "{seen:?}");
    let left = Instant::now();
    drop(stream);

    // the slot is free again long before the guest would have woken
    eventually(
        Duration::from_secs(10),
        "the slot is free again",
        || match http::get(served.addr, "/ok") {
            Ok(response) if response.status == 200 || response.status == 201 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    assert!(
        left.elapsed() < Duration::from_secs(10),
        "{:?}",
        left.elapsed()
    );
    wait_for_metric(served.admin, "wasmhttp_clients_gone_total", 1.0);
    assert_eq!(metric(served.admin, "wasmhttp_guest_traps_total"), 0.0);
    let said = format!("wasmhttp: GET /stall [request {id}]: the client went away");
    eventually(Duration::from_secs(5), "the client-gone line", || {
        let log = served.log();
        log.contains(&said).then_some(()).ok_or(log)
    });
}

#[test]
fn traps_and_missing_responses_are_500s_and_serving_goes_on() {
    let dir = temp_dir("faults");
    let trap = serve("trap", &fixture(&dir, "trap"), &[], &[]);
    assert_eq!(http::get(trap.addr, "/trap").unwrap().status, 500);
    assert_eq!(http::get(trap.addr, "/ok").unwrap().status, 200);
    trap.wait_for_log("wasm trap", "a trap");

    let silent = serve("no-response", &fixture(&dir, "no-response"), &[], &[]);
    assert_eq!(http::get(silent.addr, "/").unwrap().status, 500);
    assert_eq!(http::get(silent.addr, "/").unwrap().status, 500);
}

#[test]
fn instances_are_fresh_per_request_unless_reuse_is_asked_for() {
    let dir = temp_dir("reuse");
    let counter = fixture(&dir, "counter");
    let fresh = serve("fresh", &counter, &[], &[]);
    for _ in 0..3 {
        assert_eq!(http::get(fresh.addr, "/").unwrap().text(), "1");
    }
    assert_eq!(metric(fresh.admin, "wasmhttp_instances_reused_total"), 0.0);

    let reused = serve("reused", &counter, &[], &[("WASMHTTP_INSTANCE_REUSE", "3")]);
    let mut answers = Vec::new();
    for _ in 0..7 {
        answers.push(http::get(reused.addr, "/").unwrap().text());
        // the instance goes back to the pool just after its response is out
        let expected_warm = if answers.len() % 3 == 0 { 0.0 } else { 1.0 };
        wait_for_metric(reused.admin, "wasmhttp_instances_warm", expected_warm);
    }
    assert_eq!(answers, ["1", "2", "3", "1", "2", "3", "1"]);
    // a trap ends the instance: the next request gets a fresh one
    assert_eq!(http::get(reused.addr, "/trap").unwrap().status, 500);
    wait_for_metric(reused.admin, "wasmhttp_instances_warm", 0.0);
    assert_eq!(http::get(reused.addr, "/").unwrap().text(), "1");
    // served by an instance of an earlier request: 2, 3, 2, 3 and the trapping one
    assert_eq!(metric(reused.admin, "wasmhttp_instances_reused_total"), 5.0);
    assert!(reused.terminate().success());

    // A guest that leaves its response unset is never kept (the client
    // would wait for a response that can only come when the instance dies).
    let untidy = serve(
        "untidy",
        &fixture(&dir, "no-response"),
        &[],
        &[("WASMHTTP_INSTANCE_REUSE", "100")],
    );
    for _ in 0..2 {
        let started = Instant::now();
        assert_eq!(http::get(untidy.addr, "/").unwrap().status, 500);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    assert_eq!(metric(untidy.admin, "wasmhttp_instances_warm"), 0.0);
    assert_eq!(metric(untidy.admin, "wasmhttp_instances_reused_total"), 0.0);
}

/// Instances printing at once (each a line in two writes, with a sleep
/// between them): every line comes out whole, none mixed into another.
#[test]
fn lines_of_instances_printing_at_once_come_out_whole() {
    let dir = temp_dir("whole-lines");
    let served = serve("whole-lines", &fixture(&dir, "slow"), &[], &[]);
    let requests = http::in_flight(served.addr, "/sleep/300", 8);
    http::assert_all_answered(requests, 200, "slow fixture: done\n", &served.log());
    let line = "slow fixture: a line begun before sleeping and ended after";
    let out = eventually(Duration::from_secs(10), "8 lines on stdout", || {
        let out = served.out();
        match out.lines().count() {
            8 => Ok(out),
            _ => Err(out),
        }
    });
    assert!(out.lines().all(|l| l == line), "lines mixed:\n{out}");
}

#[test]
fn sigterm_drains_requests_in_flight_and_exits_zero() {
    let dir = temp_dir("drain");
    let served = serve("drain", &fixture(&dir, "slow"), &[], &[]);
    let admin = served.admin;
    let addr = served.addr;
    assert_eq!(http::get(admin, "/readyz").unwrap().status, 200);
    // an idle keep-alive connection, which the drain must close
    let mut idle = http::Connection::open(addr).unwrap();
    assert_eq!(idle.send("GET", "/sleep/1", &[], b"").unwrap().status, 200);
    let in_flight = http::in_flight(addr, "/sleep/800", 3);
    wait_for_metric(admin, "wasmhttp_requests_in_flight", 3.0);
    let pid = served.child.id();
    nix_kill(pid, 15);
    std::thread::sleep(Duration::from_millis(100));
    // not ready while draining, and no new connections
    assert_eq!(http::get(admin, "/readyz").unwrap().status, 503);
    assert!(
        http::get(addr, "/").is_err(),
        "still accepting after SIGTERM"
    );
    let stopping = Instant::now();
    let status = served.terminate_wait();
    assert!(status.success(), "{status}");
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "the drain took {:?} for requests that needed < 1 s",
        stopping.elapsed()
    );
    http::assert_all_answered(in_flight, 200, "slow fixture: done\n", "");
    assert!(
        idle.send("GET", "/sleep/1", &[], b"").is_err(),
        "the idle keep-alive connection was left open"
    );
}

#[test]
fn the_drain_is_bounded_and_a_second_signal_ends_it() {
    let dir = temp_dir("drain-bound");
    let slow = fixture(&dir, "slow");
    let bounded = serve(
        "bounded",
        &slow,
        &[],
        &[("WASMHTTP_DRAIN_TIMEOUT", "500ms")],
    );
    let addr = bounded.addr;
    let stuck = std::thread::spawn(move || http::get(addr, "/sleep/10000"));
    wait_for_metric(bounded.admin, "wasmhttp_requests_in_flight", 1.0);
    let stopping = Instant::now();
    let status = bounded.terminate();
    assert!(status.success(), "{status}");
    let took = stopping.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "WASMHTTP_DRAIN_TIMEOUT=500ms, exit after {took:?}"
    );
    assert!(
        stuck.join().unwrap().is_err(),
        "the 10 s request cannot have completed"
    );

    let twice = serve("twice", &slow, &[], &[]);
    let addr = twice.addr;
    let stuck = std::thread::spawn(move || http::get(addr, "/sleep/10000"));
    wait_for_metric(twice.admin, "wasmhttp_requests_in_flight", 1.0);
    let pid = twice.child.id();
    nix_kill(pid, 15);
    std::thread::sleep(Duration::from_millis(200));
    let stopping = Instant::now();
    nix_kill(pid, 2);
    let status = twice.terminate_wait();
    assert!(status.success(), "{status}");
    assert!(
        stopping.elapsed() < Duration::from_secs(1),
        "a second signal must end the drain at once, took {:?}",
        stopping.elapsed()
    );
    let _ = stuck.join();
}

#[test]
fn request_timeout_stops_even_an_infinite_loop_with_504() {
    let dir = temp_dir("timeout");
    let looping = serve(
        "loop",
        &fixture(&dir, "infinite-loop"),
        &[],
        &[("WASMHTTP_REQUEST_TIMEOUT", "500ms")],
    );
    let admin = looping.admin;
    let addr = looping.addr;
    // more loops than worker threads: each must be stopped, none may block the rest
    let started = Instant::now();
    let requests: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(move || http::get(addr, "/")))
        .collect();
    for request in requests {
        assert_eq!(request.join().unwrap().unwrap().status, 504);
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "four 500 ms timeouts took {:?}",
        started.elapsed()
    );
    assert_eq!(metric(admin, "wasmhttp_request_timeouts_total"), 4.0);
    assert_eq!(http::get(admin, "/healthz").unwrap().status, 200);

    let slow = serve(
        "slow-timeout",
        &fixture(&dir, "slow"),
        &[],
        &[("WASMHTTP_REQUEST_TIMEOUT", "300ms")],
    );
    assert_eq!(http::get(slow.addr, "/sleep/5000").unwrap().status, 504);
    assert_eq!(http::get(slow.addr, "/sleep/10").unwrap().status, 200);
    slow.wait_for_log("WASMHTTP_REQUEST_TIMEOUT", "a request past its timeout");
}

#[test]
fn instance_memory_is_capped_and_an_overrun_is_a_500() {
    let dir = temp_dir("memory");
    let greedy = serve(
        "greedy",
        &fixture(&dir, "grow-memory"),
        &[],
        &[("WASMHTTP_MAX_INSTANCE_MEMORY", "8Mi")],
    );
    let admin = greedy.admin;
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(http::get(greedy.addr, "/").unwrap().status, 500);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(metric(admin, "wasmhttp_guest_traps_total"), 3.0);
    greedy.wait_for_log("wasm trap", "memory beyond the limit");
}

#[test]
fn beyond_max_concurrency_requests_get_503_at_once() {
    let dir = temp_dir("concurrency");
    let served = serve(
        "busy",
        &fixture(&dir, "slow"),
        &[],
        &[("WASMHTTP_MAX_CONCURRENCY", "2")],
    );
    let admin = served.admin;
    let addr = served.addr;
    let busy = http::in_flight(addr, "/sleep/1000", 2);
    wait_for_metric(admin, "wasmhttp_requests_in_flight", 2.0);
    let started = Instant::now();
    let refused = http::get(addr, "/sleep/1").unwrap();
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(metric(admin, "wasmhttp_requests_in_flight"), 2.0);
    http::assert_all_answered(busy, 200, "slow fixture: done\n", "");
    assert_eq!(http::get(addr, "/sleep/1").unwrap().status, 200);
    assert_eq!(
        metric(admin, "wasmhttp_rejections_total{reason=\"overloaded\"}"),
        1.0
    );
}

#[test]
fn oversized_bodies_slow_headers_and_huge_headers_are_refused() {
    let dir = temp_dir("limits");
    let served = serve(
        "limits",
        &fixture(&dir, "echo"),
        &[],
        &[
            ("WASMHTTP_MAX_BODY", "1Ki"),
            ("WASMHTTP_HEADER_TIMEOUT", "500ms"),
        ],
    );
    let addr = served.addr;
    let small = http::request(addr, "POST", "/", &[], &[b'a'; 1000]).unwrap();
    assert_eq!((small.status, small.body.len()), (200, 1000));
    let large = http::request(addr, "POST", "/", &[], &[b'a'; 2000]).unwrap();
    assert_eq!(large.status, 413);

    // headers dribbled out (slowloris): the connection is closed
    use std::io::{Read, Write};
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a connection without complete headers was kept {:?}",
        started.elapsed()
    );
    assert!(
        !String::from_utf8_lossy(&rest).contains(" 200 "),
        "{}",
        String::from_utf8_lossy(&rest)
    );

    let huge = "x".repeat(100 * 1024);
    let response = http::request(addr, "GET", "/", &[("x-huge", &huge)], b"");
    assert_eq!(
        response.as_ref().map(|r| r.status).ok(),
        Some(431),
        "{:?}",
        response.map(|r| r.status)
    );
    assert_eq!(
        http::get(addr, "/").unwrap().status,
        200,
        "the server must go on"
    );

    // a wasi:http 0.3 guest: a declared length over the limit never reaches
    // it; a chunked body that grows over it reaches it as a stream that fails
    // with HTTP-request-body-size, and it writes nothing
    let data = dir.0.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let volume = format!("{}:/data", data.display());
    let served = serve(
        "limits-0.3",
        &example("service-py"),
        &["--volume", &volume],
        &[("WASMHTTP_MAX_BODY", "1Ki")],
    );
    let addr = served.addr;
    let small = http::request(addr, "PUT", "/?file=/data/small", &[], &[b'a'; 1000]).unwrap();
    assert_eq!(small.status, 201, "{}", small.text());
    assert_eq!(std::fs::read(data.join("small")).unwrap().len(), 1000);
    let large = http::request(addr, "PUT", "/?file=/data/large", &[], &[b'a'; 2000]).unwrap();
    assert_eq!(large.status, 413);
    let mut chunked = std::net::TcpStream::connect(addr).unwrap();
    chunked
        .write_all(
            b"PUT /?file=/data/chunked HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n7d0\r\n",
        )
        .unwrap();
    chunked.write_all(&[b'a'; 2000]).unwrap();
    chunked.write_all(b"\r\n0\r\n\r\n").unwrap();
    chunked
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = chunked.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 413 "),
        "{answer}\n{}",
        served.log()
    );
    assert!(answer.contains("HttpRequestBodySize"), "{answer}");
    for unwritten in ["large", "chunked"] {
        assert!(!data.join(unwritten).exists(), "{unwritten} was written");
    }
}

#[test]
fn http2_with_prior_knowledge_on_the_same_port() {
    let dir = temp_dir("h2c");
    // a wasi:http 0.2 guest and a 0.3 one (examples/service-py)
    for (name, component) in [
        ("h2c", fixture(&dir, "hello")),
        ("h2c-0.3", example("service-py")),
    ] {
        h2c_and_http1_on_one_port(&serve(name, &component, &[], &[]));
    }
}

fn h2c_and_http1_on_one_port(served: &support::served::Served) {
    let addr = served.addr;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (status, version, body) = runtime.block_on(async move {
        use http_body_util::BodyExt;
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let request = hyper::Request::get(format!("http://{addr}/over-h2"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let version = response.version();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, version, String::from_utf8_lossy(&body).into_owned())
    });
    assert_eq!((status, version), (200, hyper::Version::HTTP_2));
    assert!(body.contains("Hello"), "{body}");
    // and HTTP/1.1 on the same port
    assert_eq!(http::get(addr, "/").unwrap().status, 200);
}

#[test]
fn admin_endpoints_report_health_readiness_and_metrics() {
    let dir = temp_dir("admin");
    let served = serve("admin", &fixture(&dir, "trap"), &[], &[]);
    let admin = served.admin;
    assert_eq!(http::get(admin, "/healthz").unwrap().status, 200);
    assert_eq!(http::get(admin, "/readyz").unwrap().text(), "ready\n");
    assert_eq!(http::get(served.addr, "/ok").unwrap().status, 200);
    assert_eq!(http::get(served.addr, "/trap").unwrap().status, 500);
    let metrics = http::get(admin, "/metrics").unwrap();
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    assert_eq!(
        metric(admin, "wasmhttp_requests_total{status=\"200\"}"),
        1.0
    );
    assert_eq!(
        metric(admin, "wasmhttp_requests_total{status=\"500\"}"),
        1.0
    );
    assert_eq!(
        metric(admin, "wasmhttp_request_duration_seconds_count"),
        2.0
    );
    assert_eq!(
        metric(admin, "wasmhttp_instantiation_duration_seconds_count"),
        2.0
    );
    assert_eq!(metric(admin, "wasmhttp_guest_traps_total"), 1.0);
    assert_eq!(metric(admin, "wasmhttp_requests_in_flight"), 0.0);
    // probing never runs the guest
    for _ in 0..5 {
        http::get(admin, "/readyz").unwrap();
    }
    assert_eq!(
        metric(admin, "wasmhttp_instantiation_duration_seconds_count"),
        2.0
    );
    assert_eq!(http::get(admin, "/other").unwrap().status, 404);
}

#[test]
fn access_log_writes_one_json_line_per_request() {
    let dir = temp_dir("access-log");
    // a wasi:http 0.2 guest and a 0.3 one (examples/service-py)
    for (name, component) in [
        ("access-log", fixture(&dir, "hello")),
        ("access-log-0.3", example("service-py")),
    ] {
        let served = serve(name, &component, &[], &[("WASMHTTP_ACCESS_LOG", "json")]);
        one_json_line_per_request(&served);
    }
}

fn one_json_line_per_request(served: &support::served::Served) {
    let sent = Instant::now();
    http::get(served.addr, "/logged?x=1").unwrap();
    let client_ms = sent.elapsed().as_secs_f64() * 1000.0;
    let line = eventually(Duration::from_secs(5), "an access log line", || {
        let log = served.log();
        let line = log.lines().find(|l| l.contains("/logged"));
        line.map(str::to_string).ok_or(log)
    });
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["method"], "GET");
    assert_eq!(entry["path"], "/logged?x=1");
    assert_eq!(entry["status"], 200);
    // milliseconds, and within what the client waited for the whole exchange
    let duration_ms = entry["duration_ms"].as_f64().unwrap();
    assert!(
        duration_ms > 0.0 && duration_ms <= client_ms,
        "duration_ms {duration_ms}, the client waited {client_ms:.3} ms"
    );
    assert!(entry["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
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
        &["core WebAssembly module", "WASMHTTP_MODE=cgi"],
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
    // the fixture's memory starts at 17 pages (1.06 MiB)
    fails_with(
        &["serve", hello.to_str().unwrap()],
        &[("WASMHTTP_MAX_INSTANCE_MEMORY", "64Ki")],
        &[
            "starts at 1.1 MiB",
            "WASMHTTP_MAX_INSTANCE_MEMORY=64 KiB",
            "by 1.0 MiB",
        ],
    );
    let library = fixture(&dir, "library-module");
    fails_with(
        &[
            "image",
            library.to_str().unwrap(),
            "--name",
            "x",
            "-o",
            "/dev/null",
        ],
        &[],
        &["core WebAssembly module", "no _start"],
    );
}

/// `wasmhttp image` writes its archive whole or not at all: a refused
/// component leaves no file (nor a partial one beside it), and an earlier
/// archive of the same name stays as it was.
#[test]
fn a_refused_image_leaves_no_file_behind() {
    let dir = temp_dir("image-refused");
    let hello = fixture(&dir, "hello");
    let mut truncated = std::fs::read(&hello).unwrap();
    truncated.truncate(truncated.len() / 2);
    let truncated_path = dir.0.join("truncated.wasm");
    std::fs::write(&truncated_path, &truncated).unwrap();
    let library = fixture(&dir, "library-module");
    let out = dir.0.join("out");
    std::fs::create_dir(&out).unwrap();
    let archive = out.join("app.tar");
    let image_of = |component: &std::path::Path| {
        let mut command = wasmhttp();
        command
            .arg("image")
            .arg(component)
            .args(["--name", "app:1", "-o"])
            .arg(&archive);
        command.output().unwrap()
    };
    let refused = |component: &std::path::Path, why: &str| {
        let output = image_of(component);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(why), "{stderr}");
        let left: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left
    };
    assert!(refused(&truncated_path, "malformed").is_empty());
    assert!(refused(&library, "no _start").is_empty());
    let built = image_of(&hello);
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let before = std::fs::read(&archive).unwrap();
    assert_eq!(refused(&library, "no _start"), vec!["app.tar"]);
    assert_eq!(
        std::fs::read(&archive).unwrap(),
        before,
        "the earlier archive changed"
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

/// An upstream HTTP server on loopback that answers `body` to up to
/// `connections` connections, then stops; counts what it served.
fn upstream(
    body: &'static str,
    connections: usize,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(connections) {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            // counted before answering: the test reads the count as soon as
            // the answer has come back through the guest
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, served)
}

#[test]
fn outbound_http_goes_only_to_allowed_hosts() {
    // a wasi:http 0.2 guest (JavaScript) and a 0.3 one (Python, `client.send`)
    for (name, guest) in [("proxy", "proxy-js"), ("proxy-0.3", "service-py")] {
        only_to_allowed_hosts(name, &example(guest));
    }
}

fn only_to_allowed_hosts(name: &str, proxy: &std::path::Path) {
    let (upstream_addr, upstream_served) = upstream("from upstream\n", 1);
    let target = format!("/?url=http://{upstream_addr}/data");

    // denied by default: a prompt 502 from the guest, nothing reaches upstream
    let denied = serve(&format!("{name}-denied"), proxy, &[], &[]);
    let started = Instant::now();
    let response = http::get(denied.addr, &target).unwrap();
    assert_eq!(response.status, 502, "{}", response.text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        denied
            .log()
            .contains("denied (not in WASMHTTP_ALLOWED_OUTBOUND_HOSTS)"),
        "{}",
        denied.log()
    );

    // allowed by host and port
    let allowed_hosts = format!("example.invalid,127.0.0.1:{}", upstream_addr.port());
    let allowed = serve(
        &format!("{name}-allowed"),
        proxy,
        &[],
        &[("WASMHTTP_ALLOWED_OUTBOUND_HOSTS", &allowed_hosts)],
    );
    let response = http::get(allowed.addr, &target).unwrap();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "upstream answered 200: from upstream\n")
    );
    // the same host on another port is still denied
    let other_port = format!("/?url=http://127.0.0.1:{}/", free_port());
    assert_eq!(http::get(allowed.addr, &other_port).unwrap().status, 502);
    assert_eq!(
        upstream_served.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only the allowed request may reach the upstream"
    );
}

#[test]
fn volumes_are_preopened_read_only_ones_stay_read_only_and_nothing_else_is_seen() {
    // a wasi:http 0.2 guest that takes the path as the file's, and a 0.3 one
    // that takes it from `?file=`
    volumes_for("volumes", "files-py", |path| path.to_string());
    volumes_for("volumes-0.3", "service-py", |path| format!("/?file={path}"));
}

fn volumes_for(name: &str, guest: &str, target: fn(&str) -> String) {
    let dir = temp_dir(name);
    let data = dir.0.join("host/data");
    let config = dir.0.join("host/config");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(data.join("hello.txt"), "hello from a volume\n").unwrap();
    std::fs::write(config.join("app.conf"), "mode = test\n").unwrap();
    std::fs::write(dir.0.join("host/outside.txt"), "host secret\n").unwrap();
    let volumes = [
        "--volume".to_string(),
        format!("{}:/data", data.display()),
        "--volume".to_string(),
        format!("{}:/config:ro", config.display()),
    ];
    let volumes: Vec<&str> = volumes.iter().map(String::as_str).collect();
    let served = serve(name, &example(guest), &volumes, &[]);
    let addr = served.addr;

    let read = http::get(addr, &target("/data/hello.txt")).unwrap();
    assert_eq!(
        (read.status, read.text().as_str()),
        (200, "hello from a volume\n")
    );
    let written = http::request(
        addr,
        "PUT",
        &target("/data/new.txt"),
        &[],
        b"written by the guest\n",
    )
    .unwrap();
    assert_eq!(written.status, 201, "{}", written.text());
    assert_eq!(
        std::fs::read_to_string(data.join("new.txt")).unwrap(),
        "written by the guest\n"
    );
    let conf = http::get(addr, &target("/config/app.conf")).unwrap();
    assert_eq!((conf.status, conf.text().as_str()), (200, "mode = test\n"));
    let refused =
        http::request(addr, "PUT", &target("/config/app.conf"), &[], b"changed\n").unwrap();
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(
        std::fs::read_to_string(config.join("app.conf")).unwrap(),
        "mode = test\n"
    );
    for escape in [
        "/data/../outside.txt",
        "/config/../../outside.txt",
        "/etc/passwd",
        "/outside.txt",
    ] {
        let response = http::get(addr, &target(escape)).unwrap();
        assert_ne!(response.status, 200, "{name} {escape}: {}", response.text());
        assert!(!response.text().contains("host secret"), "{escape}");
    }
}

#[test]
fn sockets_only_with_wasmhttp_allow_sockets() {
    let dir = temp_dir("sockets");
    let server = fixture(&dir, "tcp-server");
    let port = free_port().to_string();
    let denied = wasmhttp()
        .arg("serve")
        .arg(&server)
        .args(["--", &port])
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&denied.stdout).contains("refused: create-tcp-socket"),
        "{}",
        String::from_utf8_lossy(&denied.stdout)
    );

    let mut allowed = wasmhttp()
        .arg("serve")
        .arg(&server)
        .args(["--", &port])
        .env("WASMHTTP_ALLOW_SOCKETS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let greeting = http::read_all_once_listening(
        format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(30),
    );
    assert_eq!(greeting, "hello from a wasi:sockets server\n");
    assert!(allowed.wait().unwrap().success());
}

/// A wasi:http 0.3 service (the Python example): with reuse on, one
/// instance serves several requests at once, never more than
/// WASMHTTP_INSTANCE_CONCURRENCY; a trap ends only the instance that
/// trapped; without reuse every request has an instance of its own.
#[test]
fn a_wasi_http_0_3_service_shares_instances_up_to_its_concurrency() {
    let shared = serve(
        "py-0.3-shared",
        &example("service-py"),
        &[],
        &[
            ("WASMHTTP_INSTANCE_REUSE", "1000"),
            ("WASMHTTP_INSTANCE_CONCURRENCY", "4"),
        ],
    );
    let addr = shared.addr;
    let admin = shared.admin;
    let warm = http::get(addr, "/warm").unwrap();
    assert!(warm.text().contains("served 1, 1 at once"), "{warm:?}");
    // 8 requests that each await a clock for 2 s, arriving 100 ms apart:
    // each instance takes up to 4 of them at once, a new one the rest
    let requests: Vec<_> = (0..8)
        .map(|i| {
            std::thread::sleep(Duration::from_millis(100));
            std::thread::spawn(move || http::get(addr, &format!("/c{i}?sleep=2000")))
        })
        .collect();
    let mut most_at_once = 0;
    for request in requests {
        let response = request.join().unwrap().unwrap();
        assert_eq!(response.status, 200, "{response:?}\n{}", shared.log());
        let text = response.text();
        let at_once = support::images::service_py_at_once(&text);
        assert!(at_once <= 4, "an instance served {at_once} at once: {text}");
        most_at_once = most_at_once.max(at_once);
    }
    assert!(most_at_once >= 2, "no instance served two requests at once");
    let made = metric(admin, "wasmhttp_instantiation_duration_seconds_count");
    assert!(
        (2.0..9.0).contains(&made),
        "9 requests, at most 4 at once per instance: {made} instances\n{}",
        shared.log()
    );
    assert!(metric(admin, "wasmhttp_instances_reused_total") >= 1.0);

    // a trap fails its request and ends its instance (the log says why), and
    // is counted; serving goes on
    let trapped = http::get(addr, "/t?fail=1").unwrap();
    assert_eq!(trapped.status, 500, "{trapped:?}");
    shared.wait_for_log("asked to fail", "a 0.3 instance asked to fail");
    assert_eq!(metric(admin, "wasmhttp_guest_traps_total"), 1.0);
    for _ in 0..3 {
        assert_eq!(http::get(addr, "/after").unwrap().status, 200);
    }
    assert!(shared.terminate().success());

    // the default: an instance per request
    let fresh = serve("py-0.3", &example("service-py"), &[], &[]);
    for i in 1..=3 {
        let response = http::get(fresh.addr, "/fresh").unwrap();
        assert!(
            response
                .text()
                .contains("this instance has served 1, 1 at once"),
            "request {i}: {response:?}"
        );
    }
    assert_eq!(metric(fresh.admin, "wasmhttp_instances_reused_total"), 0.0);
    assert!(fresh.terminate().success());
}
