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
    sync::Arc,
    task::{Context, Poll},
};

use apalis::prelude::{Backend, WorkerContext};
use apalis_codec::json::JsonCodec;
use apalis_core::backend::{
    BackendConfig, WireFormatBackend,
    finalize::Durable,
    persistence::{Persisted, Persistence, TaskEvent, TaskPersistLayer},
};
use apalis_postgres::{Config, Error, PgTask, queries};
use serde_json::Value;
use sqlx::PgPool;
use ulid::Ulid;

use super::{
    acks::{AckWriter, Acks},
    claim::{Admission, ClaimGate, claim, claim_limited},
};

/// A queue of one job kind in `apalis.jobs`, as apalis-postgres lays it out.
pub(crate) struct QueueBackend {
    persistence: Persisted<Store>,
    codec: JsonCodec,
}

impl QueueBackend {
    /// The backend and the writer of its acknowledgements, which the caller must
    /// [`finish`](AckWriter::finish) once the worker has returned.
    pub(crate) fn new(
        pool: &PgPool,
        config: Config,
        gate: Arc<dyn ClaimGate>,
        worker: &WorkerContext,
    ) -> (Self, AckWriter) {
        let (writer, acks) = AckWriter::start(pool, worker.name());
        let store = Store {
            pool: pool.clone(),
            config,
            gate,
            acks,
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
    gate: Arc<dyn ClaimGate>,
    acks: Acks,
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
        // Names are unique per process and start (see `supervise`), so a clash is a bug.
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
        let kind = self.config.queue.as_ref();
        let wanted = self.config.batch_size.max(1);
        match self.gate.admission(kind) {
            Admission::Closed => Ok(Vec::new()),
            Admission::Open => {
                let mut conn = self.pool.acquire().await?;
                claim(&mut conn, worker.name(), kind, wanted).await
            }
            Admission::Limited { per_minute } => {
                let mut conn = self.pool.acquire().await?;
                let claimed =
                    claim_limited(&mut conn, worker.name(), kind, wanted, per_minute).await?;
                if let Some(after) = claimed.used_up_for {
                    self.gate.hold(kind, after);
                }
                Ok(claimed.tasks)
            }
        }
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
