//! The HTTP side: a hyper listener that hands every request to a fresh
//! instance of the guest's `wasi:http/incoming-handler`.
//!
//! One engine and one pre-instantiated component ([`ProxyPre`]) per process;
//! one `Store` and instance per request, so no state leaks between requests
//! and a guest that traps only loses the request it was handling.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use wasmtime::Store;
use wasmtime::component::Component;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::guest::{self, GuestConfig, GuestState};

/// How long open connections get to finish after a stop signal. Configurable
/// draining comes with the production settings; this bound keeps a stuck
/// client from holding the container forever.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

struct Handler {
    pre: ProxyPre<GuestState>,
    guest: GuestConfig,
}

/// A bound listener with its guest, ready to serve.
pub struct HttpServer {
    listener: TcpListener,
    handler: Arc<Handler>,
}

impl HttpServer {
    /// Links the component and binds the listener; both can fail with a
    /// reason worth showing as the container's start error.
    pub async fn bind(
        component: &Component,
        guest: GuestConfig,
        listen: SocketAddr,
    ) -> Result<Self> {
        let linker = guest::linker(component.engine())?;
        let pre = linker
            .instantiate_pre(component)
            .and_then(ProxyPre::new)
            .map_err(anyhow::Error::from)
            .context("the component's imports cannot be satisfied by WASI 0.2 and wasi:http")?;
        let listener = TcpListener::bind(listen).await.with_context(|| {
            format!("cannot listen on {listen} (set WASMHTTP_LISTEN to choose another address)")
        })?;
        Ok(Self {
            listener,
            handler: Arc::new(Handler { pre, guest }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has an address")
    }

    /// Serves until `shutdown` resolves, then stops accepting and lets open
    /// connections finish their current request.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let graceful = GracefulShutdown::new();
        let mut http = http1::Builder::new();
        http.keep_alive(true);
        tokio::pin!(shutdown);
        loop {
            let (stream, _peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: back off rather than spin.
                        eprintln!("wasmhttp: accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            // Responses are written in several small frames; don't let Nagle delay them.
            let _ = stream.set_nodelay(true);
            let handler = self.handler.clone();
            let service = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler.handle(req).await) }
            });
            let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                // A client that goes away mid-request is not the server's problem.
                let _ = connection.await;
            });
        }
        drop(self.listener);
        eprintln!("wasmhttp: stop requested, no longer accepting connections");
        if tokio::time::timeout(DRAIN_LIMIT, graceful.shutdown())
            .await
            .is_err()
        {
            eprintln!("wasmhttp: connections still open after {DRAIN_LIMIT:?}, closing them");
        }
        Ok(())
    }
}

impl Handler {
    async fn handle(&self, req: Request<Incoming>) -> Response<HyperOutgoingBody> {
        let method = req.method().clone();
        let uri = req.uri().clone();
        match self.call_guest(req).await {
            Ok(response) => response,
            Err(err) => {
                eprintln!("wasmhttp: {method} {uri}: {err:#}");
                internal_error()
            }
        }
    }

    async fn call_guest(&self, req: Request<Incoming>) -> Result<Response<HyperOutgoingBody>> {
        let mut store = Store::new(self.pre.engine(), GuestState::new(&self.guest));
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = self.pre.clone();

        // The guest runs in its own task because it keeps running after it
        // has handed over the response head: it still has to stream the body.
        let guest = tokio::task::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        });

        match receiver.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(anyhow!("the guest answered with the error code {code:?}")),
            // The sender is dropped with the store: the guest finished or
            // failed without ever setting a response.
            Err(_) => match guest.await {
                Ok(Ok(())) => bail!("the guest returned without setting a response"),
                Ok(Err(err)) => {
                    Err(anyhow::Error::from(err).context("the guest failed before responding"))
                }
                Err(join) => Err(anyhow!(join).context("the guest task panicked")),
            },
        }
    }
}

fn internal_error() -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from_static(
        b"500 Internal Server Error: the WebAssembly handler failed; the container log says why\n",
    ))
    .map_err(|never| match never {})
    .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    response
}
