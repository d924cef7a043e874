//! Asks the provider for a payment's charge. While the provider's circuit is open the
//! provider is not called and the job is retried later; on its last attempt a payment that
//! still could not be initiated is marked failed, so the order can be paid again.

use std::time::Duration;

use cart_core::{
    jobs::initiate_payment::InitiatePayment,
    payments::flow::{self, InitiateRetry},
};

use crate::{
    deps::Deps,
    error::JobError,
    handler::{JobHandler, Run},
};

impl JobHandler for InitiatePayment {
    const TIMEOUT: Option<Duration> = Some(Duration::from_secs(60));

    async fn run(self, deps: &Deps, run: &Run) -> Result<(), JobError> {
        match flow::initiate(&deps.pool, &deps.payments.settings, self.payment_id).await {
            Ok(initiated) => {
                tracing::debug!(?initiated, "payment initiation done");
                Ok(())
            }
            Err(InitiateRetry::Db(err)) => Err(err.into()),
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
