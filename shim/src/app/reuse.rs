//! WASMHTTP_INSTANCE_REUSE: an instance that answered cleanly may serve up
//! to n requests in sequence, trading per-request isolation for speed. The
//! policy (keep it? expired?) is apart from the pool that holds the warm
//! instances, so each can be read, and tested, on its own.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::ServerState;

/// A warm instance unused this long is dropped, giving its memory back.
pub const WARM_IDLE_LIMIT: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug)]
pub struct ReusePolicy {
    /// Requests one instance may serve; 1 means a fresh one every time.
    max_requests: u32,
}

impl ReusePolicy {
    pub fn new(max_requests: u32) -> Self {
        Self { max_requests }
    }

    pub fn enabled(&self) -> bool {
        self.max_requests > 1
    }

    /// Whether an instance that has now served `served` requests, the last
    /// one cleanly, may serve another. Only if nothing of its requests
    /// outlives them in the instance (`idle`): a response never set, a body
    /// never finished, a stream left open would otherwise hang until the
    /// instance is dropped, and the client with it. Not while draining.
    pub fn keep(&self, served: u32, idle: bool, draining: bool) -> bool {
        served < self.max_requests && idle && !draining
    }

    /// Whether an instance kept at `since` has waited too long for its next
    /// request.
    pub fn expired(&self, since: Instant, now: Instant) -> bool {
        now.saturating_duration_since(since) >= WARM_IDLE_LIMIT
    }
}

/// An instance waiting for its next request.
pub struct Warm<I> {
    pub instance: I,
    pub served: u32,
    since: Instant,
}

/// The warm instances. Never more than the concurrency cap exist: a new
/// instance is made only when none is waiting here.
pub struct WarmPool<I> {
    idle: Mutex<Vec<Warm<I>>>,
    policy: ReusePolicy,
    state: Arc<ServerState>,
}

impl<I: Send + 'static> WarmPool<I> {
    /// The pool, and (when reuse is on) a task that drops expired instances
    /// for as long as the pool exists.
    pub fn start(policy: ReusePolicy, state: Arc<ServerState>) -> Arc<Self> {
        let pool = Arc::new(Self {
            idle: Mutex::default(),
            policy,
            state,
        });
        if policy.enabled() {
            let pool = Arc::downgrade(&pool);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(WARM_IDLE_LIMIT / 5);
                loop {
                    tick.tick().await;
                    let Some(pool) = pool.upgrade() else { break };
                    pool.drop_expired(Instant::now());
                }
            });
        }
        pool
    }

    /// The most recently used instance (its memory the most likely in cache).
    pub fn take(&self) -> Option<Warm<I>> {
        // a fresh instance for every request: nothing to look for, no lock
        if !self.policy.enabled() {
            return None;
        }
        let mut idle = self.idle.lock().unwrap();
        let warm = idle.pop();
        self.count(&idle);
        warm
    }

    /// Keeps `instance`, which has served `served` requests, the last one
    /// cleanly, if the policy allows; otherwise hands it back to be dropped.
    /// `is_idle` looks through the instance's resources, so it is asked only
    /// when reuse is on (not on every request of the default).
    pub fn offer(
        &self,
        mut instance: I,
        served: u32,
        is_idle: impl FnOnce(&mut I) -> bool,
    ) -> Option<I> {
        let draining = self.state.is_draining();
        let idle = self.policy.enabled() && is_idle(&mut instance);
        if !self.policy.keep(served, idle, draining) {
            return Some(instance);
        }
        let mut warm = self.idle.lock().unwrap();
        warm.push(Warm {
            instance,
            served,
            since: Instant::now(),
        });
        self.count(&warm);
        None
    }

    fn count(&self, idle: &[Warm<I>]) {
        self.state.metrics.set_warm_instances(idle.len());
    }

    pub fn drop_expired(&self, now: Instant) {
        let expired: Vec<Warm<I>> = {
            let mut idle = self.idle.lock().unwrap();
            // oldest first: `offer` appends and `take` pops the newest
            let expired = idle.partition_point(|warm| self.policy.expired(warm.since, now));
            let expired = idle.drain(..expired).collect();
            self.count(&idle);
            expired
        };
        // instances are dropped outside the lock: freeing one takes a while
        drop(expired);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_kept_while_it_has_requests_left_and_nothing_open() {
        let policy = ReusePolicy::new(3);
        assert!(policy.enabled());
        assert!(policy.keep(1, true, false));
        assert!(policy.keep(2, true, false));
        assert!(!policy.keep(3, true, false), "served its 3");
        assert!(
            !policy.keep(1, false, false),
            "a resource of its request is open"
        );
        assert!(!policy.keep(1, true, true), "draining");
        let fresh = ReusePolicy::new(1);
        assert!(!fresh.enabled());
        assert!(!fresh.keep(1, true, false));
    }

    #[test]
    fn instances_expire_after_the_idle_limit() {
        let policy = ReusePolicy::new(10);
        let now = Instant::now();
        assert!(!policy.expired(now, now + WARM_IDLE_LIMIT / 2));
        assert!(policy.expired(now, now + WARM_IDLE_LIMIT));
    }

    #[tokio::test]
    async fn the_pool_hands_out_the_newest_and_drops_the_expired() {
        let state = Arc::new(ServerState::default());
        let pool = WarmPool::start(ReusePolicy::new(10), state.clone());
        assert_eq!(pool.offer("a", 1, |_| true), None);
        assert_eq!(pool.offer("b", 1, |_| true), None);
        assert_eq!(pool.offer("spent", 10, |_| true), Some("spent"));
        assert!(state.metrics.render().contains("wasmhttp_instances_warm 2"));
        let newest = pool.take().unwrap();
        assert_eq!((newest.instance, newest.served), ("b", 1));
        assert_eq!(pool.offer("b", 2, |_| true), None);
        pool.drop_expired(Instant::now() + WARM_IDLE_LIMIT);
        assert!(pool.take().is_none());
        assert!(state.metrics.render().contains("wasmhttp_instances_warm 0"));
        state.start_draining();
        assert_eq!(pool.offer("late", 1, |_| true), Some("late"));
    }
}
