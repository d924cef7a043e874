//! The one place that configures apalis. Every queue worker is built here with the settings
//! our apalis notes ask for, and kept alive by a supervisor that restarts it with backoff.
//!
//! - The queue name is `Job::NAME` (apalis would default to the Rust type path).
//! - Wake-up is LISTEN/NOTIFY plus polling, so scheduled retries still start within one poll
//!   interval; a notification that arrives during a fetch is re-checked shortly after
//!   (`wakeup`), so it is not left for the next poll.
//! - Heartbeat every few seconds with two misses allowed: a killed worker's jobs are taken
//!   over by another worker in about `2 × heartbeat` (apalis' default is five minutes).
//! - Batch size equals the concurrency: a worker never holds jobs it cannot start soon.
//! - Worker names are `<kind>-<uuid>`, new for every process and every restart: a name reused
//!   after a crash would keep the dead worker's row alive and its jobs would never be recovered.
//! - apalis ends a worker on any database error while fetching; the supervisor logs it and
//!   starts a fresh worker after an exponential, jittered delay (backon), so an outage is
//!   neither a hot loop nor a silent stop.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use apalis::prelude::{
    BackendExt, PollWith, StreamStrategy, WorkerBuilder, WorkerBuilderExt, WorkerContext,
    WorkerError,
};
use backon::BackoffBuilder;
use futures::{FutureExt, future::BoxFuture, stream::BoxStream};
use tokio::sync::watch;

use super::{
    Shared, backend::QueueBackend, execute::JobService, notifications::JobNotifications,
    wakeup::Recheck,
};
use crate::{Context, Handler, metrics};

/// How a queue worker claims jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// Jobs of one kind running at once in this process; also the fetch batch size.
    pub concurrency: usize,
    /// Polling fallback beside LISTEN/NOTIFY.
    pub poll_interval: Duration,
    pub heartbeat_interval: Duration,
    /// Heartbeats a worker may miss before its jobs are given to others.
    pub missed_heartbeats: usize,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            concurrency: 8,
            poll_interval: Duration::from_millis(500),
            heartbeat_interval: Duration::from_secs(5),
            missed_heartbeats: 2,
        }
    }
}

/// Starts one apalis worker for a kind under the given (unique) worker context.
pub(crate) type StartWorker<C> = fn(
    WorkerContext,
    QueueSettings,
    Arc<Shared<C>>,
    BoxStream<'static, ()>,
) -> BoxFuture<'static, Result<(), WorkerError>>;

pub(crate) fn start_worker<J: Handler<C>, C: Context>(
    ctx: WorkerContext,
    settings: QueueSettings,
    shared: Arc<Shared<C>>,
    wake_ups: BoxStream<'static, ()>,
) -> BoxFuture<'static, Result<(), WorkerError>> {
    let concurrency = settings.concurrency.max(1);
    let config = apalis_postgres::Config::default()
        .queue(J::NAME)
        .batch_size(concurrency)
        .heartbeat_interval(settings.heartbeat_interval)
        .missed_heartbeats(settings.missed_heartbeats);
    // The payload is decoded by our handler, not by apalis: apalis ends the whole worker on
    // a payload it cannot decode, while our handler fails just that job, permanently.
    let (storage, acks) = QueueBackend::new(&shared.pool, config, shared.gate.clone(), &ctx);
    // Notifications (re-checked shortly after each, see `wakeup`), then polling.
    let backend = PollWith::new(storage, Recheck::new(StreamStrategy::new(wake_ups)))
        .poll_with_interval(settings.poll_interval);
    let worker = WorkerBuilder::new(&ctx)
        .backend(backend)
        .concurrency(concurrency)
        .build(JobService::<J, C>::new(shared));
    async move {
        let result = worker.run().await;
        // The worker has returned: what it acknowledged last reaches the database first.
        acks.finish().await;
        result
    }
    .boxed()
}

/// The names of every worker this process has registered, to release their jobs when a
/// shutdown runs out of time.
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkerNames(Arc<Mutex<Vec<String>>>);

impl WorkerNames {
    fn add(&self, name: &str) {
        if let Ok(mut names) = self.0.lock() {
            names.push(name.to_owned());
        }
    }

    pub(crate) fn all(&self) -> Vec<String> {
        self.0.lock().map(|names| names.clone()).unwrap_or_default()
    }
}

/// Resolves once shutdown is signalled (or the runtime is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// After running this long, a worker counts as healthy and the restart backoff starts over.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

fn restart_backoff() -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::new()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(60))
        .with_jitter()
        .without_max_times()
        .build()
}

/// Keeps a worker for `kind` running until shutdown is signalled; then stops it so that it
/// claims nothing more, finishes its running jobs and hands fetched-but-unstarted ones back.
pub(crate) async fn supervise<C>(
    kind: &'static str,
    start: StartWorker<C>,
    settings: QueueSettings,
    shared: Arc<Shared<C>>,
    notifications: Arc<JobNotifications>,
    names: WorkerNames,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = restart_backoff();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let name = format!("{kind}-{}", uuid::Uuid::new_v4().simple());
        names.add(&name);
        let ctx = WorkerContext::new(&name);
        let mut running = start(
            ctx.clone(),
            settings,
            shared.clone(),
            notifications.subscribe(kind),
        );
        let began = Instant::now();
        tracing::info!(worker = %name, concurrency = settings.concurrency, "queue worker starting");
        let result = tokio::select! {
            result = &mut running => result,
            () = stopped(&mut shutdown) => {
                // A worker that has not started yet has claimed nothing: just drop it.
                if ctx.stop().is_ok()
                    && let Err(e) = running.await
                {
                    tracing::warn!(worker = %name, error = %e, "queue worker stopped with an error");
                }
                tracing::info!(worker = %name, "queue worker stopped");
                return;
            }
        };
        match result {
            Ok(()) => tracing::warn!(worker = %name, "queue worker stopped on its own; restarting"),
            Err(e) => {
                tracing::error!(worker = %name, error = %e, "queue worker failed; restarting")
            }
        }
        if began.elapsed() >= HEALTHY_RUN {
            backoff = restart_backoff();
        }
        let delay = backoff.next().unwrap_or(Duration::from_secs(60));
        metrics::worker_restarted(kind);
        tracing::info!(
            kind,
            delay_ms = delay.as_millis(),
            "restarting the queue worker after a delay"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stopped(&mut shutdown) => return,
        }
    }
}
