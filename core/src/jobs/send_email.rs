//! Sending one rendered e-mail. The worker runs it through the configured `Mailer`.

use serde::{Deserialize, Serialize};

use super::Job;
use crate::mail::EmailMessage;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEmail {
    pub message: EmailMessage,
    /// Set when the same e-mail must never be queued twice (e.g. `password_reset:<token id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl Job for SendEmail {
    const NAME: &'static str = "send_email";
    const MAX_ATTEMPTS: i32 = 10;

    fn idempotency_key(&self) -> Option<String> {
        self.key.clone()
    }
}
