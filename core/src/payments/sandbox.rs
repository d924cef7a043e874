//! The default providers: no network, deterministic, and close enough to the real ones that
//! the whole payment flow runs locally.
//!
//! PIX: a real, scannable BR Code for `PIX_KEY` with the amount and a txid in field 62/05.
//! Real dynamic codes carry `***` there (the txid lives behind the location URL); the sandbox
//! uses a static code carrying our txid so a simulated ProPay-style webhook (`pix.paid` with
//! that txid, signed with `PROPAY_TO_GO_SECRET`) can point back at the payment. The txid is
//! the payment id's 32 hex digits, inside the BCB's `[a-zA-Z0-9]{26,35}`; bank apps may refuse
//! a static code whose txid is longer than 25, which does not matter for a sandbox.
//!
//! Card: a payment-intent-shaped `pi_<payment id>` with a fresh `client_secret`.

use async_trait::async_trait;
use chrono::Utc;
use rand::{Rng, distr::Alphanumeric};
use uuid::Uuid;

use super::{
    brcode::{self, BrCode, BrCodeError},
    provider::{
        CardIntent, CardIntentRequest, CardProvider, CardRefundRequest, PixCharge,
        PixChargeRequest, PixProvider, PixRefundRequest, Refund, RefundStatus,
    },
    qr,
};
use crate::{config::ConfigError, http_client::ProviderError};

/// Where the sandbox's PIX codes send money: the key must be one the merchant owns if anyone
/// ever scans a sandbox code with a real bank app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPixConfig {
    pub key: String,
    pub merchant_name: String,
    pub merchant_city: String,
}

impl Default for SandboxPixConfig {
    fn default() -> Self {
        Self {
            key: DEFAULT_PIX_KEY.to_owned(),
            merchant_name: DEFAULT_MERCHANT_NAME.to_owned(),
            merchant_city: DEFAULT_MERCHANT_CITY.to_owned(),
        }
    }
}

/// A random EVP ("chave aleatória") key that belongs to nobody we know of.
pub const DEFAULT_PIX_KEY: &str = "5f84a4c5-c5cb-4599-9f13-7eb4d419dacc";
pub const DEFAULT_MERCHANT_NAME: &str = "LOJA CART";
pub const DEFAULT_MERCHANT_CITY: &str = "SAO PAULO";

#[derive(Debug, Clone)]
pub struct SandboxPix {
    config: SandboxPixConfig,
}

impl SandboxPix {
    /// Checks the key, name and city once, so a bad setting fails at start-up naming the
    /// variable rather than at the first payment.
    pub fn new(config: SandboxPixConfig) -> Result<Self, ConfigError> {
        let sample = BrCode::static_pix(&config.key, &config.merchant_name, &config.merchant_city)
            .amount_cents(100)
            .txid(txid_for(Uuid::nil()))
            .encode();
        match sample {
            Ok(_) => Ok(Self { config }),
            Err(BrCodeError::EmptyField(59)) => Err(invalid(
                "PIX_MERCHANT_NAME",
                "needs ASCII letters or digits",
            )),
            Err(BrCodeError::EmptyField(60)) => Err(invalid(
                "PIX_MERCHANT_CITY",
                "needs ASCII letters or digits",
            )),
            Err(err) => Err(invalid("PIX_KEY", &err.to_string())),
        }
    }
}

fn invalid(name: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.to_owned(),
    }
}

/// The sandbox txid of a payment: its 32 hex digits.
pub fn txid_for(payment_id: Uuid) -> String {
    payment_id.simple().to_string()
}

#[async_trait]
impl PixProvider for SandboxPix {
    fn name(&self) -> &'static str {
        "sandbox_pix"
    }

    async fn create_charge(&self, request: &PixChargeRequest) -> Result<PixCharge, ProviderError> {
        let txid = txid_for(request.payment_id);
        let copy_paste = BrCode::static_pix(
            &self.config.key,
            &self.config.merchant_name,
            &self.config.merchant_city,
        )
        .amount_cents(request.amount_cents)
        .txid(&txid)
        .encode()
        .map_err(|err| match err {
            BrCodeError::InvalidAmount => ProviderError::Rejected {
                status: 422,
                message: format!(
                    "amount must be between 1 and {} centavos",
                    brcode::MAX_AMOUNT_CENTS
                ),
            },
            other => ProviderError::Config(format!("sandbox BR Code: {other}")),
        })?;
        let qr_code = qr::png_data_url(&copy_paste)
            .map_err(|e| ProviderError::Config(format!("sandbox QR code: {e}")))?;
        let expires_in = chrono::Duration::from_std(request.expires_in)
            .map_err(|_| ProviderError::Config("PIX expiry out of range".into()))?;
        Ok(PixCharge {
            provider_reference: txid.clone(),
            txid,
            copy_paste,
            qr_code,
            qr_code_url: None,
            expires_at: Utc::now() + expires_in,
        })
    }

    async fn refund(&self, request: &PixRefundRequest) -> Result<Refund, ProviderError> {
        Ok(Refund {
            refund_id: format!("sandbox_refund_{}", request.payment_id.simple()),
            status: RefundStatus::Succeeded,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct SandboxCard;

#[async_trait]
impl CardProvider for SandboxCard {
    fn name(&self) -> &'static str {
        "sandbox_card"
    }

    async fn create_intent(
        &self,
        request: &CardIntentRequest,
    ) -> Result<CardIntent, ProviderError> {
        if request.amount_cents <= 0 {
            return Err(ProviderError::Rejected {
                status: 400,
                message: "amount must be positive".into(),
            });
        }
        let id = format!("pi_{}", request.payment_id.simple());
        let random: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(24)
            .map(char::from)
            .collect();
        Ok(CardIntent {
            client_secret: format!("{id}_secret_{random}"),
            provider_reference: id,
        })
    }

    async fn refund(&self, request: &CardRefundRequest) -> Result<Refund, ProviderError> {
        Ok(Refund {
            refund_id: format!("re_{}", request.payment_id.simple()),
            status: RefundStatus::Succeeded,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::payments::provider::Payer;

    fn pix_request(amount_cents: i64) -> PixChargeRequest {
        PixChargeRequest {
            payment_id: Uuid::now_v7(),
            order_id: Uuid::now_v7(),
            order_number: "1001".into(),
            amount_cents,
            description: "Pedido 1001".into(),
            payer: Payer {
                name: "Maria".into(),
                cpf: "52998224725".into(),
                email: "maria@example.com".into(),
            },
            expires_in: Duration::from_secs(1800),
        }
    }

    #[tokio::test]
    async fn a_sandbox_pix_charge_is_a_valid_br_code_for_the_amount_and_txid() {
        let sandbox = SandboxPix::new(SandboxPixConfig::default()).unwrap();
        let request = pix_request(12_345);
        let before = Utc::now();
        let charge = sandbox.create_charge(&request).await.unwrap();

        assert_eq!(charge.txid.len(), 32);
        assert!(charge.txid.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(charge.txid, request.payment_id.simple().to_string());

        let code = BrCode::parse(&charge.copy_paste).unwrap();
        assert_eq!(code.amount_cents, Some(12_345));
        assert_eq!(code.txid.as_deref(), Some(charge.txid.as_str()));
        assert_eq!(code.merchant_account.key.as_deref(), Some(DEFAULT_PIX_KEY));
        assert_eq!(code.merchant_name, "LOJA CART");
        assert_eq!(code.merchant_city, "SAO PAULO");

        assert!(charge.qr_code.starts_with("data:image/png;base64,"));
        assert_eq!(charge.qr_code_url, None);
        let expected_expiry = before + chrono::Duration::seconds(1800);
        assert!((charge.expires_at - expected_expiry).num_seconds().abs() <= 2);
    }

    #[tokio::test]
    async fn the_same_payment_gets_the_same_sandbox_code() {
        let sandbox = SandboxPix::new(SandboxPixConfig::default()).unwrap();
        let request = pix_request(500);
        let first = sandbox.create_charge(&request).await.unwrap();
        let second = sandbox.create_charge(&request).await.unwrap();
        assert_eq!(first.copy_paste, second.copy_paste);
        assert_eq!(first.txid, second.txid);
    }

    #[tokio::test]
    async fn accents_in_the_merchant_settings_are_stripped() {
        let sandbox = SandboxPix::new(SandboxPixConfig {
            key: "loja@example.com.br".into(),
            merchant_name: "Loja São João".into(),
            merchant_city: "Ribeirão Preto".into(),
        })
        .unwrap();
        let charge = sandbox.create_charge(&pix_request(100)).await.unwrap();
        let code = BrCode::parse(&charge.copy_paste).unwrap();
        assert_eq!(code.merchant_name, "Loja Sao Joao");
        assert_eq!(code.merchant_city, "Ribeirao Preto");
    }

    #[tokio::test]
    async fn a_zero_amount_is_a_permanent_rejection() {
        let sandbox = SandboxPix::new(SandboxPixConfig::default()).unwrap();
        let err = sandbox.create_charge(&pix_request(0)).await.unwrap_err();
        assert!(err.is_permanent(), "{err}");
    }

    #[test]
    fn unusable_settings_are_reported_by_variable_name() {
        let with = |key: &str, name: &str, city: &str| {
            SandboxPix::new(SandboxPixConfig {
                key: key.into(),
                merchant_name: name.into(),
                merchant_city: city.into(),
            })
            .unwrap_err()
            .to_string()
        };
        assert!(with(&"k".repeat(78), "LOJA", "SP").contains("PIX_KEY"));
        assert!(with("key", "日本", "SP").contains("PIX_MERCHANT_NAME"));
        assert!(with("key", "LOJA", "   ").contains("PIX_MERCHANT_CITY"));
    }

    #[tokio::test]
    async fn a_sandbox_card_intent_looks_like_stripes() {
        let request = CardIntentRequest {
            payment_id: Uuid::now_v7(),
            order_id: Uuid::now_v7(),
            order_number: "1001".into(),
            amount_cents: 2000,
            description: "Pedido 1001".into(),
            payer: pix_request(1).payer,
        };
        let first = SandboxCard.create_intent(&request).await.unwrap();
        let second = SandboxCard.create_intent(&request).await.unwrap();
        let id = format!("pi_{}", request.payment_id.simple());
        assert_eq!(first.provider_reference, id);
        assert_eq!(second.provider_reference, id);
        assert!(first.client_secret.starts_with(&format!("{id}_secret_")));
        assert_ne!(first.client_secret, second.client_secret);

        let refund = SandboxCard
            .refund(&CardRefundRequest {
                payment_id: request.payment_id,
                provider_reference: id,
                amount_cents: 2000,
            })
            .await
            .unwrap();
        assert_eq!(refund.status, RefundStatus::Succeeded);
    }
}
