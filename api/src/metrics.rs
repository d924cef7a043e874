//! Prometheus metrics: one process-wide recorder, rendered by `GET /metrics`.

use std::{
    collections::HashMap,
    sync::{LazyLock, OnceLock, RwLock},
    time::Duration,
};

use axum::http::{Method, StatusCode};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

impl Metrics {
    /// The recorder is global to the process (the `metrics` facade allows one), so every
    /// router built in this process, tests included, shares it.
    pub fn global() -> Self {
        let handle = HANDLE.get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        });
        Self {
            handle: handle.clone(),
        }
    }

    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// The handles of one (method, status) pair of a route.
struct RequestHandles {
    method: &'static str,
    status: u16,
    count: Counter,
    duration: Histogram,
}

/// Handles by route template, then by method and status: resolving a labelled metric in the
/// registry allocates its labels and hashes them, which is worth doing once, not per request.
/// Routes are templates and methods are folded into a fixed set, so this stays small.
static REQUEST_HANDLES: LazyLock<RwLock<HashMap<Box<str>, Vec<RequestHandles>>>> =
    LazyLock::new(Default::default);

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts a request (`http_requests_total` by method, route and status) and records its
/// duration (`http_request_duration_seconds` by method and route).
pub fn record_request(method: &Method, route: &str, status: StatusCode, latency: Duration) {
    let method = method_label(method);
    let status = status.as_u16();
    let record = |handles: &HashMap<Box<str>, Vec<RequestHandles>>| {
        let known = handles
            .get(route)?
            .iter()
            .find(|h| h.method == method && h.status == status)?;
        known.count.increment(1);
        known.duration.record(latency);
        Some(())
    };
    if REQUEST_HANDLES
        .read()
        .ok()
        .and_then(|handles| record(&handles))
        .is_some()
    {
        return;
    }
    // First request of this kind: register its handles, unless another request just did.
    let Ok(mut handles) = REQUEST_HANDLES.write() else {
        return;
    };
    if record(&handles).is_some() {
        return;
    }
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    let fresh = RequestHandles {
        method,
        status,
        count: metrics::counter!("http_requests_total", &labels),
        duration: metrics::histogram!("http_request_duration_seconds", &labels[..2]),
    };
    fresh.count.increment(1);
    fresh.duration.record(latency);
    handles.entry(route.into()).or_default().push(fresh);
}
