//! Real `cart-worker` processes on one database: sharing work, and surviving `kill -9`.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use cart_worker::jobs::testing::Record;
use sqlx::{Connection, PgPool};

use crate::helpers::{self, runs, wait_for, wait_for_status};

/// A worker process running the standard and test kinds, tickers off, on a free port.
pub(crate) struct WorkerProcess(Child);

impl WorkerProcess {
    pub(crate) fn spawn(pool: &PgPool) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_cart-worker"))
            .arg("run")
            .env("DATABASE_URL", helpers::database_url(pool))
            .env("WORKER_TEST_JOBS", "true")
            .env(
                "JWT_SECRET",
                std::str::from_utf8(helpers::RESET_SECRET).expect("an ASCII secret"),
            )
            .env("WORKER_TICKERS", "false")
            .env("WORKER_PORT", "0")
            .env("WORKER_CONCURRENCY", "8")
            .env("LOG_LEVEL", "warn")
            .env("MAIL_PROVIDER", "outbox")
            .env(
                "MAIL_OUTBOX_DIR",
                std::env::temp_dir().join("cart-worker-test-outbox"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the cart-worker binary starts");
        Self(child)
    }

    /// SIGKILL: no shutdown, no cleanup, as when a machine dies.
    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    /// SIGTERM, then wait for the graceful exit.
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let status = self.0.wait().unwrap();
        // Already reaped: keep Drop from killing a recycled pid.
        std::mem::forget(self);
        status
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[sqlx::test(migrations = false)]
async fn a_job_whose_worker_is_killed_is_finished_once_by_another_worker(pool: PgPool) {
    helpers::setup(&pool).await;
    let id = helpers::enqueue(
        &pool,
        &Record {
            sleep_ms: 3000,
            ..helpers::record("survivor")
        },
    )
    .await;

    let first = WorkerProcess::spawn(&pool);
    wait_for_status(&pool, &id, "Running", Duration::from_secs(30)).await;
    first.kill();
    let killed_at = Instant::now();

    let second = WorkerProcess::spawn(&pool);
    wait_for(
        "the job to finish after its worker was killed",
        Duration::from_secs(30),
        || async { helpers::status(&pool, &id).await.0 == "Done" },
    )
    .await;
    let took = killed_at.elapsed();
    eprintln!("a killed worker's job was finished by another after {took:?}");

    assert_eq!(
        runs(&pool, "survivor").await,
        1,
        "the job completed exactly once"
    );
    let second_pid = i64::from(second.0.id());
    let pid: i32 = sqlx::query_scalar("SELECT pid FROM worker_test_runs WHERE key = 'survivor'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(i64::from(pid), second_pid);
    assert!(second.terminate().success());
}

#[sqlx::test(migrations = false)]
async fn two_worker_processes_run_a_thousand_jobs_exactly_once(pool: PgPool) {
    helpers::setup(&pool).await;
    let first = WorkerProcess::spawn(&pool);
    let second = WorkerProcess::spawn(&pool);
    // Both are up and listening before the work arrives, so both can take part.
    wait_for(
        "both workers to register",
        Duration::from_secs(30),
        || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM apalis.workers WHERE worker_type = 'test_record'",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
                == 2
        },
    )
    .await;
    let started = Instant::now();
    {
        let mut conn = pool.acquire().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        for n in 0..1000 {
            // A little work each, so that one process cannot drain the queue on its own
            // before the other's first fetch.
            let job = cart_worker::jobs::testing::Record {
                sleep_ms: 2,
                ..helpers::record(&format!("p-{n}"))
            };
            cart_core::jobs::enqueue(&mut tx, &job).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    wait_for("a thousand runs", Duration::from_secs(90), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM worker_test_runs")
            .fetch_one(&pool)
            .await
            .unwrap()
            >= 1000
    })
    .await;
    let elapsed = started.elapsed();
    eprintln!(
        "two worker processes ran 1000 recording jobs in {elapsed:?} ({:.0} jobs/s)",
        1000.0 / elapsed.as_secs_f64()
    );
    assert!(first.terminate().success(), "a clean exit on SIGTERM");
    assert!(second.terminate().success());

    let (total, distinct, pids): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT key), count(DISTINCT pid) FROM worker_test_runs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (total, distinct),
        (1000, 1000),
        "every job ran exactly once"
    );
    assert_eq!(pids, 2, "both processes took part");
}
