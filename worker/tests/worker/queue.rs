//! The queue end to end on a real database: enqueue, run, retry, fail, shut down.

use std::{sync::Arc, time::Duration};

use cart_core::jobs::Envelope;
use cart_worker::jobs::testing::Record;
use chrono::{DateTime, Utc};
use sqlx::{Connection, PgPool};

use crate::helpers::{self, record, runs, status, wait_for, wait_for_status};

const SOON: Duration = Duration::from_secs(15);

/// attempt, permanent, retry_at, failed_at
type FailureRow = (i32, bool, Option<DateTime<Utc>>, DateTime<Utc>);

#[sqlx::test(migrations = false)]
async fn a_rolled_back_enqueue_leaves_no_job_and_a_committed_one_runs(pool: PgPool) {
    helpers::setup(&pool).await;
    let mut conn = pool.acquire().await.unwrap();

    let mut tx = conn.begin().await.unwrap();
    cart_core::jobs::enqueue(&mut tx, &record("rolled-back"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    let mut tx = conn.begin().await.unwrap();
    let id = cart_core::request_id::scope(
        "req-committed".into(),
        cart_core::jobs::enqueue(&mut tx, &record("committed")),
    )
    .await
    .unwrap()
    .unwrap();
    tx.commit().await.unwrap();

    let runtime = helpers::start(&pool);
    wait_for_status(&pool, &id, "Done", SOON).await;
    runtime.shutdown().await;

    let jobs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE job_type = 'test_record'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(jobs, 1, "the rolled-back job never existed");
    assert_eq!(runs(&pool, "committed").await, 1);
    assert_eq!(runs(&pool, "rolled-back").await, 0);
    // The handler ran under the request id of the request that enqueued it.
    let request_id: Option<String> =
        sqlx::query_scalar("SELECT request_id FROM worker_test_runs WHERE key = 'committed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(request_id.as_deref(), Some("req-committed"));
}

#[sqlx::test(migrations = false)]
async fn a_failing_job_is_retried_with_backoff_until_it_succeeds(pool: PgPool) {
    helpers::setup(&pool).await;
    helpers::fail_next(&pool, "flaky", 2).await;
    let id = helpers::enqueue(&pool, &record("flaky")).await;

    let runtime = helpers::start(&pool);
    wait_for_status(&pool, &id, "Done", SOON).await;
    runtime.shutdown().await;

    assert_eq!(status(&pool, &id).await, ("Done".into(), 3));
    assert_eq!(runs(&pool, "flaky").await, 1);
    let failures: Vec<FailureRow> = sqlx::query_as(
        "SELECT attempt, permanent, retry_at, failed_at FROM job_failures
             WHERE job_id = $1 ORDER BY id",
    )
    .bind(&id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(failures.len(), 2);
    assert_eq!((failures[0].0, failures[0].1), (1, false));
    assert_eq!((failures[1].0, failures[1].1), (2, false));
    // Each retry was scheduled at least half the backoff later (base 400 ms, doubling).
    for (failure, min_ms) in failures.iter().zip([200, 400]) {
        let retry_at = failure.2.expect("a retry was scheduled");
        assert!((retry_at - failure.3).num_milliseconds() >= min_ms - 20);
    }
    let second_attempt_started = failures[1].3;
    assert!(second_attempt_started >= failures[0].2.unwrap() - chrono::Duration::milliseconds(20));
}

#[sqlx::test(migrations = false)]
async fn a_permanent_error_fails_the_job_at_once(pool: PgPool) {
    helpers::setup(&pool).await;
    let id = helpers::enqueue(
        &pool,
        &Record {
            permanent: true,
            ..helpers::record("doomed")
        },
    )
    .await;

    let runtime = helpers::start(&pool);
    wait_for_status(&pool, &id, "Killed", SOON).await;
    // Give a wrongly scheduled retry the chance to show up.
    tokio::time::sleep(Duration::from_millis(800)).await;
    runtime.shutdown().await;

    assert_eq!(status(&pool, &id).await, ("Killed".into(), 1));
    let (count, permanent): (i64, bool) =
        sqlx::query_as("SELECT count(*), bool_and(permanent) FROM job_failures WHERE job_id = $1")
            .bind(&id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((count, permanent), (1, true));
}

#[sqlx::test(migrations = false)]
async fn an_undecodable_payload_fails_that_job_and_the_worker_carries_on(pool: PgPool) {
    helpers::setup(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    let undecodable = br#"{"request_id": null, "payload": {"not_a_key": 1}}"#.to_vec();
    let raw = cart_queue::Encoded::raw("test_record", undecodable, 3, None);
    let bad = cart_queue::enqueue(&mut conn, &raw).await.unwrap().unwrap();
    let good = helpers::enqueue(&pool, &record("after-the-bad-one")).await;

    let runtime = helpers::start(&pool);
    wait_for_status(&pool, &good, "Done", SOON).await;
    wait_for_status(&pool, &bad, "Killed", SOON).await;
    runtime.shutdown().await;

    let error: String = sqlx::query_scalar("SELECT error FROM job_failures WHERE job_id = $1")
        .bind(&bad)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(error.contains("undecodable test_record payload"), "{error}");
}

#[sqlx::test(migrations = false)]
async fn two_workers_run_a_thousand_jobs_exactly_once(pool: PgPool) {
    helpers::setup(&pool).await;
    {
        let mut conn = pool.acquire().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        for n in 0..1000 {
            // A few milliseconds each, so that one worker cannot drain the queue before the
            // other has started.
            let job = Record {
                sleep_ms: 3,
                ..record(&format!("job-{n}"))
            };
            cart_core::jobs::enqueue(&mut tx, &job).await.unwrap();
        }
        tx.commit().await.unwrap();
    }

    let started = std::time::Instant::now();
    let first = helpers::start(&pool);
    let second = helpers::start(&pool);
    wait_for("a thousand runs", Duration::from_secs(60), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM worker_test_runs")
            .fetch_one(&pool)
            .await
            .unwrap()
            >= 1000
    })
    .await;
    let elapsed = started.elapsed();
    first.shutdown().await;
    second.shutdown().await;
    eprintln!(
        "two in-process workers ran 1000 jobs in {elapsed:?} ({:.0} jobs/s)",
        1000.0 / elapsed.as_secs_f64()
    );

    let (total, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT key) FROM worker_test_runs")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (total, distinct),
        (1000, 1000),
        "every job ran exactly once"
    );
    let done: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = 'test_record' AND status = 'Done' AND attempts = 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(done, 1000);
    // Both workers took part: their names differ (every worker gets a fresh one).
    let workers: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT lock_by) FROM apalis.jobs WHERE job_type = 'test_record'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(workers, 2);
}

#[sqlx::test(migrations = false)]
async fn a_ticker_enqueues_one_job_per_tick_across_two_workers(pool: PgPool) {
    helpers::setup(&pool).await;
    let config = cart_queue::RuntimeConfig {
        tickers_enabled: true,
        ..helpers::config()
    };
    let registry = helpers::registry();
    let mailer = Arc::new(helpers::RecordingMailer::default());
    let first = cart_worker::start(&registry, &config, helpers::deps(&pool, mailer.clone()));
    let second = cart_worker::start(&registry, &config, helpers::deps(&pool, mailer));

    tokio::time::sleep(Duration::from_millis(3500)).await;
    first.shutdown().await;
    second.shutdown().await;

    let ticks: Vec<(String, i64)> = sqlx::query_as(
        "SELECT idempotency_key, count(*) FROM apalis.jobs WHERE job_type = 'test_tick'
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(ticks.len() >= 3, "a tick per second: {ticks:?}");
    assert!(ticks.iter().all(|(_, jobs)| *jobs == 1), "{ticks:?}");
    let runs: Vec<(String, i64)> =
        sqlx::query_as("SELECT key, count(*) FROM worker_test_runs GROUP BY 1 ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(runs.len() >= 3, "{runs:?}");
    assert!(
        runs.iter().all(|(_, n)| *n == 1),
        "each tick ran once: {runs:?}"
    );
    assert!(
        ticks.iter().all(|(key, _)| key.starts_with("test_tick:")),
        "{ticks:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn shutdown_lets_running_jobs_finish(pool: PgPool) {
    helpers::setup(&pool).await;
    let id = helpers::enqueue(
        &pool,
        &Record {
            sleep_ms: 1500,
            ..helpers::record("slow")
        },
    )
    .await;
    let runtime = helpers::start(&pool);
    wait_for_status(&pool, &id, "Running", SOON).await;

    let report = runtime.shutdown().await;

    assert!(report.drained);
    assert_eq!(status(&pool, &id).await.0, "Done");
    assert_eq!(runs(&pool, "slow").await, 1);
}

#[sqlx::test(migrations = false)]
async fn a_shutdown_that_times_out_returns_running_jobs_to_the_queue(pool: PgPool) {
    helpers::setup(&pool).await;
    let id = helpers::enqueue(
        &pool,
        &Record {
            sleep_ms: 4000,
            ..helpers::record("too-slow")
        },
    )
    .await;
    let config = cart_queue::RuntimeConfig {
        shutdown_timeout: Duration::from_millis(300),
        ..helpers::config()
    };
    let runtime = cart_worker::start(
        &helpers::registry(),
        &config,
        helpers::deps(&pool, Arc::new(helpers::RecordingMailer::default())),
    );
    wait_for_status(&pool, &id, "Running", SOON).await;

    let report = runtime.shutdown().await;

    assert!(!report.drained);
    assert_eq!(report.released, 1);
    let (status, attempts) = status(&pool, &id).await;
    assert_eq!(
        (status.as_str(), attempts),
        ("Pending", 0),
        "the cut attempt is not counted"
    );
    let lock: Option<String> = sqlx::query_scalar("SELECT lock_by FROM apalis.jobs WHERE id = $1")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(lock, None);

    // Another worker takes it at once and finishes it.
    let runtime = helpers::start(&pool);
    wait_for_status(&pool, &id, "Done", SOON).await;
    runtime.shutdown().await;
    assert_eq!(runs(&pool, "too-slow").await, 1);
}

#[sqlx::test(migrations = false)]
async fn a_job_enqueued_by_hand_with_a_raw_envelope_runs(pool: PgPool) {
    helpers::setup(&pool).await;
    let envelope = serde_json::to_vec(&Envelope {
        origin: cart_queue::Origin {
            request_id: Some("req-raw".to_owned()),
            traceparent: None,
        },
        serves: cart_queue::Serves::default(),
        payload: record("raw"),
    })
    .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let raw = cart_queue::Encoded::raw("test_record", envelope, 3, None);
    let id = cart_queue::enqueue(&mut conn, &raw).await.unwrap().unwrap();
    let runtime = helpers::start(&pool);
    wait_for_status(&pool, &id, "Done", SOON).await;
    runtime.shutdown().await;
    assert_eq!(runs(&pool, "raw").await, 1);
}

#[sqlx::test(migrations = false)]
async fn a_worker_process_listens_on_one_connection_for_every_kind(pool: PgPool) {
    helpers::setup(&pool).await;
    let runtime = helpers::start(&pool);
    let backends = || async {
        sqlx::query_as::<_, (String, String)>(
            "SELECT application_name, query FROM pg_stat_activity
             WHERE datname = current_database()
               AND (application_name = $1 OR query ILIKE 'LISTEN%')",
        )
        .bind(cart_worker::LISTEN_APPLICATION_NAME)
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    wait_for("the worker's listener", SOON, || async {
        backends()
            .await
            .iter()
            .any(|(_, query)| query.contains("apalis::job::insert"))
    })
    .await;
    // Every kind's worker has started by now, and none opened a listener of its own.
    let id = helpers::enqueue(&pool, &record("heard")).await;
    wait_for_status(&pool, &id, "Done", SOON).await;
    let listening = backends().await;
    assert_eq!(listening.len(), 1, "{listening:?}");
    assert_eq!(listening[0].0, cart_worker::LISTEN_APPLICATION_NAME);
    runtime.shutdown().await;
}
