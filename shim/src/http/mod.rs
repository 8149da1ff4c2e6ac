//! The HTTP side: a hyper listener (HTTP/1.1 and HTTP/2 with prior knowledge
//! on one port) and the path of every request on it, top to bottom:
//! accept ([`HttpServer::run`], which also drains) → admit ([`admission`]:
//! 400/413/503, a slot and a deadline) → the app ([`crate::app`]: a
//! wasi:http component, or a CGI program) → a [`Failure`] if there is no
//! answer, which decides its status, log line and metric in one place.
//!
//! Every limit is enforced here, before or around the guest, so that one bad
//! client or guest costs its own request and never the server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::app::{self, App};
use crate::engine::Code;
use crate::guest::{AppCalls, GuestConfig, RouteCalls};
use crate::metrics::Metrics;
use crate::routes::{self, Route, RouteTable};
use crate::settings::{AccessLog, Settings};
use crate::world::Plan;
use admission::Admission;
use connection::{ConnectionUse, TrackedBody, serve_until_idle};
use failure::{Failure, RequestLine};
use request_id::{REQUEST_ID_HEADER, RequestId};

pub mod admin;
pub mod admission;
pub mod body;
pub mod connection;
pub mod failure;
mod internal;
pub mod request_id;

/// What the admin listener reports about the server; shared with it.
#[derive(Default)]
pub struct ServerState {
    /// The program is loaded and the listener bound.
    ready: AtomicBool,
    /// A stop signal arrived: in-flight requests finish, nothing new starts.
    draining: AtomicBool,
    pub metrics: Metrics,
}

impl ServerState {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.is_draining()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }
}

/// Request line plus headers, per request (hyper answers 431 beyond it).
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// A bound listener with its app, ready to serve.
pub struct HttpServer {
    listener: TcpListener,
    handler: Arc<Handler>,
}

/// A loaded component and how to serve it: what [`HttpServer::bind`] links.
pub struct Served {
    /// Its route in an app; `None`: it answers every path.
    pub route: Option<Route>,
    pub code: Code,
    pub plan: Plan,
    pub guest: GuestConfig,
    /// Its settings: the container's, with its route's over them.
    pub settings: Settings,
}

struct Handler {
    /// The app's routes; `None`: `targets` has one, for every path.
    routes: Option<RouteTable>,
    /// One per route, in the table's order.
    targets: Vec<Target>,
    /// The container's (the listener's and the connections').
    settings: Settings,
    state: Arc<ServerState>,
}

/// Where a routed request goes: its component, and the limits it is
/// admitted under.
struct Target {
    /// The route's name, for metrics and the access log.
    name: Option<String>,
    app: Arc<dyn App>,
    admission: Admission,
    settings: Settings,
}

impl HttpServer {
    /// Binds the listener and links each program (as its `plan` says: an
    /// HTTP handler, or a CGI program); both can fail with a reason worth
    /// showing as the container's start error.
    pub async fn bind(
        served: Vec<Served>,
        routes: Option<RouteTable>,
        settings: &Settings,
        state: Arc<ServerState>,
        app_calls: &AppCalls,
    ) -> Result<Self> {
        let listen = settings.listen;
        let listener = TcpListener::bind(listen).await.with_context(|| {
            format!("cannot listen on {listen} (set WASMHTTP_LISTEN to choose another address)")
        })?;
        let local = listener.local_addr()?;
        let mut targets = Vec::with_capacity(served.len());
        for part in served {
            let app = app::for_plan(
                &part.code,
                part.plan,
                part.guest,
                &part.settings,
                state.clone(),
                local,
            )
            .with_context(|| part.route.as_ref().map_or(String::new(), Route::describe))?;
            targets.push(Target {
                name: part.route.map(|route| route.name),
                app,
                admission: Admission::new(
                    part.settings.max_concurrency,
                    part.settings.max_body,
                    part.settings.request_timeout,
                ),
                settings: part.settings,
            });
        }
        let is_app = routes.is_some();
        let handler = Arc::new(Handler {
            routes,
            targets,
            settings: settings.clone(),
            state,
        });
        if is_app {
            let handler = Arc::downgrade(&handler);
            let calls: std::sync::Weak<dyn RouteCalls> = handler;
            app_calls.serve_by(calls);
        }
        Ok(Self { listener, handler })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has an address")
    }

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
        self.handler.state.ready.store(true, Ordering::SeqCst);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: back off rather than spin.
                        crate::say!("wasmhttp: accept failed: {err}");
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
        state.start_draining();
        drop(self.listener);
        let limit = self.handler.settings.drain_timeout;
        crate::say!(
            "wasmhttp: stop requested: no new connections; draining {} request(s) in flight (up to {limit:?})",
            state.metrics.in_flight()
        );
        tokio::select! {
            () = graceful.shutdown() => crate::say!("wasmhttp: drained"),
            () = tokio::time::sleep(limit) => crate::say!(
                "wasmhttp: {} request(s) still in flight after WASMHTTP_DRAIN_TIMEOUT={limit:?}; closing them",
                state.metrics.in_flight()
            ),
            _ = stops.recv() => crate::say!("wasmhttp: second stop signal: exiting without waiting"),
        }
        Ok(())
    }
}

impl Handler {
    /// One request from a client: routed, served or answered with its
    /// failure; counted, logged.
    async fn handle(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let mut req = req;
        let arrived = Arrived::of(&mut req);
        let routed = self.route(req);
        self.answer(arrived, routed, peer).await
    }

    async fn answer(
        &self,
        arrived: Arrived,
        routed: Result<(&Target, Request<Incoming>), Failure>,
        peer: SocketAddr,
    ) -> Response<HyperOutgoingBody> {
        let Arrived {
            started,
            method,
            uri,
            version,
            id,
        } = arrived;
        let (target, answer) = match routed {
            Ok((target, req)) => (Some(target), self.serve(target, req, peer).await),
            Err(failure) => (None, Err(failure)),
        };
        let response = match answer {
            Ok(response) => response,
            Err(failure) => {
                let request = RequestLine {
                    method: &method,
                    uri: &uri,
                    id: id.as_str(),
                };
                let settings = target.map_or(&self.settings, |target| &target.settings);
                failure.respond(&request, settings, &self.state.metrics)
            }
        };
        let mut response = response;
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER, id.header_value());
        let status = response.status().as_u16();
        let took = started.elapsed();
        let route = target.and_then(|target| target.name.as_deref());
        self.state.metrics.responded(status, took);
        if let Some(route) = route {
            self.state.metrics.route_responded(route, status);
        }
        if self.settings.access_log == AccessLog::Json {
            access_log(peer, &method, &uri, version, status, took, route, &id);
        }
        response
    }

    /// The target of a request: the one component, or the route its path
    /// matches (404 if none does), with the route in its headers for the
    /// component and in its extensions for a CGI program's SCRIPT_NAME.
    fn route(&self, req: Request<Incoming>) -> Result<(&Target, Request<Incoming>), Failure> {
        let Some(table) = &self.routes else {
            return Ok((&self.targets[0], req));
        };
        // either may carry the name: a request in absolute form has both
        let header = req
            .headers()
            .get_all(hyper::header::HOST)
            .iter()
            .filter_map(|host| host.to_str().ok());
        let authority = req.uri().authority().map(|authority| authority.as_str());
        if let Some(host) = header
            .chain(authority)
            .find(|host| routes::internal_host(host).is_some())
        {
            return Err(Failure::BadRequest {
                reason: format!(
                    "{host} is a name inside this app (*.{}), for its own components' calls; \
                     it is not reachable from outside",
                    routes::INTERNAL_DOMAIN
                ),
                close: false,
            });
        }
        let matched = table
            .find(req.uri().path())
            .map_err(|bad| Failure::BadRequest {
                reason: bad.to_string(),
                close: false,
            })?
            .ok_or(Failure::NoRoute)?;
        let target = &self.targets[matched.index];
        Ok((target, with_route(req, target, matched)))
    }

    async fn serve(&self, target: &Target, req: Request<Incoming>, peer: SocketAddr) -> app::Head {
        let call = target.admission.admit(&req, peer)?;
        let _in_flight = self.state.metrics.start();
        target.app.call(req, call).await
    }
}

/// What is kept of a request from its arrival, for its log line.
struct Arrived {
    started: Instant,
    method: hyper::Method,
    uri: hyper::Uri,
    version: hyper::Version,
    id: RequestId,
}

impl Arrived {
    /// Notes the request's arrival, and gives it its id: in the header
    /// the guest reads, and in its extensions for the lines said about it
    /// once its response has left.
    fn of(req: &mut Request<Incoming>) -> Self {
        let id = RequestId::of(req.headers());
        id.set(req.headers_mut());
        req.extensions_mut().insert(id.clone());
        Self {
            started: Instant::now(),
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            id,
        }
    }
}

/// `req` for `target`: the route in its headers for the component, and in
/// its extensions for a CGI program's SCRIPT_NAME.
fn with_route(
    mut req: Request<Incoming>,
    target: &Target,
    matched: routes::Matched,
) -> Request<Incoming> {
    let headers = req.headers_mut();
    for (name, value) in [
        (
            routes::ROUTE_NAME_HEADER,
            target.name.as_deref().unwrap_or_default(),
        ),
        (routes::ROUTE_BASE_HEADER, matched.base.as_str()),
        (routes::PATH_INFO_HEADER, matched.rest.as_str()),
    ] {
        // a client's own copy would pass for the host's
        headers.remove(name);
        // path bytes and route names are visible ASCII
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    req.extensions_mut().insert(matched);
    req
}

fn access_log(
    peer: SocketAddr,
    method: &hyper::Method,
    uri: &hyper::Uri,
    version: hyper::Version,
    status: u16,
    took: Duration,
    route: Option<&str>,
    id: &RequestId,
) {
    let time = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let mut line = serde_json::json!({
        "time": time,
        "remote": peer.to_string(),
        "method": method.as_str(),
        "path": uri.to_string(),
        "protocol": format!("{version:?}"),
        "status": status,
        "duration_ms": took.as_secs_f64() * 1e3,
        "request_id": id.as_str(),
    });
    if let Some(route) = route {
        line["route"] = route.into();
    }
    crate::say!("{line}");
}
