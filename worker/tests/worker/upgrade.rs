//! Upgrading: a database migrated and filled by the latest release (`released.txt`), then the
//! new migrations and the new `cart-worker` binary against it.

use std::{process::Command, time::Duration};

use serde_json::Value;
use sqlx::PgPool;

use crate::{
    helpers::{self, wait_for, wait_for_status},
    processes::WorkerProcess,
};

/// A job row exactly as the release wrote it: its envelope was `{request_id, payload}`, with
/// `request_id` null when there was none.
async fn insert_released_job(pool: &PgPool, id: &str, status: &str, envelope: &str) {
    sqlx::query(
        "INSERT INTO apalis.jobs
             (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata,
              last_result, done_at)
         VALUES ($1, 'test_record', convert_to($2, 'UTF8'), $3,
                 CASE WHEN $3 = 'Killed' THEN 1 ELSE 0 END, 3, now() - interval '1 minute', 0,
                 ''::hstore,
                 CASE WHEN $3 = 'Killed' THEN '{\"Err\": \"provider said no\"}'::jsonb END,
                 CASE WHEN $3 = 'Killed' THEN now() END)",
    )
    .bind(id)
    .bind(envelope)
    .bind(status)
    .execute(pool)
    .await
    .unwrap();
}

#[sqlx::test(migrations = false)]
async fn a_database_left_by_the_release_upgrades_and_its_jobs_run(pool: PgPool) {
    cart_migrations::migrate_as_released(&pool).await.unwrap();
    helpers::create_test_tables(&pool).await;
    let with_request = "01KBRE1EASED00000000000001";
    let without_request = "01KBRE1EASED00000000000002";
    let failed = "01KBRE1EASED00000000000003";
    insert_released_job(
        &pool,
        with_request,
        "Pending",
        r#"{"request_id":"req-released","payload":{"key":"released-1"}}"#,
    )
    .await;
    insert_released_job(
        &pool,
        without_request,
        "Pending",
        r#"{"request_id":null,"payload":{"key":"released-2","sleep_ms":0,"permanent":false}}"#,
    )
    .await;
    insert_released_job(
        &pool,
        failed,
        "Killed",
        r#"{"request_id":"req-failed","payload":{"key":"released-3"}}"#,
    )
    .await;
    sqlx::query(
        "INSERT INTO job_failures (job_id, kind, attempt, error, permanent)
         VALUES ($1, 'test_record', 1, 'provider said no', true)",
    )
    .bind(failed)
    .execute(&pool)
    .await
    .unwrap();

    // Finished jobs of an order and a payment, as the release wrote them: they name what
    // they serve only in their payload (or, for e-mails, their key).
    let (order_id, payment_id) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    sqlx::query(
        "INSERT INTO apalis.jobs
             (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata,
              idempotency_key, done_at)
         VALUES ($1, 'expire_order', convert_to($4, 'UTF8'), 'Done', 1, 5, now(), 0, ''::hstore,
                 NULL, now()),
                ($2, 'send_email', convert_to('{\"request_id\":null,\"payload\":{}}', 'UTF8'),
                 'Done', 1, 5, now(), 0, ''::hstore, 'order_placed:' || $6, now()),
                ($3, 'initiate_payment', convert_to($5, 'UTF8'), 'Done', 1, 5, now(), 0,
                 ''::hstore, NULL, now())",
    )
    .bind("01KBRE1EASED00000000000004")
    .bind("01KBRE1EASED00000000000005")
    .bind("01KBRE1EASED00000000000006")
    .bind(format!(
        r#"{{"request_id":null,"payload":{{"order_id":"{order_id}"}}}}"#
    ))
    .bind(format!(
        r#"{{"request_id":null,"payload":{{"payment_id":"{payment_id}"}}}}"#
    ))
    .bind(order_id.to_string())
    .execute(&pool)
    .await
    .unwrap();

    // What `cart-api migrate` runs on deploy, then the new worker.
    cart_core::db::migrate(&pool).await.unwrap();
    let served: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT id, metadata -> 'order_id', metadata -> 'payment_id' FROM apalis.jobs
         WHERE id IN ('01KBRE1EASED00000000000004', '01KBRE1EASED00000000000005',
                      '01KBRE1EASED00000000000006')
         ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let (order, payment) = (Some(order_id.to_string()), Some(payment_id.to_string()));
    assert_eq!(
        served,
        vec![
            ("01KBRE1EASED00000000000004".into(), order.clone(), None),
            ("01KBRE1EASED00000000000005".into(), order, None),
            ("01KBRE1EASED00000000000006".into(), None, payment),
        ],
        "released jobs are found by the order and payment they serve"
    );
    let worker = WorkerProcess::spawn(&pool);
    for id in [with_request, without_request] {
        wait_for_status(&pool, id, "Done", Duration::from_secs(20)).await;
    }
    wait_for(
        "both released jobs recorded",
        Duration::from_secs(5),
        || async {
            helpers::runs(&pool, "released-1").await == 1
                && helpers::runs(&pool, "released-2").await == 1
        },
    )
    .await;
    let request_ids: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT request_id FROM worker_test_runs WHERE key LIKE 'released-%' ORDER BY key",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        request_ids,
        vec![
            Some("req-released".to_owned()),
            Some(format!("job-{without_request}"))
        ],
        "the released envelopes' request ids still reach the handler"
    );
    assert!(worker.terminate().success());

    // The operator CLI reads the released failure history.
    let shown = Command::new(env!("CARGO_BIN_EXE_cart-worker"))
        .args(["jobs", "show", failed, "--json"])
        .env("DATABASE_URL", helpers::database_url(&pool))
        .env("LOG_LEVEL", "warn")
        .output()
        .unwrap();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["state"], "failed");
    assert_eq!(shown["request_id"], "req-failed");
    assert_eq!(shown["payload"]["key"], "released-3");
    assert_eq!(shown["failures"][0]["error"], "provider said no");
}
