//! Soak: the shim under a private containerd serves a steady load below its
//! capacity, keep-alive and fresh connections mixed, for SOAK_SECONDS (60 in
//! `make test`, 600 with `make soak`). Passes with zero failed requests, the
//! container's memory (RSS summed over its processes) grown by under 10%
//! after the warm-up, and no more open descriptors at the end than after it.
//! Prints a report, and writes it to SOAK_REPORT if that is set.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::containerd::{self, Suite, run_suite};
use support::harness;
use support::http::{self, Connection, free_port};
use support::images;

const CASES: &[harness::Case<Suite>] =
    &[("steady_load_through_the_shim", steady_load_through_the_shim)];

/// Requests per second, in all: far below what even a debug build serves
/// (thousands), so that any failure is the server's fault, not overload.
const RATE: u64 = 200;
const CLIENTS: u64 = 4;
const BODY: &[u8] = &[b'x'; 1024];

fn main() {
    // the newest release only: the soak measures our shim, not each containerd
    let newest = *containerd::versions().last().unwrap();
    run_suite("soak", &[newest], CASES, &[])
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    /// latencies in microseconds, summed and the worst
    micros: AtomicU64,
    worst_micros: AtomicU64,
}

/// One client: a request every CLIENTS/RATE seconds, on one kept-alive
/// connection or on a fresh connection each time.
fn client(addr: SocketAddr, keep_alive: bool, until: Instant, paused: &AtomicBool, tally: &Tally) {
    let period = Duration::from_micros(1_000_000 * CLIENTS / RATE);
    let mut connection: Option<Connection> = None;
    let mut next = Instant::now();
    let mut first_failure = None;
    while Instant::now() < until {
        next += period;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if paused.load(Ordering::SeqCst) {
            connection = connection.filter(|_| keep_alive);
            continue;
        }
        let started = Instant::now();
        let result = match connection.take() {
            Some(c) => Ok(c),
            None => Connection::open(addr),
        }
        .and_then(|mut c| {
            let response = c.send("POST", "/soak", &[], BODY)?;
            if keep_alive {
                connection = Some(c);
            }
            Ok(response)
        });
        match result {
            Ok(response) if response.status == 200 && response.body == BODY => {
                let micros = started.elapsed().as_micros() as u64;
                tally.ok.fetch_add(1, Ordering::Relaxed);
                tally.micros.fetch_add(micros, Ordering::Relaxed);
                tally.worst_micros.fetch_max(micros, Ordering::Relaxed);
            }
            other => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                first_failure.get_or_insert_with(|| format!("{other:?}"));
            }
        }
    }
    if let Some(failure) = first_failure {
        eprintln!("soak: first failure (keep_alive={keep_alive}): {failure}");
    }
}

/// RSS (KiB) and open descriptors summed over the container's processes
/// (the shim, its zygote and the container's init, which serves).
fn usage(s: &Suite, id: &str) -> (u64, usize) {
    let mut rss = 0;
    let mut fds = 0;
    for (pid, _) in s.containerd.shim_processes(Some(id)) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        rss += status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        fds += std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    }
    (rss, fds)
}

/// Stops the load for a moment (kept-alive connections stay open) and reads
/// the container's usage while nothing is in flight.
fn quiet_usage(s: &Suite, id: &str, paused: &AtomicBool) -> (u64, usize) {
    paused.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(500));
    let usage = usage(s, id);
    paused.store(false, Ordering::SeqCst);
    usage
}

fn steady_load_through_the_shim(s: &Suite) {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .map(|v| v.parse().expect("SOAK_SECONDS is a number of seconds"))
        .unwrap_or(60);
    assert!(seconds >= 20, "SOAK_SECONDS must be at least 20");
    let wasm = images::fixture(&s.work, "echo");
    let reference = "wasmhttp-test/soak:1";
    let tar = images::wasmhttp_image(&s.work, &wasm, reference);
    s.containerd
        .ctr_ok(&["images", "import", tar.to_str().unwrap()]);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut task = s.containerd.run(
        "soak",
        &format!("docker.io/{reference}"),
        &[("WASMHTTP_LISTEN", &addr.to_string())],
        &["--memory-limit", &(256u64 << 20).to_string()],
        &[],
    );
    http::wait_until_serving(addr, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", task.output()));

    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let paused = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (paused, tally) = (paused.clone(), tally.clone());
            std::thread::spawn(move || client(addr, i % 2 == 0, until, &paused, &tally))
        })
        .collect();

    // warm-up: pool slots and allocator arenas fill during the first seconds
    let warm_up = Duration::from_secs((seconds / 6).max(10));
    std::thread::sleep(warm_up);
    let (rss_start, fds_start) = quiet_usage(s, "soak", &paused);
    let mut rss_samples = vec![rss_start];
    while Instant::now() + Duration::from_secs(6) < until {
        std::thread::sleep(Duration::from_secs(5));
        rss_samples.push(usage(s, "soak").0);
    }
    for client in clients {
        client.join().unwrap();
    }
    let (rss_end, fds_end) = quiet_usage(s, "soak", &paused);
    let elapsed = started.elapsed().as_secs_f64();
    assert!(task.is_running(), "the container exited\n{}", task.output());
    s.containerd
        .ctr_ok(&["tasks", "kill", "--signal", "SIGTERM", "soak"]);
    let status = task.wait(Duration::from_secs(30)).expect("stopped");
    assert!(status.success(), "{}", task.output());
    s.containerd.assert_cleaned_up("soak");

    let ok = tally.ok.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    let growth = (rss_end as f64 - rss_start as f64) / rss_start as f64 * 100.0;
    let report = serde_json::json!({
        "seconds": seconds,
        "target_rate": RATE,
        "requests_ok": ok,
        "requests_failed": failed,
        "achieved_rate": (ok + failed) as f64 / elapsed,
        "mean_latency_ms": tally.micros.load(Ordering::Relaxed) as f64 / ok.max(1) as f64 / 1e3,
        "worst_latency_ms": tally.worst_micros.load(Ordering::Relaxed) as f64 / 1e3,
        "rss_kib_after_warm_up": rss_start,
        "rss_kib_at_end": rss_end,
        "rss_kib_peak": rss_samples.iter().chain([&rss_end]).max(),
        "rss_growth_percent": growth,
        "fds_after_warm_up": fds_start,
        "fds_at_end": fds_end,
    });
    println!("soak report: {report}");
    if let Ok(path) = std::env::var("SOAK_REPORT") {
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    }
    assert_eq!(failed, 0, "failed requests ({ok} succeeded)");
    assert!(
        ok as f64 >= RATE as f64 * seconds as f64 * 0.8,
        "only {ok} requests in {seconds} s: the load was not the one asked for"
    );
    assert!(
        growth < 10.0,
        "RSS grew by {growth:.1}% ({rss_start} -> {rss_end} KiB)"
    );
    assert!(
        fds_end <= fds_start,
        "open descriptors grew from {fds_start} to {fds_end}"
    );
}
