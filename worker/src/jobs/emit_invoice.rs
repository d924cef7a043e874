//! Emits the NF-e of a paid order. Still processing at the provider after the bounded poll →
//! retried later (the order id is the provider reference, so no second NF-e). A rejection is
//! recorded on the invoice and fails the job with the provider's message, so `jobs show`
//! tells the operator why.

use std::time::Duration;

use cart_core::{
    invoices::emit::{self, EmitError, EmitRun, Emitter},
    jobs::emit_invoice::EmitInvoice,
};
use cart_queue::{Handler, JobError, Run};

use crate::deps::Deps;

impl Handler<Deps> for EmitInvoice {
    const TIMEOUT: Option<Duration> = Some(Duration::from_secs(180));

    async fn run(self, deps: &Deps, _run: &Run) -> Result<(), JobError> {
        let payments = &deps.payments;
        let emitter = Emitter {
            provider: payments.nfe.as_ref(),
            fiscal: &payments.fiscal,
            poll: &payments.nfe_poll,
            templates: &payments.templates,
        };
        let run = emit::emit_for_order(&deps.pool, &emitter, self.order_id)
            .await
            .map_err(|err| match err {
                EmitError::Provider(e) => JobError::from(e),
                EmitError::Core(e) => JobError::from(e),
            })?;
        match run {
            // Logged and counted by `emit_for_order` ("invoice authorised").
            EmitRun::Authorized(_) | EmitRun::AlreadyAuthorized(_) => Ok(()),
            EmitRun::Processing => Err(JobError::retry(anyhow::anyhow!(
                "NF-e still processing at the provider; checking again later"
            ))),
            EmitRun::Rejected(invoice) => Err(JobError::permanent(anyhow::anyhow!(
                "NF-e rejected: {}",
                invoice.message.unwrap_or_default()
            ))),
        }
    }
}
