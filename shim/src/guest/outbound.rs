//! Outbound HTTP from guests (WASMHTTP_ALLOWED_OUTBOUND_HOSTS).

use std::sync::Arc;

use wasmtime_wasi_http::{Error as HttpError, WasiBody, WasiHttpHooks};

use crate::settings::HostPattern;

/// Outbound HTTP goes only to the allowed hosts (over TLS with the bundled
/// webpki root certificates for https, so a `FROM scratch` image needs no CA
/// files); anything else is refused with wasi:http's own error code, so a
/// guest sees a clean `HTTP-request-denied` instead of a hang or a trap.
pub(super) struct OutboundPolicy {
    pub(super) allowed: Arc<Vec<HostPattern>>,
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>
    {
        let uri = request.uri();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let allowed = uri
            .host()
            .is_some_and(|host| self.allowed.iter().any(|p| p.matches(host, port)));
        if !allowed {
            eprintln!(
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
