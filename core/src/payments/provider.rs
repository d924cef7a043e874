//! The interfaces the payment flow calls, whichever provider is configured.
//!
//! Every call is idempotent on our payment id: a retried job that already created a charge
//! gets the same charge back (the provider deduplicates on the payment id, or the sandbox
//! derives everything from it), never a second one.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::http_client::ProviderError;

/// Who pays. `cpf` is 11 digits without punctuation.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payer {
    pub name: String,
    pub cpf: String,
    pub email: String,
}

impl std::fmt::Debug for Payer {
    /// Logs show only the last two CPF digits and no e-mail.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tail: String = self
            .cpf
            .chars()
            .skip(self.cpf.len().saturating_sub(2))
            .collect();
        f.debug_struct("Payer")
            .field("name", &self.name)
            .field("cpf", &format!("*********{tail}"))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PixChargeRequest {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub order_number: String,
    pub amount_cents: i64,
    /// Shown to the payer by their bank app where the provider supports it.
    pub description: String,
    pub payer: Payer,
    /// How long the code stays payable: `PIX_EXPIRES_IN`, cut short so that the code never
    /// outlives its order's payment deadline.
    pub expires_in: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixCharge {
    /// The PIX transaction id the payment webhook refers to.
    pub txid: String,
    /// The BR Code ("PIX copia e cola").
    pub copy_paste: String,
    /// The BR Code as `data:image/png;base64,…`.
    pub qr_code: String,
    /// A hosted image or payment page, when the provider offers one.
    pub qr_code_url: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// What the provider calls this charge (for look-ups, refunds and support).
    pub provider_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PixRefundRequest {
    pub payment_id: Uuid,
    pub txid: String,
    pub provider_reference: String,
    pub amount_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardIntentRequest {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub order_number: String,
    pub amount_cents: i64,
    pub description: String,
    pub payer: Payer,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardIntent {
    /// The payment intent id, `pi_…`.
    pub provider_reference: String,
    /// Handed to the browser to confirm the payment; never logged.
    pub client_secret: String,
}

impl std::fmt::Debug for CardIntent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardIntent")
            .field("provider_reference", &self.provider_reference)
            .field("client_secret", &"[REDACTED]")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRefundRequest {
    pub payment_id: Uuid,
    /// The payment intent, `pi_…`.
    pub provider_reference: String,
    pub amount_cents: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Accepted; the money moves later (a webhook or reconciliation confirms it).
    Pending,
    Succeeded,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub refund_id: String,
    pub status: RefundStatus,
}

#[async_trait]
pub trait PixProvider: Send + Sync + std::fmt::Debug {
    /// Stable name: the circuit breaker's key and what a payment records as its provider.
    fn name(&self) -> &'static str;

    async fn create_charge(&self, request: &PixChargeRequest) -> Result<PixCharge, ProviderError>;

    /// Returns money to the payer. A provider without a refund API answers with
    /// [`manual_refund_required`], a permanent error the caller flags for an operator.
    async fn refund(&self, request: &PixRefundRequest) -> Result<Refund, ProviderError>;
}

#[async_trait]
pub trait CardProvider: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;

    async fn create_intent(&self, request: &CardIntentRequest)
    -> Result<CardIntent, ProviderError>;

    async fn refund(&self, request: &CardRefundRequest) -> Result<Refund, ProviderError>;
}

/// The message of the error a provider without a refund API returns.
pub const MANUAL_REFUND_REQUIRED: &str = "manual refund required";

/// The permanent error for "this provider cannot refund through its API": an operator must
/// return the money by hand. The status is 501 (Not Implemented) because no call was made.
pub fn manual_refund_required(provider: &str) -> ProviderError {
    ProviderError::Rejected {
        status: 501,
        message: format!("{MANUAL_REFUND_REQUIRED}: {provider} has no refund API"),
    }
}

pub fn is_manual_refund_required(err: &ProviderError) -> bool {
    matches!(err, ProviderError::Rejected { status: 501, message } if message.starts_with(MANUAL_REFUND_REQUIRED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payer_debug_hides_most_of_the_cpf_and_the_email() {
        let payer = Payer {
            name: "Maria".into(),
            cpf: "52998224725".into(),
            email: "maria@example.com".into(),
        };
        let shown = format!("{payer:?}");
        assert!(shown.contains("*********25"), "{shown}");
        assert!(!shown.contains("529982247"), "{shown}");
        assert!(!shown.contains("maria@example.com"), "{shown}");
    }

    #[test]
    fn a_card_intent_never_prints_its_client_secret() {
        let intent = CardIntent {
            provider_reference: "pi_1".into(),
            client_secret: "pi_1_secret_abc".into(),
        };
        assert!(!format!("{intent:?}").contains("secret_abc"));
    }

    #[test]
    fn manual_refunds_are_permanent_and_recognisable() {
        let err = manual_refund_required("openpix");
        assert!(err.is_permanent());
        assert!(is_manual_refund_required(&err));
        assert!(!is_manual_refund_required(&ProviderError::Rejected {
            status: 400,
            message: "bad".into()
        }));
    }
}
