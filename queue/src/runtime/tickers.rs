//! The tickers. apalis-cron fires in every process that runs it, so a tick does not do the
//! work itself: it enqueues the kind's job with the tick's scheduled time as idempotency key
//! (see `TickJob`), and the database keeps exactly one job per tick however many workers run.
//!
//! Ticks fall on multiples of the interval since the Unix epoch, so every process computes the
//! same scheduled times without talking to the others.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis_cron::{CronScheduler, Schedule, Tick};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::watch;

use super::supervise::stopped;
use crate::{metrics, registry::TickerSpec};

/// A schedule firing every `interval` (whole seconds, at least one), aligned to the epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Every {
    secs: u64,
}

impl Every {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            secs: interval.as_secs().max(1),
        }
    }

    /// The first tick strictly after `now_secs`.
    pub(crate) fn next_after(&self, now_secs: u64) -> u64 {
        (now_secs / self.secs + 1) * self.secs
    }
}

impl<Tz> Schedule<Tz> for Every {
    fn next_tick(&mut self, _: &Tz) -> Option<Tick<Tz>> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Some(Tick::new(self.next_after(now)))
    }
}

/// Enqueues the ticker's job at every tick until shutdown. A failed enqueue (database down)
/// is logged and counted; the next tick tries again.
pub(crate) async fn run_ticker(
    ticker: TickerSpec,
    interval: Duration,
    pool: PgPool,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticks = Box::pin(CronScheduler::new(Every::new(interval)).into_stream());
    tracing::info!(
        kind = ticker.name,
        interval_secs = interval.as_secs(),
        "ticker started"
    );
    loop {
        let tick = tokio::select! {
            tick = ticks.next() => tick,
            () = stopped(&mut shutdown) => return,
        };
        let Some(tick) = tick else {
            return;
        };
        let at = match tick {
            Ok(tick) => i64::try_from(tick.get_timestamp())
                .ok()
                .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0)),
            Err(e) => {
                tracing::warn!(kind = ticker.name, error = %e, "ticker schedule error");
                None
            }
        };
        let Some(at) = at else {
            continue;
        };
        match (ticker.enqueue)(pool.clone(), at).await {
            Ok(Some(job_id)) => {
                metrics::tick(ticker.name, "enqueued");
                tracing::info!(kind = ticker.name, tick = %at, job_id, "tick enqueued");
            }
            Ok(None) => {
                metrics::tick(ticker.name, "duplicate");
                tracing::debug!(kind = ticker.name, tick = %at, "tick already enqueued elsewhere");
            }
            Err(e) => {
                metrics::tick(ticker.name, "error");
                tracing::warn!(kind = ticker.name, tick = %at, error = %e, "could not enqueue the tick");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_fall_on_multiples_of_the_interval() {
        let every = Every::new(Duration::from_secs(60));
        assert_eq!(every.next_after(0), 60);
        assert_eq!(every.next_after(59), 60);
        assert_eq!(every.next_after(60), 120);
        assert_eq!(every.next_after(1_764_072_001), 1_764_072_060);
    }

    #[test]
    fn intervals_under_a_second_tick_every_second() {
        assert_eq!(Every::new(Duration::from_millis(10)).next_after(5), 6);
    }
}
