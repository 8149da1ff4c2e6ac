//! Waiting for the system under test to get somewhere, bounded in time: the
//! one polling loop of the suites.

use std::time::{Duration, Instant};

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(20);

/// Tries `attempt` until it succeeds, and returns what it gave; fails the
/// test after `within` with `what` and the last state `attempt` reported.
/// `attempt` may fail the test itself when waiting longer is pointless (the
/// process it waits for has exited, say).
pub fn eventually<T>(
    within: Duration,
    what: &str,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let state = match attempt() {
            Ok(done) => return done,
            Err(state) => state,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; last seen: {state}"
        );
        std::thread::sleep(POLL);
    }
}

/// [`eventually`] for a condition; `state` says what was seen instead.
pub fn until(
    within: Duration,
    what: &str,
    mut holds: impl FnMut() -> bool,
    state: impl Fn() -> String,
) {
    eventually(within, what, || if holds() { Ok(()) } else { Err(state()) })
}
