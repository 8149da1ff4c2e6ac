//! A deliberately small HTTP/1.1 client over std TCP, so tests see exactly
//! what goes over the wire (framing, keep-alive) with no client library in
//! between. Only ever pointed at loopback.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The values of the echo fixture's `x-echo-header` lines for `name`:
    /// what the component saw of that request header.
    pub fn seen_header(&self, name: &str) -> Vec<String> {
        // an empty value arrives as "name:" (the client trims the line)
        let prefix = format!("{name}:");
        self.all("x-echo-header")
            .into_iter()
            .filter_map(|line| line.strip_prefix(&prefix).map(|v| v.trim().to_string()))
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One connection that can carry several requests (keep-alive).
pub struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    pub fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Response> {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let stream = self.reader.get_mut();
        stream.write_all(request.as_bytes())?;
        stream.write_all(body)?;
        read_response(&mut self.reader, method == "HEAD")
    }
}

fn read_line(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn read_response(reader: &mut impl BufRead, head_only: bool) -> std::io::Result<Response> {
    let status_line = read_line(reader)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| std::io::Error::other(format!("bad header {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if head_only {
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let size = read_line(reader)?;
            let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
            if size == 0 {
                while !read_line(reader)?.is_empty() {}
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            read_line(reader)?;
        }
    } else if let Some(length) = find("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| std::io::Error::other("bad content-length"))?;
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// One request on its own connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    Connection::open(addr)?.send(method, path, headers, body)
}

pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    request(addr, "GET", path, &[], b"")
}

/// Polls until the server answers (any status) or `timeout` passes.
pub fn wait_until_serving(addr: SocketAddr, timeout: Duration) -> Result<Response, String> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match get(addr, "/") {
            Ok(response) => return Ok(response),
            Err(err) => last = err.to_string(),
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(format!(
        "nothing answered on {addr} within {timeout:?} (last error: {last})"
    ))
}

/// The loopback ports [`free_port`] hands out: below the kernel's ephemeral
/// range (32768–60999 by default), where a `bind(:0)` and every client
/// connection of the suites take theirs. Port 0 would let the kernel give the
/// same "free" port to two callers in a row (seen in CI: a server's admin and
/// listen address were one port, so every request met the admin server's 404).
const TEST_PORTS: std::ops::Range<u32> = 20_000..32_000;

/// A loopback port that was free a moment ago and that this process has not
/// handed out before. Each process starts at its own place in
/// [`TEST_PORTS`], so two suites running at once rarely try the same ports.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static HANDED_OUT: AtomicU32 = AtomicU32::new(0);
    let count = TEST_PORTS.end - TEST_PORTS.start;
    let start = std::process::id().wrapping_mul(7_919) % count;
    for _ in 0..count {
        let n = HANDED_OUT.fetch_add(1, Ordering::Relaxed);
        let port = (TEST_PORTS.start + (start + n) % count) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {TEST_PORTS:?}");
}

/// `count` GET requests for `path`, each on its own connection and thread,
/// all sent at once (requests in flight for drain and load-shedding tests).
pub fn in_flight(
    addr: SocketAddr,
    path: &'static str,
    count: usize,
) -> Vec<std::thread::JoinHandle<std::io::Result<Response>>> {
    (0..count)
        .map(|_| std::thread::spawn(move || get(addr, path)))
        .collect()
}

/// Every request of [`in_flight`] completed with `status` and exactly `body`.
pub fn assert_all_answered(
    requests: Vec<std::thread::JoinHandle<std::io::Result<Response>>>,
    status: u16,
    body: &str,
    context: &str,
) {
    for request in requests {
        let response = request
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("a request in flight failed: {e}\n{context}"));
        assert_eq!(
            (response.status, response.text().as_str()),
            (status, body),
            "a request in flight was cut\n{context}"
        );
    }
}

/// Connects to a plain TCP server once it listens (within `timeout`) and
/// reads all it sends until it closes the connection.
pub fn read_all_once_listening(addr: SocketAddr, timeout: Duration) -> String {
    use std::io::Read;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let mut text = String::new();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream.read_to_string(&mut text).unwrap();
            return text;
        }
        assert!(Instant::now() < deadline, "nothing listened on {addr}");
        std::thread::sleep(Duration::from_millis(25));
    }
}
