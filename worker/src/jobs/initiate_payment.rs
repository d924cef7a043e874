//! Asks the provider for a payment's charge. While the provider's circuit is open the
//! provider is not called and the job comes back when the breaker lets a call through,
//! without spending an attempt (up to [`MAX_DEFERRALS`] times): only real calls that fail
//! count. On its last attempt a payment that still could not be initiated is marked failed,
//! so the order can be paid again.

use std::time::Duration;

use cart_core::{
    jobs::{Job, initiate_payment::InitiatePayment},
    payments::flow::{self, InitiateRetry},
};

use crate::{
    deps::Deps,
    error::JobError,
    handler::{JobHandler, Run},
};

/// How many times an open circuit may postpone one payment without counting an attempt; with
/// the default 30 s cool-down that is about 25 minutes, the life of an unpaid order.
pub const MAX_DEFERRALS: u32 = 50;

impl JobHandler for InitiatePayment {
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
            Err(retry) => {
                if run.attempt >= run.max_attempts {
                    let mut conn = deps.pool.acquire().await?;
                    flow::mark_failed(&mut conn, self.payment_id, &retry.to_string()).await?;
                    return Err(JobError::permanent(anyhow::anyhow!(
                        "gave up initiating the payment: {retry}"
                    )));
                }
                Err(JobError::retry(anyhow::anyhow!(retry)))
            }
        }
    }
}
