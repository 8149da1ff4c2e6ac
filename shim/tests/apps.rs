//! Apps of several components through `wasmhttp serve`: routes given as
//! `--route` flags and as a manifest, each route's component built from
//! source (the WAT and C fixtures), real HTTP over loopback.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use support::eventually::eventually;
use support::http::{self, Response};
use support::served::{
    Served, TempDir, example, fixture, metric, serve_routes, temp_dir, wait_for_metric, wasmhttp,
};

fn route(path: &str, component: &Path, extra: &str) -> String {
    format!("--route={path}={}{extra}", component.display())
}

fn get(served: &Served, path: &str) -> Response {
    http::get(served.addr, path).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", served.log()))
}

/// Writes `request` verbatim (its own Host headers, its own request line,
/// `Connection: close`) and returns all the server answered.
fn raw_exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// An app of three routes: `/api/...` and the catch-all on the echo fixture
/// (under the names api and front), `/health` exactly on hello.
fn three_routes(name: &str, env: &[(&str, &str)]) -> (Served, TempDir) {
    let dir = temp_dir(&format!("{name}-components"));
    let echo = fixture(&dir, "echo");
    let hello = fixture(&dir, "hello");
    let served = serve_routes(
        name,
        &[
            &route("/api/...", &echo, ",name=api"),
            &route("/health", &hello, ""),
            &route("/...", &echo, ",name=front"),
        ],
        env,
    );
    (served, dir)
}

#[test]
fn the_longest_route_that_matches_serves_and_the_component_learns_which() {
    let (served, _components) = three_routes("routes", &[("WASMHTTP_ACCESS_LOG", "json")]);

    let health = get(&served, "/health");
    assert_eq!(
        (health.status, health.text().as_str()),
        (
            200,
            "Hello from a WebAssembly component, served by wasmhttp!\n"
        )
    );

    let api = get(&served, "/api/users/7?q=1");
    assert_eq!(api.status, 200, "{api:?}");
    assert_eq!(api.header("x-echo-path"), Some("/api/users/7?q=1"));
    assert_eq!(api.seen_header("x-wasmhttp-route"), ["api"]);
    assert_eq!(api.seen_header("x-wasmhttp-route-base"), ["/api"]);
    assert_eq!(api.seen_header("x-wasmhttp-path-info"), ["/users/7"]);

    // a prefix route covers its base with and without the slash
    for path in ["/api", "/api/"] {
        let response = get(&served, path);
        assert_eq!(response.seen_header("x-wasmhttp-route"), ["api"], "{path}");
    }
    // an exact route is that path only; the rest falls to the catch-all
    for path in ["/health/", "/health/x", "/healthz", "/apis", "/"] {
        let response = get(&served, path);
        assert_eq!(response.status, 200, "{path}: {response:?}");
        assert_eq!(
            response.seen_header("x-wasmhttp-route"),
            ["front"],
            "{path}"
        );
        assert_eq!(response.seen_header("x-wasmhttp-route-base"), [""]);
    }

    // unreserved characters match decoded; an encoded slash stays in its segment
    let decoded = get(&served, "/%61pi/x");
    assert_eq!(decoded.seen_header("x-wasmhttp-route"), ["api"]);
    assert_eq!(decoded.header("x-echo-path"), Some("/%61pi/x"));
    let slash = get(&served, "/api%2Fx");
    assert_eq!(slash.seen_header("x-wasmhttp-route"), ["front"]);

    // dot segments are refused, not resolved past a route
    for path in ["/api/../health", "/api/./x", "/front/%2e%2e/api"] {
        let response = get(&served, path);
        assert_eq!(response.status, 400, "{path}: {response:?}");
    }

    // what a client claims about the route never reaches the component
    let spoofed = http::request(
        served.addr,
        "GET",
        "/api/x",
        &[("x-wasmhttp-route", "admin"), ("x-wasmhttp-path-info", "/")],
        b"",
    )
    .unwrap();
    assert_eq!(spoofed.seen_header("x-wasmhttp-route"), ["api"]);
    assert_eq!(spoofed.seen_header("x-wasmhttp-path-info"), ["/x"]);

    wait_for_metric(
        served.admin,
        "wasmhttp_route_requests_total{route=\"api\",status=\"200\"}",
        5.0,
    );
    wait_for_metric(
        served.admin,
        "wasmhttp_route_requests_total{route=\"hello\",status=\"200\"}",
        1.0,
    );
    eventually(
        Duration::from_secs(10),
        "the access log names the route",
        || {
            let log = served.log();
            let line = log
                .lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .find(|line| line["path"] == "/api/users/7?q=1");
            match line {
                Some(line) if line["route"] == "api" => Ok(()),
                _ => Err(log),
            }
        },
    );
    assert!(served.terminate().success());
}

#[test]
fn a_path_no_route_matches_is_answered_404_by_the_host() {
    let dir = temp_dir("no-route-components");
    let echo = fixture(&dir, "echo");
    let served = serve_routes("no-route", &[&route("/api/...", &echo, "")], &[]);
    let response = get(&served, "/elsewhere");
    assert_eq!(response.status, 404, "{response:?}");
    assert_eq!(
        response.text(),
        "404 Not Found: no route of this app matches the path\n"
    );
    assert!(response.header("x-echo-path").is_none());
    wait_for_metric(
        served.admin,
        "wasmhttp_rejections_total{reason=\"no_route\"}",
        1.0,
    );
    assert_eq!(get(&served, "/api/x").status, 200);
    assert!(served.terminate().success());
}

#[test]
fn each_route_keeps_its_own_timeout_and_its_faults() {
    let dir = temp_dir("route-limits-components");
    let slow = fixture(&dir, "slow");
    let trap = fixture(&dir, "trap");
    let served = serve_routes(
        "route-limits",
        &[
            &route(
                "/slow/...",
                &slow,
                ",name=hasty,env=WASMHTTP_REQUEST_TIMEOUT=300ms",
            ),
            &route("/patient/...", &slow, ",name=patient"),
            &route("/...", &trap, ""),
        ],
        &[],
    );
    let hasty = get(&served, "/slow/sleep/3000");
    assert_eq!(hasty.status, 504, "{hasty:?}");
    served.wait_for_log("WASMHTTP_REQUEST_TIMEOUT", "the timeout is named");
    let patient = get(&served, "/patient/sleep/600");
    assert_eq!(patient.status, 200, "{patient:?}\n{}", served.log());
    assert_eq!(get(&served, "/slow/sleep/5").status, 200);

    let trapped = get(&served, "/trap");
    assert_eq!(trapped.status, 500, "{trapped:?}");
    let other = get(&served, "/other");
    assert_eq!(
        (other.status, other.text().as_str()),
        (200, "trap fixture: still serving\n")
    );
    assert_eq!(get(&served, "/patient/sleep/5").status, 200);

    wait_for_metric(
        served.admin,
        "wasmhttp_route_requests_total{route=\"hasty\",status=\"504\"}",
        1.0,
    );
    wait_for_metric(
        served.admin,
        "wasmhttp_route_requests_total{route=\"trap\",status=\"500\"}",
        1.0,
    );
    assert_eq!(
        metric(
            served.admin,
            "wasmhttp_route_requests_total{route=\"patient\",status=\"200\"}"
        ),
        2.0
    );
    assert!(served.terminate().success());
}

#[test]
fn a_cgi_route_gets_its_script_name_path_info_and_arguments() {
    let dir = temp_dir("cgi-route-components");
    let cgi = fixture(&dir, "cgi-component");
    let hello = fixture(&dir, "hello");
    let served = serve_routes(
        "cgi-route",
        &[
            &route(
                "/cgi-bin/...",
                &cgi,
                ",name=cgi,env=WASMHTTP_MODE=cgi,arg=-v,arg=--colour=red",
            ),
            &route("/...", &hello, ""),
        ],
        &[],
    );
    let echoed = get(&served, "/cgi-bin/some/where?x=1");
    assert_eq!(echoed.status, 201, "{echoed:?}\n{}", served.log());
    let text = echoed.text();
    for line in [
        "SCRIPT_NAME=/cgi-bin",
        "PATH_INFO=/some/where",
        "QUERY_STRING=x=1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    let args = get(&served, "/cgi-bin/args").text();
    let given: Vec<&str> = args
        .lines()
        .filter_map(|l| l.strip_prefix("arg="))
        .collect();
    assert_eq!(given[1..], ["-v", "--colour=red"], "{args}");
    assert_eq!(get(&served, "/").status, 200);
    assert!(served.terminate().success());
}

#[test]
fn the_apps_internal_names_are_refused_from_outside() {
    let (served, _components) = three_routes("internal-names", &[]);
    for request in [
        "GET /api/x HTTP/1.1\r\nHost: api.app.internal\r\n",
        "GET /api/x HTTP/1.1\r\nHost: API.App.Internal.:8080\r\n",
        "GET http://api.app.internal/api/x HTTP/1.1\r\nHost: localhost\r\n",
        "GET /api/x HTTP/1.1\r\nHost: localhost\r\nHost: front.app.internal\r\n",
    ] {
        let answer = raw_exchange(served.addr, &format!("{request}Connection: close\r\n\r\n"));
        assert!(
            answer.starts_with("HTTP/1.1 400 "),
            "{request:?}:\n{answer}"
        );
        assert!(answer.contains(".app.internal"), "{request:?}:\n{answer}");
        assert!(!answer.contains("x-echo-path"), "{request:?}:\n{answer}");
    }
    let answer = raw_exchange(
        served.addr,
        "GET /api/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(served.terminate().success());
}

#[test]
fn a_manifest_serves_the_same_app_as_route_flags() {
    let dir = temp_dir("manifest-components");
    std::fs::create_dir_all(dir.0.join("web")).unwrap();
    std::fs::rename(fixture(&dir, "echo"), dir.0.join("web/echo.wasm")).unwrap();
    fixture(&dir, "hello");
    let manifest = dir.0.join("app.toml");
    std::fs::write(
        &manifest,
        r#"
[[route]]
path = "/api/..."
component = "web/echo.wasm"
name = "api"
env = ["GREETING=hi"]

[[route]]
path = "/..."
component = "hello.wasm"
"#,
    )
    .unwrap();
    let served = serve_routes("manifest", &[manifest.to_str().unwrap()], &[]);
    let api = get(&served, "/api/v1");
    assert_eq!(api.seen_header("x-wasmhttp-route"), ["api"]);
    assert!(
        api.all("x-echo-env").contains(&"GREETING=hi"),
        "{:?}",
        api.all("x-echo-env")
    );
    assert_eq!(get(&served, "/anything").status, 200);
    assert!(served.terminate().success());
}

/// `wasmhttp serve` and `wasmhttp image` both refuse `manifest` before any
/// listener or image exists, and say `expected` in stderr.
fn refused(dir: &TempDir, name: &str, manifest: &str, expected: &[&str]) {
    let path = dir.0.join(format!("{name}.toml"));
    std::fs::write(&path, manifest).unwrap();
    let image = dir.0.join(format!("{name}.tar"));
    let listen = format!("127.0.0.1:{}", http::free_port());
    for args in [
        vec!["serve", path.to_str().unwrap(), "--listen", &listen],
        vec![
            "image",
            path.to_str().unwrap(),
            "--name",
            "example.test/app:1",
            "-o",
            image.to_str().unwrap(),
        ],
    ] {
        let output = wasmhttp()
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{name}: {args:?} accepted it:\n{stderr}"
        );
        for text in expected {
            assert!(
                stderr.contains(text),
                "{name}: {args:?}: {text:?} not in\n{stderr}"
            );
        }
        assert!(!image.exists(), "{name}: an image was written");
    }
}

#[test]
fn a_bad_app_is_refused_and_the_route_named() {
    let dir = temp_dir("bad-apps");
    fixture(&dir, "echo");
    fixture(&dir, "other-world");
    fixture(&dir, "cgi-component");
    let one = |path: &str, component: &str, more: &str| {
        format!("[[route]]\npath = \"{path}\"\ncomponent = \"{component}\"\n{more}")
    };
    refused(
        &dir,
        "missing",
        &one("/api/...", "gone.wasm", ""),
        &["route /api/... (gone)", "gone.wasm"],
    );
    refused(
        &dir,
        "twice",
        &(one("/api/...", "echo.wasm", "") + &one("/api/...", "echo.wasm", "name = \"b\"")),
        &["route 2 (\"/api/...\")", "the same path"],
    );
    refused(
        &dir,
        "glob",
        &one("/api/*", "echo.wasm", ""),
        &["route 1 (\"/api/*\")", "..."],
    );
    refused(
        &dir,
        "wrong-world",
        &one("/...", "other-world.wasm", ""),
        &[
            "route /... (other-world)",
            "other-world.wasm is not runnable",
        ],
    );
    refused(
        &dir,
        "command",
        &one("/cgi/...", "cgi-component.wasm", ""),
        &["route /cgi/... (cgi-component)", "WASMHTTP_MODE=cgi"],
    );
    refused(
        &dir,
        "bad-setting",
        &one(
            "/...",
            "echo.wasm",
            "env = [\"WASMHTTP_REQUEST_TIMEOUT=soon\"]",
        ),
        &["route /... (echo)", "WASMHTTP_REQUEST_TIMEOUT"],
    );
    refused(
        &dir,
        "unknown-key",
        &one("/...", "echo.wasm", "colour = \"red\""),
        &["colour"],
    );
    refused(&dir, "empty", "", &["no routes"]);

    // middleware: composed in front of a wasi:http 0.3 handler only, and only
    // a component of the middleware world is one
    let auth = example("auth-py");
    let service = example("service-py");
    let behind = |component: &Path, middleware: &str| {
        one(
            "/api/...",
            &component.display().to_string(),
            &format!("name = \"api\"\nmiddleware = [\"{middleware}\"]\n"),
        )
    };
    refused(
        &dir,
        "middleware-on-0.2",
        &behind(&dir.0.join("echo.wasm"), &auth.display().to_string()),
        &[
            "route /api/... (api)",
            "middleware stands in front of a wasi:http 0.3 handler",
            "wasi:http/incoming-handler component",
        ],
    );
    refused(
        &dir,
        "middleware-missing",
        &behind(&service, "gone-auth.wasm"),
        &["route /api/... (api)", "gone-auth.wasm"],
    );
    refused(
        &dir,
        "handler-as-middleware",
        &behind(&service, &service.display().to_string()),
        &[
            "route /api/... (api)",
            "is not middleware",
            "wasi:http/handler@0.3 component",
        ],
    );
    refused(
        &dir,
        "middleware-as-component",
        &one("/...", &auth.display().to_string(), ""),
        &["route /... (auth-py)", "found middleware", "not run alone"],
    );
}

#[test]
fn a_route_sees_only_the_volumes_it_names() {
    let dir = temp_dir("route-volumes-files");
    fixture(&dir, "cgi-component");
    let data = dir.0.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("motd.txt"), "only for the reader\n").unwrap();
    let volume = format!("{}:/data:ro", data.display());
    let cgi = |path: &str, volumes: &str| {
        format!(
            "[[route]]\npath = \"{path}\"\ncomponent = \"cgi-component.wasm\"\n\
             name = \"{}\"\nenv = [\"WASMHTTP_MODE=cgi\"]\nvolumes = {volumes}\n",
            &path[1..path.len() - 4]
        )
    };
    let manifest = dir.0.join("app.toml");
    std::fs::write(
        &manifest,
        cgi("/reader/...", "[\"/data\"]") + &cgi("/blind/...", "[]"),
    )
    .unwrap();
    let served = serve_routes(
        "route-volumes",
        &[manifest.to_str().unwrap(), "--volume", &volume],
        &[],
    );
    let read = get(&served, "/reader/file?name=motd.txt");
    assert_eq!(
        (read.status, read.text().as_str()),
        (200, "only for the reader\n"),
        "{}",
        served.log()
    );
    let blind = get(&served, "/blind/file?name=motd.txt");
    assert_eq!(blind.status, 404, "{blind:?}");
    assert!(served.terminate().success());

    // a volume the container does not have is refused, naming the route
    std::fs::write(&manifest, cgi("/reader/...", "[\"/elsewhere\"]")).unwrap();
    let output = wasmhttp()
        .args(["serve", manifest.to_str().unwrap(), "--volume", &volume])
        .args(["--listen", &format!("127.0.0.1:{}", http::free_port())])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    for text in ["route /reader/... (reader)", "\"/elsewhere\"", "/data"] {
        assert!(stderr.contains(text), "{text:?} not in\n{stderr}");
    }
}

/// The proxy-js example (componentize-js: `fetch(?url=)`) calls the app's
/// other routes by name; no WASMHTTP_ALLOWED_OUTBOUND_HOSTS is set, so any
/// request that left the process would be denied.
#[test]
fn components_call_each_other_in_process_by_route_name() {
    let dir = temp_dir("calls-components");
    let hello = fixture(&dir, "hello");
    let slow = fixture(&dir, "slow");
    let served = serve_routes(
        "calls",
        &[
            &route(
                "/proxy/...",
                &example("proxy-js"),
                ",name=front,env=WASMHTTP_REQUEST_TIMEOUT=1500ms",
            ),
            &route("/hello", &hello, ""),
            &route(
                "/hasty/...",
                &slow,
                ",name=hasty,env=WASMHTTP_REQUEST_TIMEOUT=300ms",
            ),
            &route("/patient/...", &slow, ",name=patient"),
        ],
        &[("WASMHTTP_ACCESS_LOG", "json")],
    );
    let call = |url: &str| {
        let response = get(&served, &format!("/proxy/?url={url}"));
        (response.status, response.text())
    };
    // the callee is chosen by name, whatever the path
    assert_eq!(
        call("http://hello.app.internal/any/path?x=1"),
        (
            200,
            "upstream answered 200: Hello from a WebAssembly component, served by wasmhttp!\n"
                .to_string()
        )
    );
    eventually(
        Duration::from_secs(10),
        "the call is in the access log as the callee route's request",
        || {
            let log = served.log();
            let found = log
                .lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .any(|line| {
                    line["path"] == "/any/path?x=1"
                        && line["route"] == "hello"
                        && line["remote"] == "127.0.0.1:0"
                });
            if found { Ok(()) } else { Err(log) }
        },
    );
    // the callee's limits: its own 300 ms timeout
    let (status, text) = call("http://hasty.app.internal/sleep/3000");
    assert_eq!(status, 200);
    assert!(text.starts_with("upstream answered 504: "), "{text}");
    // a name no route has
    let (_, text) = call("http://nope.app.internal/");
    assert!(
        text.starts_with("upstream answered 404: ") && text.contains("no route named \"nope\""),
        "{text}"
    );
    // the caller's deadline ends the call, and the callee's request with it
    let started = std::time::Instant::now();
    let (status, _) = call("http://patient.app.internal/sleep/20000");
    assert_eq!(status, 504);
    assert!(started.elapsed() < Duration::from_secs(10));
    wait_for_metric(served.admin, "wasmhttp_requests_in_flight", 0.0);
    wait_for_metric(
        served.admin,
        "wasmhttp_route_requests_total{route=\"hello\",status=\"200\"}",
        1.0,
    );
    wait_for_metric(
        served.admin,
        "wasmhttp_route_requests_total{route=\"hasty\",status=\"504\"}",
        1.0,
    );
    assert!(served.terminate().success());
}

/// The example app (examples/app/app.toml) as `wasmhttp serve` runs it: the
/// API (Python, wasi:http 0.3) behind the auth middleware (Python, composed
/// in front of it when the app is loaded), the front (JavaScript) and the C
/// CGI program without.
fn example_app(name: &str, env: &[(&str, &str)], volume: &Path) -> Served {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/app/app.toml");
    let volume = format!("{}:/data", volume.display());
    support::served::serve(
        name,
        &manifest,
        &[
            "--env",
            "AUTH_TOKENS=alice=token-of-alice,bob=token-of-bob",
            "--volume",
            &volume,
        ],
        env,
    )
}

fn as_user(served: &Served, method: &str, path: &str, token: &str, body: &[u8]) -> Response {
    let authorization = format!("Bearer {token}");
    http::request(
        served.addr,
        method,
        path,
        &[("authorization", &authorization)],
        body,
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", served.log()))
}

#[test]
fn middleware_answers_401_without_a_token_and_the_handler_sees_the_user() {
    let data = temp_dir("middleware-data");
    let served = example_app(
        "middleware",
        &[("WASMHTTP_GUEST_LOG_LEVEL", "info")],
        &data.0,
    );

    // no token, another scheme, a wrong token: the middleware answers, and
    // the API is never reached (its log line never appears)
    for headers in [
        vec![],
        vec![("authorization", "Basic YWxpY2U6dG9rZW4tb2YtYWxpY2U=")],
        vec![("authorization", "Bearer token-of-mallory")],
    ] {
        let refused = http::request(
            served.addr,
            "GET",
            "/api/?log=reached-without-a-token",
            &headers,
            b"",
        )
        .unwrap();
        assert_eq!(refused.status, 401, "{headers:?}: {}", refused.text());
        assert_eq!(
            refused.header("www-authenticate"),
            Some("Bearer realm=\"api\"")
        );
    }

    // a token: the API answers, and sees who it is (a client's own
    // x-authenticated-user is dropped by the middleware, not believed)
    let seen = http::request(
        served.addr,
        "GET",
        "/api/?header=x-authenticated-user",
        &[
            ("authorization", "Bearer token-of-bob"),
            ("x-authenticated-user", "admin"),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(
        (seen.status, seen.text().as_str()),
        (200, "bob\n"),
        "{}",
        served.log()
    );
    let logged = as_user(
        &served,
        "GET",
        "/api/?log=reached-with-a-token",
        "token-of-alice",
        b"",
    );
    assert_eq!(logged.status, 200, "{}", logged.text());
    served.wait_for_log("reached-with-a-token", "the API's log line");
    assert!(
        !served.log().contains("reached-without-a-token"),
        "a refused request reached the API:\n{}",
        served.log()
    );

    // the host's route headers and the request's body pass through it
    let rest = as_user(
        &served,
        "GET",
        "/api/users/7?header=x-wasmhttp-path-info",
        "token-of-alice",
        b"",
    );
    assert_eq!((rest.status, rest.text().as_str()), (200, "/users/7\n"));
    let body = b"written through the middleware\n".repeat(4096);
    let put = as_user(
        &served,
        "PUT",
        "/api/?file=/data/upload",
        "token-of-alice",
        &body,
    );
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(std::fs::read(data.0.join("upload")).unwrap(), body);

    // the API calls the front in-process, behind the middleware it stands in
    let called = as_user(
        &served,
        "GET",
        "/api/?url=http://front.app.internal/",
        "token-of-alice",
        b"",
    );
    assert_eq!(called.status, 200, "{}", called.text());
    assert!(
        called.text().starts_with("upstream answered 200: "),
        "{}",
        called.text()
    );

    // the routes without middleware need no token
    assert_eq!(get(&served, "/").status, 200);
    let cgi = get(&served, "/cgi-bin/request");
    assert_eq!(cgi.status, 200, "{}", cgi.text());
    assert!(
        cgi.text().contains("PATH_INFO=/request\n"),
        "{}",
        cgi.text()
    );

    // the route's metric counts the middleware's answers as the route's
    wait_for_metric(
        served.admin,
        "wasmhttp_route_requests_total{route=\"api\",status=\"401\"}",
        3.0,
    );
}

#[test]
fn middleware_for_every_route_is_given_on_the_command_line_too() {
    let dir = temp_dir("middleware-flag-components");
    let auth = example("auth-py");
    let service = example("service-py");
    let served = serve_routes(
        "middleware-flag",
        &[
            &route("/a/...", &service, ",name=a"),
            &route("/b/...", &service, ",name=b"),
            &format!("--middleware={}", auth.display()),
            "--env",
            "AUTH_TOKENS=carol=token-of-carol",
        ],
        &[],
    );
    for path in ["/a/", "/b/"] {
        assert_eq!(get(&served, path).status, 401, "{path}");
        let user = as_user(
            &served,
            "GET",
            &format!("{path}?header=x-authenticated-user"),
            "token-of-carol",
            b"",
        );
        assert_eq!(
            (user.status, user.text().as_str()),
            (200, "carol\n"),
            "{path}"
        );
    }
    // both routes are the same handler behind the same middleware: one
    // component, compiled once
    served.wait_for_log(
        "route /b/... (b): wasi:http/handler@0.3 component loaded in",
        "the second route",
    );
    served.wait_for_log("(compiled once, for route /a/... (a))", "the second route");
    drop(served);
    // one component behind it, packaged (its composition is the routes'):
    // the image carries both Python runtimes
    let image = |name: &str, middleware: &[String]| {
        let path = dir.0.join(format!("{name}.tar"));
        let output = wasmhttp()
            .args([
                "image",
                service.to_str().unwrap(),
                "--name",
                "example.test/alone:1",
                "-o",
            ])
            .arg(&path)
            .args(middleware)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::metadata(&path).unwrap().len()
    };
    let alone = image("alone", &[]);
    let behind = image("behind", &[format!("--middleware={}", auth.display())]);
    assert!(
        behind > alone + alone / 2,
        "{behind} bytes behind auth, {alone} alone"
    );
}

#[test]
fn middleware_meets_a_request_in_the_order_listed() {
    let dir = temp_dir("middleware-order");
    let (auth, cors, service) = (
        example("auth-py"),
        example("cors-py"),
        example("service-py"),
    );
    let manifest = dir.0.join("app.toml");
    // CORS listed before auth: if the first listed meets a request first, CORS
    // answers a preflight (it has no token) and labels auth's 401; the other
    // way round, auth would refuse the preflight and CORS would never see it
    std::fs::write(
        &manifest,
        format!(
            "[[route]]\npath = \"/a/...\"\ncomponent = \"{service}\"\nname = \"a\"\n\
             middleware = [\"{cors}\", \"{auth}\"]\n",
            service = service.display(),
            cors = cors.display(),
            auth = auth.display(),
        ),
    )
    .unwrap();
    let served = support::served::serve(
        "middleware-order",
        &manifest,
        &[
            "--env",
            "AUTH_TOKENS=frank=token-of-frank",
            "--env",
            "CORS_ORIGINS=https://app.example",
        ],
        &[],
    );
    let origin = ("origin", "https://app.example");
    let ask = |method: &str, path: &str, headers: &[(&str, &str)]| {
        http::request(served.addr, method, path, headers, b"")
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", served.log()))
    };

    let answered = ask(
        "OPTIONS",
        "/a/",
        &[origin, ("access-control-request-method", "GET")],
    );
    assert_eq!(answered.status, 204, "{}", served.log());
    assert_eq!(
        answered.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let refused = ask("GET", "/a/", &[origin]);
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let user = ask(
        "GET",
        "/a/?header=x-authenticated-user",
        &[origin, ("authorization", "Bearer token-of-frank")],
    );
    assert_eq!((user.status, user.text().as_str()), (200, "frank\n"));
    assert_eq!(
        user.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    // an origin not listed gets no CORS header, and no preflight answer
    let other = ask("GET", "/a/", &[("origin", "https://elsewhere.example")]);
    assert_eq!(
        (other.status, other.header("access-control-allow-origin")),
        (401, None)
    );
    let other = ask(
        "OPTIONS",
        "/a/",
        &[
            ("origin", "https://elsewhere.example"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_eq!(other.status, 401);
}
