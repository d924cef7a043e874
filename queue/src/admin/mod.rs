//! What operators and the privacy code do to jobs: find them (by state, kind, the order or
//! payment they serve, or text), look inside, retry, cancel, discard, delete, prune; and pause
//! or throttle a kind for every worker process. The CLI (`cart-worker jobs …`) and the board are built on these; every
//! function that changes something takes a connection, so the caller can audit the change
//! in the same transaction.
//!
//! A job's state, as operators see it, is one of [`JobState`]: the `cart_queue.job_state` SQL
//! function maps apalis' statuses (and an operator's cancellation) onto it.

mod cancel;
mod controls;
mod depth;
mod discard;
mod list;
mod privacy;
mod prune;
mod retry;
mod show;
pub mod throughput;

use std::{fmt, str::FromStr};

use sqlx::PgPool;

pub(crate) use cancel::mark_ended_by_cancel;
pub use cancel::{Cancelled, cancel, cancel_requested};
pub use controls::{KindControl, controls, limit, pause, resume};
pub use depth::{Depth, depth};
pub use discard::{Discarded, discard};
pub use list::{JobSummary, ListFilter, Serving, list};
pub use privacy::delete_by_recipient;
pub use prune::{Pruned, Retention, prune};
pub use retry::{failed_jobs, retry};
pub use show::{Failure, JobDetail, show};

/// A job's state as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting to start (or claimed by a worker that has not started it yet).
    Pending,
    /// Running now.
    Running,
    /// Finished successfully.
    Done,
    /// Failed, with attempts left: it runs again later.
    Retrying,
    /// Failed for good: attempts exhausted or a permanent error.
    Failed,
    /// Ended because an operator cancelled it: before it ran, or stopped by its handler.
    Cancelled,
}

impl JobState {
    /// Every state, in the order of a job's life.
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Running,
        Self::Done,
        Self::Retrying,
        Self::Failed,
        Self::Cancelled,
    ];

    /// The name operators type and read (`retrying`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == raw)
            .ok_or_else(|| format!("unknown job state {raw:?}"))
    }
}

/// A job picked for an action, with what decides whether the action is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub id: String,
    pub kind: String,
    /// A [`JobState`] name.
    pub state: String,
    /// apalis' own status (`Queued` tells a claimed job from a waiting one).
    pub status: String,
}

/// The jobs with these ids that exist, by id.
pub async fn targets(pool: &PgPool, ids: &[String]) -> Result<Vec<Target>, sqlx::Error> {
    sqlx::query_as!(
        Target,
        r#"SELECT id, job_type AS kind,
                  cart_queue.job_state(status, attempts, max_attempts, metadata) AS "state!", status
           FROM apalis.jobs WHERE id = ANY($1)
           ORDER BY id"#,
        ids,
    )
    .fetch_all(pool)
    .await
}
