//! `expire_order`: cancels one order whose payment window has closed (scheduled at checkout
//! for the order's `expires_at`; the ticker catches anything this misses).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Job;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireOrder {
    pub order_id: Uuid,
}

impl Job for ExpireOrder {
    const NAME: &'static str = "expire_order";
    const MAX_ATTEMPTS: i32 = 25;

    fn idempotency_key(&self) -> Option<String> {
        Some(format!("expire_order:{}", self.order_id))
    }
}
