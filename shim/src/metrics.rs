//! What `/metrics` reports, in the Prometheus text format. Plain atomics:
//! recording sits on every request's path and must cost next to nothing.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the latency and instantiation histograms.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(bucket) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.counts[bucket].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(took.as_micros() as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Why a request was answered without calling the guest.
#[derive(Clone, Copy)]
pub enum Rejection {
    /// over WASMHTTP_MAX_CONCURRENCY: 503
    Overloaded,
    /// over WASMHTTP_MAX_BODY: 413
    BodyTooLarge,
    /// no Host header, or two: 400
    BadRequest,
    /// no route of the app matches the path: 404
    NoRoute,
}

#[derive(Default)]
pub struct Metrics {
    /// status code -> responses; few distinct codes, so a small sorted list
    responses: Mutex<Vec<(u16, u64)>>,
    /// (route, status) -> responses, for an app of several components
    route_responses: Mutex<Vec<((String, u16), u64)>>,
    latency: Histogram,
    /// making a guest instance: a component's, a CGI program's
    instantiation: Histogram,
    in_flight: AtomicU64,
    traps: AtomicU64,
    timeouts: AtomicU64,
    /// guests stopped because their client went away mid-response
    clients_gone: AtomicU64,
    /// requests served by an instance kept from an earlier one (WASMHTTP_INSTANCE_REUSE)
    reused: AtomicU64,
    /// instances waiting for their next request (WASMHTTP_INSTANCE_REUSE)
    warm_instances: AtomicU64,
    rejected_overloaded: AtomicU64,
    rejected_body: AtomicU64,
    rejected_bad_request: AtomicU64,
    rejected_no_route: AtomicU64,
    /// wasi:keyvalue calls (the platform's store counts into it)
    pub store_calls: std::sync::Arc<StoreCalls>,
}

/// A wasi:keyvalue operation, as `/metrics` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOperation {
    Open,
    Get,
    Set,
    Delete,
    Exists,
    ListKeys,
    Increment,
    GetMany,
    SetMany,
    DeleteMany,
}

impl StoreOperation {
    const ALL: [StoreOperation; 10] = [
        StoreOperation::Open,
        StoreOperation::Get,
        StoreOperation::Set,
        StoreOperation::Delete,
        StoreOperation::Exists,
        StoreOperation::ListKeys,
        StoreOperation::Increment,
        StoreOperation::GetMany,
        StoreOperation::SetMany,
        StoreOperation::DeleteMany,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StoreOperation::Open => "open",
            StoreOperation::Get => "get",
            StoreOperation::Set => "set",
            StoreOperation::Delete => "delete",
            StoreOperation::Exists => "exists",
            StoreOperation::ListKeys => "list_keys",
            StoreOperation::Increment => "increment",
            StoreOperation::GetMany => "get_many",
            StoreOperation::SetMany => "set_many",
            StoreOperation::DeleteMany => "delete_many",
        }
    }
}

/// wasi:keyvalue calls and the failed ones, by operation.
#[derive(Default)]
pub struct StoreCalls {
    calls: [AtomicU64; StoreOperation::ALL.len()],
    errors: [AtomicU64; StoreOperation::ALL.len()],
}

impl StoreCalls {
    pub fn called(&self, operation: StoreOperation, failed: bool) {
        let at = operation as usize;
        self.calls[at].fetch_add(1, Relaxed);
        if failed {
            self.errors[at].fetch_add(1, Relaxed);
        }
    }

    fn render(&self, out: &mut String) {
        for (name, help, counters) in [
            (
                "wasmhttp_keyvalue_calls_total",
                "wasi:keyvalue calls, by operation.",
                &self.calls,
            ),
            (
                "wasmhttp_keyvalue_errors_total",
                "wasi:keyvalue calls that failed (the guest saw the store's error), by operation.",
                &self.errors,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for operation in StoreOperation::ALL {
                let count = counters[operation as usize].load(Relaxed);
                let _ = writeln!(out, "{name}{{operation=\"{}\"}} {count}", operation.name());
            }
        }
    }
}

/// Counts a request in flight for as long as it lives.
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

impl Metrics {
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(self)
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    pub fn responded(&self, status: u16, took: Duration) {
        self.latency.observe(took);
        let mut responses = self.responses.lock().unwrap();
        match responses.binary_search_by_key(&status, |(code, _)| *code) {
            Ok(i) => responses[i].1 += 1,
            Err(i) => responses.insert(i, (status, 1)),
        }
    }

    /// A response of the app's route `route` (besides [`Metrics::responded`]).
    pub fn route_responded(&self, route: &str, status: u16) {
        let mut responses = self.route_responses.lock().unwrap();
        let key = (route, status);
        match responses.binary_search_by(|((r, s), _)| (r.as_str(), *s).cmp(&key)) {
            Ok(i) => responses[i].1 += 1,
            Err(i) => responses.insert(i, ((route.to_string(), status), 1)),
        }
    }

    pub fn instantiated(&self, took: Duration) {
        self.instantiation.observe(took);
    }

    /// A guest trapped or failed (not its timeout).
    pub fn trapped(&self) {
        self.traps.fetch_add(1, Relaxed);
    }

    pub fn timed_out(&self) {
        self.timeouts.fetch_add(1, Relaxed);
    }

    /// A client went away before its response was whole; its guest was stopped.
    pub fn client_gone(&self) {
        self.clients_gone.fetch_add(1, Relaxed);
    }

    /// A request went to an instance kept from an earlier one.
    pub fn reused(&self) {
        self.reused.fetch_add(1, Relaxed);
    }

    pub fn set_warm_instances(&self, count: usize) {
        self.warm_instances.store(count as u64, Relaxed);
    }

    pub fn rejected(&self, why: Rejection) {
        let counter = match why {
            Rejection::Overloaded => &self.rejected_overloaded,
            Rejection::BodyTooLarge => &self.rejected_body,
            Rejection::BadRequest => &self.rejected_bad_request,
            Rejection::NoRoute => &self.rejected_no_route,
        };
        counter.fetch_add(1, Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP wasmhttp_requests_total Responses sent, by HTTP status.\n");
        out.push_str("# TYPE wasmhttp_requests_total counter\n");
        for (status, count) in self.responses.lock().unwrap().iter() {
            let _ = writeln!(
                out,
                "wasmhttp_requests_total{{status=\"{status}\"}} {count}"
            );
        }
        let routes = self.route_responses.lock().unwrap();
        if !routes.is_empty() {
            out.push_str("# HELP wasmhttp_route_requests_total Responses sent by each route of the app, by HTTP status.\n");
            out.push_str("# TYPE wasmhttp_route_requests_total counter\n");
            for ((route, status), count) in routes.iter() {
                let _ = writeln!(
                    out,
                    "wasmhttp_route_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
        }
        drop(routes);
        self.latency.render(
            &mut out,
            "wasmhttp_request_duration_seconds",
            "Time from request to response head.",
        );
        self.instantiation.render(
            &mut out,
            "wasmhttp_instantiation_duration_seconds",
            "Time to instantiate the component for one request.",
        );
        let gauge = |out: &mut String, name: &str, help: &str, kind: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        gauge(
            &mut out,
            "wasmhttp_requests_in_flight",
            "Requests being served now.",
            "gauge",
            self.in_flight(),
        );
        gauge(
            &mut out,
            "wasmhttp_guest_traps_total",
            "Guest instances that trapped or failed.",
            "counter",
            self.traps.load(Relaxed),
        );
        gauge(
            &mut out,
            "wasmhttp_request_timeouts_total",
            "Requests stopped by WASMHTTP_REQUEST_TIMEOUT.",
            "counter",
            self.timeouts.load(Relaxed),
        );
        gauge(
            &mut out,
            "wasmhttp_clients_gone_total",
            "Responses whose client went away before they were whole: the guest was stopped and its slot freed (not counted as a failure).",
            "counter",
            self.clients_gone.load(Relaxed),
        );
        gauge(
            &mut out,
            "wasmhttp_log_lines_dropped_total",
            "Lines of output (guests' stdout and stderr, the shim's own) dropped because the container log's reader fell behind and WASMHTTP_LOG_BUFFER was full.",
            "counter",
            crate::output::dropped(),
        );
        gauge(
            &mut out,
            "wasmhttp_instances_reused_total",
            "Requests served by an instance kept from an earlier request (WASMHTTP_INSTANCE_REUSE).",
            "counter",
            self.reused.load(Relaxed),
        );
        gauge(
            &mut out,
            "wasmhttp_instances_warm",
            "Instances kept for their next request (WASMHTTP_INSTANCE_REUSE).",
            "gauge",
            self.warm_instances.load(Relaxed),
        );
        out.push_str(
            "# HELP wasmhttp_rejections_total Requests answered without calling the guest.\n",
        );
        out.push_str("# TYPE wasmhttp_rejections_total counter\n");
        for (reason, counter) in [
            ("overloaded", &self.rejected_overloaded),
            ("body_too_large", &self.rejected_body),
            ("bad_request", &self.rejected_bad_request),
            ("no_route", &self.rejected_no_route),
        ] {
            let _ = writeln!(
                out,
                "wasmhttp_rejections_total{{reason=\"{reason}\"}} {}",
                counter.load(Relaxed)
            );
        }
        self.store_calls.render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.responded(200, Duration::from_millis(3));
        metrics.responded(200, Duration::from_millis(30));
        metrics.responded(504, Duration::from_secs(2));
        metrics.rejected(Rejection::Overloaded);
        metrics.route_responded("api", 200);
        metrics.route_responded("api", 200);
        metrics.route_responded("front", 404);
        metrics.route_responded("api", 500);
        let _request = metrics.start();
        let text = metrics.render();
        for line in [
            "wasmhttp_requests_total{status=\"200\"} 2",
            "wasmhttp_requests_total{status=\"504\"} 1",
            "wasmhttp_request_duration_seconds_bucket{le=\"0.005\"} 1",
            "wasmhttp_request_duration_seconds_bucket{le=\"0.05\"} 2",
            "wasmhttp_request_duration_seconds_bucket{le=\"+Inf\"} 3",
            "wasmhttp_request_duration_seconds_count 3",
            "wasmhttp_requests_in_flight 1",
            "wasmhttp_rejections_total{reason=\"overloaded\"} 1",
            "wasmhttp_rejections_total{reason=\"no_route\"} 0",
            "wasmhttp_route_requests_total{route=\"api\",status=\"200\"} 2",
            "wasmhttp_route_requests_total{route=\"api\",status=\"500\"} 1",
            "wasmhttp_route_requests_total{route=\"front\",status=\"404\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        drop(_request);
        assert_eq!(metrics.in_flight(), 0);
    }
}
