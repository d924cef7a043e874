//! When a failed job runs again. The delay is written to the job's row (`run_at`), so a
//! crash or restart of the worker never loses or shortens it.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failure.
    pub base: Duration,
    /// No delay grows past this.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(10),
            max: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based): `base × 2^(attempt−1)`,
    /// capped at `max`, of which a random half is dropped ("equal jitter") so jobs that
    /// failed together do not all come back together.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let full = self.base.saturating_mul(1u32 << exponent).min(self.max);
        let full_ms = u64::try_from(full.as_millis()).unwrap_or(u64::MAX);
        let half_ms = full_ms / 2;
        let jitter_ms = if half_ms == 0 {
            0
        } else {
            rand::rng().random_range(0..=half_ms)
        };
        Duration::from_millis(full_ms - half_ms + jitter_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_each_attempt_within_their_jitter_band() {
        let policy = RetryPolicy {
            base: Duration::from_secs(10),
            max: Duration::from_secs(3600),
        };
        for (attempt, full) in [(1, 10), (2, 20), (3, 40), (6, 320)] {
            for _ in 0..50 {
                let delay = policy.delay(attempt);
                assert!(
                    delay >= Duration::from_secs(full) / 2,
                    "{attempt}: {delay:?}"
                );
                assert!(delay <= Duration::from_secs(full), "{attempt}: {delay:?}");
            }
        }
    }

    #[test]
    fn delays_stop_growing_at_the_maximum() {
        let policy = RetryPolicy {
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        for attempt in [7, 20, 25, 1000] {
            let delay = policy.delay(attempt);
            assert!(delay >= Duration::from_secs(30) && delay <= Duration::from_secs(60));
        }
    }

    #[test]
    fn jitter_spreads_jobs_that_failed_together() {
        let policy = RetryPolicy::default();
        let delays: std::collections::HashSet<_> = (0..20).map(|_| policy.delay(3)).collect();
        assert!(delays.len() > 1);
    }
}
