//! Running jobs: one supervised apalis worker per job kind, the tickers, and a graceful
//! shutdown.
//!
//! Shutdown: every worker stops claiming, running jobs get `shutdown_timeout` to finish, and
//! jobs fetched but not started go back to the queue (apalis does that when a worker stops).
//! Jobs still running when the time is up are abandoned and immediately returned to the
//! queue for other workers, without counting the interrupted attempt.

mod acks;
mod backend;
mod claim;
mod controls;
mod execute;
mod failures;
mod notifications;
pub(crate) mod supervise;
mod tickers;
mod wakeup;

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::stream::BoxStream;
use sqlx::PgPool;
use tokio::{sync::watch, task::JoinSet};

pub use supervise::QueueSettings;

use crate::{Context, Registry, RetryPolicy};
use claim::ClaimGate;
use notifications::JobNotifications;
pub use notifications::Notice;
use supervise::WorkerNames;

/// What every worker of a runtime shares with the jobs it runs.
pub(crate) struct Shared<C> {
    pub(crate) ctx: C,
    pub(crate) pool: PgPool,
    pub(crate) gate: Arc<dyn ClaimGate>,
    pub(crate) retry: RetryPolicy,
    pub(crate) job_timeout: Duration,
}

/// How a runtime claims, runs, retries and stops.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Settings for every kind; `concurrency_overrides` replaces the concurrency per kind.
    pub queue: QueueSettings,
    pub concurrency_overrides: HashMap<String, usize>,
    /// When failed jobs run again, for kinds without a policy of their own.
    pub retry: RetryPolicy,
    /// The longest one attempt may run, for kinds without a timeout of their own.
    pub job_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub tickers_enabled: bool,
    /// Interval per ticker kind; kinds missing here use their default.
    pub tick_intervals: HashMap<String, Duration>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            queue: QueueSettings::default(),
            concurrency_overrides: HashMap::new(),
            retry: RetryPolicy::default(),
            job_timeout: Duration::from_secs(300),
            shutdown_timeout: Duration::from_secs(30),
            tickers_enabled: true,
            tick_intervals: HashMap::new(),
        }
    }
}

impl RuntimeConfig {
    pub fn settings_for(&self, kind: &str) -> QueueSettings {
        QueueSettings {
            concurrency: self
                .concurrency_overrides
                .get(kind)
                .copied()
                .unwrap_or(self.queue.concurrency),
            ..self.queue
        }
    }
}

/// A running set of queue workers and tickers.
pub struct Runtime {
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    names: WorkerNames,
    pool: PgPool,
    shutdown_timeout: Duration,
}

/// How a shutdown went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every running job finished within the timeout.
    pub drained: bool,
    /// Jobs that were still running at the deadline and went back to the queue.
    pub released: u64,
}

impl Runtime {
    /// Starts a worker per registered kind and, when enabled, the tickers, on the database of
    /// `pool`, with `ctx` for every handler. `notices` is what the process's listener hears on
    /// [`CHANNEL`](crate::schema::CHANNEL): it wakes the workers of the kind a new job names
    /// (polling finds everything else). Must be called inside a Tokio runtime.
    pub fn start<C: Context>(
        registry: &Registry<C>,
        config: &RuntimeConfig,
        pool: PgPool,
        ctx: C,
        notices: BoxStream<'static, Notice>,
    ) -> Self {
        let (shutdown, _) = watch::channel(false);
        let names = WorkerNames::default();
        let controls = Arc::new(controls::Controls::default());
        let shared = Arc::new(Shared {
            ctx,
            pool: pool.clone(),
            gate: controls.clone(),
            retry: config.retry,
            job_timeout: config.job_timeout,
        });
        let notifications = Arc::new(JobNotifications::start(notices, &registry.names()));
        let mut tasks = JoinSet::new();
        tasks.spawn(controls::refresh(
            controls,
            pool.clone(),
            notifications.clone(),
            shutdown.subscribe(),
        ));
        for kind in registry.kinds() {
            tasks.spawn(supervise::supervise(
                kind.name,
                kind.start,
                config.settings_for(kind.name),
                shared.clone(),
                notifications.clone(),
                names.clone(),
                shutdown.subscribe(),
            ));
        }
        if config.tickers_enabled {
            for ticker in registry.tickers() {
                let interval = config
                    .tick_intervals
                    .get(ticker.name)
                    .copied()
                    .unwrap_or(ticker.default_interval);
                tasks.spawn(tickers::run_ticker(
                    ticker.clone(),
                    interval,
                    pool.clone(),
                    shutdown.subscribe(),
                ));
            }
        }
        Self {
            shutdown,
            tasks,
            names,
            pool,
            shutdown_timeout: config.shutdown_timeout,
        }
    }

    /// Stops claiming jobs, waits for running ones up to the shutdown timeout, then returns
    /// whatever still runs to the queue.
    pub async fn shutdown(mut self) -> ShutdownReport {
        tracing::info!(
            timeout_secs = self.shutdown_timeout.as_secs_f64(),
            "shutting down: no new jobs are claimed; waiting for running ones"
        );
        let _ = self.shutdown.send(true);
        let drained = tokio::time::timeout(self.shutdown_timeout, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if drained {
            tracing::info!("all running jobs finished");
            return ShutdownReport {
                drained,
                released: 0,
            };
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        let released = match failures::release_jobs(&self.pool, &self.names.all()).await {
            Ok(released) => released,
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "could not return unfinished jobs to the queue; other workers take them \
                     over after the heartbeat timeout"
                );
                0
            }
        };
        tracing::warn!(
            released,
            "shutdown timed out; unfinished jobs returned to the queue"
        );
        ShutdownReport { drained, released }
    }
}

/// Claims what a worker of `kind` would claim now, for tests elsewhere in the crate: the ids.
#[cfg(test)]
pub(crate) async fn claim_for_tests(pool: &PgPool, kind: &str) -> Vec<String> {
    let mut conn = pool.acquire().await.expect("a connection");
    claim::claim(&mut conn, "test-worker", kind, 16)
        .await
        .expect("a claim")
        .iter()
        .filter_map(|task| task.task_id().map(ToString::to_string))
        .collect()
}
