//! `emit_invoice`: issues the NF-e of a paid order. Enqueued when reconciliation marks the
//! order paid.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Job, Serves};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmitInvoice {
    pub order_id: Uuid,
}

impl Job for EmitInvoice {
    const NAME: &'static str = "emit_invoice";
    const MAX_ATTEMPTS: i32 = 20;

    /// One NF-e per order: the order id is also the provider-side reference.
    fn idempotency_key(&self) -> Option<String> {
        Some(format!("nfe:{}", self.order_id))
    }

    fn serves(&self) -> Serves {
        Serves {
            order_id: Some(self.order_id),
            ..Serves::default()
        }
    }
}
