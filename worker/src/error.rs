//! How a job handler says what went wrong: worth retrying later, or never.

use cart_core::http_client::ProviderError;

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
    pub fn retry(err: impl Into<anyhow::Error>) -> Self {
        Self::Retry(err.into())
    }

    pub fn permanent(err: impl Into<anyhow::Error>) -> Self {
        Self::Permanent(err.into())
    }

    pub fn deferred(after: std::time::Duration, reason: impl Into<anyhow::Error>) -> Self {
        Self::Deferred {
            after,
            reason: reason.into(),
        }
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Permanent(_))
    }
}

impl From<ProviderError> for JobError {
    fn from(err: ProviderError) -> Self {
        if err.is_permanent() {
            Self::Permanent(err.into())
        } else {
            Self::Retry(err.into())
        }
    }
}

impl From<sqlx::Error> for JobError {
    fn from(err: sqlx::Error) -> Self {
        Self::Retry(err.into())
    }
}

impl From<cart_core::Error> for JobError {
    fn from(err: cart_core::Error) -> Self {
        use cart_core::Error as E;
        match err {
            // The data the job refers to is gone or wrong: the same input fails again.
            E::NotFound
            | E::Invalid(_)
            | E::BadRequest(_)
            | E::Forbidden
            | E::Unauthorized(_)
            | E::Conflict(_) => Self::Permanent(err.into()),
            E::TryAgain(_) | E::Unavailable { .. } | E::Upstream(_) | E::Db(_) | E::Internal(_) => {
                Self::Retry(err.into())
            }
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
        assert!(JobError::from(cart_core::Error::NotFound).is_permanent());
        assert!(JobError::from(cart_core::Error::invalid("email", "invalid")).is_permanent());
        assert!(!JobError::from(cart_core::Error::Db(sqlx::Error::PoolTimedOut)).is_permanent());
    }
}
