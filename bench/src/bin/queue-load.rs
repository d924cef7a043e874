//! Drives the real worker through its queue, from outside: enqueues the worker's test job
//! kinds (`test_noop`, `test_record`; the worker registers them when `WORKER_TEST_JOBS` is on)
//! the way the API does (`cart_queue::enqueue`), then measures and checks.
//!
//! - `setup`: the tables `test_record` writes to (`worker_test_runs`, `worker_test_failures`).
//! - `throughput --kind test_noop --count N`: enqueues N jobs in one transaction and times them
//!   from the commit until all are `Done`.
//! - `latency --count 200`: one job at a time, from the enqueue's commit to the handler's
//!   first statement (the row it records); p50/p99.
//! - `fill --prefix P --count N [--sleep-ms S]`: `test_record` jobs keyed `P-0` … `P-{N-1}`.
//! - `verify --prefix P --count N [--timeout S]`: waits for every one of them to be `Done`,
//!   then reports how often each key ran.
//!
//! Each prints one JSON line.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;
use sqlx::{Connection, PgPool, postgres::PgPoolOptions};

#[derive(Parser)]
struct Args {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Setup,
    Throughput {
        #[arg(long, default_value = "test_noop")]
        kind: String,
        #[arg(long, default_value_t = 20_000)]
        count: u64,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    Latency {
        #[arg(long, default_value_t = 200)]
        count: u64,
    },
    Fill {
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 0)]
        sleep_ms: u64,
    },
    Verify {
        #[arg(long)]
        prefix: String,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&args.database_url)
        .await?;
    match args.command {
        Command::Setup => setup(&pool).await,
        Command::Throughput {
            kind,
            count,
            timeout,
        } => throughput(&pool, &kind, count, timeout).await,
        Command::Latency { count } => latency(&pool, count).await,
        Command::Fill {
            prefix,
            count,
            sleep_ms,
        } => {
            let payloads =
                (0..count).map(|n| json!({"key": format!("{prefix}-{n}"), "sleep_ms": sleep_ms}));
            enqueue_all(&pool, "test_record", 3, payloads).await?;
            println!("{}", json!({"enqueued": count}));
            Ok(())
        }
        Command::Verify {
            prefix,
            count,
            timeout,
        } => verify(&pool, &prefix, count, timeout).await,
    }
}

async fn setup(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS worker_test_runs (
             key text NOT NULL, job_id text NOT NULL, attempt integer NOT NULL,
             request_id text, pid integer NOT NULL, at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS worker_test_failures (key text PRIMARY KEY, remaining integer NOT NULL)",
    )
    .execute(pool)
    .await?;
    sqlx::query("CREATE INDEX IF NOT EXISTS worker_test_runs_key ON worker_test_runs (key)")
        .execute(pool)
        .await?;
    println!("{}", json!({"setup": true}));
    Ok(())
}

/// Enqueues every payload in one transaction, as the API would, and returns the job ids.
async fn enqueue_all(
    pool: &PgPool,
    kind: &str,
    max_attempts: i32,
    payloads: impl Iterator<Item = serde_json::Value>,
) -> anyhow::Result<Vec<String>> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let mut ids = Vec::new();
    for payload in payloads {
        let envelope = serde_json::to_vec(&json!({"request_id": null, "payload": payload}))?;
        let job = cart_queue::Encoded::raw(kind.to_owned(), envelope, max_attempts, None);
        if let Some(id) = cart_queue::enqueue(&mut tx, &job).await? {
            ids.push(id);
        }
    }
    tx.commit().await?;
    Ok(ids)
}

/// The database's clock: the worker stamps `done_at` with it, so both ends of a measurement
/// come from one clock.
async fn db_now(pool: &PgPool) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    Ok(sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(pool)
        .await?)
}

/// From the enqueue's commit to the last job's `done_at`. The completion is checked only
/// four times a second, and the time comes from the rows, so watching costs the machine
/// (two cores, shared with the worker and PostgreSQL) next to nothing and adds no error.
async fn throughput(pool: &PgPool, kind: &str, count: u64, timeout: u64) -> anyhow::Result<()> {
    let payloads = (0..count).map(|n| match kind {
        "test_noop" => json!({"n": n}),
        _ => json!({"key": format!("throughput-{n}-{}", uuid::Uuid::new_v4().simple())}),
    });
    let max_attempts = if kind == "test_noop" { 1 } else { 3 };
    let ids = enqueue_all(pool, kind, max_attempts, payloads).await?;
    let committed = db_now(pool).await?;
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM apalis.jobs
             WHERE job_type = $1 AND status IN ('Pending', 'Queued', 'Running')",
        )
        .bind(kind)
        .fetch_one(pool)
        .await?;
        if waiting == 0 {
            break;
        }
        if Instant::now() > deadline {
            anyhow::bail!("{waiting} of {count} {kind} jobs still waiting after {timeout}s");
        }
    }
    let (done, last): (i64, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'Done'), max(done_at)
         FROM apalis.jobs WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(pool)
    .await?;
    anyhow::ensure!(
        done == i64::try_from(count)?,
        "only {done} of {count} {kind} jobs done"
    );
    let last = last.context("no job finished")?;
    let seconds = (last - committed)
        .num_microseconds()
        .map_or(0.0, |us| us as f64 / 1e6);
    println!(
        "{}",
        json!({"jobs": count, "seconds": seconds, "per_second": count as f64 / seconds})
    );
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn latency(pool: &PgPool, count: u64) -> anyhow::Result<()> {
    let mut latencies = Vec::new();
    let run = uuid::Uuid::new_v4().simple().to_string();
    for n in 0..count {
        let key = format!("latency-{run}-{n}");
        enqueue_all(pool, "test_record", 3, std::iter::once(json!({"key": key}))).await?;
        let committed: chrono::DateTime<chrono::Utc> =
            sqlx::query_scalar("SELECT clock_timestamp()")
                .fetch_one(pool)
                .await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let started = loop {
            let at: Option<chrono::DateTime<chrono::Utc>> =
                sqlx::query_scalar("SELECT min(at) FROM worker_test_runs WHERE key = $1")
                    .bind(&key)
                    .fetch_one(pool)
                    .await?;
            if let Some(at) = at {
                break at;
            }
            if Instant::now() > deadline {
                anyhow::bail!("job {key} did not start within 30 s");
            }
            // The start time comes from the run's row; polling only decides when to look.
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let micros = (started - committed).num_microseconds().unwrap_or(0);
        latencies.push(micros as f64 / 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "jobs": count,
            "p50_ms": percentile(&latencies, 0.5),
            "p99_ms": percentile(&latencies, 0.99),
            "max_ms": latencies.last().copied().unwrap_or(0.0),
        })
    );
    Ok(())
}

async fn verify(pool: &PgPool, prefix: &str, count: u64, timeout: u64) -> anyhow::Result<()> {
    let pattern = format!("{prefix}-%");
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let count_i64 = i64::try_from(count)?;
    let done = loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM apalis.jobs
             WHERE job_type = 'test_record' AND status = 'Done'
               AND convert_from(job, 'UTF8')::jsonb #>> '{payload,key}' LIKE $1",
        )
        .bind(&pattern)
        .fetch_one(pool)
        .await?;
        if done >= count_i64 || Instant::now() > deadline {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (keys_run, runs, max_runs): (i64, i64, i32) = sqlx::query_as(
        "SELECT count(*), coalesce(sum(n), 0)::bigint, coalesce(max(n), 0)::int FROM (
             SELECT key, count(*) AS n FROM worker_test_runs WHERE key LIKE $1 GROUP BY key) k",
    )
    .bind(&pattern)
    .fetch_one(pool)
    .await?;
    let not_done: Vec<(String, i32)> = sqlx::query_as(
        "SELECT status, attempts FROM apalis.jobs
         WHERE job_type = 'test_record' AND status <> 'Done'
           AND convert_from(job, 'UTF8')::jsonb #>> '{payload,key}' LIKE $1 LIMIT 5",
    )
    .bind(&pattern)
    .fetch_all(pool)
    .await?;
    let processes: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT pid) FROM worker_test_runs WHERE key LIKE $1")
            .bind(&pattern)
            .fetch_one(pool)
            .await?;
    println!(
        "{}",
        json!({
            "jobs": count,
            "done": done,
            "keys_run": keys_run,
            "runs": runs,
            "duplicate_runs": runs - keys_run,
            "max_runs_of_one_key": max_runs,
            "processes": processes,
            "not_done_sample": not_done,
        })
    );
    Ok(())
}
