//! Claiming a batch of one kind's jobs: `apalis.get_jobs` inline, behind a gate where pausing
//! and rate limits plug in.
//!
//! The statement must claim exactly what `apalis.get_jobs` would (same rows, same order, same
//! lock fields, `SKIP LOCKED`); the contract test below compares the two on a populated
//! table, so an apalis upgrade that changes its claim fails here.

use std::{collections::HashMap, time::Duration};

use apalis_core::{
    backend::queue::Queue,
    task::{builder::TaskBuilder, metadata::MetadataStore, status::Status, task_id::TaskId},
};
use apalis_postgres::{Error, PgTask};
use sqlx::{AssertSqlSafe, Connection, PgConnection, postgres::types::PgHstore};

/// What a worker may claim of its kind now, as the operators' controls say (see
/// `runtime::controls`): the runtime asks before every claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A full batch.
    Open,
    /// Nothing now (paused, or a limit used up): the worker claims nothing and looks again
    /// at its next wake-up or poll, so a held-back job waits and never fails.
    Closed,
    /// At most `per_minute` starts in any sixty seconds, counted across every process.
    Limited { per_minute: u32 },
}

/// Decides what a worker may claim of a kind now.
pub(crate) trait ClaimGate: Send + Sync + 'static {
    fn admission(&self, kind: &str) -> Admission;
    /// A limited kind has no starts left until `after` from now: answer `Closed` until then,
    /// without asking the database.
    fn hold(&self, kind: &str, after: Duration);
}

/// What a claim of a limited kind answers: the jobs, and when the limit frees up when it
/// left nothing to claim.
pub(crate) struct LimitedClaim {
    pub(crate) tasks: Vec<PgTask>,
    pub(crate) used_up_for: Option<Duration>,
}

/// Claims up to `wanted` due jobs of a kind limited to `per_minute` starts a minute.
///
/// The kind's control row is locked for the claim's transaction, so the claims of every
/// process take turns: each counts the starts of the last sixty seconds, claims at most what
/// is left, and records its own. The limit is read again under the lock, so a limit changed
/// or cleared a moment ago is the one applied. Times are the statements' own, not the
/// transaction's: a claim that waited for the lock counts from when it claims.
pub(crate) async fn claim_limited(
    conn: &mut PgConnection,
    worker: &str,
    kind: &str,
    wanted: usize,
    per_minute: u32,
) -> Result<LimitedClaim, Error> {
    let mut tx = conn.begin().await?;
    let control: Option<(Option<i32>, bool)> = sqlx::query_as(
        "SELECT per_minute, paused_at IS NOT NULL FROM cart_queue.kind_controls
         WHERE kind = $1 FOR UPDATE",
    )
    .bind(kind)
    .fetch_optional(&mut *tx)
    .await?;
    let per_minute = match control {
        Some((_, true)) => {
            return Ok(LimitedClaim {
                tasks: Vec::new(),
                used_up_for: None,
            });
        }
        Some((Some(limit), false)) => u32::try_from(limit).unwrap_or(per_minute),
        // The limit was cleared a moment ago: a plain claim.
        Some((None, false)) | None => {
            let tasks = claim(&mut tx, worker, kind, wanted).await?;
            tx.commit().await?;
            return Ok(LimitedClaim {
                tasks,
                used_up_for: None,
            });
        }
    };
    let (started, frees_in_ms): (i64, Option<f64>) = sqlx::query_as(
        "WITH expired AS (
             DELETE FROM cart_queue.kind_starts
             WHERE kind = $1 AND started_at <= statement_timestamp() - interval '1 minute'
         )
         SELECT count(*),
                extract(epoch FROM min(started_at) + interval '1 minute'
                                   - statement_timestamp())::float8 * 1000
         FROM cart_queue.kind_starts
         WHERE kind = $1 AND started_at > statement_timestamp() - interval '1 minute'",
    )
    .bind(kind)
    .fetch_one(&mut *tx)
    .await?;
    let left = usize::try_from(i64::from(per_minute) - started).unwrap_or(0);
    if left == 0 {
        tx.commit().await?;
        let wait_ms = frees_in_ms.unwrap_or(1000.0).clamp(50.0, 60_000.0);
        return Ok(LimitedClaim {
            tasks: Vec::new(),
            used_up_for: Some(Duration::from_millis(wait_ms as u64)),
        });
    }
    let tasks = claim(&mut tx, worker, kind, wanted.min(left)).await?;
    if !tasks.is_empty() {
        sqlx::query(
            "INSERT INTO cart_queue.kind_starts (kind, started_at)
             SELECT $1, statement_timestamp() FROM generate_series(1, $2)",
        )
        .bind(kind)
        .bind(i32::try_from(tasks.len()).unwrap_or(i32::MAX))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(LimitedClaim {
        tasks,
        used_up_for: None,
    })
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

    async fn due_jobs(pool: &PgPool, kind: &str, count: i32) {
        sqlx::query(
            "INSERT INTO apalis.jobs
                 (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata)
             SELECT lpad(n::text, 26, '0'), $1, '{}'::bytea, 'Pending', 0, 3,
                    now() - interval '1 minute', 0, ''::hstore
             FROM generate_series(1, $2) AS n",
        )
        .bind(kind)
        .bind(count)
        .execute(pool)
        .await
        .expect("jobs");
    }

    #[sqlx::test(migrations = false)]
    async fn claimers_of_a_limited_kind_share_its_limit(pool: PgPool) {
        cart_migrations::migrate(&pool).await.expect("schema");
        due_jobs(&pool, "mine", 40).await;
        let mut conn = pool.acquire().await.expect("connection");
        crate::admin::limit(&mut conn, "mine", Some(7), "tester")
            .await
            .expect("limit");
        // Two workers of two processes claim at once, batch after batch.
        let claimer = |worker: &'static str| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.acquire().await.expect("connection");
                let mut claimed = 0;
                let mut used_up_for = None;
                for _ in 0..6 {
                    let answer = claim_limited(&mut conn, worker, "mine", 3, 7)
                        .await
                        .expect("claim");
                    claimed += answer.tasks.len();
                    used_up_for = used_up_for.or(answer.used_up_for);
                }
                (claimed, used_up_for)
            })
        };
        let (a, b) = (claimer("worker-a"), claimer("worker-b"));
        let (a, b) = (a.await.expect("a"), b.await.expect("b"));
        assert_eq!(
            a.0 + b.0,
            7,
            "seven starts in the minute, however they were shared"
        );
        for wait in [a.1, b.1].into_iter().flatten() {
            assert!(
                wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
                "held until the oldest start leaves the window, not {wait:?}"
            );
        }
        assert!(
            a.1.is_some() || b.1.is_some(),
            "the limit was reported used up"
        );
        let queued: i64 =
            sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE status = 'Queued'")
                .fetch_one(&pool)
                .await
                .expect("count");
        assert_eq!(queued, 7);
    }

    #[sqlx::test(migrations = false)]
    async fn a_limited_claim_rechecks_the_controls_under_its_lock(pool: PgPool) {
        cart_migrations::migrate(&pool).await.expect("schema");
        due_jobs(&pool, "mine", 10).await;
        let mut conn = pool.acquire().await.expect("connection");
        crate::admin::limit(&mut conn, "mine", Some(5), "tester")
            .await
            .expect("limit");
        crate::admin::pause(&mut conn, "mine", "tester")
            .await
            .expect("pause");
        // The worker's copy still says "limited": the row says paused, and wins.
        let answer = claim_limited(&mut conn, "worker-1", "mine", 4, 5)
            .await
            .expect("claim");
        assert!(answer.tasks.is_empty());
        assert_eq!(answer.used_up_for, None);

        crate::admin::resume(&mut conn, "mine")
            .await
            .expect("resume");
        crate::admin::limit(&mut conn, "mine", None, "tester")
            .await
            .expect("clear");
        // Cleared a moment ago: a full batch, nothing counted.
        let answer = claim_limited(&mut conn, "worker-1", "mine", 4, 5)
            .await
            .expect("claim");
        assert_eq!(answer.tasks.len(), 4);
        let counted: i64 = sqlx::query_scalar("SELECT count(*) FROM cart_queue.kind_starts")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(counted, 0);
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
