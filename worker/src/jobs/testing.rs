//! Job kinds for the integration tests, registered only when `WORKER_TEST_JOBS` is set: they
//! let tests drive real `cart-worker` processes. They write to tables the tests create
//! (`worker_test_runs`, `worker_test_failures`), which is why their SQL is not checked at
//! compile time.

use std::time::Duration;

use cart_core::jobs::{Job, Serves, TickJob};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use cart_queue::{Handler, JobError, Run};

use crate::deps::Deps;

/// Records its execution in `worker_test_runs`, after an optional sleep. While
/// `worker_test_failures` holds a positive count for its key, each attempt fails (retryably)
/// and decrements it; with `permanent`, it fails permanently instead. With `order_id` it
/// serves that order, as a real job would (the board's browser test finds it by the order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub key: String,
    #[serde(default)]
    pub sleep_ms: u64,
    #[serde(default)]
    pub permanent: bool,
    /// Sleeps in short steps, stopping when an operator cancels it.
    #[serde(default)]
    pub stoppable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<Uuid>,
}

impl Job for Record {
    const NAME: &'static str = "test_record";
    const MAX_ATTEMPTS: i32 = 3;

    fn serves(&self) -> Serves {
        Serves {
            order_id: self.order_id,
            ..Serves::default()
        }
    }
}

impl Handler<Deps> for Record {
    async fn run(self, deps: &Deps, run: &Run) -> Result<(), JobError> {
        if self.stoppable {
            let step = Duration::from_millis(100);
            let mut slept = Duration::ZERO;
            while slept < Duration::from_millis(self.sleep_ms) {
                if cart_queue::admin::cancel_requested(&deps.pool, &run.job_id).await? {
                    return Err(JobError::cancelled());
                }
                tokio::time::sleep(step).await;
                slept += step;
            }
        } else if self.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        }
        if self.permanent {
            return Err(JobError::permanent(anyhow::anyhow!(
                "test job {} asked to fail for good",
                self.key
            )));
        }
        let fail: Option<i32> = sqlx::query_scalar(
            "UPDATE worker_test_failures SET remaining = remaining - 1
             WHERE key = $1 AND remaining > 0 RETURNING remaining",
        )
        .bind(&self.key)
        .fetch_optional(&deps.pool)
        .await?;
        if let Some(remaining) = fail {
            return Err(JobError::retry(anyhow::anyhow!(
                "test job {} asked to fail ({remaining} failures left)",
                self.key
            )));
        }
        record(deps, &self.key, run).await
    }
}

/// Does nothing: for measuring the queue's own overhead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Noop {
    pub n: u64,
}

impl Job for Noop {
    const NAME: &'static str = "test_noop";
    const MAX_ATTEMPTS: i32 = 1;
}

impl Handler<Deps> for Noop {
    async fn run(self, _deps: &Deps, _run: &Run) -> Result<(), JobError> {
        Ok(())
    }
}

/// A ticker kind that records each tick it runs for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    pub tick: DateTime<Utc>,
}

impl Job for Tick {
    const NAME: &'static str = "test_tick";
    const MAX_ATTEMPTS: i32 = 3;

    fn idempotency_key(&self) -> Option<String> {
        Some(cart_core::jobs::tick_key(Self::NAME, self.tick))
    }
}

impl TickJob for Tick {
    const INTERVAL_VAR: &'static str = "WORKER_TEST_TICK_INTERVAL";
    const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

    fn for_tick(tick: DateTime<Utc>) -> Self {
        Self { tick }
    }
}

impl Handler<Deps> for Tick {
    async fn run(self, deps: &Deps, run: &Run) -> Result<(), JobError> {
        let key = self.tick.to_rfc3339_opts(SecondsFormat::Secs, true);
        record(deps, &key, run).await
    }
}

async fn record(deps: &Deps, key: &str, run: &Run) -> Result<(), JobError> {
    sqlx::query(
        "INSERT INTO worker_test_runs (key, job_id, attempt, request_id, pid)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(key)
    .bind(&run.job_id)
    .bind(i32::try_from(run.attempt).unwrap_or(i32::MAX))
    .bind(cart_core::request_id::current())
    .bind(i32::try_from(std::process::id()).unwrap_or(0))
    .execute(&deps.pool)
    .await?;
    Ok(())
}
