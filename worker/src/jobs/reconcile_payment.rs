//! Applies one stored payment webhook (see `cart_core::payments::reconcile`). An OpenPix
//! event is confirmed with Woovi first; when that call fails the job is retried.

use cart_core::{jobs::reconcile_payment::ReconcilePayment, payments::reconcile};
use cart_queue::{Handler, JobError, Run};

use crate::deps::Deps;

impl Handler<Deps> for ReconcilePayment {
    async fn run(self, deps: &Deps, _run: &Run) -> Result<(), JobError> {
        let mut conn = deps.pool.acquire().await?;
        let outcome = reconcile::reconcile_webhook_event(
            &mut conn,
            &deps.payments.templates,
            &deps.payments.settings.providers,
            self.webhook_event_id,
        )
        .await?;
        tracing::info!(outcome = outcome.as_str(), "payment webhook reconciled");
        Ok(())
    }
}
