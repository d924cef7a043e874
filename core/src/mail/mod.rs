//! Transactional e-mail: one [`Mailer`] interface, chosen by `MAIL_PROVIDER`.
//! Messages are rendered from templates in `templates.rs` and sent by the worker's email job.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::http_client::ProviderError;

/// A rendered message. `tag` names its kind (`order_placed`, `payment_confirmed`,
/// `order_shipped`, `invoice_issued`, `password_reset`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailMessage {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub tag: String,
}

#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `message`. `idempotency_key` (the job id) makes a retried send a no-op at the
    /// provider. Returns the provider's message id.
    async fn send(
        &self,
        message: &EmailMessage,
        idempotency_key: &str,
    ) -> Result<String, ProviderError>;
}
