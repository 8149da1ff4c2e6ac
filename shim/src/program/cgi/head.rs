//! The program's answer: CGI header lines on its stdout, up to a blank line.

use hyper::StatusCode;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most the program's header lines may take; more is a bad response.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Why stdout held no complete header lines.
#[derive(Debug, PartialEq)]
pub enum HeadError {
    /// stdout ended (the program did) after these bytes
    Ended(Vec<u8>),
    /// more than [`MAX_HEAD_BYTES`] and no blank line yet
    TooLong,
}

/// Reads the program's stdout up to the blank line after its header lines.
/// Returns the header lines and what followed them.
pub async fn read_head<R: AsyncRead + Unpin>(
    stdout: &mut R,
) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
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
pub fn preview(bytes: &[u8]) -> String {
    let end = bytes.len().min(80);
    let mut text = String::from_utf8_lossy(&bytes[..end]).into_owned();
    if bytes.len() > end {
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

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
