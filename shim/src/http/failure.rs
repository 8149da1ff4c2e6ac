//! Every way a request can fail, and what each one means: its status, its
//! log line and its metric, decided here and nowhere else.

use std::fmt;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Response, StatusCode, Uri};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::guest::{PoolExhausted, TimedOut};
use crate::metrics::{Metrics, Rejection};
use crate::settings::Settings;

#[derive(Debug)]
pub enum Failure {
    /// The request cannot be served as sent (400). `close` when what follows
    /// on its connection cannot be trusted to be framed right.
    BadRequest { reason: String, close: bool },
    /// The body exceeds WASMHTTP_MAX_BODY (413).
    BodyTooLarge,
    /// No route of the app matches the path (404).
    NoRoute,
    /// A call of one component by another names a route the app lacks
    /// (`http://<name>.app.internal/`, 404).
    NoRouteNamed(String),
    /// No room for the request now (503 with Retry-After); `detail` goes to
    /// the log when there is more to say than `why`.
    Overloaded {
        why: &'static str,
        detail: Option<String>,
    },
    /// The guest did not answer within WASMHTTP_REQUEST_TIMEOUT (504).
    TimedOut,
    /// A CGI program's output is not a response (502).
    BadGateway(String),
    /// The guest trapped or failed (500, counted as a trap).
    Trapped(anyhow::Error),
    /// Anything else that left the request without a response (500): the
    /// guest answered with an error code, or never set a response.
    Failed(anyhow::Error),
    /// The client went away before the response was whole, and the guest
    /// was stopped (nobody gets a status: 499 in the manner of nginx, for
    /// the record). Not a failure of the guest or the server.
    ClientGone,
}

/// Why a guest's task ended early: its response was dropped unfinished
/// (the client went away), see [`crate::http::body::GuestBody`].
#[derive(Debug)]
pub struct ClientGone;

impl fmt::Display for ClientGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the client went away before the response was whole; the guest was stopped")
    }
}

impl std::error::Error for ClientGone {}

/// The method, target and id of a request, for the log lines about it.
pub struct RequestLine<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub id: &'a str,
}

impl RequestLine<'_> {
    /// A container log line about this request: `wasmhttp: GET /x
    /// [request ID]: what`, the id before `what` (which may run to several
    /// lines: a trap's backtrace).
    pub fn said(&self, what: impl fmt::Display) -> String {
        format!(
            "wasmhttp: {} {} [request {}]: {what}",
            self.method, self.uri, self.id
        )
    }
}

impl Failure {
    /// What a guest run's error means: its deadline, a full instance pool,
    /// or the guest's own fault.
    pub fn of_guest(err: anyhow::Error) -> Self {
        if err.is::<TimedOut>() {
            Failure::TimedOut
        } else if err.is::<ClientGone>() {
            Failure::ClientGone
        } else if let Some(full) = err.downcast_ref::<PoolExhausted>() {
            Failure::Overloaded {
                why: "no instance slot is free",
                detail: Some(full.to_string()),
            }
        } else {
            Failure::Trapped(err)
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Failure::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Failure::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Failure::NoRoute | Failure::NoRouteNamed(_) => StatusCode::NOT_FOUND,
            Failure::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Failure::TimedOut => StatusCode::GATEWAY_TIMEOUT,
            Failure::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Failure::Trapped(_) | Failure::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Failure::ClientGone => StatusCode::from_u16(499).expect("499 is in the status range"),
        }
    }

    /// Counts the failure in `metrics`.
    fn count(&self, metrics: &Metrics) {
        match self {
            Failure::BadRequest { .. } => metrics.rejected(Rejection::BadRequest),
            Failure::BodyTooLarge => metrics.rejected(Rejection::BodyTooLarge),
            Failure::NoRoute | Failure::NoRouteNamed(_) => metrics.rejected(Rejection::NoRoute),
            Failure::Overloaded { .. } => metrics.rejected(Rejection::Overloaded),
            Failure::TimedOut => metrics.timed_out(),
            Failure::Trapped(_) => metrics.trapped(),
            Failure::ClientGone => metrics.client_gone(),
            Failure::BadGateway(_) | Failure::Failed(_) => {}
        }
    }

    /// What the container log says about it; `None` for failures that are
    /// the client's and said in the response.
    fn log_line(&self, request: &RequestLine, settings: &Settings) -> Option<String> {
        match self {
            Failure::BadRequest { .. }
            | Failure::BodyTooLarge
            | Failure::NoRoute
            | Failure::NoRouteNamed(_) => None,
            Failure::Overloaded { detail, .. } => detail
                .as_ref()
                .map(|detail| request.said(format_args!("shed with 503: {detail}"))),
            Failure::TimedOut => Some(request.said(format_args!(
                "no response within WASMHTTP_REQUEST_TIMEOUT={:?}; the guest was stopped",
                settings.request_timeout
            ))),
            Failure::BadGateway(why) => Some(request.said(why)),
            Failure::ClientGone => Some(request.said(ClientGone)),
            Failure::Trapped(err) | Failure::Failed(err) => {
                Some(request.said(format_args!("{err:#}")))
            }
        }
    }

    /// The response the client gets; the failure is counted and logged.
    pub fn respond(
        self,
        request: &RequestLine,
        settings: &Settings,
        metrics: &Metrics,
    ) -> Response<HyperOutgoingBody> {
        self.count(metrics);
        if let Some(line) = self.log_line(request, settings) {
            crate::say!("{line}");
        }
        let text = match &self {
            Failure::BadRequest { reason, .. } => format!("400 Bad Request: {reason}\n"),
            Failure::BodyTooLarge => format!(
                "413 Payload Too Large: the body exceeds WASMHTTP_MAX_BODY={} bytes\n",
                settings.max_body
            ),
            Failure::NoRoute => "404 Not Found: no route of this app matches the path\n".into(),
            Failure::NoRouteNamed(name) => format!(
                "404 Not Found: this app has no route named {name:?} (an internal name is a route's name)\n"
            ),
            Failure::Overloaded { why, .. } => {
                format!("503 Service Unavailable: {why}; retry\n")
            }
            Failure::TimedOut => {
                "504 Gateway Timeout: the WebAssembly handler did not answer in time\n".into()
            }
            Failure::BadGateway(_) => "502 Bad Gateway: the CGI program gave no usable response; \
                                       the container log says why\n"
                .into(),
            Failure::ClientGone => "499: the client went away\n".into(),
            Failure::Trapped(_) | Failure::Failed(_) => "500 Internal Server Error: the \
                                                         WebAssembly handler failed; the \
                                                         container log says why\n"
                .into(),
        };
        let mut response = plain(self.status(), text);
        let headers = response.headers_mut();
        match self {
            Failure::BadRequest { close: true, .. } => {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Failure::Overloaded { .. } => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }

    /// A failure after the response head was sent: only the body can be cut
    /// by then (see [`super::body::GuestBody`]); it is counted, and the log
    /// says why. `who` is what failed ("the guest", "the CGI program").
    pub fn after_head(self, request: &RequestLine, who: &str, metrics: &Metrics) {
        self.count(metrics);
        if let Failure::ClientGone = self {
            crate::say!("{}", request.said(ClientGone));
            return;
        }
        crate::say!(
            "{}",
            request.said(format_args!(
                "{who} failed while streaming the response body, which was cut: {self}"
            ))
        );
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::BadRequest { reason, .. } => f.write_str(reason),
            Failure::BodyTooLarge => f.write_str("the body exceeds WASMHTTP_MAX_BODY"),
            Failure::NoRoute => f.write_str("no route matches the path"),
            Failure::NoRouteNamed(name) => write!(f, "no route is named {name:?}"),
            Failure::Overloaded { why, .. } => f.write_str(why),
            Failure::TimedOut => fmt::Display::fmt(&TimedOut, f),
            Failure::BadGateway(why) => f.write_str(why),
            Failure::Trapped(err) | Failure::Failed(err) => write!(f, "{err:#}"),
            Failure::ClientGone => fmt::Display::fmt(&ClientGone, f),
        }
    }
}

/// A short text/plain response.
pub fn plain(status: StatusCode, text: String) -> Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn respond(failure: Failure, metrics: &Metrics) -> Response<HyperOutgoingBody> {
        let (method, uri) = (Method::GET, Uri::from_static("/x"));
        let request = RequestLine {
            method: &method,
            uri: &uri,
            id: "test-1",
        };
        failure.respond(&request, &Settings::default(), metrics)
    }

    fn metric(metrics: &Metrics, name: &str) -> String {
        let text = metrics.render();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
            .to_string()
    }

    #[test]
    fn each_failure_has_its_status_headers_and_counter() {
        let metrics = Metrics::default();
        let cases = [
            (
                Failure::BadRequest {
                    reason: "no Host".into(),
                    close: true,
                },
                400,
                "wasmhttp_rejections_total{reason=\"bad_request\"}",
            ),
            (
                Failure::BodyTooLarge,
                413,
                "wasmhttp_rejections_total{reason=\"body_too_large\"}",
            ),
            (
                Failure::Overloaded {
                    why: "full",
                    detail: None,
                },
                503,
                "wasmhttp_rejections_total{reason=\"overloaded\"}",
            ),
            (Failure::TimedOut, 504, "wasmhttp_request_timeouts_total"),
            (
                Failure::Trapped(anyhow::anyhow!("unreachable")),
                500,
                "wasmhttp_guest_traps_total",
            ),
        ];
        for (failure, status, counter) in cases {
            assert_eq!(metric(&metrics, counter), "0", "{counter}");
            let response = respond(failure, &metrics);
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(metric(&metrics, counter), "1", "{counter}");
            assert_eq!(response.headers()[CONTENT_TYPE], "text/plain");
            let retry = response.headers().get(RETRY_AFTER);
            assert_eq!(retry.is_some(), status == 503, "{status}: Retry-After");
            let close = response.headers().get(CONNECTION);
            assert_eq!(close.is_some(), status == 400, "{status}: Connection");
        }
        // neither a bad gateway nor a refused answer is the guest trapping
        for failure in [
            Failure::BadGateway("no blank line".into()),
            Failure::Failed(anyhow::anyhow!("error code")),
        ] {
            let status = failure.status();
            assert_eq!(respond(failure, &metrics).status(), status);
        }
        assert_eq!(metric(&metrics, "wasmhttp_guest_traps_total"), "1");
    }

    #[test]
    fn a_guest_error_is_a_timeout_a_shed_or_a_trap() {
        let timed_out = Failure::of_guest(anyhow::Error::new(TimedOut).context("calling"));
        assert!(matches!(timed_out, Failure::TimedOut), "{timed_out:?}");
        let full = Failure::of_guest(anyhow::Error::new(PoolExhausted("88 reached".into())));
        assert!(
            matches!(&full, Failure::Overloaded { detail: Some(d), .. } if d.contains("88 reached")),
            "{full:?}"
        );
        let trap = Failure::of_guest(anyhow::anyhow!("wasm trap: unreachable"));
        assert!(matches!(trap, Failure::Trapped(_)), "{trap:?}");
    }

    #[test]
    fn a_failure_after_the_head_is_counted_like_one_before() {
        let metrics = Metrics::default();
        let (method, uri) = (Method::GET, Uri::from_static("/"));
        let request = RequestLine {
            method: &method,
            uri: &uri,
            id: "test-1",
        };
        Failure::TimedOut.after_head(&request, "the guest", &metrics);
        Failure::Trapped(anyhow::anyhow!("trap")).after_head(&request, "the guest", &metrics);
        assert_eq!(metric(&metrics, "wasmhttp_request_timeouts_total"), "1");
        assert_eq!(metric(&metrics, "wasmhttp_guest_traps_total"), "1");
    }
}
