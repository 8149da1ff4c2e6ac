//! Why a guest run ends without an answer of its own: the deadline, or no
//! room for another instance. Everything else is the guest's own failure.

/// A guest stopped by its epoch deadline (WASMHTTP_REQUEST_TIMEOUT).
#[derive(Debug)]
pub struct TimedOut;

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the guest was stopped at the request timeout")
    }
}

impl std::error::Error for TimedOut {}

/// No room was left in the instance pool for another instance (all its
/// slots held by requests, warm instances, or guests still being stopped):
/// the request is shed like one over WASMHTTP_MAX_CONCURRENCY.
#[derive(Debug)]
pub struct PoolExhausted(pub String);

impl std::fmt::Display for PoolExhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no room for another instance: {}", self.0)
    }
}

impl std::error::Error for PoolExhausted {}

/// Turns a guest call's error into [`TimedOut`] when the epoch deadline
/// stopped it (callers answer 504 rather than 500), and into
/// [`PoolExhausted`] when no instance could be made (503, not 500).
pub fn classify(err: wasmtime::Error) -> anyhow::Error {
    if err.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
        anyhow::Error::new(TimedOut)
    } else if let Some(full) = err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        anyhow::Error::new(PoolExhausted(full.to_string()))
    } else {
        anyhow::Error::from(err)
    }
}

/// Whether `err` is a guest's own failure (a trap, an error it returned):
/// not its timeout, and not a request it never got to run.
pub fn is_guest_fault(err: &anyhow::Error) -> bool {
    !err.is::<TimedOut>() && !err.is::<PoolExhausted>()
}
