//! Calls between an app's components (`http://<route>.app.internal/...`),
//! served in-process. The caller's request crosses an in-memory connection
//! (HTTP/1.1 over a [`tokio::io::duplex`] pipe, never a socket) into the
//! same path as a client's request: the callee route's admission, limits,
//! deadline, metrics and access log. The caller's deadline bounds it too:
//! when the caller is stopped, its end of the pipe goes, and hyper drops the
//! callee's request with it, as it does for a client that hangs up.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use super::failure::Failure;
use super::{Arrived, Handler, Target, with_route};
use crate::guest::{AppCall, RouteCalls};
use crate::routes::{self, Matched};

/// How much of a call's bytes the pipe holds before a side waits.
const PIPE_BYTES: usize = 64 * 1024;

/// The peer an in-process call is said to come from (CGI's REMOTE_ADDR,
/// the access log's `remote`).
const CALLER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

impl RouteCalls for Handler {
    fn call_route(self: Arc<Self>, route: String, mut request: Request<WasiBody>) -> AppCall {
        Box::pin(async move {
            let (caller_end, callee_end) = tokio::io::duplex(PIPE_BYTES);
            let host = format!("{route}.{}", routes::INTERNAL_DOMAIN);
            let service = service_fn(move |req| {
                let handler = self.clone();
                let route = route.clone();
                async move { Ok::<_, Infallible>(handler.handle_call(req, &route).await) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(callee_end), service),
            );
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(caller_end)).await?;
            tokio::spawn(connection);
            // on the wire a request names its host in `Host`, its path alone
            let path = request
                .uri()
                .path_and_query()
                .map_or("/", |path| path.as_str())
                .parse()
                .map_err(|_| HttpError::HttpRequestUriInvalid)?;
            *request.uri_mut() = path;
            request.headers_mut().insert(
                hyper::header::HOST,
                HeaderValue::from_str(&host).map_err(|_| HttpError::HttpRequestUriInvalid)?,
            );
            let response = sender.send_request(request).await?;
            Ok(response.map(|body| body.map_err(HttpError::from).boxed_unsync()))
        })
    }
}

impl Handler {
    /// A call from one of the app's components to the route named `route`:
    /// all of its path is the route's (`x-wasmhttp-route-base` is empty).
    async fn handle_call(
        &self,
        req: Request<Incoming>,
        route: &str,
    ) -> Response<HyperOutgoingBody> {
        let mut req = req;
        let arrived = Arrived::of(&mut req);
        let routed = self.named(req, route);
        self.answer(arrived, routed, CALLER).await
    }

    fn named(
        &self,
        req: Request<Incoming>,
        route: &str,
    ) -> Result<(&Target, Request<Incoming>), Failure> {
        // targets are in the table's order
        let index = self
            .routes
            .as_ref()
            .and_then(|table| table.named(route))
            .ok_or_else(|| Failure::NoRouteNamed(route.to_string()))?;
        let target = &self.targets[index];
        let matched = Matched {
            index,
            base: String::new(),
            rest: req.uri().path().to_string(),
        };
        Ok((target, with_route(req, target, matched)))
    }
}
