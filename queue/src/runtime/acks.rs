//! Acknowledgements (a job marked `Running` when it starts, its result when it ends), written
//! by a task of their own so that no fetch waits for them (see `backend`).

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use apalis::prelude::TaskResult;
use apalis_core::{backend::persistence::TaskEvent, task::task_id::TaskId};
use apalis_postgres::{Error, queries};
use backon::BackoffBuilder;
use serde_json::Value;
use sqlx::PgPool;
use tokio::{sync::mpsc, task::JoinHandle};

/// The task writing one worker's acknowledgements.
pub(crate) struct AckWriter {
    task: JoinHandle<()>,
}

/// Where a worker's backend hands its acknowledgements.
pub(crate) type Acks = mpsc::UnboundedSender<Vec<TaskEvent<Value>>>;

/// How long a stopped worker's last acknowledgements may take to reach the database.
const FLUSH_LIMIT: Duration = Duration::from_secs(10);

impl AckWriter {
    /// Starts the writer of worker `worker`'s acknowledgements.
    pub(crate) fn start(pool: &PgPool, worker: &str) -> (Self, Acks) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let writer = Self {
            task: tokio::spawn(write_acks(pool.clone(), worker.to_owned(), receiver)),
        };
        (writer, sender)
    }

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
