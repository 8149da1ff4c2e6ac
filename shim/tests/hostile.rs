//! Hostile clients and misbehaving guests against `wasmhttp serve` (the
//! shim runs the same serving code): whatever one request does, it costs only
//! that request, the server says what happened, and the next request is served.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::eventually::{eventually, until};
use support::http;
use support::served::{Served, fixture, metric, serve, temp_dir, wait_for_metric};

/// Sends `bytes` on a fresh connection (optionally closing the sending side
/// after them) and returns all the server sent until it closed the connection,
/// or `None` if it was still open after `wait`.
fn raw(addr: SocketAddr, bytes: &[u8], close_after: bool, wait: Duration) -> Option<String> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(bytes).unwrap();
    if close_after {
        stream.shutdown(Shutdown::Write).unwrap();
    }
    read_until_closed(&mut stream, wait)
}

fn read_until_closed(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    let mut received = Vec::new();
    let mut buffer = [0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => return Some(String::from_utf8_lossy(&received).into_owned()),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(String::from_utf8_lossy(&received).into_owned());
            }
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            Err(err) => panic!("reading from the server: {err}"),
        }
    }
}

/// Closes with a TCP reset rather than a FIN: the abrupt end of a client
/// that crashed or lost its network.
fn reset(stream: TcpStream) {
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let linger = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket of ours and a properly sized option value.
    let rc = unsafe {
        nix::libc::setsockopt(
            fd,
            nix::libc::SOL_SOCKET,
            nix::libc::SO_LINGER,
            (&linger as *const nix::libc::linger).cast(),
            std::mem::size_of::<nix::libc::linger>() as u32,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
    drop(stream);
}

/// How many guest instances the server has made: one per request that
/// reached the guest.
fn guest_calls(served: &Served) -> f64 {
    metric(
        served.admin,
        "wasmhttp_instantiation_duration_seconds_count",
    )
}

/// Descriptors the server holds once it has served a request (the first
/// one opens a few for good, /proc/self/pagemap among them).
fn settled_fds(served: &Served) -> usize {
    assert_eq!(http::get(served.addr, "/").unwrap().status, 200);
    wait_for_metric(served.admin, "wasmhttp_requests_in_flight", 0.0);
    std::thread::sleep(Duration::from_millis(100));
    open_fds(served)
}

/// Waits until the server holds no more descriptors than `before`.
fn wait_for_fds_back(served: &Served, before: usize) {
    until(
        Duration::from_secs(5),
        &format!("the server is back to {before} descriptors"),
        || open_fds(served) <= before,
        || format!("{} open", open_fds(served)),
    );
}

fn open_fds(served: &Served) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", served.child.id()))
        .unwrap()
        .count()
}

fn status_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[test]
fn malformed_requests_get_400_or_431_and_never_reach_the_guest() {
    let dir = temp_dir("malformed");
    let served = serve("malformed", &fixture(&dir, "echo"), &[], &[]);
    let addr = served.addr;
    let refused: &[(&str, &[u8], &str)] = &[
        (
            "two different Content-Lengths",
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
            "HTTP/1.1 400",
        ),
        (
            "a Content-Length list",
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5, 6\r\n\r\nhello!",
            "HTTP/1.1 400",
        ),
        (
            "a transfer coding other than chunked last",
            b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked, identity\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            "an invalid method",
            b"G@T / HTTP/1.1\r\nhost: x\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            "a space in the target",
            b"GET /a b HTTP/1.1\r\nhost: x\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            "control bytes as the target",
            b"GET \x01\x02 HTTP/1.1\r\nhost: x\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            "an unknown HTTP version",
            b"GET / HTTP/9.1\r\nhost: x\r\n\r\n",
            "HTTP/1.1 400",
        ),
        ("no Host", b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
        (
            "two Hosts",
            b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            "a space in a header name",
            b"GET / HTTP/1.1\r\nhost: a\r\nx y: z\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            "an obsolete folded header",
            b"GET / HTTP/1.1\r\nhost: a\r\nx: y\r\n  z\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            "a NUL in a header value",
            b"GET / HTTP/1.1\r\nhost: a\r\nx: y\x00z\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            "over 100 header fields",
            &[
                b"GET / HTTP/1.1\r\nhost: a\r\n".as_slice(),
                &b"x-dup: v\r\n".repeat(101),
                b"\r\n",
            ]
            .concat(),
            "HTTP/1.1 431",
        ),
        (
            "a 70 KB target",
            &[
                b"GET /".as_slice(),
                &b"a".repeat(70_000),
                b" HTTP/1.1\r\nhost: x\r\n\r\n",
            ]
            .concat(),
            "HTTP/1.1 431",
        ),
    ];
    let calls_before = guest_calls(&served);
    for (what, request, expected) in refused {
        // the server answers and closes; nothing of the request is kept
        let answer = raw(addr, request, false, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{what}: the connection was left open"));
        assert!(
            answer.is_empty() || status_line(&answer).starts_with(expected),
            "{what}: expected {expected} or a closed connection, got {:?}",
            status_line(&answer)
        );
    }
    assert_eq!(
        guest_calls(&served),
        calls_before,
        "a malformed request reached the guest"
    );
    assert_eq!(
        metric(
            served.admin,
            "wasmhttp_rejections_total{reason=\"bad_request\"}"
        ),
        2.0,
        "no Host, two Hosts"
    );

    // Content-Length and Transfer-Encoding together (request smuggling): the
    // body is read as chunked, and the connection closes after the response,
    // so a request hidden behind it is never read
    let answer = raw(
        addr,
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n",
        false,
        Duration::from_secs(5),
    )
    .expect("a connection with a doubly framed body was kept open");
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(!answer.contains("smuggled"), "{answer}");
    assert!(answer.ends_with("5\r\nhello\r\n0\r\n\r\n"), "{answer}");

    // duplicated header fields within the limit reach the guest, in order
    let mut headers = Vec::new();
    for i in 0..20 {
        headers.push(("x-dup", format!("v{i}")));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let echoed = http::request(addr, "GET", "/", &headers, b"").unwrap();
    assert_eq!(echoed.status, 200);
    let seen: Vec<String> = (0..20).map(|i| format!("x-dup: v{i}")).collect();
    assert_eq!(
        echoed
            .all("x-echo-header")
            .into_iter()
            .filter(|h| h.starts_with("x-dup"))
            .collect::<Vec<_>>(),
        seen
    );
    assert_eq!(
        http::get(addr, "/").unwrap().status,
        200,
        "the server must go on"
    );
}

#[test]
fn bodies_shorter_or_longer_than_announced() {
    let dir = temp_dir("framing");
    let served = serve(
        "framing",
        &fixture(&dir, "echo"),
        &[],
        &[
            ("WASMHTTP_REQUEST_TIMEOUT", "2s"),
            ("WASMHTTP_MAX_CONCURRENCY", "1"),
        ],
    );
    let addr = served.addr;

    // Longer: the extra bytes are not this request's body; they are read as
    // the next request, which is malformed, so 400 and the connection closes.
    let answer = raw(
        addr,
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhelloGARBAGE\r\n\r\n",
        false,
        Duration::from_secs(5),
    )
    .expect("the connection stays open after a garbage request");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (first, rest) = answer.split_once("\r\n\r\n").unwrap();
    assert!(first.contains("x-echo-method: POST"), "{first}");
    assert!(
        rest.starts_with("5\r\nhello\r\n0\r\n\r\n"),
        "the body is exactly the announced 5 bytes: {rest:?}"
    );
    assert!(rest.contains("HTTP/1.1 400"), "{rest}");

    // Shorter, and the client then closes its side: the guest's body stream
    // ends in an error, the exchange ends at once, the slot is free again.
    let started = Instant::now();
    let answer = raw(
        addr,
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nhello",
        true,
        Duration::from_secs(5),
    );
    assert!(
        answer.is_some(),
        "a half-closed short body left the connection open"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(http::get(addr, "/").unwrap().status, 200);

    // Shorter, and the client stays silent: the request timeout ends it
    // (the head was sent, so the connection is cut rather than answered 504).
    let started = Instant::now();
    let answer = raw(
        addr,
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nhello",
        false,
        Duration::from_secs(6),
    )
    .expect("a stalled short body was never ended");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(
        !answer.ends_with("0\r\n\r\n"),
        "a cut body looked complete: {answer:?}"
    );
    assert_eq!(http::get(addr, "/").unwrap().status, 200);

    // Broken chunked framing: the guest sees a stream error; the connection
    // does not survive the request.
    let answer = raw(
        addr,
        b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        false,
        Duration::from_secs(5),
    );
    assert!(
        answer.is_some(),
        "a connection with broken framing was kept"
    );
    assert_eq!(
        http::get(addr, "/").unwrap().status,
        200,
        "the server must go on"
    );
    served.wait_for_log("the request timeout", "a body cut by the timeout");
}

#[test]
fn abrupt_disconnects_free_their_slot() {
    let dir = temp_dir("disconnects");
    let served = serve(
        "disconnects",
        &fixture(&dir, "misbehave"),
        &[],
        &[("WASMHTTP_MAX_CONCURRENCY", "1")],
    );
    let addr = served.addr;
    let fds_before = settled_fds(&served);

    // mid-request: headers and half the announced body, then a reset
    for _ in 0..20 {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n")
            .unwrap();
        stream.write_all(&[b'a'; 500]).unwrap();
        reset(stream);
    }
    // mid-response: a flood of a body, a little of it read, then a reset
    for _ in 0..5 {
        wait_for_free_slot(addr);
        // the probe's own instance may hold the slot a moment after its
        // response ended: a 503 here means "try again", anything else fails
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut stream = loop {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .write_all(b"GET /flood HTTP/1.1\r\nhost: x\r\n\r\n")
                .unwrap();
            let mut status = [0u8; 12];
            stream.read_exact(&mut status).unwrap();
            if &status == b"HTTP/1.1 200" {
                break stream;
            }
            assert_eq!(&status, b"HTTP/1.1 503");
            assert!(Instant::now() < deadline, "the slot was never given back");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut got = vec![0u8; 256 * 1024];
        stream.read_exact(&mut got).unwrap();
        reset(stream);
        // with one slot, 200 (not 503) means the flooding guest was stopped
        wait_for_free_slot(addr);
    }
    wait_for_metric(served.admin, "wasmhttp_requests_in_flight", 0.0);
    wait_for_fds_back(&served, fds_before);
}

/// Waits until a request is answered 200 rather than 503 (the server's one
/// slot is free again).
fn wait_for_free_slot(addr: SocketAddr) {
    eventually(
        Duration::from_secs(5),
        "the slot is given back",
        || match http::get(addr, "/").unwrap().status {
            200 => Ok(()),
            503 => Err("503".into()),
            other => panic!("{other}: neither served nor shed"),
        },
    );
}

#[test]
fn thousands_of_idle_connections_neither_block_others_nor_stay() {
    const IDLE: usize = 2000;
    let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    let wanted = (IDLE as u64 * 2 + 1000).min(limit.1);
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, wanted, limit.1)
        .unwrap();
    assert!(
        wanted >= IDLE as u64 * 2 + 1000,
        "this test needs {} open files; the hard limit is {}",
        IDLE * 2 + 1000,
        limit.1
    );
    let dir = temp_dir("idle");
    // spawned after the limit was raised: the server inherits it
    let served = serve(
        "idle",
        &fixture(&dir, "hello"),
        &[],
        &[("WASMHTTP_HEADER_TIMEOUT", "2s")],
    );
    let addr = served.addr;
    let fds_before = settled_fds(&served);
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let stream = TcpStream::connect(addr).unwrap();
        if i % 2 == 0 {
            // half send nothing, half an unfinished request line
            (&stream).write_all(b"GET / HT").unwrap();
        }
        idle.push(stream);
    }
    // the admin listener's connections are held to the same limits
    for _ in 0..200 {
        idle.push(TcpStream::connect(served.admin).unwrap());
    }
    let started = Instant::now();
    let response = http::get(addr, "/").unwrap();
    assert_eq!(response.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{IDLE} idle connections slowed a request to {:?}",
        started.elapsed()
    );
    // each idle connection is closed by the server within the header timeout
    let deadline = Instant::now() + Duration::from_secs(10);
    for stream in &mut idle {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            read_until_closed(stream, left.max(Duration::from_millis(1))).is_some(),
            "an idle connection outlived WASMHTTP_HEADER_TIMEOUT"
        );
    }
    drop(idle);
    wait_for_fds_back(&served, fds_before);
    assert_eq!(http::get(addr, "/").unwrap().status, 200);
}

#[test]
fn misbehaving_guests_cost_only_their_request() {
    let dir = temp_dir("misbehave");
    let served = serve(
        "misbehave",
        &fixture(&dir, "misbehave"),
        &[],
        &[
            ("WASMHTTP_REQUEST_TIMEOUT", "2s"),
            ("WASMHTTP_MAX_CONCURRENCY", "1"),
        ],
    );
    let addr = served.addr;
    let ok = |what: &str| {
        let response =
            http::get(addr, "/").unwrap_or_else(|e| panic!("after {what}: {e}\n{}", served.log()));
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "misbehave fixture: fine\n"),
            "after {what}"
        );
    };

    // unbounded recursion: the stack overflow is a trap, so a 500
    let response = http::get(addr, "/recurse").unwrap();
    assert_eq!(response.status, 500);
    served.wait_for_log("call stack exhausted", "unbounded recursion");
    ok("a stack overflow");

    // half a body, then a trap: the client must not take it for a whole body
    let answer = raw(
        addr,
        b"GET /half HTTP/1.1\r\nhost: x\r\nx-request-id: half-1\r\n\r\n",
        false,
        Duration::from_secs(5),
    )
    .expect("the connection of a trapped guest was left open");
    assert!(
        !answer.ends_with("0\r\n\r\n"),
        "a body cut by a trap ended like a complete one: {answer:?}"
    );
    served.wait_for_log(
        "GET /half [request half-1]: the guest failed while streaming the response body",
        "a trap mid-body",
    );
    ok("a trap mid-body");

    // head and part of a body, then sleeping forever: cut at the timeout
    let started = Instant::now();
    let answer = raw(
        addr,
        b"GET /stall HTTP/1.1\r\nhost: x\r\n\r\n",
        false,
        Duration::from_secs(6),
    )
    .expect("a stalled body was never cut");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!answer.ends_with("0\r\n\r\n"), "{answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    ok("a guest asleep mid-body");

    // a multi-GiB body read to the end of the timeout: streamed with bounded
    // memory (never buffered), cut at the timeout, slot freed
    let rss_before = rss_kib(&served);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /flood HTTP/1.1\r\nhost: x\r\nx-request-id: flood-1\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(6)))
        .unwrap();
    let mut total = 0usize;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(err) => panic!("reading the flood: {err}"),
        }
    }
    assert!(total > 16 << 20, "only {total} bytes of the flood arrived");
    let grown = rss_kib(&served).saturating_sub(rss_before);
    assert!(
        grown < 64 * 1024,
        "the server grew by {grown} KiB while streaming"
    );
    served.wait_for_log(
        "GET /flood [request flood-1]: the guest failed while streaming the response body, which was cut: the guest was stopped at the request timeout",
        "a flood of a body",
    );
    ok("a flood of a body");

    // a guest that sleeps before answering: 504 at the timeout
    let started = Instant::now();
    let slow = serve(
        "misbehave-slow",
        &fixture(&dir, "slow"),
        &[],
        &[("WASMHTTP_REQUEST_TIMEOUT", "1s")],
    );
    let response = http::get(slow.addr, "/sleep/999999999").unwrap();
    assert_eq!(response.status, 504);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(http::get(slow.addr, "/sleep/1").unwrap().status, 200);

    wait_for_metric(served.admin, "wasmhttp_requests_in_flight", 0.0);
    assert_eq!(metric(served.admin, "wasmhttp_guest_traps_total"), 2.0);
    assert_eq!(metric(served.admin, "wasmhttp_request_timeouts_total"), 2.0);
}

fn rss_kib(served: &Served) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", served.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn keep_alive_connections_close_when_idle_but_never_mid_request() {
    let dir = temp_dir("idle-timeout");
    let served = serve(
        "idle-timeout",
        &fixture(&dir, "slow"),
        &[],
        &[
            ("WASMHTTP_IDLE_TIMEOUT", "1s"),
            ("WASMHTTP_HEADER_TIMEOUT", "1s"),
        ],
    );
    let mut stream = TcpStream::connect(served.addr).unwrap();
    // a request that takes longer than both timeouts is not cut: the
    // connection is busy, not idle
    stream
        .write_all(b"GET /sleep/1500 HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut stream, Duration::from_secs(5))
        .expect("the idle connection was never closed");
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("slow fixture: done\n") && answer.ends_with("0\r\n\r\n"),
        "{answer}"
    );
    // then, idle, it is closed about WASMHTTP_IDLE_TIMEOUT after the response
    assert!(
        took >= Duration::from_millis(2400) && took < Duration::from_millis(3500),
        "closed after {took:?}"
    );
}
