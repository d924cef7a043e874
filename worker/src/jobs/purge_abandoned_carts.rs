//! Deletes carts nobody touched for `CART_TTL` (default 30 days).

use cart_core::jobs::maintenance::PurgeAbandonedCarts;
use cart_queue::{Handler, JobError, Run};

use crate::deps::Deps;

impl Handler<Deps> for PurgeAbandonedCarts {
    async fn run(self, deps: &Deps, _run: &Run) -> Result<(), JobError> {
        let mut conn = deps.pool.acquire().await?;
        let purged = cart_core::cart::purge_abandoned(&mut conn, deps.settings.cart_ttl).await?;
        tracing::info!(purged, "purged abandoned carts");
        Ok(())
    }
}
