//! The store's background jobs: what each kind means (its payload, one module per kind), how
//! the domain enqueues them inside its own transactions, and how the domain's errors end a
//! job. How jobs are stored and run is `cart_queue`'s business; the worker holds the handlers.

pub mod emit_invoice;
pub mod expire_order;
pub mod initiate_payment;
pub mod maintenance;
pub mod reconcile_payment;
pub mod refund_payment;
pub mod scrub_outbox;
pub mod send_email;
pub mod send_password_reset;

use cart_queue::{EnqueueError, JobError, Origin};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::{Error, Result, http_client::ProviderError};

pub use cart_queue::{Encoded, Envelope, Job, Serves, TickJob, tick_key};

/// The request (or job) running now, recorded as the origin of the jobs it enqueues: its id
/// for their logs, and its span for their traces when traces are exported.
fn origin() -> Origin {
    Origin {
        request_id: crate::request_id::current(),
        traceparent: crate::telemetry::traces::current_traceparent(),
    }
}

/// `job`, from the current request, not to start before `run_at` (`None`: now).
pub fn encode<J: Job>(job: &J, run_at: Option<DateTime<Utc>>) -> Result<Encoded> {
    Ok(Encoded::new(job, origin())?.run_at(run_at))
}

/// Enqueues `job` to run now, inside the caller's transaction (or on a plain connection).
/// Returns the new job id, or `None` when a job with the same idempotency key exists.
pub async fn enqueue<J: Job>(conn: &mut PgConnection, job: &J) -> Result<Option<String>> {
    enqueue_at(conn, job, None).await
}

/// Like [`enqueue`], not before `run_at`.
pub async fn enqueue_at<J: Job>(
    conn: &mut PgConnection,
    job: &J,
    run_at: Option<DateTime<Utc>>,
) -> Result<Option<String>> {
    Ok(cart_queue::enqueue(conn, &encode(job, run_at)?).await?)
}

/// Enqueues several [`encode`]d jobs in one statement; answers how many were new.
pub async fn enqueue_all(conn: &mut PgConnection, jobs: &[Encoded]) -> Result<u64> {
    Ok(cart_queue::enqueue_all(conn, jobs).await?)
}

impl From<EnqueueError> for Error {
    fn from(err: EnqueueError) -> Self {
        match err {
            EnqueueError::Db(db) => Self::Db(db),
            other => Self::Internal(other.into()),
        }
    }
}

/// A provider's rejection fails the job for good; an outage is tried again.
impl From<ProviderError> for JobError {
    fn from(err: ProviderError) -> Self {
        if err.is_permanent() {
            Self::Permanent(err.into())
        } else {
            Self::Retry(err.into())
        }
    }
}

impl From<Error> for JobError {
    fn from(err: Error) -> Self {
        match err {
            // The data the job refers to is gone or wrong: the same input fails again.
            Error::NotFound
            | Error::Invalid(_)
            | Error::BadRequest(_)
            | Error::Forbidden
            | Error::Unauthorized(_)
            | Error::Conflict(_) => Self::Permanent(err.into()),
            Error::TryAgain(_)
            | Error::Unavailable { .. }
            | Error::Upstream(_)
            | Error::Db(_)
            | Error::Internal(_) => Self::Retry(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_rejections_are_permanent_and_outages_are_retried() {
        let rejected = ProviderError::Rejected {
            status: 422,
            message: "bad address".into(),
        };
        assert!(JobError::from(rejected).is_permanent());
        assert!(!JobError::from(ProviderError::Unavailable("503".into())).is_permanent());
        assert!(!JobError::from(ProviderError::Timeout).is_permanent());
    }

    #[test]
    fn missing_or_invalid_data_is_permanent_and_a_database_error_is_retried() {
        assert!(JobError::from(Error::NotFound).is_permanent());
        assert!(JobError::from(Error::invalid("email", "invalid")).is_permanent());
        assert!(!JobError::from(Error::Db(sqlx::Error::PoolTimedOut)).is_permanent());
    }
}
