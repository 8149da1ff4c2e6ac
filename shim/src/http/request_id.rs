//! Each request's id: the one a client (or a proxy in front) sent in
//! `X-Request-Id` when it is one we can log safely, else one made here. It
//! goes to the guest in that header, back to the client in the response,
//! and into the access log and every line about the request, so that they
//! can be joined, and two identical requests at once told apart.

use std::hash::{BuildHasher, Hasher};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming id kept: a UUID is 36 bytes, a W3C trace id 32;
/// longer ones would bloat every log line about the request.
pub const MAX_LEN: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The id of a request with `headers`: its one `X-Request-Id`, if that
    /// is 1 to [`MAX_LEN`] bytes of letters, digits and `-_.:+/=@`
    /// (nothing that could forge a log line or a JSON field); otherwise a
    /// new one. Two `X-Request-Id` headers are as good as none.
    pub fn of(headers: &HeaderMap) -> Self {
        let mut sent = headers.get_all(&REQUEST_ID_HEADER).iter();
        match (sent.next(), sent.next()) {
            (Some(id), None) if acceptable(id.as_bytes()) => Self(id.clone()),
            _ => Self::new(),
        }
    }

    /// A new id: this process' random 64-bit prefix and a counter, so ids
    /// are unique within the process without a lock or a syscall, and apart
    /// across pods (`5f0c9e6b2a7d4e13-2a`).
    fn new() -> Self {
        static PREFIX: LazyLock<String> = LazyLock::new(|| {
            // the standard library's per-process random hash keys
            let random = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            format!("{random:016x}")
        });
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n:x}", *PREFIX);
        Self(HeaderValue::from_str(&id).expect("hex digits and a dash"))
    }

    pub fn as_str(&self) -> &str {
        // only visible ASCII gets here (see `acceptable` and `new`)
        self.0.to_str().unwrap_or_default()
    }

    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }

    /// Makes this the one `X-Request-Id` of `headers`.
    pub fn set(&self, headers: &mut HeaderMap) {
        headers.insert(REQUEST_ID_HEADER, self.header_value());
    }
}

fn acceptable(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(REQUEST_ID_HEADER, HeaderValue::from_bytes(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_sane_incoming_id_is_kept_and_anything_else_replaced() {
        for kept in [
            "abc-123",
            "0af7651916cd43dd8448eb211c80319c",
            "6f1c0f0e-3b0a-4a4e-9a43-6a1f7f0b8d2e",
            "trace:span/1+2=3@x_y.z",
        ] {
            assert_eq!(RequestId::of(&with(&[kept.as_bytes()])).as_str(), kept);
        }
        let too_long = "a".repeat(MAX_LEN + 1);
        for replaced in [
            b"has space".as_slice(),
            b"quote\"inside",
            b"new\\line",
            b"",
            b"caf\xc3\xa9",
            too_long.as_bytes(),
        ] {
            let id = RequestId::of(&with(&[replaced]));
            assert_ne!(id.as_str().as_bytes(), replaced);
            assert!(acceptable(id.as_str().as_bytes()), "{id:?}");
        }
        // two of them: which one would the client mean?
        let id = RequestId::of(&with(&[b"one", b"two"]));
        assert!(id.as_str() != "one" && id.as_str() != "two", "{id:?}");
        assert_eq!(
            RequestId::of(&with(&[&[b'a'; MAX_LEN]])).as_str().len(),
            MAX_LEN
        );
    }

    #[test]
    fn made_ids_are_distinct_and_share_the_process_prefix() {
        let ids: Vec<RequestId> = (0..1000)
            .map(|_| RequestId::of(&HeaderMap::new()))
            .collect();
        let distinct: std::collections::HashSet<&str> = ids.iter().map(RequestId::as_str).collect();
        assert_eq!(distinct.len(), ids.len());
        let prefix = |id: &RequestId| id.as_str().split_once('-').unwrap().0.to_string();
        assert_eq!(prefix(&ids[0]).len(), 16);
        assert!(ids.iter().all(|id| prefix(id) == prefix(&ids[0])));

        let mut headers = with(&[b"a", b"b"]);
        ids[0].set(&mut headers);
        assert_eq!(
            headers.get_all(REQUEST_ID_HEADER).iter().count(),
            1,
            "set leaves one"
        );
    }
}
