//! `refund_payment`: gives the money of a cancelled paid order back through its payment
//! provider. Enqueued when a paid order is cancelled; executed by the worker.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Job, Serves};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundPayment {
    pub order_id: Uuid,
}

impl Job for RefundPayment {
    const NAME: &'static str = "refund_payment";
    const MAX_ATTEMPTS: i32 = 10;

    /// One refund per order, however often cancellation is attempted.
    fn idempotency_key(&self) -> Option<String> {
        Some(format!("refund:{}", self.order_id))
    }

    fn serves(&self) -> Serves {
        Serves {
            order_id: Some(self.order_id),
            ..Serves::default()
        }
    }
}
