//! Failed (or retrying) jobs back to the queue now, with a fresh set of attempts. Their
//! failure history stays.

use sqlx::{PgConnection, PgPool};

use super::Target;
use crate::schema::CHANNEL;

/// Every job that failed for good (of `kind`, when given), by id.
pub async fn failed_jobs(pool: &PgPool, kind: Option<&str>) -> Result<Vec<Target>, sqlx::Error> {
    sqlx::query_as!(
        Target,
        r#"SELECT id, job_type AS kind,
                  cart_queue.job_state(status, attempts, max_attempts, metadata) AS "state!", status
           FROM apalis.jobs
           WHERE status IN ('Failed', 'Killed')
             AND cart_queue.job_state(status, attempts, max_attempts, metadata) = 'failed'
             AND ($1::text IS NULL OR job_type = $1)
           ORDER BY id"#,
        kind,
    )
    .fetch_all(pool)
    .await
}

/// Puts the failed, retrying or cancelled jobs among `ids` back in the queue, due now (an
/// operator's cancel forgotten), and wakes the
/// workers of their kinds when the caller's transaction commits. Answers the ids retried
/// (a job that changed state meanwhile is left alone).
pub async fn retry(conn: &mut PgConnection, ids: &[String]) -> Result<Vec<String>, sqlx::Error> {
    let retried = sqlx::query_scalar!(
        r#"UPDATE apalis.jobs
           SET status = 'Pending', attempts = 0, run_at = now(),
               lock_by = NULL, lock_at = NULL, done_at = NULL,
               metadata = COALESCE(metadata, ''::hstore)
                   - ARRAY['cancel_requested_by', 'cancelled']
           WHERE id = ANY($1)
             AND cart_queue.job_state(status, attempts, max_attempts, metadata)
                 IN ('failed', 'retrying', 'cancelled')
           RETURNING id"#,
        ids,
    )
    .fetch_all(&mut *conn)
    .await?;
    // apalis' trigger notifies inserts only: one notice per kind, in apalis' payload shape.
    // (A runtime query: the macros cannot describe pg_notify's `void` result.)
    sqlx::query(
        "SELECT pg_notify($2, json_build_object('job_type', job_type, 'id', min(id))::text)
         FROM apalis.jobs WHERE id = ANY($1) GROUP BY job_type",
    )
    .bind(&retried)
    .bind(CHANNEL)
    .execute(&mut *conn)
    .await?;
    Ok(retried)
}
