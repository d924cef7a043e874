//! The runtime's own writes beside apalis': failure history, retry scheduling, and releasing
//! jobs on a shutdown that ran out of time.

use std::time::Duration;

use sqlx::PgPool;

pub(crate) struct Failure<'a> {
    pub(crate) job_id: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) attempt: u32,
    pub(crate) error: &'a str,
    pub(crate) permanent: bool,
    /// Set when the job will run again after this delay.
    pub(crate) retry_in: Option<Duration>,
    /// The attempt did not count (see `JobError::Deferred`): the job's budget grows by one.
    pub(crate) gives_back_attempt: bool,
}

/// Records a failed attempt and, when it will be retried, moves the job's `run_at` forward by
/// the backoff, in one transaction. apalis then marks the row `Failed` and fetches it again
/// only after `run_at`.
pub(crate) async fn record_failure(
    pool: &PgPool,
    failure: &Failure<'_>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let retry_at = match failure.retry_in {
        Some(delay) => {
            // An attempt given back leaves one more to run, even past the limit (the crash
            // guard's attempt, whose giving up could not be settled).
            sqlx::query_scalar!(
                "UPDATE apalis.jobs
                 SET run_at = now() + make_interval(secs => $2),
                     max_attempts = CASE WHEN $3 THEN GREATEST(max_attempts, $4) + 1
                                         ELSE max_attempts END
                 WHERE id = $1 RETURNING run_at",
                failure.job_id,
                delay.as_secs_f64(),
                failure.gives_back_attempt,
                i32::try_from(failure.attempt).unwrap_or(i32::MAX),
            )
            .fetch_optional(&mut *tx)
            .await?
        }
        None => None,
    };
    sqlx::query!(
        "INSERT INTO job_failures (job_id, kind, attempt, error, permanent, retry_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        failure.job_id,
        failure.kind,
        i32::try_from(failure.attempt).unwrap_or(i32::MAX),
        failure.error,
        failure.permanent,
        retry_at,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Puts the jobs still held by `workers` back in the queue, for a shutdown that ran out of
/// time: other workers can take them at once instead of waiting for the heartbeat timeout.
/// The interrupted attempt is not counted against the job.
pub(crate) async fn release_jobs(pool: &PgPool, workers: &[String]) -> Result<u64, sqlx::Error> {
    let released = sqlx::query!(
        r#"UPDATE apalis.jobs
           SET status = 'Pending', lock_by = NULL, lock_at = NULL,
               last_result = '{"Err": "Returned to the queue: the worker shut down"}'::jsonb
           WHERE lock_by = ANY($1) AND status IN ('Queued', 'Running')"#,
        workers,
    )
    .execute(pool)
    .await?;
    Ok(released.rows_affected())
}
