//! Jobs enqueued on a fixed interval. A ticker in every worker process enqueues one job per
//! tick, with the tick's scheduled time as its idempotency key: however many processes run,
//! each tick becomes exactly one job, with the queue's retries and history.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::Job;

/// A job enqueued by a ticker, keyed by the tick it belongs to. Its
/// [`idempotency_key`](Job::idempotency_key) must be [`tick_key`] of its tick.
pub trait TickJob: Job {
    /// Environment variable holding the interval between ticks (`30s`, `15m`, `1h`).
    const INTERVAL_VAR: &'static str;
    /// Interval used when the variable is unset.
    const DEFAULT_INTERVAL: std::time::Duration;

    fn for_tick(tick: DateTime<Utc>) -> Self;
}

/// The idempotency key of the job for `tick`: `prune_jobs:2026-11-25T12:00:00Z`.
pub fn tick_key(kind: &str, tick: DateTime<Utc>) -> String {
    format!("{kind}:{}", tick.to_rfc3339_opts(SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tick_key_is_the_kind_and_the_scheduled_time_in_utc() {
        let tick = DateTime::parse_from_rfc3339("2026-11-25T09:00:00-03:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            tick_key("prune_jobs", tick),
            "prune_jobs:2026-11-25T12:00:00Z"
        );
    }
}
