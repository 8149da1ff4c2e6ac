//! The one deadline of a request (WASMHTTP_REQUEST_TIMEOUT), however its
//! guest runs. A guest that computes never yields to a timer, and a guest
//! that waits (a sleep, a stream) never reaches an epoch check: one instant,
//! enforced both ways, and every way of running a guest uses both.

use std::time::Duration;

use tokio::time::Instant;

use super::TimedOut;
use crate::engine;

#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    pub fn after(timeout: Duration) -> Self {
        Self {
            at: Instant::now() + timeout,
        }
    }

    /// Makes `store`'s guest trap with an interrupt once the deadline has
    /// passed while it computes.
    pub fn arm<T>(&self, store: &mut wasmtime::Store<T>) {
        let left = self.at.saturating_duration_since(Instant::now());
        store.set_epoch_deadline(engine::epoch_ticks(left));
        store.epoch_deadline_trap();
    }

    /// Resolves when the deadline has passed.
    pub fn passed(&self) -> tokio::time::Sleep {
        tokio::time::sleep_until(self.at)
    }

    /// What `work` gives, or [`TimedOut`] if it has not finished by the
    /// deadline (and is dropped).
    pub async fn bound<F: Future>(&self, work: F) -> Result<F::Output, TimedOut> {
        tokio::time::timeout_at(self.at, work)
            .await
            .map_err(|_| TimedOut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_past_the_deadline_is_stopped_there_and_work_before_it_is_not() {
        let started = std::time::Instant::now();
        let deadline = Deadline::after(Duration::from_millis(300));
        assert_eq!(deadline.bound(async { 7 }).await.unwrap(), 7);
        let slow = deadline.bound(tokio::time::sleep(Duration::from_secs(30)));
        assert!(slow.await.is_err());
        let waited = started.elapsed();
        assert!(
            (Duration::from_millis(300)..Duration::from_secs(10)).contains(&waited),
            "{waited:?}"
        );
    }
}
