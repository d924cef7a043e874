//! `reconcile_payment`: applies one stored payment webhook to its payment and order.
//! Enqueued in the transaction that stores the event.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Job;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcilePayment {
    pub webhook_event_id: Uuid,
}

impl Job for ReconcilePayment {
    const NAME: &'static str = "reconcile_payment";
    const MAX_ATTEMPTS: i32 = 25;

    fn idempotency_key(&self) -> Option<String> {
        Some(format!("reconcile:{}", self.webhook_event_id))
    }
}
