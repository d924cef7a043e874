//! Optional trace export: OpenTelemetry over OTLP/HTTP with protobuf bodies, on when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set. Unset, there
//! is no exporter and no layer, and the helpers below return at once.
//!
//! What a trace holds: the API's `request` span (a server span named after its route,
//! continuing the caller's `traceparent` when it sent one); the worker's `job` span for each
//! attempt, a child of the span that enqueued the job (the job's envelope carries its
//! `traceparent`, see `jobs::encode`); and a client span for each provider call, whose context
//! the provider receives as `traceparent` (`http_client::send`). Log lines written inside them
//! become span events. So a checkout, the jobs it caused and their provider calls are one trace.
//!
//! The standard variables apply as the OpenTelemetry SDK reads them: `OTEL_SERVICE_NAME` (else
//! the binary's name), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS` (an APM's API
//! key), `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`,
//! `OTEL_BSP_*`; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn export off. Only
//! the `http/protobuf` protocol is built in (no gRPC stack): another value of
//! `OTEL_EXPORTER_OTLP_PROTOCOL` stops the process at start, naming the variable.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::{
    KeyValue,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{Status, TraceContextExt, TracerProvider as _},
};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{SdkTracer, SdkTracerProvider},
};
use tracing::{Span, Subscriber};
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{self, ConfigError};

/// Set once a process builds its export layer; everything here is a no-op until then.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether this process exports traces (checked before any trace work, so that none is done
/// when it does not).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The exporter and its batch thread. Call [`Traces::shutdown`] before the process exits, so
/// the spans still buffered are sent.
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// From the standard variables (module docs); `None` when trace export is off.
    pub fn from_env(service_name: &str) -> Result<Option<Self>, ConfigError> {
        if !wanted(&|name| config::var(name))? {
            return Ok(None);
        }
        build(None, service_name).map(Some)
    }

    /// Exports to `endpoint`, the full URL of an OTLP/HTTP traces receiver (`…/v1/traces`),
    /// whatever the environment says. For tests, which run a receiver of their own.
    pub fn to_endpoint(endpoint: &str, service_name: &str) -> Result<Self, ConfigError> {
        build(Some(endpoint), service_name)
    }

    /// The layer that turns this process's spans into exported ones.
    pub(super) fn layer<S>(&self) -> OpenTelemetryLayer<S, SdkTracer>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        EXPORTING.store(true, Ordering::Relaxed);
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("cart"))
            // Thread names say nothing in a tokio pool; the busy/idle times do.
            .with_threads(false)
    }

    /// Sends the spans still buffered and stops the exporter. Blocks for up to the export
    /// timeout: call it last, outside async code or through `spawn_blocking`.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "could not send the last traces");
        }
    }

    /// Sends the spans buffered so far (tests read them right after).
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!(error = %e, "could not send the buffered traces");
        }
    }
}

/// Whether the environment asks for trace export, refusing what we cannot do.
fn wanted(env: &dyn Fn(&'static str) -> Option<String>) -> Result<bool, ConfigError> {
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(false);
    }
    match env("OTEL_TRACES_EXPORTER").map(|v| v.trim().to_ascii_lowercase()) {
        Some(exporter) if exporter == "none" => return Ok(false),
        Some(exporter) if exporter != "otlp" => {
            return Err(ConfigError::Invalid {
                name: "OTEL_TRACES_EXPORTER",
                reason: "only otlp (or none) is supported".into(),
            });
        }
        _ => {}
    }
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(protocol) = env(name)
            && protocol.trim() != "http/protobuf"
        {
            return Err(ConfigError::Invalid {
                name,
                reason: "only http/protobuf is built in".into(),
            });
        }
    }
    Ok(env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some())
}

fn build(endpoint: Option<&str>, service_name: &str) -> Result<Traces, ConfigError> {
    let mut exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(endpoint) = endpoint {
        exporter = exporter.with_endpoint(endpoint);
    }
    let exporter = exporter.build().map_err(|e| ConfigError::Invalid {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT",
        reason: e.to_string(),
    })?;
    // The SDK reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the binary's name is only
    // the default.
    let named_by_env = config::var("OTEL_SERVICE_NAME").is_some()
        || config::var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="));
    let resource = if named_by_env {
        Resource::builder().build()
    } else {
        Resource::builder()
            .with_service_name(service_name.to_owned())
            .build()
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    Ok(Traces { provider })
}

/// The W3C `traceparent` of the current span, when traces are exported: what a job enqueued
/// now carries, so that its run continues this trace.
pub fn current_traceparent() -> Option<String> {
    if !exporting() {
        return None;
    }
    traceparent_of(&Span::current())
}

fn traceparent_of(span: &Span) -> Option<String> {
    let mut carrier = Traceparent(None);
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.0
}

/// Makes `span`, not yet entered, a child of the span that `traceparent` names (a job's
/// origin, or the caller of a request). A malformed value is ignored: the span starts a trace
/// of its own.
pub fn continue_trace(span: &Span, traceparent: &str) {
    if !exporting() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Traceparent(Some(traceparent.to_owned())));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Names the API's request span after its route (`GET /api/orders/{id}`) and records the
/// HTTP attributes of the semantic conventions, once the response is known.
pub fn describe_request(span: &Span, method: &str, route: &str, status: u16) {
    if !exporting() {
        return;
    }
    let context = span.context();
    let otel = context.span();
    otel.update_name(format!("{method} {route}"));
    otel.set_attributes([
        KeyValue::new("http.request.method", method.to_owned()),
        KeyValue::new("http.route", route.to_owned()),
        KeyValue::new("http.response.status_code", i64::from(status)),
    ]);
    if status >= 500 {
        otel.set_status(Status::error(format!("{status}")));
    }
}

/// A client span for one provider call, and the `traceparent` that names it (to send along),
/// or `None` when traces are not exported.
pub fn provider_call(method: &str, host: &str, path: &str) -> Option<(Span, String)> {
    if !exporting() {
        return None;
    }
    let span = tracing::info_span!(
        "provider call",
        otel.name = %format!("{method} {host}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        server.address = %host,
        url.path = %path,
        http.response.status_code = tracing::field::Empty,
    );
    let traceparent = traceparent_of(&span)?;
    Some((span, traceparent))
}

/// Records the answer (or the failure) of a [`provider_call`] on its span.
pub fn provider_answered(span: &Span, status: Option<u16>) {
    match status {
        Some(status) => {
            span.record("http.response.status_code", i64::from(status));
            if status >= 500 {
                span.record("otel.status_code", "ERROR");
            }
        }
        None => {
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// Carries one `traceparent` value in and out of the propagator.
struct Traceparent(Option<String>);

impl Injector for Traceparent {
    fn set(&mut self, key: &str, value: String) {
        if key == "traceparent" {
            self.0 = Some(value);
        }
    }
}

impl Extractor for Traceparent {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent")
            .then_some(self.0.as_deref())
            .flatten()
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&'static str, &str)]) -> impl Fn(&'static str) -> Option<String> {
        let map: HashMap<&str, String> = pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn export_is_on_only_with_an_endpoint() {
        assert!(!wanted(&env(&[])).unwrap());
        assert!(!wanted(&env(&[("OTEL_SERVICE_NAME", "cart")])).unwrap());
        assert!(
            wanted(&env(&[(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://collector:4318"
            )]))
            .unwrap()
        );
        assert!(
            wanted(&env(&[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://collector:4318/v1/traces"
            )]))
            .unwrap()
        );
    }

    #[test]
    fn export_can_be_switched_off_with_the_standard_variables() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        assert!(!wanted(&env(&[endpoint, ("OTEL_SDK_DISABLED", "true")])).unwrap());
        assert!(!wanted(&env(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")])).unwrap());
        assert!(wanted(&env(&[endpoint, ("OTEL_TRACES_EXPORTER", "otlp")])).unwrap());
    }

    #[test]
    fn a_protocol_or_exporter_we_do_not_build_is_refused_naming_the_variable() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
        for (name, value) in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
        ] {
            let err = wanted(&env(&[endpoint, (name, value)])).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        assert!(
            wanted(&env(&[
                endpoint,
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            ]))
            .unwrap()
        );
    }

    #[test]
    fn a_traceparent_round_trips_through_the_carrier() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = TraceContextPropagator::new().extract(&Traceparent(Some(value.into())));
        let context = parent.span().span_context().clone();
        assert!(context.is_valid());
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let mut carrier = Traceparent(None);
        TraceContextPropagator::new().inject_context(&parent, &mut carrier);
        assert_eq!(carrier.0.as_deref(), Some(value));

        let garbage = TraceContextPropagator::new().extract(&Traceparent(Some("00-zz".into())));
        assert!(!garbage.span().span_context().is_valid());
    }

    #[test]
    fn nothing_is_done_while_traces_are_not_exported() {
        // No layer was built in this test process's lifetime for this check to depend on:
        // the helpers look at the flag first.
        if exporting() {
            return;
        }
        assert_eq!(current_traceparent(), None);
        assert!(provider_call("POST", "api.example", "/v1").is_none());
    }
}
