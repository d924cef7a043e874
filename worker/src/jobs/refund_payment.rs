//! Refunds the payments of an order that does not keep its money (see
//! `cart_core::payments::flow_refund`). A refund only an operator can make (OpenPix has no
//! refund API, or the provider refused) fails the job with the reason.

use std::time::Duration;

use cart_core::{
    jobs::refund_payment::RefundPayment,
    payments::flow_refund::{self, RefundError},
};
use cart_queue::{Handler, JobError, Run};

use crate::deps::Deps;

impl Handler<Deps> for RefundPayment {
    const TIMEOUT: Option<Duration> = Some(Duration::from_secs(120));

    async fn run(self, deps: &Deps, _run: &Run) -> Result<(), JobError> {
        match flow_refund::refund_order(&deps.pool, &deps.payments.settings, self.order_id).await {
            Ok(refunded) => {
                tracing::info!(payments = ?refunded.payments, "order refunded");
                Ok(())
            }
            Err(RefundError::Core(err)) => Err(err.into()),
            Err(err @ RefundError::Manual(_)) => Err(JobError::permanent(anyhow::anyhow!(err))),
            Err(err @ RefundError::Retry(_)) => Err(JobError::retry(anyhow::anyhow!(err))),
        }
    }
}
