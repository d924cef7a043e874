//! What operators do at 2 a.m.: find the jobs of an order, cancel jobs, and pause or throttle
//! a kind across every worker process (real `cart-worker` processes, real PostgreSQL).

use std::time::Duration;

use cart_core::{
    jobs::expire_order::ExpireOrder,
    payments::{
        flow::{self, PaymentMethod, PaymentSettings},
        webhooks::{self, ParsedWebhook, PaymentEvent, PaymentLookup, WebhookSource},
    },
};
use cart_worker::jobs::testing::Record;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    cli::{exit_code, ok},
    helpers::{self, record, runs, wait_for, wait_for_status},
    orders::unpaid_order,
    processes::WorkerProcess,
};

/// An order with the jobs a real one collects: its expiry, its payment's initiation, and the
/// reconciliation of a webhook about that payment. Answers (order id, number, payment id).
async fn order_with_jobs(pool: &PgPool, event: &str) -> (Uuid, String, Uuid) {
    let order_id = unpaid_order(pool, chrono::Duration::minutes(30)).await;
    helpers::enqueue(pool, &ExpireOrder { order_id }).await;
    let (user_id, number): (Uuid, String) =
        sqlx::query_as("SELECT user_id, number FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_one(pool)
            .await
            .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let started = flow::start(
        &mut conn,
        &PaymentSettings::for_tests(),
        user_id,
        order_id,
        PaymentMethod::Pix,
    )
    .await
    .unwrap();
    let payment_id = started.payment().id;
    webhooks::store(
        &mut conn,
        WebhookSource::ProPay,
        &ParsedWebhook {
            event_id: event.into(),
            event_type: "payment.paid".into(),
            event: PaymentEvent::Paid {
                lookup: PaymentLookup::PaymentId(payment_id),
                amount_cents: 4440,
                paid_at: None,
            },
        },
        b"{}",
    )
    .await
    .unwrap();
    (order_id, number, payment_id)
}

fn json_rows(out: &str) -> Vec<Value> {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn kinds(rows: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = rows
        .iter()
        .map(|row| row["kind"].as_str().unwrap().to_owned())
        .collect();
    kinds.sort();
    kinds
}

#[sqlx::test(migrations = false)]
async fn an_orders_jobs_are_found_through_its_payments_and_webhook_events(pool: PgPool) {
    helpers::setup(&pool).await;
    let (order_id, number, payment_id) = order_with_jobs(&pool, "evt-mine").await;
    let (other_order, _, _) = order_with_jobs(&pool, "evt-other").await;

    // By number, typed as an operator would: any case.
    let out = ok(
        &pool,
        &["list", "--order", &number.to_lowercase(), "--json"],
    )
    .await;
    let rows = json_rows(&out);
    assert_eq!(
        kinds(&rows),
        ["expire_order", "initiate_payment", "reconcile_payment"]
    );
    let order = order_id.to_string();
    assert!(
        rows.iter().all(|row| row["order_id"] == order.as_str()),
        "every row carries the order: {out}"
    );

    let out = ok(&pool, &["list", "--order", &order, "--state", "pending"]).await;
    assert!(
        out.contains("reconcile_payment") && out.contains(&order),
        "{out}"
    );
    assert!(!out.contains(&other_order.to_string()), "{out}");

    let out = ok(
        &pool,
        &["list", "--payment", &payment_id.to_string(), "--json"],
    )
    .await;
    let rows = json_rows(&out);
    assert_eq!(kinds(&rows), ["initiate_payment", "reconcile_payment"]);
    assert!(rows.iter().all(|row| row["order_id"] == order.as_str()));

    // Text that names the order searches as --order does; other text reads payloads.
    let out = ok(
        &pool,
        &["list", "--search", &order_id.to_string(), "--json"],
    )
    .await;
    assert_eq!(
        kinds(&json_rows(&out)),
        ["expire_order", "initiate_payment", "reconcile_payment"]
    );
    helpers::enqueue(&pool, &record("needle-in-a-payload")).await;
    let out = ok(&pool, &["list", "--search", "NEEDLE-IN", "--json"]).await;
    assert_eq!(kinds(&json_rows(&out)), ["test_record"], "{out}");

    assert_eq!(
        exit_code(&pool, &["list", "--order", "CART-NOPE0000"], "").await,
        3
    );
    let stranger = Uuid::new_v4().to_string();
    assert_eq!(
        exit_code(&pool, &["list", "--payment", &stranger], "").await,
        3
    );
    assert_eq!(exit_code(&pool, &["list", "--search", "  "], "").await, 2);
}

#[sqlx::test(migrations = false)]
async fn a_cancelled_job_never_runs_and_a_running_one_stops(pool: PgPool) {
    helpers::setup(&pool).await;
    let later = helpers::enqueue(&pool, &record("later")).await;
    sqlx::query("UPDATE apalis.jobs SET run_at = now() + interval '2 seconds' WHERE id = $1")
        .bind(&later)
        .execute(&pool)
        .await
        .unwrap();
    let long = helpers::enqueue(
        &pool,
        &Record {
            sleep_ms: 30_000,
            stoppable: true,
            ..record("long")
        },
    )
    .await;

    let out = ok(&pool, &["cancel", &later, "--dry-run", "--json"]).await;
    let planned: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(planned["dry_run"], true);
    assert_eq!(planned["jobs"][0]["outcome"], "cancelled");
    assert_eq!(helpers::status(&pool, &later).await.0, "Pending", "dry run");

    ok(&pool, &["cancel", &later]).await;
    let runtime = helpers::start(&pool);
    wait_for_status(&pool, &long, "Running", Duration::from_secs(10)).await;
    let out = ok(&pool, &["cancel", &long, "--json"]).await;
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["jobs"][0]["outcome"], "stop_requested");
    wait_for_status(&pool, &long, "Killed", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    runtime.shutdown().await;

    assert_eq!(runs(&pool, "later").await, 0, "the cancelled job never ran");
    assert_eq!(runs(&pool, "long").await, 0);
    let out = ok(&pool, &["list", "--state", "cancelled", "--json"]).await;
    let mut cancelled: Vec<String> = json_rows(&out)
        .iter()
        .map(|row| row["id"].as_str().unwrap().to_owned())
        .collect();
    cancelled.sort();
    let mut expected = vec![later.clone(), long.clone()];
    expected.sort();
    assert_eq!(cancelled, expected);
    // Finished jobs cannot be cancelled; the audit trail has both cancellations.
    assert_eq!(exit_code(&pool, &["cancel", &later], "").await, 4);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM operator_audit WHERE action = 'jobs.cancel' AND actor = 'tester'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(audited, 2);
}

/// Enqueues `count` test jobs keyed `<prefix>-<n>`.
async fn enqueue_many(pool: &PgPool, prefix: &str, count: usize) {
    for n in 0..count {
        helpers::enqueue(pool, &record(&format!("{prefix}-{n}"))).await;
    }
}

async fn runs_like(pool: &PgPool, prefix: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM worker_test_runs WHERE key LIKE $1 || '-%'")
        .bind(prefix)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Long enough for every process to have read the controls (once a second) and polled.
const PROPAGATION: Duration = Duration::from_millis(2500);

#[sqlx::test(migrations = false)]
async fn a_paused_kind_waits_in_every_worker_process_until_resumed(pool: PgPool) {
    helpers::setup(&pool).await;
    let first = WorkerProcess::spawn(&pool);
    let second = WorkerProcess::spawn(&pool);
    enqueue_many(&pool, "warm", 2).await;
    wait_for(
        "both processes to be up",
        Duration::from_secs(30),
        || async { runs_like(&pool, "warm").await == 2 },
    )
    .await;

    let out = ok(&pool, &["pause", "test_record", "--json"]).await;
    assert!(out.contains(r#""changed": true"#), "{out}");
    tokio::time::sleep(PROPAGATION).await;
    enqueue_many(&pool, "paused", 10).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        runs_like(&pool, "paused").await,
        0,
        "a paused kind runs nowhere"
    );
    let stats: Vec<Value> = serde_json::from_str(&ok(&pool, &["stats", "--json"]).await).unwrap();
    let record_stats = stats
        .iter()
        .find(|s| s["kind"] == "test_record")
        .expect("test_record in stats");
    assert_eq!(
        record_stats["pending"], 10,
        "its jobs wait, they do not fail"
    );
    assert_eq!(record_stats["control"]["paused"], true);
    assert_eq!(record_stats["control"]["paused_by"], "tester");

    ok(&pool, &["resume", "test_record"]).await;
    wait_for(
        "every paused job to run after the resume",
        Duration::from_secs(5),
        || async { runs_like(&pool, "paused").await == 10 },
    )
    .await;
    first.terminate();
    second.terminate();
}

#[sqlx::test(migrations = false)]
async fn a_limit_is_shared_by_every_worker_process(pool: PgPool) {
    helpers::setup(&pool).await;
    let first = WorkerProcess::spawn(&pool);
    let second = WorkerProcess::spawn(&pool);
    enqueue_many(&pool, "warm", 2).await;
    wait_for(
        "both processes to be up",
        Duration::from_secs(30),
        || async { runs_like(&pool, "warm").await == 2 },
    )
    .await;

    ok(&pool, &["limit", "test_record", "--per-minute", "4"]).await;
    tokio::time::sleep(PROPAGATION).await;
    enqueue_many(&pool, "limited", 12).await;
    wait_for(
        "the minute's four starts",
        Duration::from_secs(5),
        || async { runs_like(&pool, "limited").await == 4 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        runs_like(&pool, "limited").await,
        4,
        "two processes together start no more than the limit"
    );
    let stats: Vec<Value> = serde_json::from_str(&ok(&pool, &["stats", "--json"]).await).unwrap();
    let control = &stats
        .iter()
        .find(|s| s["kind"] == "test_record")
        .expect("test_record in stats")["control"];
    assert_eq!(control["per_minute"], 4);
    assert_eq!(control["started_last_minute"], 4);

    ok(&pool, &["limit", "test_record", "--clear"]).await;
    wait_for(
        "the rest to run once the limit is cleared",
        Duration::from_secs(5),
        || async { runs_like(&pool, "limited").await == 12 },
    )
    .await;
    assert_eq!(
        exit_code(&pool, &["limit", "no_such_kind", "--per-minute", "3"], "").await,
        2
    );
    first.terminate();
    second.terminate();
}

#[sqlx::test(migrations = false)]
async fn a_cancelled_payment_initiation_leaves_the_payment_failed(pool: PgPool) {
    helpers::setup(&pool).await;
    let (_, _, payment_id) = order_with_jobs(&pool, "evt-cancelled").await;
    let job: String = sqlx::query_scalar(
        "SELECT id FROM apalis.jobs WHERE job_type = 'initiate_payment' AND metadata -> 'payment_id' = $1",
    )
    .bind(payment_id.to_string())
    .fetch_one(&pool)
    .await
    .unwrap();

    ok(&pool, &["cancel", &job]).await;
    let runtime = helpers::start(&pool);
    wait_for_status(&pool, &job, "Killed", Duration::from_secs(10)).await;
    runtime.shutdown().await;

    let status: String = sqlx::query_scalar("SELECT status FROM payments WHERE id = $1")
        .bind(payment_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        status, "failed",
        "the kind's clean-up ran: the buyer can pay again"
    );
    let out = ok(&pool, &["list", "--state", "cancelled", "--json"]).await;
    assert_eq!(kinds(&json_rows(&out)), ["initiate_payment"]);
}
