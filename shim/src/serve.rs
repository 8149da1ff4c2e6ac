//! The HTTP side: a hyper listener (HTTP/1.1 and HTTP/2 with prior knowledge
//! on one port) that hands every request to a fresh instance of the guest's
//! `wasi:http/incoming-handler` (or, with WASMHTTP_MODE=cgi, to a fresh run of
//! a CGI program: see [`crate::cgi`]).
//!
//! One engine and one pre-instantiated component ([`ProxyPre`]) per process;
//! by default one `Store` and instance per request, so no state leaks between
//! requests and a guest that traps only loses the request it was handling.
//! WASMHTTP_INSTANCE_REUSE trades that isolation for speed: an instance that
//! answered cleanly serves up to n requests in sequence (see [`WarmInstances`]).
//! Every limit is enforced here, before or around the guest, so that one bad
//! client or guest costs its own request and never the server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::cgi::{self, Cgi};
use crate::command::Command;
use crate::config::{AccessLog, Settings};
use crate::connection::{ConnectionUse, TrackedBody, serve_until_idle};
use crate::engine::{self, Code};
use crate::guest::{self, GuestConfig, GuestState};
use crate::metrics::{Metrics, Rejection};
use crate::world::Plan;

/// What the admin listener reports about the server; shared with it.
#[derive(Default)]
pub struct ServerState {
    /// The component is loaded and the listener bound.
    pub ready: AtomicBool,
    /// A stop signal arrived: in-flight requests finish, nothing new starts.
    pub draining: AtomicBool,
    pub metrics: Metrics,
}

impl ServerState {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.draining.load(Ordering::SeqCst)
    }
}

struct Handler {
    app: App,
    /// The listener's address (CGI's SERVER_PORT).
    local: SocketAddr,
    guest: GuestConfig,
    settings: Settings,
    /// One permit per request being served (WASMHTTP_MAX_CONCURRENCY).
    slots: Arc<Semaphore>,
    state: Arc<ServerState>,
    warm: Arc<WarmInstances>,
}

/// What answers requests.
enum App {
    /// A `wasi:http/incoming-handler` component.
    Proxy(ProxyPre<GuestState>),
    /// A command run once per request (WASMHTTP_MODE=cgi).
    Cgi(Arc<Cgi>),
}

/// Instances that answered a request cleanly and may serve another
/// (WASMHTTP_INSTANCE_REUSE > 1). Never more than the concurrency cap exist:
/// a new instance is made only when none is waiting here.
struct WarmInstances {
    idle: Mutex<Vec<Warm>>,
    state: Arc<ServerState>,
}

struct Warm {
    store: Store<GuestState>,
    proxy: Proxy,
    served: u32,
    since: Instant,
}

/// A warm instance unused this long is dropped, giving its memory back.
const WARM_IDLE_LIMIT: Duration = Duration::from_secs(5);

impl WarmInstances {
    fn take(&self) -> Option<Warm> {
        let mut idle = self.idle.lock().unwrap();
        // the most recently used one: its memory is the most likely in cache
        let warm = idle.pop();
        self.count(&idle);
        warm
    }

    fn put(&self, warm: Warm) {
        let mut idle = self.idle.lock().unwrap();
        idle.push(warm);
        self.count(&idle);
    }

    fn count(&self, idle: &[Warm]) {
        let metrics = &self.state.metrics;
        metrics
            .warm_instances
            .store(idle.len() as u64, Ordering::Relaxed);
    }

    fn drop_idle(&self) {
        let expired: Vec<Warm> = {
            let mut idle = self.idle.lock().unwrap();
            // oldest first: `put` appends and `take` pops the newest
            let expired = idle.partition_point(|warm| warm.since.elapsed() >= WARM_IDLE_LIMIT);
            let expired = idle.drain(..expired).collect();
            self.count(&idle);
            expired
        };
        // stores are dropped outside the lock: freeing an instance takes a while
        drop(expired);
    }
}

/// A bound listener with its guest, ready to serve.
pub struct HttpServer {
    listener: TcpListener,
    handler: Arc<Handler>,
}

impl HttpServer {
    /// Links the program (as `plan` says: an HTTP handler, or a CGI
    /// program) and binds the listener; both can fail with a reason worth
    /// showing as the container's start error.
    pub async fn bind(
        code: &Code,
        plan: Plan,
        guest: GuestConfig,
        settings: &Settings,
        state: Arc<ServerState>,
    ) -> Result<Self> {
        let app = match (plan, code) {
            (Plan::Proxy, Code::Component(component)) => App::Proxy(
                guest::linker(component.engine())?
                    .instantiate_pre(component)
                    .and_then(ProxyPre::new)
                    .map_err(anyhow::Error::from)
                    .context(
                        "the component's imports cannot be satisfied by WASI 0.2 and wasi:http",
                    )?,
            ),
            (Plan::Cgi, code) => App::Cgi(Arc::new(Cgi::new(Command::new(code)?, guest.clone()))),
            (plan, _) => bail!("{plan:?} is not served over HTTP by this program"),
        };
        let listen = settings.listen;
        let listener = TcpListener::bind(listen).await.with_context(|| {
            format!("cannot listen on {listen} (set WASMHTTP_LISTEN to choose another address)")
        })?;
        let local = listener.local_addr()?;
        Ok(Self {
            listener,
            handler: Arc::new(Handler {
                app,
                local,
                guest,
                settings: settings.clone(),
                slots: Arc::new(Semaphore::new(settings.max_concurrency)),
                warm: Arc::new(WarmInstances {
                    idle: Mutex::default(),
                    state: state.clone(),
                }),
                state,
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has an address")
    }

    /// Serves until the first stop signal arrives on `stops`, then drains:
    /// no new connections, idle keep-alive connections closed, requests in
    /// flight finished, all within WASMHTTP_DRAIN_TIMEOUT; a second signal
    /// ends the drain at once.
    pub async fn run(self, stops: &mut mpsc::Receiver<i32>) -> Result<()> {
        let graceful = GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .keep_alive(true)
            .timer(TokioTimer::new())
            // a client that dribbles its headers (slowloris) is cut off
            .header_read_timeout(self.handler.settings.header_timeout)
            .max_buf_size(MAX_HEADER_BYTES);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_HEADER_BYTES as u32);
        let builder = Arc::new(builder);
        if self.handler.settings.instance_reuse > 1 {
            let warm = Arc::downgrade(&self.handler.warm);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(WARM_IDLE_LIMIT / 5);
                loop {
                    tick.tick().await;
                    let Some(warm) = warm.upgrade() else { break };
                    warm.drop_idle();
                }
            });
        }
        self.handler.state.ready.store(true, Ordering::SeqCst);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: back off rather than spin.
                        eprintln!("wasmhttp: accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = stops.recv() => break,
            };
            // Responses are written in several small frames; don't let Nagle delay them.
            let _ = stream.set_nodelay(true);
            let handler = self.handler.clone();
            let usage = ConnectionUse::new();
            let service = {
                let usage = usage.clone();
                service_fn(move |req| {
                    let handler = handler.clone();
                    let request = usage.begin();
                    async move {
                        let response = handler.handle(req, peer).await;
                        Ok::<_, Infallible>(response.map(|body| TrackedBody::new(body, request)))
                    }
                })
            };
            let connection = builder
                .serve_connection(TokioIo::new(stream), service)
                .into_owned();
            let connection = graceful.watch(connection);
            let limits = self.handler.settings.idle_limits();
            tokio::spawn(async move { serve_until_idle(connection, &usage, limits).await });
        }

        let state = &self.handler.state;
        state.draining.store(true, Ordering::SeqCst);
        drop(self.listener);
        let limit = self.handler.settings.drain_timeout;
        eprintln!(
            "wasmhttp: stop requested: no new connections; draining {} request(s) in flight (up to {limit:?})",
            state.metrics.in_flight()
        );
        tokio::select! {
            () = graceful.shutdown() => eprintln!("wasmhttp: drained"),
            () = tokio::time::sleep(limit) => eprintln!(
                "wasmhttp: {} request(s) still in flight after WASMHTTP_DRAIN_TIMEOUT={limit:?}; closing them",
                state.metrics.in_flight()
            ),
            _ = stops.recv() => eprintln!("wasmhttp: second stop signal: exiting without waiting"),
        }
        Ok(())
    }
}

/// How long after its deadline a CGI request is answered 504 regardless.
const CGI_BACKSTOP: Duration = Duration::from_secs(1);

/// Request line plus headers, per request (hyper answers 431 beyond it).
const MAX_HEADER_BYTES: usize = 64 * 1024;

impl Handler {
    async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let started = Instant::now();
        let method = req.method().clone();
        let uri = req.uri().clone();
        let version = req.version();
        let response = self.respond(req, peer).await;
        let status = response.status().as_u16();
        let took = started.elapsed();
        self.state.metrics.responded(status, took);
        if self.settings.access_log == AccessLog::Json {
            access_log(peer, &method, &uri, version, status, took);
        }
        response
    }

    async fn respond(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let metrics = &self.state.metrics;
        if let Some(reason) = must_be_refused(&req) {
            metrics.rejected(Rejection::BadRequest);
            let mut response = plain(
                StatusCode::BAD_REQUEST,
                format!("400 Bad Request: {reason}\n"),
            );
            // what follows on this connection cannot be trusted to be framed right
            response.headers_mut().insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
            return response;
        }
        if declared_length(&req).is_some_and(|length| length > self.settings.max_body) {
            metrics.rejected(Rejection::BodyTooLarge);
            return plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "413 Payload Too Large: the body exceeds WASMHTTP_MAX_BODY={} bytes\n",
                    self.settings.max_body
                ),
            );
        }
        // Beyond the cap, say so at once rather than queue without bound.
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            return self.overloaded("the server is at WASMHTTP_MAX_CONCURRENCY");
        };
        let _in_flight = metrics.start();
        let method = req.method().clone();
        let uri = req.uri().clone();
        let call = async {
            match &self.app {
                App::Proxy(pre) => self.call_guest(pre, req, permit).await,
                App::Cgi(cgi) => self.call_cgi(cgi, req, peer, permit).await,
            }
        };
        let answer = tokio::time::timeout(self.outer_timeout(), call).await;
        // the epoch deadline and the timer race: either means "too slow"
        let answer = match answer {
            Ok(Err(err)) if err.is::<guest::TimedOut>() => Err(()),
            Ok(result) => Ok(result),
            Err(_) => Err(()),
        };
        match answer {
            Ok(Ok(response)) => response,
            Ok(Err(err)) if err.is::<cgi::BadGateway>() => {
                eprintln!("wasmhttp: {method} {uri}: {err:#}");
                plain(
                    StatusCode::BAD_GATEWAY,
                    "502 Bad Gateway: the CGI program gave no usable response; the container log says why\n"
                        .into(),
                )
            }
            Ok(Err(err)) if err.is::<cgi::Unacceptable>() => {
                let unacceptable = err.downcast_ref::<cgi::Unacceptable>().expect("checked");
                match unacceptable {
                    cgi::Unacceptable::BodyTooLarge => {
                        metrics.rejected(Rejection::BodyTooLarge);
                        plain(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!(
                                "413 Payload Too Large: the body exceeds WASMHTTP_MAX_BODY={} bytes\n",
                                self.settings.max_body
                            ),
                        )
                    }
                    cgi::Unacceptable::BadRequest(reason) => {
                        metrics.rejected(Rejection::BadRequest);
                        plain(
                            StatusCode::BAD_REQUEST,
                            format!("400 Bad Request: {reason}\n"),
                        )
                    }
                }
            }
            Ok(Err(err)) if err.is::<guest::PoolExhausted>() => {
                eprintln!("wasmhttp: {method} {uri}: shed with 503: {err:#}");
                self.overloaded("no instance slot is free")
            }
            Ok(Err(err)) => {
                eprintln!("wasmhttp: {method} {uri}: {err:#}");
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error: the WebAssembly handler failed; the container log says why\n"
                        .into(),
                )
            }
            Err(()) => {
                metrics.timeouts.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "wasmhttp: {method} {uri}: no response within WASMHTTP_REQUEST_TIMEOUT={:?}; the guest was stopped",
                    self.settings.request_timeout
                );
                plain(
                    StatusCode::GATEWAY_TIMEOUT,
                    "504 Gateway Timeout: the WebAssembly handler did not answer in time\n".into(),
                )
            }
        }
    }

    /// A request shed before its guest ran: 503, and when to try again.
    fn overloaded(&self, why: &str) -> Response<HyperOutgoingBody> {
        self.state.metrics.rejected(Rejection::Overloaded);
        let mut response = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("503 Service Unavailable: {why}; retry\n"),
        );
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from_static("1"),
        );
        response
    }

    /// The timer around a whole request. A CGI program is stopped by its own
    /// deadline (WASMHTTP_REQUEST_TIMEOUT) and the 504 waits until it is
    /// gone, so its concurrency slot is free when the client hears back;
    /// this timer is only the backstop there.
    fn outer_timeout(&self) -> Duration {
        match self.app {
            App::Proxy(_) => self.settings.request_timeout,
            App::Cgi(_) => self.settings.request_timeout + CGI_BACKSTOP,
        }
    }

    /// Runs the CGI program for `req`; see [`crate::cgi`].
    async fn call_cgi(
        &self,
        cgi: &Arc<Cgi>,
        req: Request<Incoming>,
        peer: SocketAddr,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<Response<HyperOutgoingBody>> {
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let started = Instant::now();
        let answer = cgi
            .respond(
                req,
                peer,
                self.local,
                self.settings.max_body,
                self.settings.request_timeout,
                permit,
            )
            .await;
        let metrics = &self.state.metrics;
        let (response, outcome, run) = match answer {
            Ok(answer) => answer,
            Err(err) => {
                if guest::is_guest_fault(&err)
                    && !err.is::<cgi::BadGateway>()
                    && !err.is::<cgi::Unacceptable>()
                {
                    metrics.traps.fetch_add(1, Ordering::Relaxed);
                }
                return Err(err);
            }
        };
        metrics.instantiation.observe(started.elapsed());
        let state = self.state.clone();
        // The head is sent; how the program ends can only cut the body (a
        // trap, the timeout) or be noted (a non-zero exit after a response).
        tokio::spawn(async move {
            match run.join().await {
                Ok(0) => {}
                Ok(code) => eprintln!(
                    "wasmhttp: {method} {uri}: the CGI program exited with status {code} after its response"
                ),
                Err(err) => {
                    if !err.is::<guest::TimedOut>() {
                        state.metrics.traps.fetch_add(1, Ordering::Relaxed);
                    }
                    body_cut(&state, &method, &uri, "the CGI program", &err);
                }
            }
        });
        // stdout ends when the program does: its outcome is moments away
        Ok(response.map(|body| GuestBody::wrap(body, outcome, true)))
    }

    async fn call_guest(
        &self,
        pre: &ProxyPre<GuestState>,
        req: Request<Incoming>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<Response<HyperOutgoingBody>> {
        // The whole of the guest's work, streaming the body included, ends here:
        // a guest that sends its head and then sleeps forever would otherwise
        // hold its concurrency slot (and its client) for good.
        let deadline = tokio::time::Instant::now() + self.settings.request_timeout;
        // for the log line of a failure after the head (cheap: shared bytes)
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let reuse = self.settings.instance_reuse;
        let warm = if reuse > 1 { self.warm.take() } else { None };
        let (mut store, warm_proxy, served) = match warm {
            Some(warm) => (warm.store, Some(warm.proxy), warm.served),
            None => (guest::new_store(pre.engine(), &self.guest)?, None, 0),
        };
        // Stops a guest that computes past the request timeout (an infinite
        // loop never yields to the timer above).
        store.set_epoch_deadline(engine::epoch_ticks(self.settings.request_timeout));
        store.epoch_deadline_trap();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let max_body = self.settings.max_body;
        let req = req.map(|body| {
            // bodies without a declared length are cut at the cap as well
            http_body_util::Limited::new(body, usize::try_from(max_body).unwrap_or(usize::MAX))
                .map_err(move |err| {
                    if err.is::<http_body_util::LengthLimitError>() {
                        ErrorCode::HttpRequestBodySize(Some(max_body))
                    } else {
                        // the client went away or broke the framing
                        ErrorCode::HttpProtocolError
                    }
                })
        });
        let req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = pre.clone();
        let state = self.state.clone();
        let warm = self.warm.clone();
        let (finished, outcome) = tokio::sync::oneshot::channel::<bool>();

        // The guest runs in its own task because it keeps running after it
        // has handed over the response head: it still has to stream the body.
        // It holds its concurrency permit until it is done.
        let guest = AbortOnDrop(Some(tokio::task::spawn(async move {
            let proxy = match warm_proxy {
                Some(proxy) => {
                    state.metrics.reused.fetch_add(1, Ordering::Relaxed);
                    Ok(proxy)
                }
                None => {
                    let instantiating = Instant::now();
                    let proxy = pre.instantiate_async(&mut store).await;
                    state.metrics.instantiation.observe(instantiating.elapsed());
                    proxy
                }
            };
            let result = match proxy {
                Ok(proxy) => {
                    let call = proxy
                        .wasi_http_incoming_handler()
                        .call_handle(&mut store, req, out);
                    match tokio::time::timeout_at(deadline, call).await {
                        Ok(called) => called.map(|()| proxy).map_err(guest::classify),
                        // waiting on a host call (a sleep, a stream): the epoch
                        // deadline only stops guests that compute
                        Err(_) => Err(anyhow::Error::new(guest::TimedOut)),
                    }
                }
                Err(err) => Err(guest::classify(err)),
            };
            // said before the store (and with it the body's writer) is dropped,
            // so the response body knows how it ended when it sees its end
            let _ = finished.send(result.is_ok());
            if let Err(err) = &result
                && guest::is_guest_fault(err)
            {
                state.metrics.traps.fetch_add(1, Ordering::Relaxed);
            }
            match result {
                // Kept only if nothing of this request outlives it in the
                // instance: a response never set, a body never finished, a
                // stream left open would otherwise hang until the instance
                // is dropped (and the client with it).
                Ok(proxy)
                    if served + 1 < reuse
                        && store.data().is_idle()
                        && !state.draining.load(Ordering::Relaxed) =>
                {
                    warm.put(Warm {
                        store,
                        proxy,
                        served: served + 1,
                        since: Instant::now(),
                    });
                    drop(permit);
                    Ok(())
                }
                result => {
                    // the instance's pool slot is free before the next request may start
                    drop(store);
                    drop(permit);
                    result.map(drop)
                }
            }
        })));

        match receiver.await {
            Ok(Ok(response)) => {
                let guest = guest.join();
                let state = self.state.clone();
                // The head is sent; a failure from here on can only cut the
                // body (see GuestBody), and is said in the log.
                tokio::spawn(async move {
                    let failure = match guest.await {
                        Ok(Ok(())) => return,
                        Ok(Err(err)) => err,
                        Err(join) => anyhow!(join).context("the guest task panicked"),
                    };
                    body_cut(&state, &method, &uri, "the guest", &failure);
                });
                Ok(response.map(|body| GuestBody::wrap(body, outcome, false)))
            }
            Ok(Err(code)) => Err(anyhow!("the guest answered with the error code {code:?}")),
            // The sender is dropped with the store: the guest finished or
            // failed without ever setting a response.
            Err(_) => match guest.join().await {
                Ok(Ok(())) => bail!("the guest returned without setting a response"),
                Ok(Err(err)) => Err(err.context("the guest failed before responding")),
                Err(join) => Err(anyhow!(join).context("the guest task panicked")),
            },
        }
    }
}

/// A guest's response body, cut with an error when the guest fails (trap,
/// timeout) before finishing it. wasi:http ends a body whose writer vanished
/// as if it were complete, and the client would take the truncated body for
/// the whole one; an error makes hyper end the connection without the final
/// chunk (or short of the content length), which every client reports.
struct GuestBody {
    body: HyperOutgoingBody,
    /// Whether the guest's handler returned without failing; sent before
    /// the body's writer is dropped. Still pending at the end of the body
    /// means the guest finished the body and runs on (not a failure)...
    outcome: Option<tokio::sync::oneshot::Receiver<bool>>,
    /// ...unless the body's end means the guest has ended (a CGI program's
    /// stdout), and the outcome is awaited.
    wait_for_outcome: bool,
}

impl GuestBody {
    /// `body`, boxed the way hyper takes it, cut when `outcome` says failed.
    fn wrap(
        body: HyperOutgoingBody,
        outcome: tokio::sync::oneshot::Receiver<bool>,
        wait_for_outcome: bool,
    ) -> HyperOutgoingBody {
        GuestBody {
            body,
            outcome: Some(outcome),
            wait_for_outcome,
        }
        .boxed_unsync()
    }
}

/// Said when a guest failed after its response head: only the body can be
/// cut by then (see [`GuestBody`]), and the log is where the reason goes.
fn body_cut(
    state: &ServerState,
    method: &hyper::Method,
    uri: &hyper::Uri,
    guest: &str,
    failure: &anyhow::Error,
) {
    if failure.is::<guest::TimedOut>() {
        state.metrics.timeouts.fetch_add(1, Ordering::Relaxed);
    }
    eprintln!(
        "wasmhttp: {method} {uri}: {guest} failed while streaming the response body, which was cut: {failure:#}"
    );
}

impl hyper::body::Body for GuestBody {
    type Data = Bytes;
    type Error = <HyperOutgoingBody as hyper::body::Body>::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        use std::future::Future;
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(None) => {
                let wait = self.wait_for_outcome;
                let ended = match self.outcome.as_mut() {
                    None => None,
                    Some(outcome) if wait => match std::pin::Pin::new(outcome).poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(ended) => Some(ended.unwrap_or(false)),
                    },
                    Some(outcome) => match outcome.try_recv() {
                        Ok(ended) => Some(ended),
                        Err(tokio::sync::oneshot::error::TryRecvError::Closed) => Some(false),
                        Err(tokio::sync::oneshot::error::TryRecvError::Empty) => None,
                    },
                };
                self.outcome = None;
                let failed = ended == Some(false);
                if failed {
                    Poll::Ready(Some(Err(ErrorCode::InternalError(Some(
                        "the guest failed before finishing the body".into(),
                    ))
                    .into())))
                } else {
                    Poll::Ready(None)
                }
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.outcome.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The guest task of a request: aborted when the request is given up
/// (timeout, client gone) before a response.
struct AbortOnDrop<T>(Option<JoinHandle<T>>);

impl<T> AbortOnDrop<T> {
    fn join(mut self) -> JoinHandle<T> {
        self.0.take().expect("joined once")
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// What hyper lets through but RFC 9112 says a server must refuse: an HTTP/1
/// request without exactly one Host. (A body framed both ways hyper reads as
/// chunked, and closes the connection after it, as the RFC asks.)
fn must_be_refused<B>(req: &Request<B>) -> Option<&'static str> {
    let headers = req.headers();
    if req.version() <= hyper::Version::HTTP_11 {
        match headers.get_all(hyper::header::HOST).iter().count() {
            0 if req.uri().authority().is_none() => {
                return Some("the request has no Host header");
            }
            0 | 1 => {}
            _ => return Some("the request has more than one Host header"),
        }
    }
    None
}

fn declared_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(hyper::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn plain(status: StatusCode, text: String) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    response
}

fn access_log(
    peer: SocketAddr,
    method: &hyper::Method,
    uri: &hyper::Uri,
    version: hyper::Version,
    status: u16,
    took: Duration,
) {
    let time = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let line = serde_json::json!({
        "time": time,
        "remote": peer.to_string(),
        "method": method.as_str(),
        "path": uri.to_string(),
        "protocol": format!("{version:?}"),
        "status": status,
        "duration_ms": took.as_secs_f64() * 1e3,
    });
    eprintln!("{line}");
}
