//! Payment providers: PIX BR Codes and QR images, the PIX and card provider clients, webhook
//! signature verification and a circuit breaker shared through PostgreSQL.
//!
//! This layer makes no HTTP routes and writes no payments: the pay route, the webhook routes
//! and reconciliation build on it. Money is integer centavos throughout; provider calls fail
//! with [`ProviderError`](crate::http_client::ProviderError), whose `is_permanent` tells a job
//! whether to retry.

pub mod brcode;
pub mod breaker;
pub mod flow;
pub mod flow_refund;
pub mod flow_wait;
mod http;
pub mod openpix;
pub mod privacy;
pub mod propay;
pub mod provider;
pub mod qr;
pub mod reconcile;
pub mod sandbox;
pub mod settings;
pub mod signature;
pub mod stripe;
pub mod webhooks;

pub use breaker::{BreakerConfig, BreakerError, CircuitBreaker, Permit};
pub use provider::{
    CardIntent, CardIntentRequest, CardProvider, CardRefundRequest, Payer, PixCharge,
    PixChargeRequest, PixProvider, PixRefundRequest, Refund, RefundStatus,
    is_manual_refund_required,
};
pub use settings::{PaymentProviders, providers_from_env, webhook_verifiers_from_env};
pub use signature::{SignatureError, WebhookVerifiers};
