//! The small test harness of the suites that share one expensive fixture (a
//! private containerd): cases run in order, a failing case does not stop the
//! others, teardown always runs and reports leaks, and the summary line is
//! libtest's.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

pub type Case<S> = (&'static str, fn(&S));

/// Runs `cases` (filtered by the first non-flag argument) against the suite
/// `start` builds, then `teardown`, which returns anything it found leaked.
pub fn run<S>(
    cases: &[Case<S>],
    start: impl FnOnce() -> S,
    log_tail: impl Fn(&S) -> String,
    teardown: impl FnOnce(S) -> Vec<String>,
) -> ! {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let selected: Vec<_> = cases
        .iter()
        .filter(|(name, _)| filter.as_ref().is_none_or(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let suite = start();

    let mut failed = Vec::new();
    for (name, case) in &selected {
        let started = Instant::now();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| case(&suite)));
        let took = started.elapsed().as_secs_f64();
        if result.is_ok() {
            println!("test {name} ... ok ({took:.1}s)");
        } else {
            println!("test {name} ... FAILED ({took:.1}s)");
            failed.push(*name);
        }
    }

    let log = log_tail(&suite);
    let leaks = teardown(suite);
    if !leaks.is_empty() {
        println!("still running after every case had cleaned up: {leaks:?}");
        failed.push("teardown");
    }
    if !failed.is_empty() {
        println!("\nfailures: {failed:?}\n--- containerd log (tail)\n{log}");
    }
    let passed = selected.len() - failed.iter().filter(|f| **f != "teardown").count();
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {} failed; 0 ignored; 0 measured; 0 filtered out\n",
        failed.len()
    );
    std::process::exit(if failed.is_empty() { 0 } else { 1 });
}
