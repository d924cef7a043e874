//! Payloads of the periodic maintenance jobs: one per tick of their interval (see
//! `cart_queue::TickJob`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::jobs::{Job, TickJob, tick_key};

/// Deletes finished jobs past their retention (Done after a day, failed after two weeks),
/// and the registrations of workers long gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneJobs {
    pub tick: DateTime<Utc>,
}

impl Job for PruneJobs {
    const NAME: &'static str = "prune_jobs";
    const MAX_ATTEMPTS: i32 = 3;

    fn idempotency_key(&self) -> Option<String> {
        Some(tick_key(Self::NAME, self.tick))
    }
}

impl TickJob for PruneJobs {
    const INTERVAL_VAR: &'static str = "TICK_PRUNE_JOBS";
    const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

    fn for_tick(tick: DateTime<Utc>) -> Self {
        Self { tick }
    }
}

/// Deletes password-reset tokens that can no longer be used (expired or already used).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeResetTokens {
    pub tick: DateTime<Utc>,
}

impl Job for PurgeResetTokens {
    const NAME: &'static str = "purge_reset_tokens";
    const MAX_ATTEMPTS: i32 = 3;

    fn idempotency_key(&self) -> Option<String> {
        Some(tick_key(Self::NAME, self.tick))
    }
}

impl TickJob for PurgeResetTokens {
    const INTERVAL_VAR: &'static str = "TICK_PURGE_RESET_TOKENS";
    const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

    fn for_tick(tick: DateTime<Utc>) -> Self {
        Self { tick }
    }
}

/// Deletes sessions that can no longer be used: expired, or ended by logout, a password
/// reset or an e-mail change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeSessions {
    pub tick: DateTime<Utc>,
}

impl Job for PurgeSessions {
    const NAME: &'static str = "purge_sessions";
    const MAX_ATTEMPTS: i32 = 3;

    fn idempotency_key(&self) -> Option<String> {
        Some(tick_key(Self::NAME, self.tick))
    }
}

impl TickJob for PurgeSessions {
    const INTERVAL_VAR: &'static str = "TICK_PURGE_SESSIONS";
    const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

    fn for_tick(tick: DateTime<Utc>) -> Self {
        Self { tick }
    }
}

/// Deletes carts untouched for longer than `CART_TTL` (with their lines): a cart holds no
/// stock, so an abandoned one only costs space and keeps a coupon attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeAbandonedCarts {
    pub tick: DateTime<Utc>,
}

impl Job for PurgeAbandonedCarts {
    const NAME: &'static str = "purge_abandoned_carts";
    const MAX_ATTEMPTS: i32 = 3;

    fn idempotency_key(&self) -> Option<String> {
        Some(tick_key(Self::NAME, self.tick))
    }
}

impl TickJob for PurgeAbandonedCarts {
    const INTERVAL_VAR: &'static str = "TICK_PURGE_ABANDONED_CARTS";
    const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

    fn for_tick(tick: DateTime<Utc>) -> Self {
        Self { tick }
    }
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
            PruneJobs::for_tick(tick).idempotency_key().as_deref(),
            Some("prune_jobs:2026-11-25T12:00:00Z")
        );
    }
}
