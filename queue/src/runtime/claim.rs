//! Claiming a batch of one kind's jobs: `apalis.get_jobs` inline, behind a gate where pausing
//! and rate limits plug in.
//!
//! The statement must claim exactly what `apalis.get_jobs` would (same rows, same order, same
//! lock fields, `SKIP LOCKED`); the contract test below compares the two on a populated
//! table, so an apalis upgrade that changes its claim fails here.

use std::collections::HashMap;

use apalis_core::{
    backend::queue::Queue,
    task::{builder::TaskBuilder, metadata::MetadataStore, status::Status, task_id::TaskId},
};
use apalis_postgres::{Error, PgTask};
use futures::future::BoxFuture;
use sqlx::{AssertSqlSafe, PgConnection, postgres::types::PgHstore};

/// Decides how many jobs of a kind a worker may claim now; the runtime asks before every
/// claim. Zero means "not now": the worker claims nothing and looks again at its next
/// wake-up or poll, so a held-back job waits and never fails.
pub(crate) trait ClaimGate: Send + Sync + 'static {
    fn allowance<'a>(&'a self, kind: &'a str, wanted: usize)
    -> BoxFuture<'a, Result<usize, Error>>;
}

/// The gate of a queue without pauses or limits: every claim may take a full batch.
pub(crate) struct Open;

impl ClaimGate for Open {
    fn allowance<'a>(&'a self, _: &'a str, wanted: usize) -> BoxFuture<'a, Result<usize, Error>> {
        Box::pin(std::future::ready(Ok(wanted)))
    }
}

/// Claims up to `limit` due jobs of `kind` for `worker`.
pub(crate) async fn claim(
    conn: &mut PgConnection,
    worker: &str,
    kind: &str,
    limit: usize,
) -> Result<Vec<PgTask>, Error> {
    let rows: Vec<ClaimedRow> = sqlx::query_as(AssertSqlSafe(claim_sql(limit.max(1))))
        .bind(worker)
        .bind(kind)
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(ClaimedRow::into_task).collect()
}

/// `apalis.get_jobs` inline. The batch size is a number from our own configuration, written
/// into the statement because a parameter `LIMIT` gets a worse generic plan.
fn claim_sql(batch_size: usize) -> String {
    format!(
        "WITH next AS (
             SELECT id FROM apalis.jobs
             WHERE (status = 'Pending' OR (status = 'Failed' AND attempts < max_attempts))
               AND run_at < now() AND job_type = $2
             ORDER BY priority DESC, run_at ASC
             LIMIT {batch_size}
             FOR UPDATE SKIP LOCKED
         )
         UPDATE apalis.jobs j SET status = 'Queued', lock_by = $1, lock_at = now()
         FROM next WHERE j.id = next.id
         RETURNING j.id, j.job_type, j.job, j.attempts, j.max_attempts, j.priority,
                   extract(epoch FROM j.run_at)::bigint AS run_at,
                   extract(epoch FROM j.lock_at)::bigint AS lock_at,
                   j.lock_by, j.idempotency_key, j.metadata"
    )
}

/// A row [`claim_sql`] returns.
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: String,
    job_type: String,
    job: Vec<u8>,
    attempts: i32,
    max_attempts: i32,
    priority: Option<i32>,
    run_at: i64,
    lock_at: Option<i64>,
    lock_by: Option<String>,
    idempotency_key: Option<String>,
    metadata: Option<PgHstore>,
}

impl ClaimedRow {
    /// The task as apalis-postgres builds it from a row.
    fn into_task(self) -> Result<PgTask, Error> {
        let id: TaskId = self.id.parse().map_err(Error::TaskIdError)?;
        let metadata: HashMap<String, String> = self
            .metadata
            .map(|hstore| {
                hstore
                    .into_iter()
                    .filter_map(|(key, value)| Some((key, value?)))
                    .collect()
            })
            .unwrap_or_default();
        let epoch = |seconds: i64| u64::try_from(seconds).unwrap_or(0);
        let mut task = TaskBuilder::new(self.job)
            .task_id(id)
            .queue(Queue::from(self.job_type))
            .status(Status::Queued)
            .attempt(usize::try_from(self.attempts).unwrap_or(0))
            .max_attempts(usize::try_from(self.max_attempts).unwrap_or(0))
            .run_at_timestamp(epoch(self.run_at))
            .lock_at(self.lock_at.map(epoch))
            .lock_by(self.lock_by)
            .priority(
                self.priority
                    .and_then(|p| usize::try_from(p).ok())
                    .unwrap_or(0),
            )
            .with_metadata(MetadataStore::from_map(metadata));
        if let Some(key) = self.idempotency_key {
            task = task.idempotency_key(key);
        }
        Ok(task.build())
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, PgPool};

    use super::*;

    /// What a claim leaves in the table: every row's state, with whether it was locked now.
    type Snapshot = Vec<(String, String, Option<String>, bool)>;

    /// A populated queue: two kinds, every status, several priorities, due and future jobs,
    /// each `run_at` distinct so that the claim order has no ties to break.
    async fn populate(pool: &PgPool) {
        sqlx::query(
            "INSERT INTO apalis.jobs
                 (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata)
             SELECT lpad(n::text, 26, '0'),
                    CASE WHEN n % 5 = 0 THEN 'other' ELSE 'mine' END,
                    '{}'::bytea,
                    (ARRAY['Pending', 'Pending', 'Failed', 'Failed', 'Done', 'Running',
                           'Queued', 'Killed'])[1 + n % 8],
                    CASE WHEN n % 16 = 3 THEN 5 ELSE n % 3 END,
                    5,
                    now() - make_interval(mins => 500 - n) + CASE WHEN n % 7 = 0
                        THEN interval '1 day' ELSE interval '0' END,
                    n % 4,
                    ''::hstore
             FROM generate_series(1, 120) AS n",
        )
        .execute(pool)
        .await
        .expect("populated");
    }

    async fn snapshot(conn: &mut PgConnection) -> Snapshot {
        sqlx::query_as(
            "SELECT id, status, lock_by, lock_at IS NOT DISTINCT FROM now()
             FROM apalis.jobs ORDER BY id",
        )
        .fetch_all(conn)
        .await
        .expect("snapshot")
    }

    /// Claims batch after batch until nothing is due, with apalis' function or ours, and rolls
    /// back: the claimed ids of each batch (sorted: `RETURNING` has no order), and the table.
    async fn claim_until_empty(
        pool: &PgPool,
        batch: usize,
        apalis: bool,
    ) -> (Vec<Vec<String>>, Snapshot) {
        let mut conn = pool.acquire().await.expect("connection");
        let mut tx = conn.begin().await.expect("transaction");
        let mut batches = Vec::new();
        loop {
            let mut ids: Vec<String> = if apalis {
                sqlx::query_scalar("SELECT id FROM apalis.get_jobs($1, $2, $3)")
                    .bind("worker-1")
                    .bind("mine")
                    .bind(i32::try_from(batch).expect("small"))
                    .fetch_all(&mut *tx)
                    .await
                    .expect("get_jobs")
            } else {
                claim(&mut tx, "worker-1", "mine", batch)
                    .await
                    .expect("claim")
                    .iter()
                    .map(|task| task.task_id().expect("an id").to_string())
                    .collect()
            };
            if ids.is_empty() {
                break;
            }
            ids.sort();
            batches.push(ids);
        }
        let table = snapshot(&mut tx).await;
        tx.rollback().await.expect("rollback");
        (batches, table)
    }

    #[sqlx::test(migrations = false)]
    async fn our_claim_takes_exactly_what_apalis_get_jobs_would(pool: PgPool) {
        cart_migrations::migrate(&pool).await.expect("schema");
        populate(&pool).await;
        for batch in [1, 3, 7, 16] {
            let (theirs, their_table) = claim_until_empty(&pool, batch, true).await;
            let (ours, our_table) = claim_until_empty(&pool, batch, false).await;
            assert!(
                theirs.len() >= 2,
                "the table offers several batches of {batch}"
            );
            assert_eq!(
                ours, theirs,
                "the same jobs in the same order, batch {batch}"
            );
            assert_eq!(our_table, their_table, "the same rows locked the same way");
        }
    }
}
