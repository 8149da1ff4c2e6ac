//! The small test harness of the suites that share one expensive fixture (a
//! private containerd): for each variant of the fixture (each containerd
//! release), cases run in order, a failing case does not stop the others,
//! teardown always runs and reports leaks, and the summary line is libtest's.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

pub type Case<S> = (&'static str, fn(&S));

/// Runs `cases` (those whose name contains one of the non-flag arguments,
/// or all without any) against the suite
/// `start` builds for each of `variants`, then `teardown`, which returns
/// anything it found leaked. A failure is named with its variant.
///
/// The cases named in `ends_only` test what the shim does whatever runs it
/// (its limits, its platform services), and cost minutes: they run on the
/// first and the last variant (the oldest and newest containerd), and on a
/// variant between them are said as ignored, with why.
pub fn run<V: std::fmt::Display, S>(
    variants: &[V],
    cases: &[Case<S>],
    ends_only: &[&str],
    start: impl Fn(&V) -> S,
    log_tail: impl Fn(&S) -> String,
    teardown: impl Fn(S) -> Vec<String>,
) -> ! {
    for name in ends_only {
        assert!(
            cases.iter().any(|(case, _)| case == name),
            "{name} is not a case of this suite"
        );
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<_> = cases
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", selected.len() * variants.len());

    let mut failed = Vec::new();
    let mut passed = 0;
    let mut ignored = 0;
    for (index, variant) in variants.iter().enumerate() {
        println!("\n{variant}");
        let suite = start(variant);
        let mut failed_here = Vec::new();
        let at_an_end = index == 0 || index + 1 == variants.len();
        for (name, case) in &selected {
            if !at_an_end && ends_only.contains(name) {
                println!(
                    "test {name} [{variant}] ... ignored (the shim's own behaviour: run on \
                     the oldest and newest only)"
                );
                ignored += 1;
                continue;
            }
            let started = Instant::now();
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| case(&suite)));
            let took = started.elapsed().as_secs_f64();
            if result.is_ok() {
                println!("test {name} [{variant}] ... ok ({took:.1}s)");
                passed += 1;
            } else {
                println!("test {name} [{variant}] ... FAILED ({took:.1}s)");
                failed_here.push(format!("{name} [{variant}]"));
            }
        }
        let log = log_tail(&suite);
        let leaks = teardown(suite);
        if !leaks.is_empty() {
            println!("still running after every case had cleaned up on {variant}: {leaks:?}");
            failed_here.push(format!("teardown [{variant}]"));
        }
        if !failed_here.is_empty() {
            println!("\nfailures on {variant}: {failed_here:?}\n--- {variant} log (tail)\n{log}");
        }
        failed.extend(failed_here);
    }

    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    if !failed.is_empty() {
        println!("\nfailures:\n    {}", failed.join("\n    "));
    }
    println!(
        "\ntest result: {verdict}. {passed} passed; {} failed; {ignored} ignored; 0 measured; 0 filtered out\n",
        failed.len()
    );
    std::process::exit(if failed.is_empty() { 0 } else { 1 });
}
