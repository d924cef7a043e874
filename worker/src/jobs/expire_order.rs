//! Payment deadlines: `expire_order` cancels one order at its deadline (scheduled at
//! checkout), `expire_due_orders` sweeps up any whose own job is late. Both give stock and
//! coupon use back through `cart_core::orders::cancel`, exactly once per order.

use cart_core::{
    jobs::expire_order::{ExpireDueOrders, ExpireOrder},
    orders::cancel::{self, Expiry},
};
use cart_queue::{Handler, JobError, Run};

use crate::deps::Deps;

impl Handler<Deps> for ExpireOrder {
    async fn run(self, deps: &Deps, _run: &Run) -> Result<(), JobError> {
        let mut conn = deps.pool.acquire().await?;
        match cancel::expire_one(&mut conn, self.order_id).await? {
            Expiry::Expired => {
                tracing::info!(order_id = %self.order_id, "unpaid order expired");
                Ok(())
            }
            Expiry::NotPending => Ok(()),
            // Run early (clocks disagree): try again; the ticker is the backstop.
            Expiry::NotDue(deadline) => Err(JobError::retry(anyhow::anyhow!(
                "order {} is not due until {deadline}",
                self.order_id
            ))),
        }
    }
}

impl Handler<Deps> for ExpireDueOrders {
    async fn run(self, deps: &Deps, _run: &Run) -> Result<(), JobError> {
        let mut conn = deps.pool.acquire().await?;
        let expired = cancel::expire_due(&mut conn, chrono::Utc::now()).await?;
        if expired > 0 {
            tracing::info!(expired, "expired unpaid orders past their deadline");
        }
        Ok(())
    }
}
