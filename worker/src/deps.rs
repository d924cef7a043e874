//! What job handlers get besides their payload: the database, the providers, the settings.

use std::{sync::Arc, time::Duration};

use cart_core::mail::Mailer;
use sqlx::PgPool;

use crate::retry::RetryPolicy;

/// Shared by every job of the process; cheap to clone.
#[derive(Clone)]
pub struct Deps {
    pub pool: PgPool,
    pub mailer: Arc<dyn Mailer>,
    pub settings: Arc<JobSettings>,
}

/// Settings that handlers and the retry machinery read.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub retry: RetryPolicy,
    /// The longest one attempt may run (kinds may set their own).
    pub job_timeout: Duration,
    /// How long `Done` jobs are kept before the prune ticker deletes them.
    pub done_retention: Duration,
    /// How long failed jobs are kept for operators.
    pub failed_retention: Duration,
    /// Rows the prune job deletes per statement, so one run never holds long locks.
    pub prune_batch: i64,
    /// Carts untouched for this long are purged.
    pub cart_ttl: Duration,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            job_timeout: Duration::from_secs(300),
            done_retention: Duration::from_secs(24 * 3600),
            failed_retention: Duration::from_secs(14 * 24 * 3600),
            prune_batch: 1000,
            cart_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}
