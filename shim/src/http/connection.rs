//! Closing connections nobody uses.
//!
//! hyper's header timeout starts with a request's first byte, so a client
//! that connects and sends nothing, or keeps a keep-alive connection open
//! without ever sending another request, would hold a descriptor and a task
//! for as long as it likes: thousands of them exhaust the pod. Each
//! connection therefore carries a [`ConnectionUse`], and [`close_when_idle`]
//! ends it once it has had no request in progress for too long.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// The requests of one connection: how many are in progress, and since when
/// none has been.
pub struct ConnectionUse {
    opened: Instant,
    in_progress: AtomicUsize,
    any_request: AtomicBool,
    /// milliseconds after `opened` at which the last request ended
    idle_since_ms: AtomicU64,
}

impl ConnectionUse {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_progress: AtomicUsize::new(0),
            any_request: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    /// A request has arrived; it is in progress until the guard is dropped
    /// (with the response body, once it is sent or abandoned).
    pub fn begin(self: &Arc<Self>) -> RequestInProgress {
        self.any_request.store(true, Ordering::Relaxed);
        self.in_progress.fetch_add(1, Ordering::SeqCst);
        RequestInProgress(self.clone())
    }

    /// How long the connection has had no request in progress; `None` while
    /// one is.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_progress.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let since = self.opened + Duration::from_millis(self.idle_since_ms.load(Ordering::SeqCst));
        Some(Instant::now().saturating_duration_since(since))
    }
}

pub struct RequestInProgress(Arc<ConnectionUse>);

impl Drop for RequestInProgress {
    fn drop(&mut self) {
        let usage = &self.0;
        let ms = usage.opened.elapsed().as_millis() as u64;
        usage.idle_since_ms.store(ms, Ordering::SeqCst);
        usage.in_progress.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long a connection may go without a request in progress.
#[derive(Clone, Copy)]
pub struct IdleLimits {
    /// before its first request (the header timeout)
    pub first_request: Duration,
    /// after a response, for the next request (keep-alive)
    pub between_requests: Duration,
}

/// Drives `connection` until it ends, or until it has been idle beyond
/// `limits`, when it is dropped (and its socket closed).
pub async fn serve_until_idle(
    connection: impl Future<Output = impl Sized>,
    usage: &ConnectionUse,
    limits: IdleLimits,
) {
    tokio::select! {
        // A client that goes away mid-request is not the server's problem.
        _ = connection => {}
        () = close_when_idle(usage, limits.first_request, limits.between_requests) => {}
    }
}

/// Returns once the connection has been without a request in progress for
/// `first_request` (before its first request) or `between_requests` (after).
async fn close_when_idle(
    usage: &ConnectionUse,
    first_request: Duration,
    between_requests: Duration,
) {
    loop {
        let limit = if usage.any_request.load(Ordering::Relaxed) {
            between_requests
        } else {
            first_request
        };
        match usage.idle_for() {
            Some(idle) if idle >= limit => return,
            Some(idle) => tokio::time::sleep(limit - idle).await,
            None => tokio::time::sleep(limit).await,
        }
    }
}

/// A response body that keeps its request counted as in progress until
/// hyper is done with it.
pub struct TrackedBody<B> {
    body: B,
    _request: RequestInProgress,
}

impl<B> TrackedBody<B> {
    pub fn new(body: B, request: RequestInProgress) -> Self {
        Self {
            body,
            _request: request,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
