//! WASMHTTP_MODE=cgi: a WASI command (a preview 1 module or a `wasi:cli/run`
//! component) runs once per request as a CGI/1.1 program (RFC 3875), as
//! Apache's mod_wasm does with `WasmEnableCGI On`.
//!
//! The request becomes the program's environment (the meta-variables, then
//! the container's env) and its stdin (the body, read whole first: CGI
//! promises the program a CONTENT_LENGTH). The program's stdout is read as a
//! CGI response, header lines up to a blank line, and the rest is streamed to
//! the client as it is written; stderr goes to the container log. The server
//! around it (limits, timeouts, draining, metrics) is the one of proxy mode.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use anyhow::{Result, anyhow};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, DuplexStream, ReadBuf};
use wasmtime_wasi::cli::AsyncStdoutStream;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::command::Command;
use crate::guest::{self, GuestConfig};

/// The most the program's header lines may take; more is a bad response.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// What the program may write ahead of the client before its writes wait.
const STDOUT_BUFFER: usize = 64 * 1024;

/// The program's output could not be made into a response: answered 502.
#[derive(Debug)]
pub struct BadGateway(pub String);

impl std::fmt::Display for BadGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadGateway {}

/// A request CGI cannot express (answered 400) or a body over the cap (413).
#[derive(Debug)]
pub enum Unacceptable {
    BadRequest(String),
    BodyTooLarge,
}

impl std::fmt::Display for Unacceptable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unacceptable::BadRequest(reason) => f.write_str(reason),
            Unacceptable::BodyTooLarge => f.write_str("the body exceeds WASMHTTP_MAX_BODY"),
        }
    }
}

impl std::error::Error for Unacceptable {}

/// The program and what every run of it shares.
pub struct Cgi {
    command: Command,
    guest: GuestConfig,
}

/// How a run ended, as the response body needs to know at its end.
pub type Outcome = tokio::sync::oneshot::Receiver<bool>;

impl Cgi {
    pub fn new(command: Command, guest: GuestConfig) -> Self {
        Self { command, guest }
    }

    /// Runs the program for one request. Returns the response as soon as the
    /// program's header lines are complete; its body follows as it is written.
    /// The outcome says, at the end of the body, whether the program ended
    /// without trapping (a body cut short by a trap must not look complete).
    pub async fn respond(
        self: &Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        local: SocketAddr,
        max_body: u64,
        timeout: Duration,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<(Response<HyperOutgoingBody>, Outcome, RunHandle)> {
        let (parts, body) = req.into_parts();
        let limit = usize::try_from(max_body).unwrap_or(usize::MAX);
        let body = http_body_util::Limited::new(body, limit)
            .collect()
            .await
            .map_err(|err| {
                if err.is::<http_body_util::LengthLimitError>() {
                    anyhow::Error::new(Unacceptable::BodyTooLarge)
                } else {
                    anyhow!("reading the request body: {err}")
                }
            })?
            .to_bytes();
        let env = meta_variables(&parts, body.len(), peer, local)
            .map_err(|reason| anyhow::Error::new(Unacceptable::BadRequest(reason)))?;
        let env = with_container_env(env, &self.guest.env);

        // a duplex pipe, not a simplex one: dropping the writer (the program's
        // store) must end the reader, and only a duplex end does that
        let (mut stdout, writer) = tokio::io::duplex(STDOUT_BUFFER);
        let mut wasi = guest::wasi_builder(&self.guest, &env)?;
        wasi.stdin(MemoryInputPipe::new(body))
            .stdout(AsyncStdoutStream::new(STDOUT_BUFFER, writer));
        let (finished, outcome) = tokio::sync::oneshot::channel();
        let cgi = self.clone();
        let run = RunHandle(Some(tokio::spawn(async move {
            let ran = cgi.command.run(wasi, &cgi.guest, Some(timeout)).await;
            // The store, and with it the program's stdout, is gone by now.
            // The permit goes before the outcome is told: the response ends
            // only then, and a client that sends its next request at once
            // must find the slot free.
            drop(permit);
            let _ = finished.send(ran.is_ok());
            ran
        })));

        let (head, rest) = match read_head(&mut stdout).await {
            Ok(found) => found,
            Err(HeadError::TooLong) => {
                return Err(anyhow::Error::new(BadGateway(format!(
                    "the CGI program wrote more than {} KiB without the blank line that ends its \
                     header lines",
                    MAX_HEAD_BYTES >> 10
                ))));
            }
            Err(HeadError::Ended(partial)) => {
                // stdout ended before the blank line: the program has ended
                let ran = run.join().await;
                return Err(match ran {
                    Err(err) => err,
                    Ok(code) if partial.is_empty() => anyhow::Error::new(BadGateway(format!(
                        "the CGI program exited with status {code} without writing a response"
                    ))),
                    Ok(code) => anyhow::Error::new(BadGateway(format!(
                        "the CGI program exited with status {code} before the blank line that ends \
                         its header lines (it wrote {:?})",
                        preview(&partial)
                    ))),
                });
            }
        };
        let (status, headers) = parse_head(&head).map_err(|reason| {
            anyhow::Error::new(BadGateway(format!(
                "the CGI program wrote a malformed response: {reason}"
            )))
        })?;
        let body = StdoutBody {
            first: (!rest.is_empty()).then(|| Bytes::from(rest)),
            stdout: Some(stdout),
            scratch: vec![0u8; STDOUT_BUFFER].into_boxed_slice(),
        }
        .map_err(wasmtime_wasi_http::Error::from)
        .boxed_unsync();
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok((response, outcome, run))
    }
}

/// The running program: stopped, its store and concurrency permit freed,
/// when dropped before it ends (the client went away).
pub struct RunHandle(Option<tokio::task::JoinHandle<Result<i32>>>);

impl RunHandle {
    /// Waits for the program's exit code, or why it failed.
    pub async fn join(mut self) -> Result<i32> {
        let task = self.0.take().expect("joined once");
        task.await
            .unwrap_or_else(|join| Err(anyhow!(join).context("the CGI task panicked")))
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// RFC 3875 §4.1 plus the widely used REQUEST_URI and REQUEST_SCHEME. The
/// script is the whole URL space: SCRIPT_NAME is empty and PATH_INFO is the
/// decoded path. Each header becomes `HTTP_NAME` (repeated ones joined with
/// ", ") except Content-Type and Content-Length, which have their own
/// variables, Proxy, whose HTTP_PROXY would redirect the program's outbound
/// traffic ("httpoxy"), and names with `_`, which could pass for others.
pub fn meta_variables(
    parts: &http::request::Parts,
    body_len: usize,
    peer: SocketAddr,
    local: SocketAddr,
) -> Result<Vec<(String, String)>, String> {
    let uri = &parts.uri;
    let path = percent_decode(uri.path())?;
    let host = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .map(host_without_port)
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| local.ip().to_string());
    let protocol = match parts.version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    };
    let mut env = vec![
        ("GATEWAY_INTERFACE".to_string(), "CGI/1.1".to_string()),
        (
            "SERVER_SOFTWARE".into(),
            format!("wasmhttp/{}", env!("CARGO_PKG_VERSION")),
        ),
        ("SERVER_NAME".into(), host),
        ("SERVER_PORT".into(), local.port().to_string()),
        ("SERVER_PROTOCOL".into(), protocol.into()),
        ("REQUEST_SCHEME".into(), "http".into()),
        ("REQUEST_METHOD".into(), parts.method.as_str().into()),
        (
            "REQUEST_URI".into(),
            uri.path_and_query().map_or("/", |pq| pq.as_str()).into(),
        ),
        ("SCRIPT_NAME".into(), String::new()),
        ("PATH_INFO".into(), path),
        (
            "QUERY_STRING".into(),
            uri.query().unwrap_or_default().into(),
        ),
        ("REMOTE_ADDR".into(), peer.ip().to_canonical().to_string()),
        ("REMOTE_PORT".into(), peer.port().to_string()),
    ];
    if let Some(content_type) = parts.headers.get(hyper::header::CONTENT_TYPE) {
        env.push((
            "CONTENT_TYPE".into(),
            String::from_utf8_lossy(content_type.as_bytes()).into_owned(),
        ));
    }
    if body_len > 0 || parts.headers.contains_key(hyper::header::CONTENT_LENGTH) {
        env.push(("CONTENT_LENGTH".into(), body_len.to_string()));
    }
    for name in parts.headers.keys() {
        let name_str = name.as_str();
        if name == hyper::header::CONTENT_TYPE
            || name == hyper::header::CONTENT_LENGTH
            || name_str == "proxy"
            || name_str.contains('_')
        {
            continue;
        }
        let separator = if name == hyper::header::COOKIE {
            "; "
        } else {
            ", "
        };
        let value = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect::<Vec<_>>()
            .join(separator);
        let variable = format!("HTTP_{}", name_str.to_ascii_uppercase().replace('-', "_"));
        env.push((variable, value));
    }
    Ok(env)
}

/// The request's variables first, then the container's env, minus any name
/// the request already set: a container variable never stands in for a
/// request's (a stale CONTENT_LENGTH, say).
fn with_container_env(
    mut env: Vec<(String, String)>,
    container: &[(String, String)],
) -> Vec<(String, String)> {
    let taken: std::collections::HashSet<String> = env.iter().map(|(n, _)| n.clone()).collect();
    env.extend(
        container
            .iter()
            .filter(|(name, _)| !taken.contains(name))
            .cloned(),
    );
    env
}

fn host_without_port(host: &str) -> String {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
        .to_string()
}

/// `%2F` and friends decoded; PATH_INFO is a decoded path (RFC 3875 §4.1.5).
/// A path that decodes to something no environment variable can hold
/// (invalid UTF-8, a NUL) cannot be handed to the program.
fn percent_decode(path: &str) -> Result<String, String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                None => return Err(format!("the path {path:?} has a malformed %-escape")),
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    if out.contains(&0) {
        return Err(format!("the path {path:?} decodes to a NUL byte"));
    }
    String::from_utf8(out).map_err(|_| format!("the path {path:?} does not decode to UTF-8"))
}

/// Why stdout held no complete header lines.
#[derive(Debug, PartialEq)]
enum HeadError {
    /// stdout ended (the program did) after these bytes
    Ended(Vec<u8>),
    /// more than [`MAX_HEAD_BYTES`] and no blank line yet
    TooLong,
}

/// Reads the program's stdout up to the blank line after its header lines.
/// Returns the header lines and what followed them.
async fn read_head<R: AsyncRead + Unpin>(stdout: &mut R) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
    let mut read = Vec::with_capacity(4096);
    let mut scanned = 0;
    loop {
        if let Some(end) = head_end(&read, scanned) {
            let rest = read.split_off(end);
            return Ok((read, rest));
        }
        scanned = read.len();
        if read.len() > MAX_HEAD_BYTES {
            return Err(HeadError::TooLong);
        }
        let mut chunk = [0u8; 4096];
        match stdout.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(HeadError::Ended(read)),
            Ok(n) => read.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Where the body starts: just after the first empty line (`\n\n` or
/// `\r\n\r\n`, or a mix). `from` is how far an earlier call looked.
fn head_end(read: &[u8], from: usize) -> Option<usize> {
    // a line may have started before `from`: look back to its start
    let mut line_start = read[..from]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    for (i, byte) in read.iter().enumerate().skip(line_start) {
        if *byte == b'\n' {
            let line = &read[line_start..i];
            if line.is_empty() || line == b"\r" {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

/// Headers a CGI program may not set: hyper frames the response itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// RFC 3875 §6: `Status: 404 Not Found` sets the status, `Location` alone
/// means 302, at least one header line is needed; the rest pass through.
pub fn parse_head(head: &[u8]) -> Result<(StatusCode, HeaderMap), String> {
    let mut status = None;
    let mut location = false;
    let mut headers = HeaderMap::new();
    let mut fields = 0;
    for line in head.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        fields += 1;
        if line.first().is_some_and(|b| b.is_ascii_whitespace()) {
            return Err(format!(
                "the line {:?} continues a header; CGI does not allow that",
                preview(line)
            ));
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            return Err(format!(
                "the line {:?} is not a header (NAME: value)",
                preview(line)
            ));
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        let name = HeaderName::from_bytes(name)
            .map_err(|_| format!("{:?} is not a valid header name", preview(name)))?;
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| format!("the value of {name} is not a valid header value"))?;
        match name.as_str() {
            "status" => {
                let text = value.to_str().unwrap_or_default();
                let code = text.split_ascii_whitespace().next().unwrap_or_default();
                let parsed = (code.len() == 3)
                    .then(|| code.parse::<u16>().ok())
                    .flatten()
                    .and_then(|code| StatusCode::from_u16(code).ok())
                    .filter(|code| code.as_u16() >= 200);
                status = Some(parsed.ok_or_else(|| {
                    format!("Status: {text:?} is not a status code from 200 to 999 (e.g. `Status: 404 Not Found`)")
                })?);
            }
            "location" => {
                location = true;
                headers.append(name, value);
            }
            "content-length" => {
                if value
                    .to_str()
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_none()
                {
                    return Err(format!("Content-Length: {value:?} is not a number"));
                }
                headers.insert(name, value);
            }
            other if HOP_BY_HOP.contains(&other) => {}
            _ => {
                headers.append(name, value);
            }
        }
    }
    if fields == 0 {
        return Err("no header lines before the blank line (at least Content-Type, Location or Status is needed)".into());
    }
    let status = status.unwrap_or(if location {
        StatusCode::FOUND
    } else {
        StatusCode::OK
    });
    Ok((status, headers))
}

/// A short, printable excerpt of what the program wrote, for the log.
fn preview(bytes: &[u8]) -> String {
    let end = bytes.len().min(80);
    let mut text = String::from_utf8_lossy(&bytes[..end]).into_owned();
    if bytes.len() > end {
        text.push('…');
    }
    text
}

/// The program's stdout after its header lines, as a response body.
struct StdoutBody {
    first: Option<Bytes>,
    stdout: Option<DuplexStream>,
    /// Read into, once per response: a poll that finds the pipe empty must
    /// not cost an allocation.
    scratch: Box<[u8]>,
}

impl Body for StdoutBody {
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        let this = &mut *self;
        let Some(stdout) = this.stdout.as_mut() else {
            return Poll::Ready(None);
        };
        let mut buf = ReadBuf::new(&mut this.scratch);
        match ready!(Pin::new(stdout).poll_read(cx, &mut buf)) {
            Ok(()) if buf.filled().is_empty() => {
                this.stdout = None;
                Poll::Ready(None)
            }
            Ok(()) => Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(buf.filled()))))),
            Err(err) => Poll::Ready(Some(Err(ErrorCode::InternalError(Some(err.to_string()))))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.stdout.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = Request::builder().method("POST").uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn vars(parts: &http::request::Parts, body: usize) -> Vec<(String, String)> {
        meta_variables(
            parts,
            body,
            "10.1.2.3:40000".parse().unwrap(),
            "0.0.0.0:8080".parse().unwrap(),
        )
        .unwrap()
    }

    fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_request_becomes_meta_variables() {
        let parts = request(
            "/app/a%20b?x=1&y=%2F",
            &[
                ("host", "shop.example:8443"),
                ("content-type", "text/plain"),
                ("x-trace", "a"),
                ("x-trace", "b"),
                ("cookie", "a=1"),
                ("cookie", "b=2"),
                ("proxy", "http://attacker:1"),
                ("x_forwarded_for", "spoof"),
            ],
        );
        let env = vars(&parts, 5);
        assert_eq!(get(&env, "REQUEST_METHOD"), Some("POST"));
        assert_eq!(get(&env, "PATH_INFO"), Some("/app/a b"));
        assert_eq!(get(&env, "QUERY_STRING"), Some("x=1&y=%2F"));
        assert_eq!(get(&env, "REQUEST_URI"), Some("/app/a%20b?x=1&y=%2F"));
        assert_eq!(get(&env, "SCRIPT_NAME"), Some(""));
        assert_eq!(get(&env, "SERVER_NAME"), Some("shop.example"));
        assert_eq!(get(&env, "SERVER_PORT"), Some("8080"));
        assert_eq!(get(&env, "SERVER_PROTOCOL"), Some("HTTP/1.1"));
        assert_eq!(get(&env, "REMOTE_ADDR"), Some("10.1.2.3"));
        assert_eq!(get(&env, "CONTENT_TYPE"), Some("text/plain"));
        assert_eq!(get(&env, "CONTENT_LENGTH"), Some("5"));
        assert_eq!(get(&env, "HTTP_X_TRACE"), Some("a, b"));
        assert_eq!(get(&env, "HTTP_COOKIE"), Some("a=1; b=2"));
        assert_eq!(get(&env, "HTTP_HOST"), Some("shop.example:8443"));
        assert_eq!(get(&env, "HTTP_CONTENT_TYPE"), None);
        assert_eq!(get(&env, "HTTP_PROXY"), None, "httpoxy");
        assert_eq!(get(&env, "HTTP_X_FORWARDED_FOR"), None);
    }

    #[test]
    fn no_body_no_content_length_and_bad_paths_are_refused() {
        let env = vars(&request("/", &[("host", "[::1]:80")]), 0);
        assert_eq!(get(&env, "CONTENT_LENGTH"), None);
        assert_eq!(get(&env, "SERVER_NAME"), Some("::1"));
        let peer = "127.0.0.1:1".parse().unwrap();
        let local = "127.0.0.1:2".parse().unwrap();
        for bad in ["/a%00b", "/%ff", "/%zz"] {
            assert!(
                meta_variables(&request(bad, &[]), 0, peer, local).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn container_env_never_overrides_the_request() {
        let env = with_container_env(
            vec![("CONTENT_LENGTH".into(), "3".into())],
            &[
                ("CONTENT_LENGTH".into(), "999".into()),
                ("GREETING".into(), "hi".into()),
            ],
        );
        assert_eq!(
            env,
            vec![
                ("CONTENT_LENGTH".into(), "3".into()),
                ("GREETING".into(), "hi".into())
            ]
        );
    }

    #[test]
    fn header_lines_end_at_the_first_blank_line_either_way() {
        assert_eq!(head_end(b"A: b\r\n\r\nbody", 0), Some(8));
        assert_eq!(head_end(b"A: b\n\nbody", 0), Some(6));
        assert_eq!(head_end(b"A: b\r\n\nbody", 0), Some(7));
        assert_eq!(head_end(b"A: b\r\nC: d\r\n", 0), None);
        // resumed after a read that ended mid-line
        assert_eq!(head_end(b"A: b\r\n\r\n", 7), Some(8));
        assert_eq!(head_end(b"\n", 0), Some(1));
    }

    #[test]
    fn status_location_and_headers() {
        let (status, headers) =
            parse_head(b"Status: 404 Not Found\r\nContent-Type: text/html\r\nX-A: 1\r\nX-A: 2\r\n")
                .unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers["content-type"], "text/html");
        assert_eq!(headers.get_all("x-a").iter().count(), 2);
        assert!(!headers.contains_key("status"));

        let (status, headers) = parse_head(b"Location: https://example.com/\n").unwrap();
        assert_eq!(status, StatusCode::FOUND);
        assert_eq!(headers["location"], "https://example.com/");
        let (status, _) = parse_head(b"Location: /x\nStatus: 301 Moved\n").unwrap();
        assert_eq!(status, StatusCode::MOVED_PERMANENTLY);

        let (status, headers) = parse_head(
            b"Content-Type: text/plain\nTransfer-Encoding: chunked\nConnection: close\n",
        )
        .unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers.len(),
            1,
            "hop-by-hop headers are hyper's: {headers:?}"
        );
    }

    #[test]
    fn malformed_heads_say_what_is_wrong() {
        for (head, expected) in [
            (&b"not a header\n"[..], "is not a header"),
            (b"Status: abc\n", "is not a status code"),
            (b"Status: 99 Low\n", "is not a status code"),
            (b"Status: 101 Switching\n", "is not a status code"),
            (b"Bad Name: x\n", "not a valid header name"),
            (b"A: b\n continued\n", "continues a header"),
            (b"Content-Length: lots\n", "is not a number"),
            (b"\n", "no header lines"),
        ] {
            let err = parse_head(head).unwrap_err();
            assert!(err.contains(expected), "{head:?}: {err}");
        }
    }

    #[tokio::test]
    async fn the_head_is_read_to_its_blank_line_and_no_further() {
        let mut out: &[u8] = b"Content-Type: text/plain\r\n\r\nhello";
        let (head, rest) = read_head(&mut out).await.unwrap();
        assert_eq!(head, b"Content-Type: text/plain\r\n\r\n");
        assert_eq!(rest, b"hello");
        let mut out: &[u8] = b"Content-Type: text/plain\r\n";
        assert_eq!(
            read_head(&mut out).await.unwrap_err(),
            HeadError::Ended(b"Content-Type: text/plain\r\n".to_vec())
        );
        let endless = vec![b'x'; MAX_HEAD_BYTES * 2];
        let mut out: &[u8] = &endless;
        assert_eq!(read_head(&mut out).await.unwrap_err(), HeadError::TooLong);
    }
}
