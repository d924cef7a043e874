//! Deletes stored `Idempotency-Key` answers older than their 24 h.

use cart_core::idempotency::{self, PruneIdempotencyKeys};

use crate::{
    deps::Deps,
    error::JobError,
    handler::{JobHandler, Run},
};

impl JobHandler for PruneIdempotencyKeys {
    async fn run(self, deps: &Deps, _run: &Run) -> Result<(), JobError> {
        let mut conn = deps.pool.acquire().await?;
        let pruned = idempotency::prune_expired(&mut conn).await?;
        tracing::info!(pruned, "pruned expired idempotency keys");
        Ok(())
    }
}
