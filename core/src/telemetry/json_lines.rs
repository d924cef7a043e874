//! A tracing layer that writes each event as one flat JSON object per line, the shape log
//! platforms (Fly's and Railway's viewers, Loki, Datadog) index without configuration:
//!
//! ```json
//! {"time":"2026-05-04T12:00:00.123456Z","level":"info","msg":"request","target":"cart_api::middleware","request_id":"0196…","user_id":"0196…","status":200}
//! ```
//!
//! `time` (RFC 3339, UTC), `level` (lower case), `msg` and `target` come first; then every
//! field of every span the event is inside, from the outermost in, then the event's own
//! fields. A name recorded twice keeps the innermost value (the event's own wins). So the ids
//! a span carries — `request_id` and `user_id` on the API's request span, `job_id` and
//! `job_kind` on the worker's job span, `order_id` or `payment_id` wherever a span records
//! them — are top-level fields of every line written inside it, and a line can be found with
//! one filter on any of them. An event or span field named like one of the four leading keys
//! is written as `field.<name>` instead of overwriting it. Fields named `otel.…` are
//! instructions to the trace exporter (a span's kind or name), not part of the line.

use std::{collections::BTreeMap, fmt, io::Write};

use chrono::{SecondsFormat, Utc};
use serde_json::Value;
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
    span,
};
use tracing_subscriber::{
    Layer,
    fmt::MakeWriter,
    layer::Context,
    registry::{LookupSpan, SpanRef},
};

const LEADING_KEYS: [&str; 4] = ["time", "level", "msg", "target"];

/// The prefix of the fields that only the trace exporter reads (`otel.kind`, `otel.name`).
const TRACE_EXPORT_PREFIX: &str = "otel.";

/// See the module documentation. `W` is where lines go (`std::io::stderr` in the binaries).
pub struct JsonLines<W> {
    make_writer: W,
}

impl<W> JsonLines<W>
where
    W: for<'w> MakeWriter<'w> + 'static,
{
    pub fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

/// The fields recorded so far on one span, kept in the span's extensions.
#[derive(Default)]
struct SpanFields(BTreeMap<String, Value>);

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut FieldCollector(&mut fields.0));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<SpanFields>() {
            values.record(&mut FieldCollector(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                merge_span_fields(&span, &mut fields);
            }
        }
        event.record(&mut FieldCollector(&mut fields));
        // The event's message, not a span field of that name.
        let message = fields.remove("message").unwrap_or(Value::Null);

        let metadata = event.metadata();
        let mut line = Vec::with_capacity(256);
        write_line(
            &mut line,
            metadata.level().as_str().to_ascii_lowercase().as_str(),
            &message,
            metadata.target(),
            &fields,
        );
        // One write per line, so lines from concurrent tasks do not interleave.
        let _ = self.make_writer.make_writer_for(metadata).write_all(&line);
    }
}

fn merge_span_fields<S>(span: &SpanRef<'_, S>, into: &mut BTreeMap<String, Value>)
where
    S: for<'a> LookupSpan<'a>,
{
    if let Some(fields) = span.extensions().get::<SpanFields>() {
        for (name, value) in &fields.0 {
            into.insert(name.clone(), value.clone());
        }
    }
}

fn write_line(
    out: &mut Vec<u8>,
    level: &str,
    message: &Value,
    target: &str,
    fields: &BTreeMap<String, Value>,
) {
    let time = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    out.push(b'{');
    write_pair(out, "time", &Value::from(time));
    out.push(b',');
    write_pair(out, "level", &Value::from(level));
    out.push(b',');
    write_pair(out, "msg", message);
    out.push(b',');
    write_pair(out, "target", &Value::from(target));
    for (name, value) in fields {
        out.push(b',');
        if LEADING_KEYS.contains(&name.as_str()) {
            write_pair(out, &format!("field.{name}"), value);
        } else {
            write_pair(out, name, value);
        }
    }
    out.extend_from_slice(b"}\n");
}

fn write_pair(out: &mut Vec<u8>, name: &str, value: &Value) {
    // Serialising a string or a `Value` into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, name);
    out.push(b':');
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Records fields as JSON values: numbers and booleans as such, everything else (`%` Display,
/// `?` Debug, errors) as strings.
struct FieldCollector<'a>(&'a mut BTreeMap<String, Value>);

impl FieldCollector<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        if !field.name().starts_with(TRACE_EXPORT_PREFIX) {
            self.0.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for FieldCollector<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.put(field, Value::from(value.to_string()));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.put(field, Value::from(value.to_string()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Map;
    use tracing_subscriber::prelude::*;

    use super::*;

    /// Lines written while `body` runs, each parsed as a JSON object.
    fn capture(body: impl FnOnce()) -> Vec<Map<String, Value>> {
        capture_at("trace", body)
    }

    /// The same, behind the binaries' `LOG_LEVEL` filter.
    fn capture_at(log_level: &str, body: impl FnOnce()) -> Vec<Map<String, Value>> {
        let buffer = Buffer::default();
        let filter = super::super::level_filter(log_level).expect("a valid level");
        let subscriber = tracing_subscriber::registry()
            .with(super::super::filter::EventLevel(filter))
            .with(JsonLines::new(buffer.clone()));
        tracing::subscriber::with_default(subscriber, body);
        let bytes = buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
        let text = String::from_utf8(bytes).expect("UTF-8 output");
        assert!(text.ends_with('\n'), "every line ends: {text:?}");
        text.lines()
            .map(|line| match serde_json::from_str(line) {
                Ok(Value::Object(object)) => object,
                other => panic!("not a JSON object: {line} ({other:?})"),
            })
            .collect()
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut buffer) = self.0.lock() {
                buffer.extend_from_slice(bytes);
            }
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;

        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn an_event_is_one_flat_line_with_the_leading_keys() {
        let lines = capture(|| tracing::warn!(status = 503, cached = false, "multi\nline"));
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["level"], "warn");
        assert_eq!(line["msg"], "multi\nline");
        assert_eq!(line["status"], 503);
        assert_eq!(line["cached"], false);
        assert!(
            line["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("cart_core"))
        );
        let time = line["time"].as_str().unwrap_or_default();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        let keys: Vec<&str> = line.keys().map(String::as_str).collect();
        assert!(
            !keys.contains(&"fields") && !keys.contains(&"span"),
            "{keys:?}"
        );
    }

    #[test]
    fn span_ids_become_top_level_fields_of_the_lines_inside() {
        let lines = capture(|| {
            let job = tracing::info_span!("job", job_kind = "send_email", job_id = "01J0");
            let _job = job.enter();
            let request = tracing::info_span!("request", request_id = "req-1");
            let _request = request.enter();
            tracing::info!(order_id = %"ord-7", payment_id = 42_u64, "order paid");
        });
        let line = &lines[0];
        assert_eq!(line["job_kind"], "send_email");
        assert_eq!(line["job_id"], "01J0");
        assert_eq!(line["request_id"], "req-1");
        assert_eq!(line["order_id"], "ord-7");
        assert_eq!(line["payment_id"], 42);
        assert_eq!(line["msg"], "order paid");
    }

    #[test]
    fn a_field_recorded_on_a_span_later_reaches_the_next_lines() {
        let lines = capture(|| {
            let span = tracing::info_span!("request", user_id = tracing::field::Empty);
            let _entered = span.enter();
            tracing::info!("before");
            span.record("user_id", "u-1");
            tracing::info!("after");
        });
        assert!(!lines[0].contains_key("user_id"), "{:?}", lines[0]);
        assert_eq!(lines[1]["user_id"], "u-1");
    }

    #[test]
    fn the_innermost_value_of_a_name_wins() {
        let lines = capture(|| {
            let outer = tracing::info_span!("outer", order_id = "outer", kept = 1);
            let _outer = outer.enter();
            let inner = tracing::info_span!("inner", order_id = "inner");
            let _inner = inner.enter();
            tracing::info!("span value");
            tracing::info!(order_id = "event", "event value");
        });
        assert_eq!(lines[0]["order_id"], "inner");
        assert_eq!(lines[0]["kept"], 1);
        assert_eq!(lines[1]["order_id"], "event");
    }

    #[test]
    fn a_field_named_like_a_leading_key_does_not_replace_it() {
        let lines = capture(|| tracing::error!(level = "custom", time = 3, "clash"));
        let line = &lines[0];
        assert_eq!(line["level"], "error");
        assert_eq!(line["field.level"], "custom");
        assert_eq!(line["field.time"], 3);
        assert!(line["time"].is_string());
    }

    #[test]
    fn the_trace_exporters_fields_stay_out_of_the_line() {
        let lines = capture(|| {
            let request = tracing::info_span!("request", otel.kind = "server", request_id = "r-1");
            let _request = request.enter();
            tracing::info!(otel.name = "ignored", "inside");
        });
        assert_eq!(lines[0]["request_id"], "r-1");
        assert!(
            lines[0].keys().all(|key| !key.starts_with("otel")),
            "{:?}",
            lines[0]
        );
    }

    #[test]
    fn a_quieter_level_keeps_the_ids_of_the_spans_it_hides() {
        let lines = capture_at("warn", || {
            let request = tracing::info_span!("request", request_id = "req-9");
            let _request = request.enter();
            tracing::info!("hidden");
            tracing::warn!("kept");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["msg"], "kept");
        assert_eq!(lines[0]["request_id"], "req-9");
    }
}
