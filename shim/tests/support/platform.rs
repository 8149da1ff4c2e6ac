//! What the platform tests check, shared by `wasmhttp serve`'s (platform.rs)
//! and the shim's under containerd (containerd.rs): the counter-py example's
//! routes drive every wasi:keyvalue operation.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::eventually::until;
use super::http::{self, Response};
use super::redis::Redis;
use super::served::metric;

pub fn send(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Response {
    http::request(addr, method, path, &[], body)
        .unwrap_or_else(|err| panic!("{method} {path}: {err}"))
}

pub fn ok(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> String {
    let response = send(addr, method, path, body);
    assert_eq!(response.status, 200, "{method} {path}: {response:?}");
    response.text()
}

/// `clients` clients at once, each sending `each` requests one after
/// another; every one must be answered 200.
pub fn from_clients(addr: SocketAddr, clients: usize, each: usize, method: &str, path: &str) {
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                for _ in 0..each {
                    ok(addr, method, path, b"");
                }
            });
        }
    });
}

/// Every operation of store, atomics and batch, as the guest sees them;
/// `raw` reads what the backend holds (Redis), when there is one to read.
pub fn round_trip(addr: SocketAddr, raw: Option<&Redis>) {
    assert_eq!(send(addr, "GET", "/kv/greeting", b"").status, 404);
    assert_eq!(send(addr, "HEAD", "/kv/greeting", b"").status, 404);
    ok(addr, "PUT", "/kv/greeting", b"hello there");
    assert_eq!(ok(addr, "GET", "/kv/greeting", b""), "hello there");
    assert_eq!(send(addr, "HEAD", "/kv/greeting", b"").status, 200);
    if let Some(redis) = raw {
        // a bucket is a key prefix on the server
        assert_eq!(
            redis.command(&["GET", "default:greeting"]).unwrap(),
            "hello there"
        );
    }
    ok(addr, "DELETE", "/kv/greeting", b"");
    assert_eq!(send(addr, "GET", "/kv/greeting", b"").status, 404);

    assert_eq!(ok(addr, "POST", "/incr/n?by=5", b""), "5\n");
    assert_eq!(ok(addr, "POST", "/incr/n?by=37", b""), "42\n");
    assert_eq!(ok(addr, "GET", "/kv/n", b""), "42");

    // batch: 1,500 keys in one set-many, more than one list-keys page
    let pairs: Vec<String> = (0..1500)
        .map(|i| format!("\"item{i:04}\": \"v{i}\""))
        .collect();
    let body = format!("{{{}}}", pairs.join(","));
    assert_eq!(ok(addr, "POST", "/batch", body.as_bytes()), "stored 1500\n");
    assert_eq!(
        ok(addr, "GET", "/batch?keys=item0000,missing,item1499", b""),
        "{\"item0000\": \"v0\", \"item1499\": \"v1499\"}\n"
    );
    let mut keys = std::collections::BTreeSet::new();
    let mut cursor: Option<u64> = None;
    let mut pages = 0;
    loop {
        let path = match cursor {
            Some(cursor) => format!("/kv/?cursor={cursor}"),
            None => "/kv/".to_string(),
        };
        let page: serde_json::Value = serde_json::from_str(&ok(addr, "GET", &path, b"")).unwrap();
        keys.extend(
            page["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string()),
        );
        pages += 1;
        cursor = page["cursor"].as_u64();
        assert!(pages < 200, "list-keys never ended");
        if cursor.is_none() {
            break;
        }
    }
    assert!(pages > 1, "1,500 keys took one page");
    // (a readiness check's hits may be there too)
    let items = keys.iter().filter(|key| key.starts_with("item")).count();
    assert_eq!(items, 1500, "{:?}", keys.iter().take(5).collect::<Vec<_>>());
    assert!(keys.contains("n") && keys.contains("item0750"));
    assert_eq!(
        ok(addr, "DELETE", "/batch?keys=item0000,item0001", b""),
        "deleted 2\n"
    );
    assert_eq!(
        ok(addr, "GET", "/batch?keys=item0000,item0002", b""),
        "{\"item0002\": \"v2\"}\n"
    );
}

/// A directory laid out as kubelet mounts a ConfigMap or Secret: each key a
/// link into `..data`, itself a link to a timestamped directory.
pub fn mounted(dir: &std::path::Path, pairs: &[(&str, &str)], stamp: &str) {
    let data = dir.join(format!("..{stamp}"));
    std::fs::create_dir_all(&data).unwrap();
    for (key, value) in pairs {
        std::fs::write(data.join(key), value).unwrap();
        let link = dir.join(key);
        if !link.exists() {
            std::os::unix::fs::symlink(format!("..data/{key}"), link).unwrap();
        }
    }
    // relative, as kubelet's: the directory may be seen at another path (a
    // container's mount)
    let swap = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&swap);
    std::os::unix::fs::symlink(data.file_name().unwrap(), &swap).unwrap();
    std::fs::rename(&swap, dir.join("..data")).unwrap();
}

/// 4 clients × 500 increments spread over `addrs` (servers on one Redis)
/// count exactly 2,000, and each server keeps one connection to Redis, not
/// one per request.
pub fn count_exactly_across(addrs: &[SocketAddr], redis: &Redis) {
    let failed = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for client in 0..4 {
            let addr = addrs[client % addrs.len()];
            let failed = &failed;
            scope.spawn(move || {
                let mut connection = http::Connection::open(addr).unwrap();
                for _ in 0..500 {
                    let answered = connection.send("POST", "/incr/hits", &[], b"");
                    if !answered.is_ok_and(|r| r.status == 200) {
                        failed.fetch_add(1, Ordering::Relaxed);
                        connection = http::Connection::open(addr).unwrap();
                    }
                }
            });
        }
    });
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert_eq!(redis.command(&["GET", "default:hits"]).unwrap(), "2000");
    assert_eq!(ok(addrs[0], "GET", "/kv/hits", b""), "2000");
    // this test's own INFO connection is one of them
    let clients: u32 = redis.info("connected_clients").parse().unwrap();
    assert!(
        clients <= addrs.len() as u32 + 1,
        "{clients} connections for {} servers",
        addrs.len()
    );
}

/// Redis goes away under load on `addr`: the guest sees the store's error and
/// answers its own 503 (fast: long before the request timeout, which the
/// server is given as 10 s), the host serves on (other routes, /readyz on
/// `admin`), the log (`log` reads it) says so without a line per failure;
/// Redis back on the same port, calls succeed again without a restart.
pub fn outage(addr: SocketAddr, admin: SocketAddr, redis: &mut Redis, log: impl Fn() -> String) {
    ok(addr, "POST", "/incr/n", b"");
    let statuses = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                    let asked = Instant::now();
                    let response = send(addr, "POST", "/incr/n", b"");
                    statuses.lock().unwrap().push((
                        response.status,
                        asked.elapsed(),
                        response.text(),
                    ));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(500));
        redis.stop();
        let last_five_are = |status: u16, what: &str| {
            let last = || -> Vec<_> {
                let seen = statuses.lock().unwrap();
                seen.iter()
                    .rev()
                    .take(5)
                    .map(|(s, t, _)| (*s, *t))
                    .collect()
            };
            until(
                Duration::from_secs(20),
                what,
                || last().len() == 5 && last().iter().all(|(s, _)| *s == status),
                || format!("{:?}", last()),
            );
        };
        last_five_are(503, "the guest answers its own 503 once Redis is gone");
        // the host serves on: what needs no store, and its own endpoints
        assert_eq!(ok(addr, "GET", "/config", b""), "[]\n");
        assert_eq!(http::get(admin, "/readyz").unwrap().status, 200);
        std::thread::sleep(Duration::from_secs(1));
        redis.resume();
        last_five_are(200, "increments succeed again once Redis is back");
        stop.store(true, Ordering::Relaxed);
    });
    let statuses = statuses.into_inner().unwrap();
    let failed: Vec<_> = statuses
        .iter()
        .filter(|(status, ..)| *status != 200)
        .collect();
    assert!(!failed.is_empty());
    for (status, took, text) in &failed {
        assert_eq!(*status, 503, "{text}");
        assert!(text.contains("store error"), "{text}");
        assert!(
            *took < Duration::from_secs(9),
            "a failed call took {took:?}"
        );
    }
    // the container's lines are written by its output thread: wait for the last
    let log = super::eventually::eventually(
        Duration::from_secs(10),
        "the store's recovery said in the log",
        || {
            let log = log();
            match log.contains("wasmhttp: keyvalue calls succeed again") {
                true => Ok(log),
                false => Err(log),
            }
        },
    );
    let lines = log
        .lines()
        .filter(|l| l.contains("wasmhttp: keyvalue increment failed"))
        .count();
    assert!(
        (1..=4).contains(&lines),
        "{lines} failure lines for {} failed calls:\n{log}",
        failed.len()
    );
    assert!(
        metric(
            admin,
            "wasmhttp_keyvalue_errors_total{operation=\"increment\"}"
        ) >= failed.len() as f64
    );
}
