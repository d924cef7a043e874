//! What an operator sees of the store, with the worker's handlers running in-process: one
//! trace from a request through the job it enqueued to that job's provider call (exported over
//! OTLP/HTTP to a receiver in this test), the business events and queue figures on `/metrics`
//! once they happened, and a Grafana dashboard (`grafana/cart.json`) whose every query names a
//! metric the API and the worker serve.

// Fixture helpers below are not `#[test]` functions, which clippy's test allowance skips.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{Request, StatusCode, header},
    response::IntoResponse,
    routing::post,
};
use cart_core::{
    jobs::Job,
    payments::{BreakerConfig, CircuitBreaker},
    telemetry::{self, Traces},
};
use cart_worker::jobs::testing::Record;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::any_value,
    trace::v1::{Span as OtlpSpan, span::SpanKind},
};
use prost::Message;
use serde_json::{Value, json};
use sqlx::PgPool;
use tower::ServiceExt;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

use crate::{
    checkout::{add_to_cart, checkout_body, product, shopper},
    payments::{
        World, admin_token, buyer, eventually, order_state, pay, payment_settings, place_order,
        start_worker_with,
    },
};

const SETTLE: Duration = Duration::from_secs(30);

/// An OTLP/HTTP traces receiver on a thread and runtime of its own: the exporter's batch
/// thread posts to it while the test's runtime waits for a flush.
struct Receiver {
    endpoint: String,
    spans: Arc<Mutex<Vec<OtlpSpan>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

type Received = Arc<Mutex<Vec<OtlpSpan>>>;

impl Receiver {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let spans = Received::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let received = spans.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = Router::new()
                    .route("/v1/traces", post(receive))
                    .with_state(received);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Self {
            endpoint,
            spans,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Every span received so far of the trace `trace_id` (hex).
    fn trace(&self, trace_id: &str) -> Vec<OtlpSpan> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|span| hex(&span.trace_id) == trace_id)
            .cloned()
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Decodes one export as a collector would: protobuf `ExportTraceServiceRequest` in, an empty
/// `ExportTraceServiceResponse` out.
async fn receive(State(spans): State<Received>, body: Bytes) -> impl IntoResponse {
    let Ok(export) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    let mut spans = spans.lock().unwrap();
    for resource in export.resource_spans {
        for scope in resource.scope_spans {
            spans.extend(scope.spans);
        }
    }
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(span: &'a OtlpSpan, key: &str) -> Option<&'a any_value::Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn names(spans: &[OtlpSpan]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}

#[sqlx::test(migrations = false)]
async fn a_request_the_job_it_enqueued_and_that_jobs_provider_call_are_one_trace(pool: PgPool) {
    let receiver = Receiver::start();
    let traces = Arc::new(Traces::to_endpoint(&receiver.endpoint, "cart-test").unwrap());
    // This test's runtime runs on this thread only, the API and the worker included.
    let subscriber = telemetry::subscriber_for("info", std::io::sink, Some(&traces)).unwrap();
    let _traced = tracing::subscriber::set_default(subscriber);

    let propay = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/pix/charges"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "txid": "PROPAY7b2c9e0f4a1d4c3bb8e6a5d4c3b2a1f0",
            "br_code": crate::payments::MOCK_BR_CODE,
            "qr_code_url": "https://propay.example/qr/7b2c.png",
            "expires_at": "2026-11-25T12:30:00Z"
        })))
        .mount(&propay)
        .await;
    let settings = payment_settings(&[
        ("PIX_PROVIDER", "propay"),
        ("PROPAY_URL", &propay.uri()),
        ("GO_TO_PROPAY_SECRET", "go-to-propay-secret"),
    ]);
    let world = World::start(pool, settings, true).await;
    let buyer = buyer(&world.app).await;
    let order_id = place_order(&world.app.pool, buyer.id).await;
    // Other tests of this process may have hit the request and job spans' callsites while
    // this thread's subscriber was being installed, caching "no subscriber wants them" (a
    // race in tracing's callsite registry): ask every subscriber again.
    tracing::callsite::rebuild_interest_cache();
    // Answers once the initiation job has called ProPay.
    pay(&world.app, order_id, "pix", &buyer.token)
        .await
        .assert_status(201);

    let charge = propay
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.url.path() == "/v1/pix/charges")
        .unwrap();
    let traceparent = charge
        .headers
        .get("traceparent")
        .expect("the provider call carries a traceparent")
        .to_str()
        .unwrap()
        .to_owned();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    let (trace_id, call_id) = (parts[1], parts[2]);
    assert!(charge.headers.get("x-request-id").is_some());

    world.stop().await;
    let flushing = traces.clone();
    tokio::task::spawn_blocking(move || flushing.flush())
        .await
        .unwrap();
    let spans = receiver.trace(trace_id);

    let request = spans
        .iter()
        .find(|s| s.name == "POST /api/orders/{id}/pay")
        .unwrap_or_else(|| {
            let all: Vec<String> = receiver
                .spans
                .lock()
                .unwrap()
                .iter()
                .map(|s| {
                    format!(
                        "{} {} <- {}",
                        s.name,
                        hex(&s.trace_id),
                        hex(&s.parent_span_id)
                    )
                })
                .collect();
            panic!("no request span in {:?}; received {all:#?}", names(&spans))
        });
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert!(
        request.parent_span_id.is_empty(),
        "the trace starts at the request"
    );
    assert_eq!(
        attribute(request, "http.route"),
        Some(&any_value::Value::StringValue(
            "/api/orders/{id}/pay".into()
        ))
    );
    assert_eq!(
        attribute(request, "http.response.status_code"),
        Some(&any_value::Value::IntValue(201))
    );

    let job = spans
        .iter()
        .find(|s| {
            s.name == "job"
                && attribute(s, "job_kind")
                    == Some(&any_value::Value::StringValue("initiate_payment".into()))
        })
        .unwrap_or_else(|| panic!("no initiate_payment job span in {:?}", names(&spans)));
    assert_eq!(
        hex(&job.parent_span_id),
        hex(&request.span_id),
        "the job continues the request that enqueued it"
    );

    let call = spans
        .iter()
        .find(|s| hex(&s.span_id) == call_id)
        .unwrap_or_else(|| panic!("no span for the ProPay call in {:?}", names(&spans)));
    assert_eq!(call.kind, SpanKind::Client as i32);
    assert_eq!(
        hex(&call.parent_span_id),
        hex(&job.span_id),
        "the provider call is the job's"
    );
    assert_eq!(
        attribute(call, "http.response.status_code"),
        Some(&any_value::Value::IntValue(201))
    );

    tokio::task::spawn_blocking(move || traces.shutdown())
        .await
        .unwrap();
}

/// The sum of the samples of `name` whose labels include every pair of `labels`.
fn value(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, sample) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| sample.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

/// The metric names of a Prometheus text exposition (`_bucket`, `_sum`, `_count` included).
fn exposed_names(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The metric names a PromQL expression reads: every identifier that is not a function, a
/// keyword, a label (in `{…}` or `by (…)`), a range or a string.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 6] = ["and", "or", "unless", "bool", "offset", "group_left"];
    // Aggregations may put `by (…)` between their name and their argument.
    const AGGREGATIONS: [&str; 12] = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    const LABEL_LISTS: [&str; 5] = ["by", "without", "on", "ignoring", "group_right"];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_group = |from: usize, open: char, close: char| -> usize {
        let mut depth = 0;
        let mut j = from;
        while j < chars.len() {
            if chars[j] == '"' {
                j += 1;
                while j < chars.len() && chars[j] != '"' {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
            } else if chars[j] == open {
                depth += 1;
            } else if chars[j] == close {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            i = skip_group(i, '{', '}');
        } else if c == '[' {
            i = skip_group(i, '[', ']');
        } else if c == '"' {
            i = skip_group(i, '"', '"');
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let called = chars.get(next) == Some(&'(');
            if LABEL_LISTS.contains(&word.as_str()) && called {
                i = skip_group(next, '(', ')');
            } else if !called
                && !KEYWORDS.contains(&word.as_str())
                && !AGGREGATIONS.contains(&word.as_str())
            {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let expr = r#"histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket{status=~"5..", x="a{b}"}[$__rate_interval]))) / on (route) sum without (kind) (jobs_total offset 5m) > bool 0.5 * max(up)"#;
    assert_eq!(
        promql_metric_names(expr),
        BTreeSet::from([
            "http_request_duration_seconds_bucket".to_owned(),
            "jobs_total".to_owned(),
            "up".to_owned()
        ])
    );
}

/// `GET /metrics` of the worker's own HTTP server (in-process, so the same recorder as the
/// API's; the queue gauges are read from the database on the way).
async fn worker_metrics(pool: &PgPool) -> String {
    let router =
        cart_worker::http::router(pool.clone(), cart_worker::metrics::install(), None).unwrap();
    let response = router
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    String::from_utf8(body.to_vec()).unwrap()
}

async fn job_status(pool: &PgPool, id: &str) -> String {
    sqlx::query_scalar("SELECT status FROM apalis.jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn enqueue(pool: &PgPool, job: &impl Job) -> String {
    let mut conn = pool.acquire().await.unwrap();
    cart_core::jobs::enqueue(&mut conn, job)
        .await
        .unwrap()
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn business_events_and_queue_figures_reach_metrics_and_the_dashboard_reads_only_them(
    pool: PgPool,
) {
    let mut world = World::start(pool.clone(), payment_settings(&[]), false).await;
    // The test job kinds write to tables of their own.
    for ddl in [
        "CREATE TABLE worker_test_runs (key text NOT NULL, job_id text NOT NULL,
             attempt integer NOT NULL, request_id text, pid integer NOT NULL,
             at timestamptz NOT NULL DEFAULT now())",
        "CREATE TABLE worker_test_failures (key text PRIMARY KEY, remaining integer NOT NULL)",
    ] {
        sqlx::query(ddl).execute(&pool).await.unwrap();
    }
    let registry = cart_worker::registry::with_test_jobs(cart_worker::registry::standard());
    world.runtime = Some(start_worker_with(
        &registry,
        &pool,
        payment_settings(&[]),
        &world.outbox,
    ));
    let app = &world.app;
    let before = app.get("/metrics", None).await.text;

    // A catalog read, two checkouts (one cancelled), a PIX payment confirmed through the
    // sandbox and invoiced.
    app.get("/api/products", None).await.assert_status(200);
    let shopper = shopper(app, true).await;
    let book = product(&pool, "Livro", 4990, 10).await;
    add_to_cart(&pool, shopper.id, book, 1).await;
    let placed = app
        .post(
            "/api/orders",
            &checkout_body(&shopper),
            Some(&shopper.token),
        )
        .await;
    placed.assert_status(201);
    let order_id = placed.body["id"].as_str().unwrap().to_owned();
    add_to_cart(&pool, shopper.id, book, 1).await;
    let second = app
        .post(
            "/api/orders",
            &checkout_body(&shopper),
            Some(&shopper.token),
        )
        .await;
    second.assert_status(201);
    app.patch(
        &format!("/api/orders/{}/cancel", second.body["id"].as_str().unwrap()),
        &json!({}),
        Some(&shopper.token),
    )
    .await
    .assert_status(200);
    let order_uuid = order_id.parse().unwrap();
    let paid = pay(app, order_uuid, "pix", &shopper.token).await;
    paid.assert_status(201);
    let payment_id = paid.body["payment_id"].as_str().unwrap();
    let admin = admin_token(app).await;
    app.post(
        &format!("/api/sandbox/payments/{payment_id}/confirm"),
        &json!({}),
        Some(&admin),
    )
    .await
    .assert_status(200);
    eventually("the order to be paid", SETTLE, || async {
        order_state(&pool, order_uuid).await == ("processing".into(), "paid".into())
    })
    .await;
    eventually("the NF-e", SETTLE, || async {
        let invoice: Option<String> =
            sqlx::query_scalar("SELECT status FROM invoices WHERE order_id = $1")
                .bind(order_uuid)
                .fetch_optional(&pool)
                .await
                .unwrap();
        invoice.as_deref() == Some("authorized")
    })
    .await;

    // A job retried once, and one that gives up.
    sqlx::query("INSERT INTO worker_test_failures (key, remaining) VALUES ('flaky', 1)")
        .execute(&pool)
        .await
        .unwrap();
    let flaky = enqueue(
        &pool,
        &Record {
            key: "flaky".into(),
            sleep_ms: 0,
            permanent: false,
            stoppable: false,
            order_id: None,
        },
    )
    .await;
    let doomed = enqueue(
        &pool,
        &Record {
            key: "doomed".into(),
            sleep_ms: 0,
            permanent: true,
            stoppable: false,
            order_id: None,
        },
    )
    .await;
    eventually("the flaky job to succeed", SETTLE, || async {
        job_status(&pool, &flaky).await == "Done"
    })
    .await;
    eventually("the doomed job to give up", SETTLE, || async {
        job_status(&pool, &doomed).await == "Killed"
    })
    .await;

    // The sandbox PIX provider's breaker opens.
    let breaker = CircuitBreaker::new(BreakerConfig {
        threshold: 1,
        ..BreakerConfig::default()
    });
    let mut conn = pool.acquire().await.unwrap();
    let permit = breaker.check(&mut conn, "sandbox_pix").await.unwrap();
    breaker.record_failure(&mut conn, &permit).await.unwrap();
    drop(conn);

    let api = app.get("/metrics", None).await.text;
    let worker = worker_metrics(&pool).await;
    let grew = |name: &str, labels: &[(&str, &str)]| {
        let (was, is) = (value(&before, name, labels), value(&api, name, labels));
        assert!(
            is > was,
            "{name}{labels:?}: {was} before, {is} after\n{api}"
        );
    };
    grew(
        "http_requests_total",
        &[("route", "/api/orders/{id}/pay"), ("status", "201")],
    );
    grew("catalog_cache_requests_total", &[]);
    grew("orders_total", &[("event", "placed")]);
    grew("orders_total", &[("event", "cancelled")]);
    for outcome in ["started", "initiated", "paid"] {
        grew(
            "payments_total",
            &[("provider", "sandbox_pix"), ("outcome", outcome)],
        );
    }
    grew("invoices_total", &[("outcome", "authorized")]);
    grew("jobs_succeeded_total", &[("kind", "emit_invoice")]);
    grew("jobs_retried_total", &[("kind", "test_record")]);
    grew("jobs_failed_total", &[("kind", "test_record")]);
    assert_eq!(
        value(
            &api,
            "circuit_breaker_state",
            &[("provider", "sandbox_pix")]
        ),
        2.0,
        "open\n{api}"
    );
    assert_eq!(
        value(
            &api,
            "circuit_breaker_state",
            &[("provider", "sandbox_card")]
        ),
        0.0,
        "closed\n{api}"
    );
    assert_eq!(
        value(
            &worker,
            "jobs_queue_depth",
            &[("kind", "test_record"), ("state", "failed")]
        ),
        1.0,
        "{worker}"
    );
    assert!(
        worker.contains("jobs_oldest_pending_seconds{kind=\"test_record\"}"),
        "{worker}"
    );

    // The dashboard: valid JSON that Grafana imports, reading only what is served.
    let served: BTreeSet<String> = exposed_names(&api)
        .into_iter()
        .chain(exposed_names(&worker))
        .collect();
    let dashboard: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../grafana/cart.json"
    )))
    .expect("grafana/cart.json is JSON");
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string());
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables
            .iter()
            .any(|v| v["name"] == "datasource" && v["type"] == "datasource"),
        "the Prometheus data source is chosen on import"
    );
    let panels = dashboard["panels"].as_array().unwrap();
    let mut queried = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "{title}: id");
        for key in ["h", "w", "x", "y"] {
            assert!(panel["gridPos"][key].is_u64(), "{title}: gridPos.{key}");
        }
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            assert!(target["refId"].is_string(), "{title}: refId");
            let expr = target["expr"].as_str().unwrap();
            let names = promql_metric_names(expr);
            assert!(!names.is_empty(), "{title}: no metric in {expr}");
            for name in names {
                assert!(
                    served.contains(&name),
                    "{title}: {name} is not served by /metrics ({expr})"
                );
                queried.insert(name);
            }
        }
    }
    for wanted in [
        "http_requests_total",
        "jobs_queue_depth",
        "jobs_oldest_pending_seconds",
        "payments_total",
        "invoices_total",
        "circuit_breaker_state",
    ] {
        assert!(queried.contains(wanted), "the dashboard shows {wanted}");
    }
    world.stop().await;
}
