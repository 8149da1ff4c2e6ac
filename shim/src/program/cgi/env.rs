//! The request as a CGI program sees it: RFC 3875 meta-variables.

use std::net::SocketAddr;

use crate::routes::Matched;

/// RFC 3875 §4.1 plus the widely used REQUEST_URI and REQUEST_SCHEME. The
/// script is the whole URL space (SCRIPT_NAME empty, PATH_INFO the decoded
/// path), or, under a route of an app (the request's [`Matched`] extension),
/// the route: SCRIPT_NAME is its decoded base and PATH_INFO the rest. Each header becomes `HTTP_NAME` (repeated ones joined with
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
    let (script_name, path) = match parts.extensions.get::<Matched>() {
        Some(route) => (percent_decode(&route.base)?, percent_decode(&route.rest)?),
        None => (String::new(), percent_decode(uri.path())?),
    };
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
        ("SCRIPT_NAME".into(), script_name),
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
pub fn with_container_env(
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

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::Request;

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
    fn under_a_route_script_name_is_the_route_and_path_info_the_rest() {
        let mut parts = request("/cgi%2Dbin/env/a%20b?q=1", &[("host", "x")]);
        parts.extensions.insert(Matched {
            index: 2,
            base: "/cgi%2Dbin".into(),
            rest: "/env/a%20b".into(),
        });
        let env = vars(&parts, 0);
        assert_eq!(get(&env, "SCRIPT_NAME"), Some("/cgi-bin"));
        assert_eq!(get(&env, "PATH_INFO"), Some("/env/a b"));
        assert_eq!(get(&env, "REQUEST_URI"), Some("/cgi%2Dbin/env/a%20b?q=1"));
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
}
