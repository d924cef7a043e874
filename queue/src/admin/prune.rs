//! Keeping the queue table small: finished jobs past their retention (failed ones take their
//! failure history with them) and worker registrations no job refers to any more. Deletes
//! run in bounded batches so that no statement holds many row locks for long.

use std::time::Duration;

use sqlx::PgPool;

/// How long finished jobs are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Jobs that succeeded.
    pub done: Duration,
    /// Jobs that failed for good, kept for operators.
    pub failed: Duration,
    /// Rows deleted per statement.
    pub batch: i64,
}

/// What one [`prune`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub done: u64,
    pub failed: u64,
    pub workers: u64,
}

/// Deletes what is past its retention, batch by batch.
pub async fn prune(pool: &PgPool, retention: &Retention) -> Result<Pruned, sqlx::Error> {
    let batch = retention.batch.max(1);
    let done = repeat(batch, || {
        delete_done(pool, retention.done.as_secs_f64(), batch)
    })
    .await?;
    let failed = repeat(batch, || {
        delete_failed(pool, retention.failed.as_secs_f64(), batch)
    })
    .await?;
    let workers = repeat(batch, || delete_idle_workers(pool, batch)).await?;
    Ok(Pruned {
        done,
        failed,
        workers,
    })
}

/// Runs `delete` until a round deletes less than a full batch; answers the total.
async fn repeat<F, Fut>(batch: i64, mut delete: F) -> Result<u64, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, sqlx::Error>>,
{
    let full = u64::try_from(batch).unwrap_or(u64::MAX);
    let mut total = 0;
    loop {
        let deleted = delete().await?;
        total += deleted;
        if deleted < full {
            return Ok(total);
        }
    }
}

async fn delete_done(pool: &PgPool, older_than_secs: f64, batch: i64) -> Result<u64, sqlx::Error> {
    let result = sqlx::query!(
        "WITH doomed AS (
             SELECT id FROM apalis.jobs
             WHERE status = 'Done' AND done_at < now() - make_interval(secs => $1)
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         )
         DELETE FROM apalis.jobs AS jobs USING doomed WHERE jobs.id = doomed.id",
        older_than_secs,
        batch,
    )
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

async fn delete_failed(
    pool: &PgPool,
    older_than_secs: f64,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let result = sqlx::query!(
        "WITH doomed AS (
             SELECT id FROM apalis.jobs
             WHERE status IN ('Failed', 'Killed')
               AND cart_queue.job_state(status, attempts, max_attempts, metadata)
                   IN ('failed', 'cancelled')
               AND done_at < now() - make_interval(secs => $1)
             LIMIT $2
             FOR UPDATE SKIP LOCKED
         )
         DELETE FROM apalis.jobs AS jobs USING doomed WHERE jobs.id = doomed.id",
        older_than_secs,
        batch,
    )
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Every process start and every restart registers new workers (names are unique); rows of
/// workers unseen for a day that no job points to are dropped.
async fn delete_idle_workers(pool: &PgPool, batch: i64) -> Result<u64, sqlx::Error> {
    let result = sqlx::query!(
        "WITH doomed AS (
             SELECT w.id FROM apalis.workers AS w
             WHERE w.last_seen < now() - interval '1 day'
               AND NOT EXISTS (SELECT 1 FROM apalis.jobs AS j WHERE j.lock_by = w.id)
             LIMIT $1
             FOR UPDATE SKIP LOCKED
         )
         DELETE FROM apalis.workers AS workers USING doomed WHERE workers.id = doomed.id",
        batch,
    )
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}
