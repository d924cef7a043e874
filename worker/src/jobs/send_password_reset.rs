//! Sends the e-mail of one password-reset request, deriving its link here: the job names
//! the request, never the token. The job id is the provider's idempotency key and the token
//! is the same on every attempt, so a retry never sends a second, different link.

use std::time::Duration;

use cart_core::{jobs::send_password_reset::SendPasswordReset, users::password_reset};
use cart_queue::{Handler, JobError, Run};

use crate::deps::Deps;

impl Handler<Deps> for SendPasswordReset {
    const TIMEOUT: Option<Duration> = Some(Duration::from_secs(60));

    async fn run(self, deps: &Deps, run: &Run) -> Result<(), JobError> {
        let mut conn = deps.pool.acquire().await?;
        let message = password_reset::reset_email(
            &mut conn,
            &deps.reset_key,
            &deps.payments.templates,
            self.reset_id,
        )
        .await?;
        drop(conn);
        let Some(message) = message else {
            tracing::info!(reset_id = %self.reset_id, "reset request gone or expired: nothing to send");
            return Ok(());
        };
        let provider_id = deps.mailer.send(&message, &run.job_id).await?;
        tracing::info!(tag = %message.tag, provider_id, "e-mail sent");
        Ok(())
    }
}
