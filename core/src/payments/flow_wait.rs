//! Waiting for the initiation job, which announces each finished payment on
//! `payment_ready`: heard through the process's [`ListenHub`], which every waiting request
//! subscribes to.
//!
//! A waiter subscribes first and reads the row second, so a notification sent between the
//! two is never missed; it reads the row again whenever the hub says notifications may have
//! been missed. It also reads it every [`POLL_EVERY`], in case the hub cannot connect or its
//! connection is lost but not yet known to be; and once more at the deadline.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use sqlx::PgPool;
use uuid::Uuid;

use super::flow::{self, Payment, PaymentState, READY_CHANNEL};
use crate::{
    Result,
    listen::{Heard, ListenHub, Subscription},
};

/// How often a waiter re-reads the row when no notification comes.
pub const POLL_EVERY: Duration = Duration::from_millis(250);

/// Shared by the API process; cheap to clone.
#[derive(Clone)]
pub struct PaymentWaiters {
    pool: PgPool,
    hub: Arc<ListenHub>,
}

impl std::fmt::Debug for PaymentWaiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentWaiters").finish_non_exhaustive()
    }
}

impl PaymentWaiters {
    pub fn new(pool: PgPool, hub: Arc<ListenHub>) -> Self {
        Self { pool, hub }
    }

    /// Waits up to `timeout` for `payment_id` to leave `initiating`; returns the row as it
    /// is then (still `initiating` when the job did not finish in time).
    pub async fn wait(&self, payment_id: Uuid, timeout: Duration) -> Result<Payment> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut ready = self.hub.subscribe(READY_CHANNEL);
        loop {
            let payment = {
                let mut conn = self.pool.acquire().await?;
                flow::get(&mut conn, payment_id).await?
            };
            if payment.status != PaymentState::Initiating || tokio::time::Instant::now() >= deadline
            {
                return Ok(payment);
            }
            let pause =
                tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + POLL_EVERY));
            tokio::select! {
                () = pause => {}
                () = next_for(&mut ready, payment_id) => {}
            }
        }
    }
}

/// Resolves when `payment_id` is announced, or when announcements may have been missed:
/// either way, read the row again.
async fn next_for(ready: &mut Subscription, payment_id: Uuid) {
    loop {
        match ready.next().await {
            Some(Heard::Notice(id)) if Uuid::parse_str(&id).is_ok_and(|id| id == payment_id) => {
                return;
            }
            Some(Heard::Missed) => return,
            Some(Heard::Notice(_) | Heard::Lost) => {}
            // The hub stopped: the poll interval is all that is left.
            None => std::future::pending::<()>().await,
        }
    }
}
