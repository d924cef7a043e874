//! Shipping quotes: one [`ShippingProvider`] interface, chosen by `SHIPPING_PROVIDER`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::http_client::ProviderError;

/// What is being shipped, summed over the cart or order lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Package {
    pub weight_grams: i64,
    pub height_cm: i32,
    pub width_cm: i32,
    pub length_cm: i32,
    /// Declared value for insurance, in centavos.
    pub declared_value_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QuoteRequest {
    /// 8 digits, no hyphen.
    pub origin_cep: String,
    /// 8 digits, no hyphen.
    pub destination_cep: String,
    pub package: Package,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShippingOption {
    pub carrier: String,
    /// `PAC`, `SEDEX`, … as the customer sees it; checkout selects by this name.
    pub service: String,
    pub price_cents: i64,
    pub days: i32,
}

#[async_trait]
pub trait ShippingProvider: Send + Sync {
    async fn quote(&self, request: &QuoteRequest) -> Result<Vec<ShippingOption>, ProviderError>;
}
