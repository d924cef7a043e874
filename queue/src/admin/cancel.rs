//! Cancelling jobs. A job that waits (pending, scheduled, or retrying later) is cancelled at
//! once and never runs: the update takes the row's lock, so it and a worker's claim cannot
//! both win. A job already claimed or running cannot be taken from its worker; it is asked to
//! stop, and a handler that can stop safely checks [`cancel_requested`] between its steps.
//!
//! Either way the job's metadata records who cancelled it (`cancelled_by`), and a cancelled
//! job's state is `cancelled`: `retry --all-failed` leaves it alone.

use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};

/// What became of one job an operator cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cancelled {
    pub id: String,
    pub kind: String,
    /// `cancelled` (it will never run) or `stop_requested` (it runs now; its handler is
    /// asked to stop).
    pub outcome: &'static str,
}

/// Cancels the waiting jobs among `ids` and asks the running ones to stop. Jobs that have
/// ended (done, failed, cancelled) are left alone and not answered.
pub async fn cancel(
    conn: &mut PgConnection,
    ids: &[String],
    actor: &str,
) -> Result<Vec<Cancelled>, sqlx::Error> {
    let waiting = sqlx::query!(
        r#"UPDATE apalis.jobs
           SET status = 'Killed', done_at = now(), lock_by = NULL, lock_at = NULL,
               last_result = jsonb_build_object('Err', 'cancelled by ' || $2::text),
               metadata = COALESCE(metadata, ''::hstore) || hstore('cancelled_by', $2::text)
           WHERE id = ANY($1)
             AND (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))
           RETURNING id, job_type"#,
        ids,
        actor,
    )
    .fetch_all(&mut *conn)
    .await?;
    let running = sqlx::query!(
        r#"UPDATE apalis.jobs
           SET metadata = COALESCE(metadata, ''::hstore) || hstore('cancelled_by', $2::text)
           WHERE id = ANY($1) AND status IN ('Queued', 'Running')
           RETURNING id, job_type"#,
        ids,
        actor,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut answered: Vec<Cancelled> = waiting
        .into_iter()
        .map(|row| Cancelled {
            id: row.id,
            kind: row.job_type,
            outcome: "cancelled",
        })
        .chain(running.into_iter().map(|row| Cancelled {
            id: row.id,
            kind: row.job_type,
            outcome: "stop_requested",
        }))
        .collect();
    answered.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(answered)
}

/// Whether an operator asked job `job_id` to stop. A handler that can stop safely between
/// steps asks this and then returns [`JobError::cancelled`](crate::JobError::cancelled).
pub async fn cancel_requested(
    executor: impl PgExecutor<'_>,
    job_id: &str,
) -> Result<bool, sqlx::Error> {
    let requested = sqlx::query_scalar!(
        r#"SELECT metadata ? 'cancelled_by' AS "requested!" FROM apalis.jobs WHERE id = $1"#,
        job_id,
    )
    .fetch_optional(executor)
    .await?;
    Ok(requested.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use sqlx::PgPool;

    use super::*;
    use crate::admin::{JobState, ListFilter, list};

    async fn job(pool: &PgPool, status: &str, attempts: i32) -> String {
        let mut conn = pool.acquire().await.expect("connection");
        let id = crate::enqueue(
            &mut conn,
            &crate::Encoded::raw("test_cancel", b"{}".to_vec(), 3, None),
        )
        .await
        .expect("enqueued")
        .expect("an id");
        sqlx::query("UPDATE apalis.jobs SET status = $2, attempts = $3 WHERE id = $1")
            .bind(&id)
            .bind(status)
            .bind(attempts)
            .execute(pool)
            .await
            .expect("status");
        id
    }

    async fn state(pool: &PgPool, id: &str) -> String {
        sqlx::query_scalar(
            "SELECT cart_queue.job_state(status, attempts, max_attempts, metadata)
             FROM apalis.jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("state")
    }

    #[sqlx::test(migrations = false)]
    async fn waiting_jobs_are_cancelled_and_running_ones_asked_to_stop(pool: PgPool) {
        cart_migrations::migrate(&pool).await.expect("schema");
        let pending = job(&pool, "Pending", 0).await;
        let retrying = job(&pool, "Failed", 1).await;
        let running = job(&pool, "Running", 1).await;
        let done = job(&pool, "Done", 1).await;
        let failed = job(&pool, "Killed", 3).await;
        let ids = [&pending, &retrying, &running, &done, &failed].map(|id| id.to_string());

        let mut conn = pool.acquire().await.expect("connection");
        let answered = cancel(&mut conn, &ids, "tester").await.expect("cancel");
        let outcome = |id: &str| answered.iter().find(|c| c.id == id).map(|c| c.outcome);
        assert_eq!(outcome(&pending), Some("cancelled"));
        assert_eq!(outcome(&retrying), Some("cancelled"));
        assert_eq!(outcome(&running), Some("stop_requested"));
        assert_eq!(outcome(&done), None);
        assert_eq!(outcome(&failed), None);

        assert_eq!(state(&pool, &pending).await, "cancelled");
        assert_eq!(state(&pool, &retrying).await, "cancelled");
        assert_eq!(state(&pool, &running).await, "running");
        assert_eq!(state(&pool, &done).await, "done");
        assert_eq!(state(&pool, &failed).await, "failed");
        assert!(cancel_requested(&pool, &running).await.expect("asked"));
        assert!(!cancel_requested(&pool, &done).await.expect("asked"));

        // A cancelled job is neither claimed nor among the failed jobs to retry.
        let claimed = crate::runtime::claim_for_tests(&pool, "test_cancel").await;
        assert!(claimed.is_empty(), "claimed {claimed:?}");
        let failed_jobs = crate::admin::failed_jobs(&pool, Some("test_cancel"))
            .await
            .expect("failed");
        assert_eq!(
            failed_jobs
                .iter()
                .map(|t| t.id.as_str())
                .collect::<Vec<_>>(),
            [failed.as_str()]
        );
        let listed = list(
            &pool,
            &ListFilter {
                state: Some(JobState::Cancelled),
                limit: 10,
                ..ListFilter::default()
            },
        )
        .await
        .expect("list");
        assert_eq!(listed.len(), 2);
        assert!(
            listed
                .iter()
                .all(|j| j.last_error.as_deref() == Some("cancelled by tester"))
        );
    }
}
