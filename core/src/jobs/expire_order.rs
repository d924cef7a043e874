//! `expire_order`: cancels one order whose payment window has closed (scheduled at checkout
//! for the order's `expires_at`; the ticker catches anything this misses).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Job, Serves};

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

    fn serves(&self) -> Serves {
        Serves {
            order_id: Some(self.order_id),
            ..Serves::default()
        }
    }
}

/// `expire_due_orders`: the ticker's sweep of every unpaid order past its deadline, for any
/// whose own `expire_order` job is late or was lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireDueOrders {
    pub tick: chrono::DateTime<chrono::Utc>,
}

impl Job for ExpireDueOrders {
    const NAME: &'static str = "expire_due_orders";
    const MAX_ATTEMPTS: i32 = 3;

    fn idempotency_key(&self) -> Option<String> {
        Some(super::tick_key(Self::NAME, self.tick))
    }
}

impl super::TickJob for ExpireDueOrders {
    const INTERVAL_VAR: &'static str = "TICK_EXPIRE_ORDERS";
    const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

    fn for_tick(tick: chrono::DateTime<chrono::Utc>) -> Self {
        Self { tick }
    }
}
