//! Outbound HTTP from guests: to the app's own components in-process
//! (`http://<route>.app.internal/`), else to WASMHTTP_ALLOWED_OUTBOUND_HOSTS.

use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};

use wasmtime_wasi_http::{Error as HttpError, WasiBody, WasiHttpHooks};

use crate::routes;
use crate::settings::HostPattern;

/// A call of one component of the app by another, answered in-process.
pub type AppCall =
    Pin<Box<dyn Future<Output = Result<http::Response<WasiBody>, HttpError>> + Send>>;

/// What serves the app's routes to its own components: the HTTP side, which
/// registers itself in [`AppCalls`] once its listener is bound (the guests
/// are linked before it exists).
pub trait RouteCalls: Send + Sync {
    /// Serves `request` (addressed to `http://<route>.app.internal/...`) by
    /// the route named `route`, under that route's admission and limits.
    fn call_route(self: Arc<Self>, route: String, request: http::Request<WasiBody>) -> AppCall;
}

/// The app's components as the guests of one app reach each other; empty
/// for a container of one component, whose guests have no internal names.
#[derive(Default)]
pub struct AppCalls(OnceLock<Weak<dyn RouteCalls>>);

impl AppCalls {
    /// Called once, by the HTTP side of an app; later calls are ignored.
    pub fn serve_by(&self, routes: Weak<dyn RouteCalls>) {
        let _ = self.0.set(routes);
    }

    fn routes(&self) -> Option<Arc<dyn RouteCalls>> {
        self.0.get().and_then(Weak::upgrade)
    }
}

impl std::fmt::Debug for AppCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "AppCalls(serving)"
        } else {
            "AppCalls(none)"
        })
    }
}

/// One app's: the same value, not an equal one.
impl PartialEq for AppCalls {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for AppCalls {}

/// Outbound HTTP goes only to the allowed hosts (over TLS with the bundled
/// webpki root certificates for https, so a `FROM scratch` image needs no CA
/// files); anything else is refused with wasi:http's own error code, so a
/// guest sees a clean `HTTP-request-denied` instead of a hang or a trap.
pub(super) struct OutboundPolicy {
    pub(super) allowed: Arc<Vec<HostPattern>>,
    pub(super) app: Arc<AppCalls>,
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>
    {
        // the app's own names never leave the process, need no allow-list
        // entry, and mean nothing outside an app
        let internal = request
            .uri()
            .host()
            .and_then(routes::internal_host)
            .map(str::to_ascii_lowercase);
        if let (Some(route), Some(routes)) = (internal, self.app.routes()) {
            return Box::new(async move {
                let response = routes.call_route(route, request).await?;
                Ok((response, Box::new(async { Ok(()) }) as IoFuture))
            });
        }
        let uri = request.uri();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let allowed = uri
            .host()
            .is_some_and(|host| self.allowed.iter().any(|p| p.matches(host, port)));
        if !allowed {
            crate::say!(
                "wasmhttp: outbound request to {} denied (not in WASMHTTP_ALLOWED_OUTBOUND_HOSTS)",
                uri.authority().map(|a| a.as_str()).unwrap_or("?")
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as IoFuture,
            ))
        })
    }
}

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
