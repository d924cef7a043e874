//! Cancelling jobs. An operator's cancel marks the job (`cancel_requested_by` in its
//! metadata); the worker honours the mark:
//!
//! - A job that waits (pending, scheduled, or retrying later) is made due now; the worker that
//!   claims it sees the mark, never runs the handler, runs the kind's clean-up
//!   ([`Handler::on_gave_up`](crate::Handler::on_gave_up): a payment left `initiating` is
//!   failed, say) and ends the job as `cancelled`. A job of a paused kind ends so once the
//!   kind is resumed.
//! - A job that a worker has claimed or runs is asked to stop: handlers that can stop safely
//!   between steps ask [`cancel_requested`] and return
//!   [`JobError::cancelled`](crate::JobError::cancelled); a job asked to stop that fails is
//!   not retried. Others finish their attempt.
//!
//! A job that ended because of a cancel has `cancelled` in its metadata, and its state is
//! `cancelled`: `retry --all-failed` leaves it alone. Retrying it by id clears both marks.

use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};

/// What became of one job an operator cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cancelled {
    pub id: String,
    pub kind: String,
    /// `cancelled` (it waited: it will never run) or `stop_requested` (a worker holds it;
    /// its handler is asked to stop).
    pub outcome: &'static str,
}

/// Marks the waiting and running jobs among `ids` as cancelled by `actor`, waiting ones due
/// now so that a worker ends them at once. Jobs that have ended (done, failed, cancelled)
/// are left alone and not answered. One statement, so a job cannot change state between
/// being judged waiting or running and being marked.
pub async fn cancel(
    conn: &mut PgConnection,
    ids: &[String],
    actor: &str,
) -> Result<Vec<Cancelled>, sqlx::Error> {
    let marked = sqlx::query!(
        r#"UPDATE apalis.jobs
           SET metadata = COALESCE(metadata, ''::hstore) || hstore('cancel_requested_by', $2::text),
               run_at = CASE WHEN status IN ('Pending', 'Failed') THEN LEAST(run_at, now())
                             ELSE run_at END
           WHERE id = ANY($1)
             AND (status IN ('Pending', 'Queued', 'Running')
                  OR (status = 'Failed' AND attempts < max_attempts))
           RETURNING id, job_type, status"#,
        ids,
        actor,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut answered: Vec<Cancelled> = marked
        .into_iter()
        .map(|row| Cancelled {
            outcome: if matches!(row.status.as_str(), "Pending" | "Failed") {
                "cancelled"
            } else {
                "stop_requested"
            },
            id: row.id,
            kind: row.job_type,
        })
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
        r#"SELECT COALESCE(metadata ? 'cancel_requested_by', false) AS "requested!"
           FROM apalis.jobs WHERE id = $1"#,
        job_id,
    )
    .fetch_optional(executor)
    .await?;
    Ok(requested.unwrap_or(false))
}

/// Records that job `job_id` ended because it was cancelled (its state becomes `cancelled`).
pub(crate) async fn mark_ended_by_cancel(
    executor: impl PgExecutor<'_>,
    job_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE apalis.jobs SET metadata = COALESCE(metadata, ''::hstore) || hstore('cancelled', 'true')
         WHERE id = $1",
        job_id,
    )
    .execute(executor)
    .await?;
    Ok(())
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
    async fn waiting_jobs_are_marked_and_made_due_and_running_ones_asked_to_stop(pool: PgPool) {
        cart_migrations::migrate(&pool).await.expect("schema");
        let pending = job(&pool, "Pending", 0).await;
        let retrying = job(&pool, "Failed", 1).await;
        let running = job(&pool, "Running", 1).await;
        let done = job(&pool, "Done", 1).await;
        let failed = job(&pool, "Killed", 3).await;
        sqlx::query("UPDATE apalis.jobs SET run_at = now() + interval '1 hour' WHERE id = $1")
            .bind(&retrying)
            .execute(&pool)
            .await
            .expect("scheduled");
        let ids = [&pending, &retrying, &running, &done, &failed].map(|id| id.to_string());

        let mut conn = pool.acquire().await.expect("connection");
        let answered = cancel(&mut conn, &ids, "tester").await.expect("cancel");
        let outcome = |id: &str| answered.iter().find(|c| c.id == id).map(|c| c.outcome);
        assert_eq!(outcome(&pending), Some("cancelled"));
        assert_eq!(outcome(&retrying), Some("cancelled"));
        assert_eq!(outcome(&running), Some("stop_requested"));
        assert_eq!(outcome(&done), None);
        assert_eq!(outcome(&failed), None);
        for id in [&pending, &retrying, &running] {
            assert!(cancel_requested(&pool, id).await.expect("asked"), "{id}");
        }
        assert!(!cancel_requested(&pool, &done).await.expect("asked"));

        // The waiting ones are due now, so a worker ends them at once.
        let mut claimed = crate::runtime::claim_for_tests(&pool, "test_cancel").await;
        claimed.sort();
        let mut waiting = vec![pending.clone(), retrying.clone()];
        waiting.sort();
        assert_eq!(claimed, waiting);

        // Only the end of a cancelled job makes it `cancelled`; a request alone does not.
        assert_eq!(state(&pool, &running).await, "running");
        sqlx::query("UPDATE apalis.jobs SET status = 'Killed' WHERE id = $1")
            .bind(&running)
            .execute(&pool)
            .await
            .expect("killed");
        assert_eq!(
            state(&pool, &running).await,
            "failed",
            "it failed for its own reasons"
        );
        mark_ended_by_cancel(&pool, &running).await.expect("marked");
        assert_eq!(state(&pool, &running).await, "cancelled");
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
        assert_eq!(listed.len(), 1);

        // Retrying a cancelled job by id clears the marks: it runs again.
        let retried = crate::admin::retry(&mut conn, std::slice::from_ref(&running))
            .await
            .expect("retry");
        assert_eq!(retried, std::slice::from_ref(&running));
        assert!(!cancel_requested(&pool, &running).await.expect("asked"));
        assert_eq!(state(&pool, &running).await, "pending");
    }
}
