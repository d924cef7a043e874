//! Keeps the queue table small (see `cart_queue::admin::prune`): `Done` jobs go after
//! `JOBS_DONE_RETENTION`, failed ones after `JOBS_FAILED_RETENTION`.

use cart_core::jobs::maintenance::PruneJobs;
use cart_queue::{Handler, JobError, Run, admin};

use crate::deps::Deps;

impl Handler<Deps> for PruneJobs {
    async fn run(self, deps: &Deps, _run: &Run) -> Result<(), JobError> {
        let settings = &deps.settings;
        let pruned = admin::prune(
            &deps.pool,
            &admin::Retention {
                done: settings.done_retention,
                failed: settings.failed_retention,
                batch: settings.prune_batch,
            },
        )
        .await?;
        tracing::info!(
            done = pruned.done,
            failed = pruned.failed,
            workers = pruned.workers,
            "pruned the job queue"
        );
        Ok(())
    }
}
