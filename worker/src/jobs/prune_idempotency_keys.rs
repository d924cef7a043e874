//! Deletes stored `Idempotency-Key` answers older than their 24 h.

use cart_core::idempotency::{self, PruneIdempotencyKeys};
use cart_queue::{Handler, JobError, Run};

use crate::deps::Deps;

impl Handler<Deps> for PruneIdempotencyKeys {
    async fn run(self, deps: &Deps, _run: &Run) -> Result<(), JobError> {
        let mut conn = deps.pool.acquire().await?;
        let pruned = idempotency::prune_expired(&mut conn).await?;
        tracing::info!(pruned, "pruned expired idempotency keys");
        Ok(())
    }
}
