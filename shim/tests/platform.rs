//! Platform services through `wasmhttp serve`, with the counter-py example
//! (componentize-py, built against wasmtime's wasi:keyvalue and wasi:config
//! WIT): wasi:keyvalue on a real Redis and on the memory store, wasi:config
//! from directories laid out as kubelet mounts ConfigMaps and Secrets and
//! from variables, wasi:logging into the log.

mod support;

use std::time::Duration;

use support::eventually::eventually;
use support::http;
use support::platform::{
    count_exactly_across, from_clients, mounted, ok, outage, round_trip, send,
};
use support::redis::Redis;
use support::served::{Served, example, metric, serve, temp_dir};

fn counter(name: &str, env: &[(&str, &str)]) -> Served {
    serve(name, &example("counter-py"), &[], env)
}

#[test]
fn keyvalue_round_trips_on_a_real_redis_with_a_password() {
    let redis = Redis::start(Some("pa55-w0rd-only-redis-knows"));
    let served = counter(
        "kv-redis",
        &[
            ("WASMHTTP_KEYVALUE", &redis.url()),
            ("WASMHTTP_KEYVALUE_PASSWORD", "pa55-w0rd-only-redis-knows"),
            ("WASMHTTP_ACCESS_LOG", "json"),
        ],
    );
    round_trip(served.addr, Some(&redis));
    for (operation, at_least) in [
        ("get", 2),
        ("set", 1),
        ("delete", 1),
        ("exists", 2),
        ("increment", 2),
        ("get_many", 2),
        ("set_many", 1),
        ("delete_many", 1),
        ("list_keys", 2),
    ] {
        let calls = metric(
            served.admin,
            &format!("wasmhttp_keyvalue_calls_total{{operation=\"{operation}\"}}"),
        );
        assert!(calls >= at_least as f64, "{operation}: {calls} calls");
        let errors = metric(
            served.admin,
            &format!("wasmhttp_keyvalue_errors_total{{operation=\"{operation}\"}}"),
        );
        assert_eq!(errors, 0.0, "{operation}");
    }
    let log = served.log();
    assert!(
        log.contains(&format!("wasi:keyvalue redis://{}/0", redis.addr)),
        "{log}"
    );
    assert!(
        !log.contains("pa55-w0rd"),
        "the password is in the log:\n{log}"
    );
    assert!(served.terminate().success());
}

#[test]
fn a_wrong_password_is_the_guests_error_and_says_so() {
    let redis = Redis::start(Some("right"));
    let served = counter(
        "kv-redis-auth",
        &[
            ("WASMHTTP_KEYVALUE", &redis.url()),
            ("WASMHTTP_KEYVALUE_PASSWORD", "wrong-one"),
        ],
    );
    let response = send(served.addr, "POST", "/incr/n", b"");
    assert_eq!(response.status, 503, "{response:?}");
    assert!(
        response.text().contains("store error"),
        "{}",
        response.text()
    );
    served.wait_for_log(
        "wasmhttp: keyvalue increment failed",
        "the failure is logged",
    );
    assert!(!served.log().contains("wrong-one"), "{}", served.log());
    assert!(served.terminate().success());
}

/// Two containers' worth of `wasmhttp serve` on one Redis: 4 clients × 500
/// increments, spread over both, count exactly 2,000; each server keeps one
/// connection, not one per request.
#[test]
fn two_servers_on_one_redis_count_every_increment_exactly_once() {
    let redis = Redis::start(None);
    let env = [("WASMHTTP_KEYVALUE", redis.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let one = counter("kv-two-a", &env);
    let two = counter("kv-two-b", &env);
    count_exactly_across(&[one.addr, two.addr], &redis);
    assert!(one.terminate().success());
    assert!(two.terminate().success());
}

#[test]
fn the_memory_store_is_shared_by_every_instance_and_bounded() {
    // a fresh instance per request (the default): state lives in the store
    let served = counter("kv-memory", &[("WASMHTTP_KEYVALUE_MEMORY_LIMIT", "64Ki")]);
    round_trip(served.addr, None);
    let before: u64 = ok(served.addr, "GET", "/kv/n", b"").parse().unwrap();
    from_clients(served.addr, 4, 50, "POST", "/incr/n");
    assert_eq!(
        ok(served.addr, "GET", "/kv/n", b""),
        (before + 200).to_string()
    );
    // 1,500 items fill most of the 64 KiB: a 64 KiB value does not fit
    let response = send(served.addr, "PUT", "/kv/big", &vec![b'x'; 64 << 10]);
    assert_eq!(response.status, 503, "{response:?}");
    assert!(
        response.text().contains("WASMHTTP_KEYVALUE_MEMORY_LIMIT"),
        "{}",
        response.text()
    );
    assert_eq!(send(served.addr, "GET", "/kv/big", b"").status, 404);
    assert_eq!(
        metric(
            served.admin,
            "wasmhttp_keyvalue_errors_total{operation=\"set\"}"
        ),
        1.0
    );
    assert!(served.terminate().success());

    // reused instances and the same store
    let reused = counter("kv-memory-reuse", &[("WASMHTTP_INSTANCE_REUSE", "100")]);
    for i in 1..=20u32 {
        assert_eq!(ok(reused.addr, "POST", "/incr/r", b""), format!("{i}\n"));
    }
    assert!(metric(reused.admin, "wasmhttp_instances_reused_total") > 0.0);
    assert!(reused.terminate().success());
}

#[test]
fn buckets_not_configured_are_no_such_store() {
    let served = counter(
        "kv-buckets",
        &[("WASMHTTP_KEYVALUE_BUCKETS", "default,sessions")],
    );
    assert_eq!(
        ok(served.addr, "POST", "/incr/n?bucket=sessions", b""),
        "1\n"
    );
    assert_eq!(
        ok(served.addr, "POST", "/incr/n", b""),
        "1\n",
        "buckets are apart"
    );
    let response = send(served.addr, "POST", "/incr/n?bucket=other", b"");
    assert_eq!(
        (response.status, response.text().as_str()),
        (404, "no-such-store\n")
    );
    // counted before the guest answered
    assert_eq!(
        metric(
            served.admin,
            "wasmhttp_keyvalue_errors_total{operation=\"open\"}"
        ),
        1.0
    );
    assert!(served.terminate().success());

    let off = counter("kv-off", &[("WASMHTTP_KEYVALUE", "off")]);
    assert_eq!(send(off.addr, "POST", "/incr/n", b"").status, 404);
    off.wait_for_log("wasi:keyvalue off", "WASMHTTP_KEYVALUE=off");
    assert!(off.terminate().success());
}

/// Redis goes away under load: the guest sees the store's error and answers
/// its own 503 (fast: long before the request timeout), the host serves on
/// (other routes, /readyz), the log says so without a line per failure;
/// Redis back on the same port, calls succeed again without a restart.
#[test]
fn redis_stopped_under_load_is_the_guests_error_and_back_it_serves_again() {
    let mut redis = Redis::start(None);
    let served = counter(
        "kv-outage",
        &[
            ("WASMHTTP_KEYVALUE", &redis.url()),
            ("WASMHTTP_REQUEST_TIMEOUT", "10s"),
        ],
    );
    outage(served.addr, served.admin, &mut redis, || served.log());
    assert!(served.terminate().success());
}

#[test]
fn config_from_a_configmap_a_secret_and_variables_and_the_secret_in_no_log() {
    let dir = temp_dir("config-dirs");
    let (config, secret) = (dir.0.join("config"), dir.0.join("secret"));
    mounted(
        &config,
        &[("greeting", "Hej"), ("shared", "configmap's")],
        "2026_12_03_01",
    );
    mounted(
        &secret,
        &[("token", "t0ken-nobody-logs"), ("shared", "secret's")],
        "2026_12_03_01",
    );
    let dirs = format!("{},{}", config.display(), secret.display());
    // the guest's variables (`--env`; a pod's `env:` under containerd)
    let served = serve(
        "config",
        &example("counter-py"),
        &[
            "--env",
            "APP_region=eu-north",
            "--env",
            "OTHER_region=not-config",
        ],
        &[
            ("WASMHTTP_CONFIG_DIRS", &dirs),
            ("WASMHTTP_CONFIG_ENV_PREFIX", "APP_"),
            ("WASMHTTP_ACCESS_LOG", "json"),
            ("WASMHTTP_GUEST_LOG_LEVEL", "trace"),
        ],
    );
    let addr = served.addr;
    assert_eq!(ok(addr, "GET", "/config/greeting", b""), "Hej");
    assert_eq!(ok(addr, "GET", "/config/region", b""), "eu-north");
    assert_eq!(
        ok(addr, "GET", "/config/shared", b""),
        "configmap's",
        "the first directory wins"
    );
    assert_eq!(send(addr, "GET", "/config/missing", b"").status, 404);
    assert_eq!(send(addr, "GET", "/config/..data", b"").status, 404);
    assert_eq!(
        ok(addr, "GET", "/config", b""),
        "[\"greeting\", \"region\", \"shared\", \"token\"]\n"
    );
    assert!(ok(addr, "GET", "/", b"").starts_with("Hej! / has been visited 1 times"));
    let private = |token: &str| {
        http::request(addr, "GET", "/private", &[("x-token", token)], b"")
            .unwrap()
            .status
    };
    assert_eq!(private("t0ken-nobody-logs"), 200);
    assert_eq!(private("guess"), 403);
    // kubelet's update of the ConfigMap is seen at the next call
    mounted(
        &config,
        &[("greeting", "Hallo"), ("shared", "configmap's")],
        "2026_12_03_02",
    );
    assert!(ok(addr, "GET", "/", b"").starts_with("Hallo!"));
    served.wait_for_log("wasi:config from 2 directories", "two config directories");
    // the access log has the requests; the Secret's value is in no line
    served.wait_for_log("\"/private\"", "the access log line of /private");
    let log = served.log();
    assert!(
        !log.contains("t0ken"),
        "the Secret's value is in the log:\n{log}"
    );
    assert!(served.terminate().success());
}

#[test]
fn a_missing_config_directory_refuses_to_start_and_says_which() {
    let output = support::served::wasmhttp()
        .arg("serve")
        .arg(example("counter-py"))
        .args(["--listen", &format!("127.0.0.1:{}", http::free_port())])
        .env("WASMHTTP_CONFIG_DIRS", "/nonexistent/app-config")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("WASMHTTP_CONFIG_DIRS") && stderr.contains("/nonexistent/app-config"),
        "{stderr}"
    );
}

#[test]
fn guest_log_lines_reach_the_log_filtered_by_level() {
    let served = counter("logging", &[]);
    ok(served.addr, "GET", "/log?level=debug&msg=too-chatty", b"");
    ok(
        served.addr,
        "GET",
        "/log?level=warn&context=billing&msg=card+declined",
        b"",
    );
    served.wait_for_log(
        "[warn] billing: card declined",
        "a warn line at the default level",
    );
    ok(served.addr, "GET", "/", b"");
    served.wait_for_log("[info] counter: / has 1 hits", "the counter's info line");
    assert!(!served.log().contains("too-chatty"), "{}", served.log());
    assert!(served.terminate().success());

    let debug = counter("logging-debug", &[("WASMHTTP_GUEST_LOG_LEVEL", "debug")]);
    ok(debug.addr, "GET", "/log?level=debug&msg=now+shown", b"");
    debug.wait_for_log("[debug] counter: now shown", "debug lines at debug");
    assert!(debug.terminate().success());
}

/// With nothing configured, a component that imports every service starts:
/// no configuration, the memory store.
#[test]
fn nothing_configured_starts_with_an_empty_config_and_the_memory_store() {
    let served = counter("platform-defaults", &[]);
    assert_eq!(ok(served.addr, "GET", "/config", b""), "[]\n");
    assert_eq!(
        ok(served.addr, "GET", "/", b""),
        "Hello! / has been visited 1 times.\n"
    );
    assert_eq!(
        ok(served.addr, "GET", "/", b""),
        "Hello! / has been visited 2 times.\n"
    );
    let log = served.log();
    assert!(
        log.contains("wasi:keyvalue memory (buckets default)"),
        "{log}"
    );
    eventually(Duration::from_secs(5), "the hits are counted", || {
        let calls = metric(
            served.admin,
            "wasmhttp_keyvalue_calls_total{operation=\"increment\"}",
        );
        if calls == 2.0 {
            Ok(())
        } else {
            Err(calls.to_string())
        }
    });
    assert!(served.terminate().success());
}

/// A wasi:http 0.3 handler (service-py) imports the same services: the
/// memory store is shared by instances serving several requests at once,
/// Redis the same; wasi:config and wasi:logging as for 0.2.
#[test]
fn a_wasi_http_0_3_handler_uses_the_same_services() {
    let dir = temp_dir("p3-config");
    mounted(&dir.0, &[("greeting", "from a 0.3 guest")], "2026_12_03_01");
    let config_dirs = dir.0.display().to_string();
    let redis = Redis::start(None);
    let url = redis.url();
    for store in ["memory", url.as_str()] {
        let served = serve(
            "p3-platform",
            &example("service-py"),
            &[],
            &[
                ("WASMHTTP_KEYVALUE", store),
                ("WASMHTTP_CONFIG_DIRS", &config_dirs),
                ("WASMHTTP_INSTANCE_REUSE", "1000"),
                ("WASMHTTP_INSTANCE_CONCURRENCY", "8"),
            ],
        );
        let addr = served.addr;
        from_clients(addr, 4, 25, "GET", "/?count=p3&sleep=5");
        assert_eq!(ok(addr, "GET", "/?count=p3", b""), "p3 = 101\n", "{store}");
        assert_eq!(
            ok(addr, "GET", "/?config=greeting", b""),
            "from a 0.3 guest"
        );
        assert_eq!(send(addr, "GET", "/?config=missing", b"").status, 404);
        ok(addr, "GET", "/?log=hello-from-0.3", b"");
        served.wait_for_log(
            "[info] service-py: hello-from-0.3",
            "a 0.3 guest's log line",
        );
        // several requests shared each instance
        assert!(metric(served.admin, "wasmhttp_instances_reused_total") > 0.0);
        assert!(served.terminate().success());
    }
    assert_eq!(redis.command(&["GET", "default:p3"]).unwrap(), "101");
}

/// A CGI program (a C program adapted into a wasi:cli/run component, run once
/// per request) imports the same services: each run starts afresh, the
/// store keeps its count.
#[test]
fn a_cgi_program_uses_the_same_services() {
    let dir = temp_dir("cgi-platform-files");
    let wasm = support::served::fixture(&dir, "cgi-platform");
    let config = dir.0.join("config");
    mounted(&config, &[("greeting", "from a CGI run")], "2026_12_03_01");
    let config_dirs = config.display().to_string();
    let redis = Redis::start(None);
    let url = redis.url();
    for store in ["memory", url.as_str()] {
        let served = serve(
            "cgi-platform",
            &wasm,
            &[],
            &[
                ("WASMHTTP_MODE", "cgi"),
                ("WASMHTTP_KEYVALUE", store),
                ("WASMHTTP_CONFIG_DIRS", &config_dirs),
            ],
        );
        let addr = served.addr;
        from_clients(addr, 4, 10, "GET", "/?count=cgi");
        assert_eq!(ok(addr, "GET", "/?count=cgi", b""), "cgi = 41\n", "{store}");
        assert_eq!(ok(addr, "GET", "/?config=greeting", b""), "from a CGI run");
        assert_eq!(send(addr, "GET", "/?config=missing", b"").status, 404);
        ok(addr, "GET", "/?log=from-cgi", b"");
        served.wait_for_log("[warn] cgi: from-cgi", "a CGI program's log line");
        assert!(served.terminate().success());
    }
    assert_eq!(redis.command(&["GET", "default:cgi"]).unwrap(), "41");
}
