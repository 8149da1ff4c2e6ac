//! A `wasi:http/handler@0.3` component (WASI 0.3's `wasi:http/service`).
//! Its handler is async, so one instance can serve several requests at once.
//! The mechanism is wasmtime-wasi-http's `ProxyHandler`: every instance is a
//! worker taking requests from one queue. The policy is ours, in three small
//! types: [`Workers`] makes instances, [`Worker`] says whether an instance
//! takes another request (WASMHTTP_INSTANCE_CONCURRENCY at once,
//! WASMHTTP_INSTANCE_REUSE in all, none while draining) and when a request
//! has expired, [`Expiry`] retires an instance that is stuck or idle.
//!
//! Isolation: requests served by one instance share its memory (and
//! WASMHTTP_MAX_INSTANCE_MEMORY); a trap ends that instance and fails the
//! requests it was serving, and no others.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use http_body_util::BodyExt;
use hyper::Request;
use hyper::body::Incoming;
use wasmtime::component::{Component, GuestTaskId};
use wasmtime::{StoreContextMut, UpdateDeadline};
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, InstantiationError, Proxy, ProxyHandler, ShouldAccept,
    TrapOrPanicError, WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;
use wasmtime_wasi_http::p3::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use super::reuse::WARM_IDLE_LIMIT;
use super::{Answer, App, Head};
use crate::guest::{self, Deadline, GuestConfig, GuestState, PoolExhausted, TimedOut};
use crate::http::ServerState;
use crate::http::admission::Call;
use crate::http::body;
use crate::http::failure::Failure;
use crate::settings::Settings;

pub struct ServiceApp {
    handler: ProxyHandler<Workers>,
    max_body: u64,
}

impl ServiceApp {
    pub fn new(
        component: &Component,
        guest: GuestConfig,
        settings: &Settings,
        state: Arc<ServerState>,
    ) -> Result<Self> {
        let pre = guest::service_linker(component.engine())?
            .instantiate_pre(component)
            .and_then(ServicePre::new)
            .map_err(anyhow::Error::from)?;
        Ok(Self {
            handler: ProxyHandler::new(Workers {
                pre,
                guest,
                state,
                at_once: settings.instance_concurrency,
                requests: settings.instance_reuse as usize,
                timeout: settings.request_timeout,
            }),
            max_body: settings.max_body,
        })
    }

    async fn serve(&self, req: Request<Incoming>, call: Call) -> Head {
        let req = req.map(|b| {
            body::for_guest(b, self.max_body)
                .map_err(wasmtime_wasi_http::Error::from)
                .boxed_unsync()
        });
        let Call { slot, deadline, .. } = call;
        let response = deadline
            .bound(self.handler.handle(deadline, req))
            .await
            .map_err(|TimedOut| Failure::TimedOut)?
            .map_err(failure)?;
        // the request holds its slot (WASMHTTP_MAX_CONCURRENCY) until its
        // body has been sent
        Ok(response.map(|b| body::holding(b, slot)))
    }
}

impl App for ServiceApp {
    fn call(&self, req: Request<Incoming>, call: Call) -> Answer<'_> {
        Box::pin(self.serve(req, call))
    }
}

/// What a request's error from the worker means.
fn failure(err: wasmtime::Error) -> Failure {
    if err.is::<ExpirationError>() {
        Failure::TimedOut
    } else if let Some(made) = err.downcast_ref::<InstantiationError<Deadline>>() {
        match made
            .error
            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        {
            Some(full) => Failure::of_guest(PoolExhausted(full.to_string()).into()),
            None => Failure::Trapped(anyhow!("instantiating the component: {:#}", made.error)),
        }
    } else if err.is::<TrapOrPanicError>() {
        Failure::Trapped(anyhow!(
            "the instance serving it trapped (the container log says why)"
        ))
    } else if let Some(code) = err.downcast_ref::<ErrorCode>() {
        Failure::Failed(anyhow!("the guest answered with the error code {code:?}"))
    } else {
        Failure::of_guest(guest::classify(err))
    }
}

/// Makes the instances.
struct Workers {
    pre: ServicePre<GuestState>,
    guest: GuestConfig,
    state: Arc<ServerState>,
    /// requests one instance serves at once
    at_once: usize,
    /// requests one instance serves in all
    requests: usize,
    timeout: Duration,
}

impl HandlerState for Workers {
    type StoreData = GuestState;
    type WorkerExpiration = Expiry;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<GuestState, Expiry, Worker>> {
        let mut store = guest::new_store(self.pre.engine(), &self.guest)
            .map_err(|err| wasmtime::format_err!("{err:#}"))?;
        // A guest that computes yields at every epoch tick, so that the
        // worker's expiry is looked at even while it never awaits anything.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        let started = Instant::now();
        let service = tokio::time::timeout(self.timeout, self.pre.instantiate_async(&mut store))
            .await
            .map_err(|_| wasmtime::Error::new(TimedOut))??;
        self.state.metrics.instantiated(started.elapsed());
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: http_view,
            expiration: Expiry::new(self.timeout, WARM_IDLE_LIMIT),
            state: Worker {
                state: self.state.clone(),
                at_once: self.at_once,
                requests: self.requests,
                accepted: AtomicUsize::new(0),
            },
        })
    }
}

fn http_view(state: &mut GuestState) -> WasiHttpCtxView<'_> {
    state.http()
}

/// One instance's policy.
struct Worker {
    state: Arc<ServerState>,
    at_once: usize,
    requests: usize,
    accepted: AtomicUsize,
}

impl WorkerState for Worker {
    type StoreData = GuestState;
    type RequestData = Deadline;

    fn should_accept_request(&self, serving: usize, served: usize) -> ShouldAccept {
        if served >= self.requests || self.state.is_draining() {
            ShouldAccept::Never
        } else if serving < self.at_once {
            ShouldAccept::Yes
        } else {
            ShouldAccept::No
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, GuestState>,
        deadline: Deadline,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        if self.accepted.fetch_add(1, Ordering::Relaxed) > 0 {
            self.state.metrics.reused();
        }
        Box::pin(deadline.passed())
    }

    fn drop(&self, _store: wasmtime::Store<GuestState>, result: wasmtime::Result<()>) {
        if let Err(err) = result {
            crate::say!("wasmhttp: a wasi:http 0.3 instance ended: {err:#}");
        }
    }
}

/// When an instance is retired: a request of it outlived the request
/// timeout (the instance is stuck; its requests have had their 504), or it
/// has been idle for as long as a warm instance may be.
struct Expiry {
    timeout: Duration,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// the worker status the timer is set for
    set_for: Option<(WorkerStatus, Instant)>,
}

impl Expiry {
    fn new(timeout: Duration, idle: Duration) -> Self {
        Self {
            timeout,
            idle,
            timer: Box::pin(tokio::time::sleep(timeout)),
            set_for: None,
        }
    }

    fn limit(&self, status: WorkerStatus) -> Duration {
        match status {
            WorkerStatus::Idle => self.idle,
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.timeout,
        }
    }
}

impl WorkerExpiration for Expiry {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        since: Instant,
    ) -> Poll<()> {
        if self.set_for != Some((status, since)) {
            let at = since + self.limit(status);
            self.timer.as_mut().reset(at.into());
            self.set_for = Some((status, since));
        }
        self.timer.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(at_once: usize, requests: usize) -> (Worker, Arc<ServerState>) {
        let state = Arc::new(ServerState::default());
        let worker = Worker {
            state: state.clone(),
            at_once,
            requests,
            accepted: AtomicUsize::new(0),
        };
        (worker, state)
    }

    #[test]
    fn an_instance_takes_requests_up_to_its_limits_and_none_while_draining() {
        let (w, state) = worker(4, 10);
        assert!(matches!(w.should_accept_request(0, 0), ShouldAccept::Yes));
        assert!(matches!(w.should_accept_request(3, 5), ShouldAccept::Yes));
        assert!(matches!(w.should_accept_request(4, 5), ShouldAccept::No));
        assert!(matches!(
            w.should_accept_request(1, 10),
            ShouldAccept::Never
        ));
        state.start_draining();
        assert!(matches!(w.should_accept_request(0, 1), ShouldAccept::Never));
        let (fresh, _) = worker(16, 1);
        assert!(matches!(
            fresh.should_accept_request(0, 1),
            ShouldAccept::Never
        ));
    }

    #[tokio::test]
    async fn an_instance_expires_past_the_timeout_or_the_idle_limit() {
        let (timeout, idle) = (Duration::from_millis(200), Duration::from_millis(400));
        let mut expiry = Box::pin(Expiry::new(timeout, idle));
        let mut poll = |status, since| {
            let cx = &mut Context::from_waker(std::task::Waker::noop());
            expiry.as_mut().poll(cx, status, since).is_ready()
        };
        let start = Instant::now();
        assert!(!poll(WorkerStatus::Requests, start));
        tokio::time::sleep(timeout + Duration::from_millis(50)).await;
        assert!(poll(WorkerStatus::Requests, start));
        // a newer request restarts the clock, and so does being idle
        assert!(!poll(WorkerStatus::Requests, Instant::now()));
        let idle_since = Instant::now();
        tokio::time::sleep(timeout + Duration::from_millis(50)).await;
        assert!(!poll(WorkerStatus::Idle, idle_since));
        tokio::time::sleep(idle).await;
        assert!(poll(WorkerStatus::Idle, idle_since));
    }
}
