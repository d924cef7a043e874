//! Transactional e-mail: one [`Mailer`] interface, chosen by `MAIL_PROVIDER`.
//! Messages are rendered from templates in `templates.rs` and sent by the worker's email job.
//!
//! - `outbox` (default): one JSON file per message in `MAIL_OUTBOX_DIR`, no network.
//! - `resend`: the Resend API, with the job id as idempotency key.

use std::{sync::Arc, time::Duration};

pub mod templates;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    config::{self, ConfigError},
    http_client::ProviderError,
};

pub mod outbox;
pub mod resend;

/// A rendered message. `tag` names its kind (`order_placed`, `payment_confirmed`,
/// `order_shipped`, `invoice_issued`, `email_changed`, `password_reset`).
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

    /// Deletes the copies this mailer keeps of messages sent to any of `recipients` (each the
    /// hex SHA-256 of a lower-cased address, see [`recipient_digest`]): an LGPD erasure.
    /// Returns how many were deleted. A provider that keeps no copy here deletes nothing.
    async fn forget_recipients(&self, recipients: &[String]) -> Result<u64, ProviderError> {
        let _ = recipients;
        Ok(0)
    }
}

/// How an address is named where it must not be stored in clear (a queued erasure job).
pub fn recipient_digest(address: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        address.trim().to_lowercase().as_bytes(),
    ))
}

/// Which mailer `MAIL_PROVIDER` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailProviderKind {
    Outbox,
    Resend,
}

impl std::str::FromStr for MailProviderKind {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "outbox" => Ok(Self::Outbox),
            "resend" => Ok(Self::Resend),
            other => Err(format!(
                "unknown mail provider {other:?} (expected outbox or resend)"
            )),
        }
    }
}

/// Default bound on one call to the mail provider (`MAIL_TIMEOUT`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the mailer named by `MAIL_PROVIDER` (default `outbox`). `resend` needs
/// `RESEND_API_KEY`; the outbox directory is created here, so a path that cannot be
/// written is reported at start-up.
pub fn mailer_from_env() -> Result<Arc<dyn Mailer>, ConfigError> {
    let kind: MailProviderKind = config::var_parsed("MAIL_PROVIDER", MailProviderKind::Outbox)?;
    Ok(match kind {
        MailProviderKind::Outbox => {
            let dir = config::var_or("MAIL_OUTBOX_DIR", outbox::DEFAULT_DIR);
            Arc::new(
                outbox::OutboxMailer::new(&dir).map_err(|e| ConfigError::Invalid {
                    name: "MAIL_OUTBOX_DIR",
                    reason: format!("cannot create {dir}: {e}"),
                })?,
            )
        }
        MailProviderKind::Resend => {
            let timeout = config::var_duration("MAIL_TIMEOUT", DEFAULT_TIMEOUT)?;
            Arc::new(resend::ResendMailer::new(
                resend::ResendConfig::from_env()?,
                timeout,
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_parse() {
        assert_eq!("outbox".parse(), Ok(MailProviderKind::Outbox));
        assert_eq!(" Resend ".parse(), Ok(MailProviderKind::Resend));
        assert!("smtp".parse::<MailProviderKind>().is_err());
    }
}
