//! The queue's metrics, recorded through the `metrics` facade (the worker process installs
//! the Prometheus recorder and renders them on its `GET /metrics`).
//!
//! Counters: `jobs_started_total`, `jobs_succeeded_total`, `jobs_retried_total`,
//! `jobs_failed_total` (by `kind`), `worker_restarts_total` (by `kind`), `ticks_total` (by
//! `kind` and `result`); histogram `job_duration_seconds` (by `kind` and `outcome`); gauges
//! `jobs_queue_depth` (by `kind` and `state`) and `jobs_oldest_pending_seconds` (by `kind`),
//! read from the database when scraped.

use std::{collections::HashSet, sync::Mutex, time::Duration};

use sqlx::PgPool;

pub(crate) fn job_started(kind: &'static str) {
    metrics::counter!("jobs_started_total", "kind" => kind).increment(1);
}

/// `outcome` is `succeeded`, `retried` (failed, will run again) or `failed` (for good).
pub(crate) fn job_finished(kind: &'static str, outcome: &'static str, elapsed: Duration) {
    let counter = match outcome {
        "succeeded" => "jobs_succeeded_total",
        "retried" => "jobs_retried_total",
        _ => "jobs_failed_total",
    };
    metrics::counter!(counter, "kind" => kind).increment(1);
    metrics::histogram!("job_duration_seconds", "kind" => kind, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

pub(crate) fn worker_restarted(kind: &'static str) {
    metrics::counter!("worker_restarts_total", "kind" => kind).increment(1);
}

/// `result` is `enqueued`, `duplicate` (another process enqueued this tick) or `error`.
pub(crate) fn tick(kind: &'static str, result: &'static str) {
    metrics::counter!("ticks_total", "kind" => kind, "result" => result).increment(1);
}

/// Label pairs set by the previous scrape, so a state that emptied reads 0, not its last value.
static SEEN_DEPTHS: Mutex<Option<HashSet<(String, String)>>> = Mutex::new(None);

/// Refreshes the queue gauges from the database. Failures are logged, not fatal: the
/// counters are still worth serving while the database is away.
pub async fn sample_queue(pool: &PgPool) {
    let depths = match tokio::time::timeout(Duration::from_secs(2), crate::admin::depth(pool)).await
    {
        Ok(Ok(depths)) => depths,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not read the queue depth");
            return;
        }
        Err(_) => {
            tracing::warn!("reading the queue depth timed out");
            return;
        }
    };
    let mut current = HashSet::new();
    let mut oldest_by_kind = std::collections::BTreeMap::<String, i64>::new();
    for depth in depths {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("jobs_queue_depth", "kind" => depth.kind.clone(), "state" => depth.state.clone())
            .set(depth.count as f64);
        let oldest = oldest_by_kind.entry(depth.kind.clone()).or_insert(0);
        *oldest = (*oldest).max(depth.oldest_due_secs.unwrap_or(0));
        current.insert((depth.kind, depth.state));
    }
    let Ok(mut seen) = SEEN_DEPTHS.lock() else {
        return;
    };
    for (kind, state) in seen.get_or_insert_with(HashSet::new).difference(&current) {
        metrics::gauge!("jobs_queue_depth", "kind" => kind.clone(), "state" => state.clone())
            .set(0.0);
    }
    for (kind, secs) in oldest_by_kind {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("jobs_oldest_pending_seconds", "kind" => kind).set(secs as f64);
    }
    *seen = Some(current);
}
