//! The limits every guest must be held to, as one table of cases × guests,
//! run through `wasmhttp serve` (tests/limits.rs) and through the shim under
//! containerd (tests/containerd.rs). The guests are a WAT fixture, the C CGI
//! program as a module and as a component (WASMHTTP_MODE=cgi), and the real
//! ones users write: componentize-py and componentize-js components
//! instantiate a dozen and more core instances each where a fixture has one,
//! which is what a pool sized for fixtures got wrong. The WASI 0.3 Python
//! example runs twice: an instance per request, and instances shared by up
//! to 8 requests at once.
//!
//! One server per guest serves every case with the settings below, the
//! cases in order, draining last.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::http::{self, Response};

/// The settings every server of the table runs with.
pub const SETTINGS: &[(&str, &str)] = &[
    ("WASMHTTP_MAX_CONCURRENCY", "16"),
    ("WASMHTTP_REQUEST_TIMEOUT", "5s"),
    ("WASMHTTP_MAX_INSTANCE_MEMORY", "96Mi"),
];
const CAP: usize = 16;
/// Requests sent at once against the cap of 16.
const OFFERED: usize = 20;
const TIMEOUT: Duration = Duration::from_secs(5);

/// A guest of the table and how to ask it for what the cases need.
pub struct Guest {
    pub name: &'static str,
    pub component: PathBuf,
    /// A request for it to answer after `ms` milliseconds.
    pub sleep: fn(u64) -> String,
    /// A request for it to hold `mib` MiB while answering; `None` for the
    /// WAT fixture, whose memory limit serve.rs and the containerd suite
    /// test with the grow-memory fixture.
    pub allocate: Option<fn(u64) -> String>,
    /// What every answer of its carries.
    pub greeting: &'static str,
    /// Settings of its own, beside [`SETTINGS`].
    pub settings: &'static [(&'static str, &'static str)],
}

/// Every guest of the table: the WAT fixture (`wat_slow`), the Python and
/// JavaScript examples, and the C CGI program as a preview 1 module
/// (`cgi_module`) and as a component (`cgi_component`).
pub fn guests(wat_slow: PathBuf, cgi_module: PathBuf, cgi_component: PathBuf) -> Vec<Guest> {
    const CGI: &[(&str, &str)] = &[("WASMHTTP_MODE", "cgi")];
    vec![
        Guest {
            name: "wat",
            component: wat_slow,
            sleep: |ms| format!("/sleep/{ms}"),
            allocate: None,
            greeting: "slow fixture: done",
            settings: &[],
        },
        Guest {
            name: "cgi-module",
            component: cgi_module,
            sleep: |ms| format!("/limits?sleep={ms}"),
            allocate: Some(|mib| format!("/limits?allocate={mib}")),
            greeting: "cgi fixture: limits",
            settings: CGI,
        },
        Guest {
            name: "cgi-component",
            component: cgi_component,
            sleep: |ms| format!("/limits?sleep={ms}"),
            allocate: Some(|mib| format!("/limits?allocate={mib}")),
            greeting: "cgi fixture: limits",
            settings: CGI,
        },
        Guest {
            name: "py",
            component: super::images::example("hello-py"),
            sleep: |ms| format!("/limits?sleep={ms}"),
            allocate: Some(|mib| format!("/limits?allocate={mib}")),
            greeting: "Hello from Python",
            settings: &[],
        },
        Guest {
            name: "py-0.3",
            component: super::images::example("service-py"),
            sleep: |ms| format!("/limits?sleep={ms}"),
            allocate: Some(|mib| format!("/limits?allocate={mib}")),
            greeting: "Hello from Python on wasi:http 0.3",
            settings: &[],
        },
        Guest {
            // one instance serving up to 8 of the table's requests at once
            name: "py-0.3-shared",
            component: super::images::example("service-py"),
            sleep: |ms| format!("/limits?sleep={ms}"),
            allocate: Some(|mib| format!("/limits?allocate={mib}")),
            greeting: "Hello from Python on wasi:http 0.3",
            settings: &[
                ("WASMHTTP_INSTANCE_REUSE", "1000"),
                ("WASMHTTP_INSTANCE_CONCURRENCY", "8"),
            ],
        },
        Guest {
            name: "js",
            component: super::images::example("hello-js"),
            sleep: |ms| format!("/limits?sleep={ms}"),
            allocate: Some(|mib| format!("/limits?allocate={mib}")),
            greeting: "Hello from JavaScript",
            settings: &[],
        },
    ]
}

/// A server of one guest with [`SETTINGS`], however it runs.
pub trait Server {
    fn addr(&self) -> SocketAddr;
    /// Its log, for assertion messages.
    fn output(&self) -> String;
    /// SIGTERM; returns once it exited, having checked it exited 0.
    fn stop(self: Box<Self>);
}

/// Runs every case of the table against `server`, serving `guest`.
pub fn run_table<'a>(guest: &Guest, server: Box<dyn Server + 'a>) {
    println!("limits[{}]: cap", guest.name);
    sheds_exactly_what_exceeds_the_cap(guest, &*server);
    println!("limits[{}]: timeout", guest.name);
    answers_504_at_the_timeout_then_serves(guest, &*server);
    if let Some(allocate) = guest.allocate {
        println!("limits[{}]: memory", guest.name);
        a_request_over_the_memory_cap_fails_alone(guest, allocate, &*server);
    }
    println!("limits[{}]: drain", guest.name);
    sigterm_drains_slow_requests(guest, server);
}

fn ok(guest: &Guest, response: &Response) -> bool {
    response.status == 200 && response.text().contains(guest.greeting)
}

fn assert_serves(guest: &Guest, server: &dyn Server, context: &str) {
    let response = http::get(server.addr(), &(guest.sleep)(0))
        .unwrap_or_else(|err| panic!("{}: {context}: {err}\n{}", guest.name, server.output()));
    assert!(
        ok(guest, &response),
        "{}: {context}: {response:?}\n{}",
        guest.name,
        server.output()
    );
}

/// 20 requests that each take 3 s, against a cap of 16: exactly 16 answered
/// 200 and 4 shed with 503 and Retry-After — never a 500 because the
/// instance pool ran out first.
fn sheds_exactly_what_exceeds_the_cap(guest: &Guest, server: &dyn Server) {
    let addr = server.addr();
    let path = (guest.sleep)(3000);
    let started = Instant::now();
    let requests: Vec<_> = (0..OFFERED)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || http::get(addr, &path))
        })
        .collect();
    let responses: Vec<Response> = requests
        .into_iter()
        .map(|request| {
            request
                .join()
                .unwrap()
                .unwrap_or_else(|err| panic!("{}: a request failed: {err}", guest.name))
        })
        .collect();
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    let served = responses.iter().filter(|r| ok(guest, r)).count();
    let shed: Vec<&Response> = responses.iter().filter(|r| r.status == 503).collect();
    assert_eq!(
        (served, shed.len()),
        (CAP, OFFERED - CAP),
        "{}: statuses {statuses:?} (the 20 requests took {:?})\n{}",
        guest.name,
        started.elapsed(),
        server.output()
    );
    for response in shed {
        assert_eq!(response.header("retry-after"), Some("1"), "{response:?}");
    }
    assert_serves(guest, server, "after shedding");
}

/// A request that would take longer than WASMHTTP_REQUEST_TIMEOUT is
/// answered 504 at the timeout, and the next request is served.
fn answers_504_at_the_timeout_then_serves(guest: &Guest, server: &dyn Server) {
    let started = Instant::now();
    let response = http::get(server.addr(), &(guest.sleep)(60_000)).unwrap();
    let took = started.elapsed();
    assert_eq!(
        response.status,
        504,
        "{}: {response:?}\n{}",
        guest.name,
        server.output()
    );
    assert!(
        took >= TIMEOUT && took < TIMEOUT + Duration::from_secs(3),
        "{}: the 504 came after {took:?}, the timeout is {TIMEOUT:?}",
        guest.name
    );
    assert_serves(guest, server, "after a timeout");
}

/// Holding more than WASMHTTP_MAX_INSTANCE_MEMORY fails that request (500),
/// while holding less is served, before and after.
fn a_request_over_the_memory_cap_fails_alone(
    guest: &Guest,
    allocate: fn(u64) -> String,
    server: &dyn Server,
) {
    let addr = server.addr();
    let small = http::get(addr, &allocate(8)).unwrap();
    assert!(
        ok(guest, &small),
        "{}: 8 MiB under a 96 MiB cap: {small:?}\n{}",
        guest.name,
        server.output()
    );
    let large = http::get(addr, &allocate(256)).unwrap();
    assert_eq!(
        large.status,
        500,
        "{}: 256 MiB over a 96 MiB cap: {large:?}\n{}",
        guest.name,
        server.output()
    );
    assert_serves(guest, server, "after a request over the memory cap");
}

/// SIGTERM with slow requests in flight: each is answered in full, then the
/// server exits 0.
fn sigterm_drains_slow_requests<'a>(guest: &Guest, server: Box<dyn Server + 'a>) {
    let addr = server.addr();
    let path = (guest.sleep)(1500);
    let requests: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || http::get(addr, &path))
        })
        .collect();
    // every request admitted before the signal
    std::thread::sleep(Duration::from_millis(500));
    server.stop();
    for request in requests {
        let response = request
            .join()
            .unwrap()
            .unwrap_or_else(|err| panic!("{}: a request in flight failed: {err}", guest.name));
        assert!(ok(guest, &response), "{}: {response:?}", guest.name);
    }
}
