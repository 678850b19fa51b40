//! `/metrics` in the Prometheus text format: requests and their latencies per route and
//! status, and the projections' lag behind the log. Hand-rolled: a few counters do not
//! warrant a metrics framework.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

use crate::AppState;

/// Upper bounds of the latency histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
struct Series {
    count: u64,
    sum_seconds: f64,
    buckets: [u64; LATENCY_BUCKETS.len()],
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl Metrics {
    pub fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut map = self.requests.lock().expect("metrics lock");
        let s = map.entry((method.to_string(), route.to_string(), status)).or_default();
        s.count += 1;
        s.sum_seconds += seconds;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                s.buckets[i] += 1;
            }
        }
    }

    pub fn render(&self, head: u64, applied: u64) -> String {
        let mut out = String::new();
        out += "# HELP ledger_http_requests_total HTTP requests by route and status.\n";
        out += "# TYPE ledger_http_requests_total counter\n";
        let map = self.requests.lock().expect("metrics lock");
        for ((m, r, st), s) in map.iter() {
            out += &format!("ledger_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{st}\"}} {}\n", s.count);
        }
        out += "# HELP ledger_http_request_seconds Latency of HTTP requests.\n";
        out += "# TYPE ledger_http_request_seconds histogram\n";
        for ((m, r, st), s) in map.iter() {
            let labels = format!("method=\"{m}\",route=\"{r}\",status=\"{st}\"");
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                out += &format!("ledger_http_request_seconds_bucket{{{labels},le=\"{bound}\"}} {}\n", s.buckets[i]);
            }
            out += &format!("ledger_http_request_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n", s.count);
            out += &format!("ledger_http_request_seconds_sum{{{labels}}} {}\n", s.sum_seconds);
            out += &format!("ledger_http_request_seconds_count{{{labels}}} {}\n", s.count);
        }
        out += "# HELP ledger_log_head_position Global position of the last stored event.\n";
        out += "# TYPE ledger_log_head_position gauge\n";
        out += &format!("ledger_log_head_position {head}\n");
        out += "# HELP ledger_projection_lag_events Events stored but not yet applied by every projection.\n";
        out += "# TYPE ledger_projection_lag_events gauge\n";
        out += &format!("ledger_projection_lag_events {}\n", head.saturating_sub(applied));
        out
    }
}

/// Times every request under its route template (never the raw path: ids would explode
/// the series).
pub async fn record(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(req).await;
    state.metrics.observe(&method, &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> String {
    let head = *state.store.head().borrow();
    let applied = state.progress.applied();
    state.metrics.render(head, applied)
}
