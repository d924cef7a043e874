//! Sending one rendered e-mail. The worker runs it through the configured `Mailer`.

use serde::{Deserialize, Serialize};

use uuid::Uuid;

use super::{Job, Serves};
use crate::mail::EmailMessage;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEmail {
    pub message: EmailMessage,
    /// Set when the same e-mail must never be queued twice (e.g. `password_reset:<token id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The order the e-mail is about, so that operators find it from the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<Uuid>,
}

impl Job for SendEmail {
    const NAME: &'static str = "send_email";
    const MAX_ATTEMPTS: i32 = 10;

    fn idempotency_key(&self) -> Option<String> {
        self.key.clone()
    }

    fn serves(&self) -> Serves {
        Serves {
            order_id: self.order_id,
            payment_id: None,
        }
    }
}
