//! Whether a request gets to a guest at all: refused if malformed (400) or
//! declared too large (413), shed if the server is at its concurrency cap
//! (503). An admitted request holds a [`Slot`] for as long as its guest runs
//! and starts its one [`Deadline`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::failure::Failure;
use crate::guest::Deadline;

pub struct Admission {
    /// One permit per request being served (WASMHTTP_MAX_CONCURRENCY).
    slots: Arc<Semaphore>,
    max_body: u64,
    request_timeout: Duration,
}

/// One of WASMHTTP_MAX_CONCURRENCY places, given back when dropped: by the
/// guest's task once the guest is done (body streamed, store freed), not
/// when the response head leaves.
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

/// What an admitted request brings to its app.
pub struct Call {
    pub slot: Slot,
    pub deadline: Deadline,
    pub peer: SocketAddr,
}

impl Admission {
    pub fn new(max_concurrency: usize, max_body: u64, request_timeout: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_concurrency)),
            max_body,
            request_timeout,
        }
    }

    pub fn admit<B>(&self, req: &Request<B>, peer: SocketAddr) -> Result<Call, Failure> {
        if let Some(reason) = must_be_refused(req) {
            return Err(Failure::BadRequest {
                reason: reason.into(),
                close: true,
            });
        }
        if declared_length(req).is_some_and(|length| length > self.max_body) {
            return Err(Failure::BodyTooLarge);
        }
        // Beyond the cap, say so at once rather than queue without bound.
        let permit = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Failure::Overloaded {
                why: "the server is at WASMHTTP_MAX_CONCURRENCY",
                detail: None,
            })?;
        Ok(Call {
            slot: Slot(permit),
            deadline: Deadline::after(self.request_timeout),
            peer,
        })
    }
}

/// What hyper lets through but RFC 9112 says a server must refuse: an HTTP/1
/// request without exactly one Host. (A body framed both ways hyper reads as
/// chunked, and closes the connection after it, as the RFC asks.)
fn must_be_refused<B>(req: &Request<B>) -> Option<&'static str> {
    if req.version() <= hyper::Version::HTTP_11 {
        match req.headers().get_all(hyper::header::HOST).iter().count() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: hyper::Version, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().version(version).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    #[test]
    fn http1_needs_exactly_one_host_http2_its_authority() {
        let admission = Admission::new(4, 100, Duration::from_secs(1));
        let v11 = hyper::Version::HTTP_11;
        for (req, refused) in [
            (request(v11, "/", &[("host", "a")]), None),
            (request(v11, "/", &[]), Some("no Host header")),
            (request(v11, "http://a/", &[]), None),
            (
                request(v11, "/", &[("host", "a"), ("host", "b")]),
                Some("more than one Host"),
            ),
            (request(hyper::Version::HTTP_2, "http://a/", &[]), None),
        ] {
            match (admission.admit(&req, peer()), refused) {
                (Ok(_), None) => {}
                (Err(Failure::BadRequest { reason, close }), Some(says)) => {
                    assert!(reason.contains(says), "{reason}");
                    assert!(close, "the connection's framing is in doubt");
                }
                (other, _) => panic!("{req:?}: {:?}", other.map(|_| "admitted")),
            }
        }
    }

    #[test]
    fn a_declared_body_over_the_limit_is_refused_before_it_is_read() {
        let admission = Admission::new(4, 100, Duration::from_secs(1));
        let at = request(
            hyper::Version::HTTP_11,
            "/",
            &[("host", "a"), ("content-length", "100")],
        );
        assert!(admission.admit(&at, peer()).is_ok());
        let over = request(
            hyper::Version::HTTP_11,
            "/",
            &[("host", "a"), ("content-length", "101")],
        );
        assert!(matches!(
            admission.admit(&over, peer()),
            Err(Failure::BodyTooLarge)
        ));
    }

    #[test]
    fn slots_are_held_until_dropped_and_none_are_queued() {
        let admission = Admission::new(2, 100, Duration::from_secs(1));
        let req = request(hyper::Version::HTTP_11, "/", &[("host", "a")]);
        let first = admission.admit(&req, peer()).ok().unwrap();
        let _second = admission.admit(&req, peer()).ok().unwrap();
        assert!(matches!(
            admission.admit(&req, peer()),
            Err(Failure::Overloaded { .. })
        ));
        drop(first.slot);
        assert!(admission.admit(&req, peer()).is_ok());
    }
}
