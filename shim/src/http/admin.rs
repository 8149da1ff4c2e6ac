//! The admin listener (`WASMHTTP_ADMIN_LISTEN`): `/healthz`, `/readyz` and
//! `/metrics` for the kubelet's probes and Prometheus. It answers from the
//! server's state alone and never instantiates the guest, so probes cost the
//! component nothing and still answer while it is busy or draining.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::http::ServerState;
use crate::http::connection::{ConnectionUse, IdleLimits, TrackedBody, serve_until_idle};

/// Binds the admin listener and serves it in the background; returns its
/// address. Its connections are closed when idle, as the main listener's.
pub async fn start(
    addr: SocketAddr,
    state: Arc<ServerState>,
    limits: IdleLimits,
) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for the admin endpoints (set WASMHTTP_ADMIN_LISTEN to another address, or to off)")
    })?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let state = state.clone();
            let usage = ConnectionUse::new();
            let service = {
                let usage = usage.clone();
                service_fn(move |req| {
                    let response = route(&req, &state);
                    let request = usage.begin();
                    async move {
                        Ok::<_, Infallible>(response.map(|body| TrackedBody::new(body, request)))
                    }
                })
            };
            tokio::spawn(async move {
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.first_request)
                    .serve_connection(TokioIo::new(stream), service);
                serve_until_idle(connection, &usage, limits).await;
            });
        }
    });
    Ok(local)
}

fn route<B>(req: &Request<B>, state: &ServerState) -> Response<Full<Bytes>> {
    match req.uri().path() {
        // the process is alive and answering
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" if state.is_ready() => text(StatusCode::OK, "ready\n".into()),
        "/readyz" if state.is_draining() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "draining\n".into())
        }
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n".into()),
        "/metrics" => {
            let mut response = text(StatusCode::OK, state.metrics.render());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: the admin endpoints are /healthz, /readyz and /metrics\n".into(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
