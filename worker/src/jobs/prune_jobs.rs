//! Keeps the queue table small: `Done` jobs go after `JOBS_DONE_RETENTION`, failed ones after
//! `JOBS_FAILED_RETENTION` (their failure history goes with them), and worker registrations
//! that no job refers to any more after a day. Deletes run in bounded batches so no statement
//! holds many row locks for long.

use cart_core::jobs::maintenance::PruneJobs;
use sqlx::PgPool;

use crate::{
    deps::Deps,
    error::JobError,
    handler::{JobHandler, Run},
};

impl JobHandler for PruneJobs {
    async fn run(self, deps: &Deps, _run: &Run) -> Result<(), JobError> {
        let settings = &deps.settings;
        let batch = settings.prune_batch.max(1);
        let done = repeat(batch, || {
            delete_done(&deps.pool, settings.done_retention.as_secs_f64(), batch)
        })
        .await?;
        let failed = repeat(batch, || {
            delete_failed(&deps.pool, settings.failed_retention.as_secs_f64(), batch)
        })
        .await?;
        let workers = repeat(batch, || delete_idle_workers(&deps.pool, batch)).await?;
        tracing::info!(done, failed, workers, "pruned the job queue");
        Ok(())
    }
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
               AND job_state(status, attempts, max_attempts) = 'failed'
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
