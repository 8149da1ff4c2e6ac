//! WASMHTTP_MODE=cgi through `wasmhttp serve`: the C program of
//! tests/fixtures/c/cgi.c, as a WASI preview 1 module and as a `wasi:cli/run`
//! component, run once per request over real HTTP on loopback, and the Lua
//! interpreter of examples/cgi-lua running a script. The same
//! program under containerd is in tests/containerd.rs.

mod support;

use std::time::Duration;

use support::eventually::until;
use support::http;
use support::served::{example, fixture, metric, serve, temp_dir, wait_for_metric, wasmhttp};

const CGI: (&str, &str) = ("WASMHTTP_MODE", "cgi");

/// Both forms of the program: a preview 1 module and a preview 2 component.
const FORMS: [&str; 2] = ["cgi", "cgi-component"];

fn line<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
}

#[test]
fn the_request_reaches_the_program_and_its_response_the_client() {
    for form in FORMS {
        let dir = temp_dir(&format!("echo-{form}"));
        let served = serve(
            &format!("echo-{form}"),
            &fixture(&dir, form),
            &["--env", "GREETING=hi there", "--", "one", "two"],
            &[CGI, ("HOST_SECRET", "must not leak")],
        );
        let addr = served.addr;
        let response = http::request(
            addr,
            "POST",
            "/echo/a%20b?x=1&y=two",
            &[
                ("x-test", "yes"),
                ("content-type", "text/plain"),
                ("proxy", "http://127.0.0.1:9/"),
            ],
            b"ping",
        )
        .unwrap();
        let text = response.text();
        assert_eq!(response.status, 201, "{form}: {text}");
        assert_eq!(response.header("x-cgi-program"), Some("wasmhttp-test"));
        assert_eq!(response.header("content-type"), Some("text/plain"));
        for (name, value) in [
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REQUEST_METHOD", "POST"),
            ("SCRIPT_NAME", ""),
            ("PATH_INFO", "/echo/a b"),
            ("QUERY_STRING", "x=1&y=two"),
            ("REQUEST_URI", "/echo/a%20b?x=1&y=two"),
            ("CONTENT_TYPE", "text/plain"),
            ("CONTENT_LENGTH", "4"),
            ("SERVER_NAME", "localhost"),
            ("SERVER_PORT", &addr.port().to_string()),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("HTTP_HOST", "localhost"),
            ("HTTP_X_TEST", "yes"),
            ("HTTP_PROXY", "(unset)"),
            ("GREETING", "hi there"),
            ("body", "ping"),
        ] {
            assert_eq!(line(&text, name), Some(value), "{form}: {name} in\n{text}");
        }
        assert!(
            line(&text, "SERVER_SOFTWARE").is_some_and(|s| s.starts_with("wasmhttp/")),
            "{text}"
        );

        // the container's env and args, nothing of the host's or the shim's
        let env = http::get(addr, "/env").unwrap().text();
        assert!(env.contains("GREETING=hi there"), "{env}");
        assert!(!env.contains("HOST_SECRET"), "{env}");
        assert!(!env.contains("WASMHTTP_"), "{env}");
        let args = http::get(addr, "/args").unwrap().text();
        let args: Vec<&str> = args
            .lines()
            .filter_map(|l| l.strip_prefix("arg="))
            .collect();
        assert_eq!(&args[1..], ["one", "two"], "{form}");

        // `\n` line ends work as well as `\r\n`; Location alone redirects
        let lf = http::get(addr, "/lf").unwrap();
        assert_eq!((lf.status, lf.text().as_str()), (202, "lf body\n"));
        assert_eq!(lf.header("x-line-ends"), Some("lf"));
        let redirect = http::get(addr, "/redirect").unwrap();
        assert_eq!(redirect.status, 302);
        assert_eq!(
            redirect.header("location"),
            Some("https://example.com/elsewhere")
        );

        // a body larger than the pipe's buffer streams through whole
        let big = http::get(addr, "/big?bytes=8388608").unwrap();
        assert_eq!(big.status, 200);
        assert_eq!(big.body.len(), 8 << 20);
        assert!(big.body.iter().all(|b| *b == b'x'));

        // stderr is the container log
        served.wait_for_log("cgi fixture: POST /echo/a b", form);
        assert!(served.terminate().success());
    }
}

#[test]
fn mounted_directories_are_preopened_and_read_only_ones_stay_so() {
    let dir = temp_dir("cgi-volumes");
    let data = dir.0.join("host/data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("greeting.txt"), "hello from a volume\n").unwrap();
    std::fs::write(dir.0.join("host/outside.txt"), "host secret\n").unwrap();
    let volume = format!("{}:/data:ro", data.display());
    for form in FORMS {
        let served = serve(
            &format!("volumes-{form}"),
            &fixture(&dir, form),
            &["--volume", &volume],
            &[CGI],
        );
        let read = http::get(served.addr, "/file?name=greeting.txt").unwrap();
        assert_eq!(
            (read.status, read.text().as_str()),
            (200, "hello from a volume\n"),
            "{form}"
        );
        let missing = http::get(served.addr, "/file?name=nothing.txt").unwrap();
        assert_eq!(missing.status, 404, "{form}");
        let escape = http::get(served.addr, "/file?name=../outside.txt").unwrap();
        assert_eq!(escape.status, 404, "{form}: {}", escape.text());
        assert!(!escape.text().contains("host secret"));
        let write = http::get(served.addr, "/write").unwrap();
        assert_eq!(write.text(), "refused\n", "{form}");
        assert!(!data.join("written.txt").exists());
    }
}

#[test]
fn bad_output_exits_and_traps_are_5xx_and_serving_goes_on() {
    let dir = temp_dir("cgi-faults");
    for form in FORMS {
        let served = serve(
            &format!("faults-{form}"),
            &fixture(&dir, form),
            &[],
            &[CGI, ("WASMHTTP_REQUEST_TIMEOUT", "2s")],
        );
        let addr = served.addr;
        // `return 3` from main: the preview 1 adapter of the component form
        // reports any failure as wasi:cli/exit's plain error, status 1
        let exited = if form == "cgi" {
            "exited with status 3 without writing a response"
        } else {
            "exited with status 1 without writing a response"
        };
        for (path, status, logged) in [
            (
                "/malformed",
                502,
                "\"this line is not a header\" is not a header",
            ),
            ("/unfinished", 502, "before the blank line"),
            (
                "/silent",
                502,
                "exited with status 0 without writing a response",
            ),
            ("/exit", 502, exited),
            ("/trap", 500, "the program trapped"),
            ("/loop", 504, "WASMHTTP_REQUEST_TIMEOUT"),
        ] {
            let response = http::get(addr, path).unwrap();
            assert_eq!(
                response.status,
                status,
                "{form} {path}: {}",
                response.text()
            );
            served.wait_for_log(logged, &format!("{form} {path}"));
            assert_eq!(
                http::get(addr, "/echo").unwrap().status,
                201,
                "{form} after {path}"
            );
        }
        // a trap after the header lines cuts the body: no client may take
        // it for complete
        let half = http::get(addr, "/half");
        assert!(half.is_err(), "{form}: {half:?}");
        assert_eq!(http::get(addr, "/echo").unwrap().status, 201);
        // /trap and /half; the cut body's trap is counted when the guest's
        // task ends, which may be after the client saw the connection close
        wait_for_metric(served.admin, "wasmhttp_guest_traps_total", 2.0);
        assert!(served.terminate().success());
    }

    // a preview 1 program that writes nothing at all
    let empty = serve("faults-empty", &fixture(&dir, "core-module"), &[], &[CGI]);
    assert_eq!(http::get(empty.addr, "/").unwrap().status, 502);
}

#[test]
fn limits_apply_as_in_proxy_mode() {
    let dir = temp_dir("cgi-limits");
    let served = serve(
        "cgi-limits",
        &fixture(&dir, "cgi"),
        &[],
        &[
            CGI,
            ("WASMHTTP_MAX_BODY", "1Ki"),
            ("WASMHTTP_MAX_INSTANCE_MEMORY", "16Mi"),
            ("WASMHTTP_MAX_CONCURRENCY", "1"),
            ("WASMHTTP_REQUEST_TIMEOUT", "3s"),
        ],
    );
    let addr = served.addr;
    let body = vec![b'b'; 2048];
    assert_eq!(
        http::request(addr, "POST", "/echo", &[], &body)
            .unwrap()
            .status,
        413
    );
    let small = http::request(addr, "POST", "/echo", &[], &body[..1000]).unwrap();
    assert_eq!(line(&small.text(), "CONTENT_LENGTH"), Some("1000"));

    // memory beyond the cap fails the program's allocation, not the server
    let over = http::get(addr, "/alloc?mib=32").unwrap();
    assert_eq!(over.status, 503, "{}", over.text());
    assert!(over.text().contains("out of memory"), "{}", over.text());
    let under = http::get(addr, "/alloc?mib=4").unwrap();
    assert_eq!(
        (under.status, under.text().as_str()),
        (200, "allocated 4 MiB\n")
    );

    // one run at a time: a second request while one loops is refused at once
    let looping = std::thread::spawn(move || http::get(addr, "/loop"));
    until(
        Duration::from_secs(2),
        "the loop starts",
        || metric(served.admin, "wasmhttp_requests_in_flight") >= 1.0,
        || "no request in flight".into(),
    );
    assert_eq!(http::get(addr, "/echo").unwrap().status, 503);
    assert_eq!(looping.join().unwrap().unwrap().status, 504);
    assert_eq!(http::get(addr, "/echo").unwrap().status, 201);
    assert!(metric(served.admin, "wasmhttp_request_timeouts_total") >= 1.0);
}

#[test]
fn modes_say_what_would_run_a_program_they_cannot() {
    let dir = temp_dir("cgi-modes");
    let cgi = fixture(&dir, "cgi");
    let hello = fixture(&dir, "hello");
    let command = fixture(&dir, "command");
    let refused = |component: &std::path::Path, mode: &str, expected: &[&str]| {
        let mut serve = wasmhttp();
        serve
            .arg("serve")
            .arg(component)
            .args(["--listen", "127.0.0.1:0"]);
        if !mode.is_empty() {
            serve.env("WASMHTTP_MODE", mode);
        }
        let output = serve.output().unwrap();
        assert!(!output.status.success(), "{mode}: {component:?} ran");
        let stderr = String::from_utf8_lossy(&output.stderr);
        for text in expected {
            assert!(stderr.contains(text), "{mode}: {text:?} not in\n{stderr}");
        }
    };
    refused(&cgi, "", &["core WebAssembly module", "WASMHTTP_MODE=cgi"]);
    refused(&cgi, "proxy", &["WASMHTTP_MODE=proxy", "WASMHTTP_MODE=cgi"]);
    refused(
        &hello,
        "cgi",
        &["wasi:http/incoming-handler", "WASMHTTP_MODE=proxy"],
    );
    refused(&hello, "command", &["WASMHTTP_MODE=proxy"]);
    refused(&command, "proxy", &["WASMHTTP_MODE=cgi"]);
    refused(&cgi, "fastcgi", &["WASMHTTP_MODE", "\"fastcgi\"", "`cgi`"]);
    let reuse = wasmhttp()
        .args(["serve", cgi.to_str().unwrap()])
        .env("WASMHTTP_MODE", "cgi")
        .env("WASMHTTP_INSTANCE_REUSE", "4")
        .output()
        .unwrap();
    assert!(!reuse.status.success());
    assert!(String::from_utf8_lossy(&reuse.stderr).contains("WASMHTTP_INSTANCE_REUSE"));

    // command mode runs a preview 1 module once, as a process
    let once = wasmhttp()
        .args(["serve", cgi.to_str().unwrap(), "--", "x"])
        .env("WASMHTTP_MODE", "command")
        .output()
        .unwrap();
    assert!(once.status.success(), "{once:?}");
    let stdout = String::from_utf8_lossy(&once.stdout);
    assert!(stdout.contains("REQUEST_METHOD=(unset)"), "{stdout}");
    let exit = wasmhttp()
        .args(["serve", cgi.to_str().unwrap(), "--env", "PATH_INFO=/exit"])
        .env("WASMHTTP_MODE", "command")
        .output()
        .unwrap();
    assert_eq!(exit.status.code(), Some(3), "{exit:?}");
}

#[test]
fn the_c_example_greets_through_its_form() {
    let dir = temp_dir("cgi-c");
    let config = dir.0.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("motd.txt"), "tests were here").unwrap();
    let volume = format!("{}:/config:ro", config.display());
    let served = serve("cgi-c", &example("cgi-c"), &["--volume", &volume], &[CGI]);
    let front = http::get(served.addr, "/").unwrap();
    assert_eq!(front.status, 200);
    assert_eq!(
        front.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        front.text().contains("Message of the day: tests were here"),
        "{}",
        front.text()
    );
    let greeted = http::request(
        served.addr,
        "POST",
        "/",
        &[("content-type", "application/x-www-form-urlencoded")],
        b"name=Ada+%3Cb%3E",
    )
    .unwrap();
    assert_eq!(greeted.status, 200);
    assert!(
        greeted.text().contains("Hello, Ada &lt;b&gt;!"),
        "{}",
        greeted.text()
    );
    let unnamed = http::request(served.addr, "POST", "/", &[], b"other=1").unwrap();
    assert_eq!(unnamed.status, 422);
    let request = http::get(served.addr, "/request?q=1").unwrap().text();
    assert!(request.contains("QUERY_STRING=q=1"), "{request}");
    assert_eq!(http::get(served.addr, "/nope").unwrap().status, 404);
    served.wait_for_log("cgi-c: no page at /nope", "cgi-c");
}

/// examples/cgi-lua: a real interpreter (Lua 5.4, compiled from C for
/// wasm32-wasi) running a script it reads from a volume, named by the args.
#[test]
fn the_lua_example_runs_a_script_from_a_volume() {
    let app = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cgi-lua/app");
    let volume = format!("{}:/app:ro", app.display());
    let served = serve(
        "cgi-lua",
        &example("cgi-lua"),
        &["--volume", &volume, "--", "/app/hello.lua"],
        &[CGI],
    );
    let greeted = http::get(served.addr, "/?name=Ada%20L").unwrap();
    assert_eq!(greeted.status, 200, "{greeted:?}");
    assert_eq!(greeted.header("content-type"), Some("text/plain"));
    assert_eq!(
        greeted.text(),
        "Hello, Ada L, from Lua 5.4 over CGI (GET)\n"
    );
    // a Lua error ends the interpreter before any header: 500, and the log says why
    let failed = http::get(served.addr, "/?fail=1").unwrap();
    assert_eq!(failed.status, 500, "{failed:?}");
    served.wait_for_log("hello.lua:8: asked to fail", "cgi-lua");
    assert_eq!(
        http::get(served.addr, "/").unwrap().text(),
        "Hello, world, from Lua 5.4 over CGI (GET)\n"
    );
    assert!(served.terminate().success());
}
