//! A `wasi:http/incoming-handler` component, one instance per request (or a
//! warm one, with WASMHTTP_INSTANCE_REUSE). The guest runs in a task of its
//! own because it keeps running after it has handed over the response head:
//! it still has to stream the body.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, anyhow};
use hyper::Request;
use hyper::body::Incoming;
use tokio::sync::oneshot;
use wasmtime::Store;
use wasmtime::component::{Component, Resource};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};

use super::reuse::{ReusePolicy, WarmPool};
use super::{Answer, App, GuestTask, Head, watch_after_head};
use crate::guest::{self, GuestConfig, GuestState};
use crate::http::ServerState;
use crate::http::admission::Call;
use crate::http::body::{self, GuestBody, RunEnd, RunEndSender};
use crate::http::failure::Failure;
use crate::http::request_id::RequestId;
use crate::settings::Settings;

pub struct ProxyApp {
    pre: ProxyPre<GuestState>,
    guest: GuestConfig,
    max_body: u64,
    state: Arc<ServerState>,
    warm: Arc<WarmPool<Instance>>,
}

/// An instance with the store it lives in.
struct Instance {
    store: Store<GuestState>,
    proxy: Proxy,
}

impl ProxyApp {
    pub fn new(
        component: &Component,
        guest: GuestConfig,
        settings: &Settings,
        state: Arc<ServerState>,
    ) -> Result<Self> {
        let pre = guest::linker(component.engine())?
            .instantiate_pre(component)
            .and_then(ProxyPre::new)
            .map_err(anyhow::Error::from)?;
        let policy = ReusePolicy::new(settings.instance_reuse);
        Ok(Self {
            pre,
            guest,
            max_body: settings.max_body,
            warm: WarmPool::start(policy, state.clone()),
            state,
        })
    }

    async fn serve(&self, req: Request<Incoming>, call: Call) -> Head {
        // for the log line of a failure after the head (cheap: shared bytes)
        let line = (
            req.method().clone(),
            req.uri().clone(),
            req.extensions().get::<RequestId>().cloned(),
        );
        let (mut store, warm, served) = match self.warm.take() {
            Some(warm) => (warm.instance.store, Some(warm.instance.proxy), warm.served),
            None => {
                let store =
                    guest::new_store(self.pre.engine(), &self.guest).map_err(Failure::Failed)?;
                (store, None, 0)
            }
        };
        call.deadline.arm(&mut store);
        store.data_mut().deadline = Some(call.deadline);
        let req = req.map(|body| body::for_guest(body, self.max_body));
        let http = |err: wasmtime::Error| Failure::Failed(anyhow::Error::from(err));
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .map_err(http)?;
        let (sender, receiver) = oneshot::channel();
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(http)?;
        let (tell_end, ended) = body::run_end();
        let run = Run {
            pre: self.pre.clone(),
            state: self.state.clone(),
            warm: self.warm.clone(),
            store,
            proxy: warm,
            served,
            call,
        };
        let task = GuestTask::spawn(run.handle(req, out, tell_end));

        match receiver.await {
            Ok(Ok(response)) => {
                // hyper drops a HEAD response's body unread
                let stop = (line.0 != hyper::Method::HEAD).then(|| task.stopper());
                watch_after_head(task, self.state.clone(), line, "the guest", |_, ()| {});
                Ok(response.map(|body| GuestBody::of_handler(body, ended, stop)))
            }
            Ok(Err(code)) => Err(Failure::Failed(anyhow!(
                "the guest answered with the error code {code:?}"
            ))),
            // The sender is dropped with the store: the guest finished or
            // failed without ever setting a response.
            Err(_) => Err(match task.join().await {
                Ok(()) => Failure::Failed(anyhow!("the guest returned without setting a response")),
                Err(err) => Failure::of_guest(err.context("the guest failed before responding")),
            }),
        }
    }
}

impl App for ProxyApp {
    fn call(&self, req: Request<Incoming>, call: Call) -> Answer<'_> {
        Box::pin(self.serve(req, call))
    }
}

/// One request's run of the guest, owned by its task.
struct Run {
    pre: ProxyPre<GuestState>,
    state: Arc<ServerState>,
    warm: Arc<WarmPool<Instance>>,
    store: Store<GuestState>,
    /// a warm instance's, or none yet
    proxy: Option<Proxy>,
    /// requests the instance served before this one
    served: u32,
    call: Call,
}

impl Run {
    async fn handle(
        self,
        req: Resource<HostIncomingRequest>,
        out: Resource<HostResponseOutparam>,
        tell_end: RunEndSender,
    ) -> Result<()> {
        let Run {
            pre,
            state,
            warm,
            mut store,
            proxy,
            served,
            call,
        } = self;
        let metrics = &state.metrics;
        let called = call.deadline.bound(async {
            let proxy = match proxy {
                Some(proxy) => {
                    metrics.reused();
                    proxy
                }
                None => {
                    let instantiating = Instant::now();
                    let proxy = pre.instantiate_async(&mut store).await;
                    metrics.instantiated(instantiating.elapsed());
                    proxy.map_err(guest::classify)?
                }
            };
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
                .map_err(guest::classify)?;
            Ok::<_, anyhow::Error>(proxy)
        });
        let result: Result<Proxy> = called.await.unwrap_or_else(|timeout| Err(timeout.into()));
        // said before the store (and with it the body's writer) is dropped,
        // so the response body knows how it ended when it sees its end
        let _ = tell_end.send(if result.is_ok() {
            RunEnd::Clean
        } else {
            RunEnd::Failed
        });
        let proxy = match result {
            Ok(proxy) => proxy,
            Err(err) => {
                // as below: the instance's pool slot first, then the request's
                drop(store);
                drop(call);
                return Err(err);
            }
        };
        // the instance's pool slot is free before the request's slot is
        // given back (and the next request may start)
        drop(
            warm.offer(Instance { store, proxy }, served + 1, |instance| {
                instance.store.data_mut().is_idle()
            }),
        );
        drop(call.slot);
        Ok(())
    }
}
