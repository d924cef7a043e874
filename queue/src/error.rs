//! How a job handler says what went wrong: worth retrying later, or never. Domain crates map
//! their own errors to it (`From` impls beside those errors).

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A transient failure (network, 5xx, 429, a database blip): retried with backoff until
    /// the kind's attempt limit.
    #[error("{0:#}")]
    Retry(anyhow::Error),
    /// Retrying cannot help (invalid data, a provider's 4xx): the job fails at once and
    /// waits for an operator.
    #[error("{0:#}")]
    Permanent(anyhow::Error),
    /// Not this job's failure: a dependency refused to be called and said when to come back
    /// (a payment provider's open circuit). The job runs again after `after` and the attempt
    /// is given back, so an outage that the breaker absorbs does not use up the job's budget.
    #[error("{reason:#} (deferred {}s)", after.as_secs())]
    Deferred {
        after: std::time::Duration,
        reason: anyhow::Error,
    },
}

impl JobError {
    /// A failure worth another attempt later.
    pub fn retry(err: impl Into<anyhow::Error>) -> Self {
        Self::Retry(err.into())
    }

    /// A failure no retry can mend.
    pub fn permanent(err: impl Into<anyhow::Error>) -> Self {
        Self::Permanent(err.into())
    }

    /// The job stops because an operator cancelled it (see
    /// [`admin::cancel_requested`](crate::admin::cancel_requested)): it ends for good, as
    /// `cancelled`, after the kind's clean-up.
    pub fn cancelled() -> Self {
        Self::Permanent(anyhow::Error::new(CancelledByOperator))
    }

    /// Whether this is [`JobError::cancelled`].
    pub(crate) fn is_cancellation(&self) -> bool {
        matches!(self, Self::Permanent(err) if err.downcast_ref::<CancelledByOperator>().is_some())
    }

    /// Not an attempt: run again after `after`, the attempt given back.
    pub fn deferred(after: std::time::Duration, reason: impl Into<anyhow::Error>) -> Self {
        Self::Deferred {
            after,
            reason: reason.into(),
        }
    }

    /// Whether the job fails for good.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent(_))
    }
}

impl From<sqlx::Error> for JobError {
    fn from(err: sqlx::Error) -> Self {
        Self::Retry(err.into())
    }
}

/// What a job stopped by an operator's cancel fails with.
#[derive(Debug, thiserror::Error)]
#[error("cancelled by an operator")]
struct CancelledByOperator;
