//! How many jobs wait, run, failed or finished, by kind.

use sqlx::PgPool;

/// Jobs by kind and state (see the `job_state` SQL function).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Depth {
    pub kind: String,
    pub state: String,
    pub count: i64,
    /// Seconds since the oldest due job in this kind and state became due (pending only).
    pub oldest_due_secs: Option<i64>,
}

/// Every kind and state with its count, for `jobs stats` and the metrics.
pub async fn depth(pool: &PgPool) -> Result<Vec<Depth>, sqlx::Error> {
    sqlx::query_as!(
        Depth,
        r#"SELECT job_type AS "kind!",
                  cart_queue.job_state(status, attempts, max_attempts, metadata) AS "state!",
                  count(*) AS "count!",
                  extract(epoch FROM now() - min(run_at) FILTER (
                      WHERE status IN ('Pending', 'Queued') AND run_at <= now()
                  ))::bigint AS oldest_due_secs
           FROM apalis.jobs
           GROUP BY 1, 2
           ORDER BY 1, 2"#
    )
    .fetch_all(pool)
    .await
}
