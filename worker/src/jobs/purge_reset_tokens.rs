//! Deletes password-reset tokens that can no longer be used: expired or already used. A
//! reset with such a token is refused the same way whether its row exists or not, so this
//! only keeps the table (and what a copy of the database holds) small.

use cart_core::jobs::maintenance::PurgeResetTokens;
use cart_queue::{Handler, JobError, Run, admin};

use crate::deps::Deps;

impl Handler<Deps> for PurgeResetTokens {
    async fn run(self, deps: &Deps, run: &Run) -> Result<(), JobError> {
        let batch = deps.settings.prune_batch.max(1);
        let mut purged = 0;
        loop {
            let deleted = sqlx::query!(
                "WITH doomed AS (
                     SELECT id FROM password_reset_tokens
                     WHERE expires_at < now() OR used_at IS NOT NULL
                     LIMIT $1
                     FOR UPDATE SKIP LOCKED
                 )
                 DELETE FROM password_reset_tokens AS t USING doomed WHERE t.id = doomed.id",
                batch,
            )
            .execute(&deps.pool)
            .await?
            .rows_affected();
            purged += deleted;
            if deleted < u64::try_from(batch).unwrap_or(u64::MAX) {
                break;
            }
            // Each batch stands alone, so an operator's cancel can stop here safely.
            if admin::cancel_requested(&deps.pool, &run.job_id).await? {
                tracing::info!(purged, "stopped on an operator's request");
                return Err(JobError::cancelled());
            }
        }
        tracing::info!(purged, "purged unusable password-reset tokens");
        Ok(())
    }
}
