//! Sends one rendered e-mail. The job id is the provider's idempotency key, so a retry after
//! a lost answer (or after a worker crash) never delivers the message twice.

use std::time::Duration;

use cart_core::jobs::send_email::SendEmail;
use cart_queue::{Handler, JobError, Run};

use crate::deps::Deps;

impl Handler<Deps> for SendEmail {
    const TIMEOUT: Option<Duration> = Some(Duration::from_secs(60));

    async fn run(self, deps: &Deps, run: &Run) -> Result<(), JobError> {
        // 429/5xx/timeouts come back as retryable, other 4xx as permanent (ProviderError).
        let provider_id = deps.mailer.send(&self.message, &run.job_id).await?;
        tracing::info!(tag = %self.message.tag, provider_id, "e-mail sent");
        Ok(())
    }
}
