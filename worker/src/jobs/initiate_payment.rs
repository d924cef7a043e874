//! Asks the provider for a payment's charge. While the provider's circuit is open the
//! provider is not called and the job comes back when the breaker lets a call through,
//! without spending an attempt (up to [`MAX_DEFERRALS`] times): only real calls that fail
//! count. However the job ends for good (its last attempt failed, a timeout, a panic, a
//! database error, the crash guard), the payment is marked failed in
//! [`Handler::on_gave_up`], so the buyer can pay again instead of meeting a payment that
//! stays `initiating` forever.

use std::time::Duration;

use cart_core::{
    Error,
    jobs::{Job, initiate_payment::InitiatePayment},
    payments::flow::{self, InitiateRetry},
};
use cart_queue::{Handler, JobError, Run};

use crate::deps::Deps;

/// How many times an open circuit may postpone one payment without counting an attempt; with
/// the default 30 s cool-down that is about 25 minutes, the life of an unpaid order.
pub const MAX_DEFERRALS: u32 = 50;

impl Handler<Deps> for InitiatePayment {
    const TIMEOUT: Option<Duration> = Some(Duration::from_secs(60));

    async fn run(self, deps: &Deps, run: &Run) -> Result<(), JobError> {
        match flow::initiate(&deps.pool, &deps.payments.settings, self.payment_id).await {
            Ok(initiated) => {
                tracing::debug!(?initiated, "payment initiation done");
                Ok(())
            }
            Err(InitiateRetry::Db(err)) => Err(err.into()),
            Err(open @ InitiateRetry::CircuitOpen { retry_after, .. })
                if run.max_attempts < Self::MAX_ATTEMPTS.unsigned_abs() + MAX_DEFERRALS =>
            {
                // A little past the cool-down, so the half-open probe has a chance to finish.
                Err(JobError::deferred(
                    retry_after + Duration::from_millis(250),
                    anyhow::anyhow!(open),
                ))
            }
            Err(retry) => Err(JobError::retry(anyhow::anyhow!(retry))),
        }
    }

    async fn on_gave_up(&self, deps: &Deps, reason: &str) -> anyhow::Result<()> {
        let mut conn = deps.pool.acquire().await?;
        let reason = format!("gave up initiating the payment: {reason}");
        match flow::mark_failed(&mut conn, self.payment_id, &reason).await {
            // The payment is gone: nothing waits for it.
            Ok(_) | Err(Error::NotFound) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}
