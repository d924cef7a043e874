//! Deletes the outbox copies of the mail sent to an erased account's addresses (see
//! `cart_core::jobs::scrub_outbox`). Runs again harmlessly: a second run finds nothing.

use cart_core::jobs::scrub_outbox::ScrubOutbox;
use cart_queue::{Handler, JobError, Run};

use crate::deps::Deps;

impl Handler<Deps> for ScrubOutbox {
    async fn run(self, deps: &Deps, _run: &Run) -> Result<(), JobError> {
        let deleted = deps.mailer.forget_recipients(&self.recipients).await?;
        tracing::info!(deleted, "outbox scrubbed after an erasure");
        Ok(())
    }
}
