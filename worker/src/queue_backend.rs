//! The apalis backend our queue workers run on: apalis-postgres's schema and queries, driven by
//! apalis-core's own `Persisted` state machine, with two changes that the benchmark asked for.
//!
//! - Fetching a batch is one statement of our own, not `BEGIN`, `apalis.get_jobs(…)`,
//!   `COMMIT`. It claims exactly as `get_jobs` does (same rows, same order, `SKIP LOCKED`), but
//!   inline: PostgreSQL plans a call of that SQL function afresh every time and picks a poor
//!   plan for its parameter `LIMIT`, so one claim of 16 took 4.5 ms against 0.65 ms inline
//!   (pgbench, 20,000 waiting jobs).
//! - Acknowledgements (a job marked `Running` when it starts, its result when it ends) are
//!   handed to a writer task instead of being written while the worker waits: apalis-postgres
//!   writes each handful of them in a transaction of its own before it dispatches the next
//!   job, so a batch of no-op jobs cost a dozen round trips one after another. The writer
//!   merges whatever has queued up into at most two statements and never holds up a fetch.
//!
//! What an acknowledgement written a little later changes: a job that finished just before a
//! `kill -9` may run again once the heartbeat declares its worker dead, as a job killed
//! mid-run always could (handlers are idempotent). A worker that stops normally flushes the
//! writer before it returns ([`AckWriter::finish`]).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use apalis::prelude::{Backend, TaskResult, WorkerContext};
use apalis_codec::json::JsonCodec;
use apalis_core::{
    backend::{
        BackendConfig, WireFormatBackend,
        finalize::Durable,
        persistence::{Persisted, Persistence, TaskEvent, TaskPersistLayer},
        queue::Queue,
    },
    task::{builder::TaskBuilder, metadata::MetadataStore, status::Status, task_id::TaskId},
};
use apalis_postgres::{Config, Error, PgTask, queries};
use backon::BackoffBuilder;
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgPool, postgres::types::PgHstore};
use tokio::{sync::mpsc, task::JoinHandle};
use ulid::Ulid;

/// A queue of one job kind in `apalis.jobs`, as apalis-postgres lays it out.
pub(crate) struct QueueBackend {
    persistence: Persisted<Store>,
    codec: JsonCodec,
}

impl QueueBackend {
    /// The backend and the writer of its acknowledgements, which the caller must
    /// [`finish`](AckWriter::finish) once the worker has returned.
    pub(crate) fn new(pool: &PgPool, config: Config, worker: &WorkerContext) -> (Self, AckWriter) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let writer = AckWriter {
            task: tokio::spawn(write_acks(pool.clone(), worker.name().to_owned(), receiver)),
        };
        let store = Store {
            pool: pool.clone(),
            claim_sql: claim_sql(config.batch_size.max(1)).into(),
            config,
            acks: sender,
        };
        let backend = Self {
            persistence: Persisted::new(store),
            codec: JsonCodec::default(),
        };
        (backend, writer)
    }
}

impl Backend for QueueBackend {
    type Task = PgTask;
    type Error = Error;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        let heartbeat = self.persistence.config.heartbeat_interval;
        self.persistence.poll_ready(cx, worker, heartbeat)
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<PgTask, Self::Error>>> {
        self.persistence.poll_next(cx, worker)
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        self.persistence.poll_close(cx, worker)
    }
}

impl BackendConfig for QueueBackend {
    type Args = Value;
    type Kind = Durable;
    // apalis-postgres's id type (job ids are ULIDs); nothing here depends on it.
    type Id = Ulid;
    type Config = Config;
    type Layer = TaskPersistLayer<JsonCodec<Value>, Value>;

    fn config(&self) -> &Self::Config {
        &self.persistence.config
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        let batch_size = self.persistence.config.batch_size;
        // Results move a row to Done/Failed/Killed; locks mark it Running while it runs.
        self.persistence
            .layer(JsonCodec::<Value>::default(), batch_size)
            .persist_results(true)
            .lock_tasks(true)
    }
}

impl WireFormatBackend for QueueBackend {
    type Codec = JsonCodec;
    type Compact = Vec<u8>;

    fn codec(&self) -> &Self::Codec {
        &self.codec
    }
}

/// What `Persisted` calls into: the database side of one queue worker.
#[derive(Clone)]
struct Store {
    pool: PgPool,
    config: Config,
    /// The claim statement, with this queue's batch size written in (see [`claim_sql`]).
    claim_sql: Arc<str>,
    acks: mpsc::UnboundedSender<Vec<TaskEvent<Value>>>,
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

impl Persistence for Store {
    type Compact = Vec<u8>;
    type Response = Value;
    type Error = Error;

    async fn register(&mut self, worker: &WorkerContext) -> Result<(), Error> {
        let queue = self.config.queue.as_ref();
        let mut tx = self.pool.begin().await?;
        queries::reenqueue_orphaned(&mut *tx, queue, self.config.orphaned_duration().as_secs())
            .await?;
        // Names are unique per process and start (see `queue`), so a clash is a bug.
        let registered = sqlx::query(
            "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen)
             VALUES ($1, $2, 'PgStorage', $3, now())
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(worker.name())
        .bind(queue)
        .bind(worker.get_service())
        .execute(&mut *tx)
        .await?;
        if registered.rows_affected() == 0 {
            return Err(Error::WorkerAlreadyExists(worker.name().to_owned()));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn heartbeat(&mut self, worker: &WorkerContext) -> Result<(), Error> {
        let queue = self.config.queue.as_ref();
        let mut tx = self.pool.begin().await?;
        queries::keep_alive(&mut *tx, queue, worker).await?;
        queries::reenqueue_orphaned(&mut *tx, queue, self.config.orphaned_duration().as_secs())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fetch_next(&mut self, worker: &WorkerContext) -> Result<Vec<PgTask>, Error> {
        let mut conn = self.pool.acquire().await?;
        let rows: Vec<ClaimedRow> = sqlx::query_as(AssertSqlSafe(self.claim_sql.clone()))
            .bind(worker.name())
            .bind(self.config.queue.as_ref())
            .fetch_all(&mut *conn)
            .await?;
        rows.into_iter().map(ClaimedRow::into_task).collect()
    }

    async fn handle_events(
        &mut self,
        events: Vec<TaskEvent<Value>>,
        _: &WorkerContext,
    ) -> Result<(), Error> {
        // The writer outlives every sender; a closed channel means the runtime is going away,
        // and the jobs are then recovered like those of a killed worker.
        if self.acks.send(events).is_err() {
            tracing::warn!("acknowledgement writer gone; the jobs will be recovered later");
        }
        Ok(())
    }

    async fn reenqueue_abandoned(
        &mut self,
        tasks: Vec<PgTask>,
        worker: &WorkerContext,
    ) -> Result<u64, Error> {
        let ids: Vec<String> = tasks
            .iter()
            .filter_map(|t| t.task_id().map(ToString::to_string))
            .collect();
        let mut conn = self.pool.acquire().await?;
        let count = queries::reenqueue_abandoned(
            &mut *conn,
            self.config.queue.as_ref(),
            worker.name(),
            &ids,
        )
        .await?;
        if count as usize != tasks.len() {
            return Err(Error::ReenqueueMismatch {
                queued: tasks.len(),
                abandoned: count as usize,
            });
        }
        Ok(count)
    }

    async fn push_tasks(&mut self, tasks: Vec<PgTask>) -> Result<(), Error> {
        let mut conn = self.pool.acquire().await?;
        queries::push_tasks(&mut *conn, self.config.queue.as_ref(), tasks).await
    }
}

/// The task writing one worker's acknowledgements.
pub(crate) struct AckWriter {
    task: JoinHandle<()>,
}

/// How long a stopped worker's last acknowledgements may take to reach the database.
const FLUSH_LIMIT: Duration = Duration::from_secs(10);

impl AckWriter {
    /// Waits until everything the (now returned) worker acknowledged is written.
    pub(crate) async fn finish(self) {
        if tokio::time::timeout(FLUSH_LIMIT + Duration::from_secs(1), self.task)
            .await
            .is_err()
        {
            tracing::warn!("acknowledgements still unwritten at shutdown; those jobs run again");
        }
    }
}

async fn write_acks(
    pool: PgPool,
    worker: String,
    mut receiver: mpsc::UnboundedReceiver<Vec<TaskEvent<Value>>>,
) {
    while let Some(mut events) = receiver.recv().await {
        while let Ok(more) = receiver.try_recv() {
            events.extend(more);
        }
        let batch = AckBatch::of(events);
        // Built on the first failure only: nearly every batch is written at once.
        let mut backoff = None;
        let mut closed_since: Option<Instant> = None;
        loop {
            match batch.write(&pool, &worker).await {
                Ok(()) => break,
                Err(e) => {
                    if receiver.is_closed() {
                        let since = *closed_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= FLUSH_LIMIT {
                            tracing::error!(worker, error = %e,
                                "could not write acknowledgements before stopping; those jobs run again");
                            break;
                        }
                    }
                    tracing::warn!(worker, error = %e, "writing acknowledgements failed; retrying");
                    let delay = backoff
                        .get_or_insert_with(ack_retry_backoff)
                        .next()
                        .unwrap_or(Duration::from_secs(2));
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

fn ack_retry_backoff() -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Acknowledgements merged as apalis-postgres merges them: a job that already has its result
/// needs no `Running` mark.
struct AckBatch {
    running: Vec<String>,
    results: Vec<TaskResult<Value>>,
}

impl AckBatch {
    fn of(events: Vec<TaskEvent<Value>>) -> Self {
        let mut locked = Vec::new();
        let mut results = Vec::new();
        for event in events {
            match event {
                TaskEvent::Lock { task_id } => locked.push(task_id),
                TaskEvent::Complete(result) => results.push(result),
                // apalis' persistence layer emits only locks and results.
                _ => {}
            }
        }
        let finished: HashSet<&TaskId> = results.iter().map(|r| &r.task_id).collect();
        let running = locked
            .iter()
            .filter(|id| !finished.contains(id))
            .map(ToString::to_string)
            .collect();
        Self { running, results }
    }

    /// Results first, then the marks: two single statements, each atomic on its own.
    async fn write(&self, pool: &PgPool, worker: &str) -> Result<(), Error> {
        let mut conn = pool.acquire().await?;
        if !self.results.is_empty() {
            write_results(&mut conn, &self.results, worker).await?;
        }
        if !self.running.is_empty() {
            queries::lock_tasks(&mut *conn, &self.running, worker).await?;
        }
        Ok(())
    }
}

/// What apalis-postgres's `handle_results` writes (status, attempts, `last_result` as
/// `{"Ok": …}` or `{"Err": "…"}`, `done_at`), from arrays rather than one JSON document: the
/// planner cannot size `jsonb_array_elements`, and its plan took 1.5 ms for two dozen results.
/// Rows another worker has taken over since (`lock_by`) are left alone, as apalis does.
async fn write_results(
    conn: &mut sqlx::PgConnection,
    results: &[TaskResult<Value>],
    worker: &str,
) -> Result<(), Error> {
    let mut ids = Vec::with_capacity(results.len());
    let mut statuses = Vec::with_capacity(results.len());
    let mut attempts = Vec::with_capacity(results.len());
    let mut outcomes = Vec::with_capacity(results.len());
    for result in results {
        ids.push(result.task_id.to_string());
        statuses.push(result.status.to_string());
        attempts.push(i32::try_from(result.attempt).unwrap_or(i32::MAX));
        outcomes.push(serde_json::to_value(&result.result).map_err(Error::JsonError)?);
    }
    sqlx::query(
        "UPDATE apalis.jobs AS jobs
         SET status = r.status, attempts = r.attempt, last_result = r.outcome, done_at = now()
         FROM unnest($1::text[], $2::text[], $3::int4[], $4::jsonb[])
              AS r(id, status, attempt, outcome)
         WHERE jobs.id = r.id AND jobs.lock_by = $5",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&attempts)
    .bind(&outcomes)
    .bind(worker)
    .execute(conn)
    .await?;
    Ok(())
}
