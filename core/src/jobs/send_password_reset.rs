//! Sending the e-mail of one password-reset request. The payload names the request and
//! never carries its link: the worker derives the token when it sends
//! (`users::password_reset::reset_email`), so the queue (kept for days, shown by
//! `cart-worker jobs show`) never holds a usable token.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Job;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendPasswordReset {
    /// The row of `password_reset_tokens`.
    pub reset_id: Uuid,
}

impl Job for SendPasswordReset {
    const NAME: &'static str = "send_password_reset";
    const MAX_ATTEMPTS: i32 = 10;

    fn idempotency_key(&self) -> Option<String> {
        Some(format!(
            "{}:{}",
            crate::users::password_reset::TAG,
            self.reset_id
        ))
    }
}
