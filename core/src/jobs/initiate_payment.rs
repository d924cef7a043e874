//! `initiate_payment`: asks the payment provider for the charge (PIX code or card intent) of a
//! payment the API recorded. Enqueued by `POST /api/orders/{id}/pay`.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Job, Serves};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitiatePayment {
    pub payment_id: Uuid,
}

impl Job for InitiatePayment {
    const NAME: &'static str = "initiate_payment";
    const MAX_ATTEMPTS: i32 = 5;

    /// One initiation per payment; the provider also deduplicates on the payment id.
    fn idempotency_key(&self) -> Option<String> {
        Some(format!("initiate:{}", self.payment_id))
    }

    fn serves(&self) -> Serves {
        Serves {
            payment_id: Some(self.payment_id),
            ..Serves::default()
        }
    }
}
