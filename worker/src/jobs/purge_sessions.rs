//! Deletes sessions that can no longer be used (expired or ended). A token naming a deleted
//! session is refused the same way, so this only keeps the table, and the per-request
//! lookup's index, small.

use cart_core::{jobs::maintenance::PurgeSessions, users::sessions};
use cart_queue::{Handler, JobError, Run, admin};

use crate::deps::Deps;

impl Handler<Deps> for PurgeSessions {
    async fn run(self, deps: &Deps, run: &Run) -> Result<(), JobError> {
        let batch = deps.settings.prune_batch.max(1);
        let mut purged = 0;
        loop {
            let mut conn = deps.pool.acquire().await?;
            let deleted = sessions::purge_unusable(&mut conn, batch).await?;
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
        tracing::info!(purged, "purged unusable sessions");
        Ok(())
    }
}
