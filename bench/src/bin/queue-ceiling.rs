//! The queue ceiling: a raw SQL `FOR UPDATE SKIP LOCKED` claim-and-complete loop on a table of
//! no-op jobs, with the same batch size and concurrency as the worker under test. Prints one
//! JSON line.
//!
//! Usage: `queue-ceiling --database-url … --jobs 20000 --batch 10 --concurrency 8`

use std::time::Instant;

use clap::Parser;
use sqlx::postgres::PgPoolOptions;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, default_value_t = 20_000)]
    jobs: i64,
    #[arg(long, default_value_t = 10)]
    batch: i64,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pool = PgPoolOptions::new()
        .max_connections(args.concurrency as u32 + 1)
        .connect(&args.database_url)
        .await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_raw_jobs (
            id bigserial PRIMARY KEY, payload jsonb NOT NULL, status text NOT NULL,
            run_at timestamptz NOT NULL DEFAULT now(), locked_at timestamptz, done_at timestamptz)",
    )
    .execute(&pool)
    .await?;
    sqlx::query("TRUNCATE bench_raw_jobs")
        .execute(&pool)
        .await?;
    sqlx::query(
        "INSERT INTO bench_raw_jobs (payload, status)
         SELECT jsonb_build_object('n', g), 'pending' FROM generate_series(1, $1) g",
    )
    .bind(args.jobs)
    .execute(&pool)
    .await?;
    sqlx::query("CREATE INDEX IF NOT EXISTS bench_raw_jobs_pending ON bench_raw_jobs (run_at) WHERE status = 'pending'")
        .execute(&pool)
        .await?;
    sqlx::query("ANALYZE bench_raw_jobs").execute(&pool).await?;

    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let pool = pool.clone();
        let batch = args.batch;
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            loop {
                let ids: Vec<i64> = sqlx::query_scalar(
                    "UPDATE bench_raw_jobs j SET status = 'running', locked_at = now()
                     FROM (SELECT id FROM bench_raw_jobs WHERE status = 'pending' AND run_at <= now()
                           ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED) c
                     WHERE j.id = c.id RETURNING j.id",
                )
                .bind(batch)
                .fetch_all(&pool)
                .await?;
                if ids.is_empty() {
                    return Ok::<u64, sqlx::Error>(done);
                }
                sqlx::query("UPDATE bench_raw_jobs SET status = 'done', done_at = now() WHERE id = ANY($1)")
                    .bind(&ids)
                    .execute(&pool)
                    .await?;
                done += ids.len() as u64;
            }
        }));
    }
    let mut total = 0u64;
    for task in tasks {
        total += task.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"jobs\":{total},\"seconds\":{secs:.3},\"per_second\":{:.1},\"batch\":{},\"concurrency\":{}}}",
        total as f64 / secs,
        args.batch,
        args.concurrency
    );
    sqlx::query("DROP TABLE bench_raw_jobs")
        .execute(&pool)
        .await?;
    Ok(())
}
