//! Measurements of the queue on this machine, run on demand (they take a while and their
//! numbers depend on the machine): `scripts/test -E 'test(measure)' --run-ignored all
//! --no-capture`. The assertions are generous ceilings that catch a broken wake-up path.

use std::time::{Duration, Instant};

use cart_queue::{QueueSettings, RuntimeConfig};
use cart_worker::jobs::testing::Noop;
use sqlx::{Connection, PgPool};

use crate::helpers::{self, RecordingMailer, wait_for};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[sqlx::test(migrations = false)]
#[ignore = "a measurement; run on demand"]
async fn measure_enqueue_to_start_latency_and_noop_throughput(pool: PgPool) {
    helpers::setup(&pool).await;
    let config = RuntimeConfig {
        queue: QueueSettings {
            concurrency: 16,
            ..QueueSettings::default()
        },
        tickers_enabled: false,
        ..RuntimeConfig::default()
    };
    let runtime = cart_worker::start(
        &helpers::registry(),
        &config,
        helpers::deps(&pool, std::sync::Arc::new(RecordingMailer::default())),
    );
    // Let the workers register and start listening.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Latency: one job at a time, from the enqueue's commit to the handler's first query.
    let mut latencies = Vec::new();
    for n in 0..200 {
        let key = format!("latency-{n}");
        let id = helpers::enqueue(&pool, &helpers::record(&key)).await;
        let committed: chrono::DateTime<chrono::Utc> =
            sqlx::query_scalar("SELECT clock_timestamp()")
                .fetch_one(&pool)
                .await
                .unwrap();
        wait_for("the job to run", Duration::from_secs(10), || async {
            helpers::runs(&pool, &key).await == 1
        })
        .await;
        let started: chrono::DateTime<chrono::Utc> =
            sqlx::query_scalar("SELECT at FROM worker_test_runs WHERE job_id = $1")
                .bind(&id)
                .fetch_one(&pool)
                .await
                .unwrap();
        #[allow(clippy::cast_precision_loss)]
        latencies.push((started - committed).num_microseconds().unwrap() as f64 / 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    eprintln!("enqueue → start: p50 {p50:.1} ms, p99 {p99:.1} ms (200 jobs, one at a time)");

    // Throughput: 5,000 no-op jobs already queued, one worker process, concurrency 16.
    {
        let mut conn = pool.acquire().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        for n in 0..5000 {
            cart_core::jobs::enqueue(&mut tx, &Noop { n })
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let started = Instant::now();
    wait_for("5,000 no-op jobs", Duration::from_secs(120), || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM apalis.jobs WHERE job_type = 'test_noop' AND status = 'Done'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
            == 5000
    })
    .await;
    let elapsed = started.elapsed();
    runtime.shutdown().await;
    let rate = 5000.0 / elapsed.as_secs_f64();
    eprintln!("no-op throughput: {rate:.0} jobs/s (5,000 jobs in {elapsed:.2?})");

    assert!(p50 < 250.0, "LISTEN/NOTIFY wakes workers: p50 {p50} ms");
    assert!(rate > 100.0, "{rate} jobs/s");
}
