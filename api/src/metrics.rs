//! Prometheus metrics: one process-wide recorder, rendered by `GET /metrics`.

use std::{
    collections::HashMap,
    sync::{LazyLock, RwLock},
    time::Duration,
};

use axum::http::{Method, StatusCode};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::PrometheusHandle;

#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// The recorder is global to the process (the `metrics` facade allows one), so every
    /// router built in this process, tests and an in-process worker included, shares it.
    pub fn global() -> Self {
        Self {
            handle: cart_core::telemetry::prometheus::recorder(),
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
