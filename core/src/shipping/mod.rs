//! Shipping quotes: one [`ShippingProvider`] interface, chosen by `SHIPPING_PROVIDER`.
//!
//! - `table` (default): a deterministic rate table by region and weight, no network.
//! - `melhorenvio`: Melhor Envio's quote API (many carriers).
//! - `correios`: the Correios contract API (CWS), PAC and SEDEX by default.
//!
//! Every provider answers options in centavos and whole days; callers cache quotes briefly by
//! (origin, destination, package), so providers themselves keep no quote cache.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{
    config::{self, ConfigError},
    http_client::ProviderError,
};

pub mod cached;
pub mod correios;
pub mod melhorenvio;
mod package;
pub mod quote;
pub mod table;

pub use package::{PackageLine, package_from_lines};

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

/// Which provider `SHIPPING_PROVIDER` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShippingProviderKind {
    Table,
    MelhorEnvio,
    Correios,
}

impl std::str::FromStr for ShippingProviderKind {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "table" => Ok(Self::Table),
            "melhorenvio" | "melhor_envio" => Ok(Self::MelhorEnvio),
            "correios" => Ok(Self::Correios),
            other => Err(format!(
                "unknown shipping provider {other:?} (expected table, melhorenvio or correios)"
            )),
        }
    }
}

/// Default bound on one provider call (`SHIPPING_TIMEOUT`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the provider named by `SHIPPING_PROVIDER` (default `table`), with calls bounded by
/// `SHIPPING_TIMEOUT` (default 5s). A missing credential of the chosen provider is reported
/// by name here, at start-up, rather than on the first quote.
pub fn provider_from_env() -> Result<Arc<dyn ShippingProvider>, ConfigError> {
    let kind: ShippingProviderKind =
        config::var_parsed("SHIPPING_PROVIDER", ShippingProviderKind::Table)?;
    let timeout = config::var_duration("SHIPPING_TIMEOUT", DEFAULT_TIMEOUT)?;
    let quote_ttl = config::var_duration("SHIPPING_QUOTE_TTL", Duration::from_secs(600))?;
    let inner: Arc<dyn ShippingProvider> = match kind {
        ShippingProviderKind::Table => Arc::new(table::TableProvider::new()),
        ShippingProviderKind::MelhorEnvio => Arc::new(melhorenvio::MelhorEnvioProvider::new(
            melhorenvio::MelhorEnvioConfig::from_env()?,
            timeout,
        )),
        ShippingProviderKind::Correios => Arc::new(correios::CorreiosProvider::new(
            correios::CorreiosConfig::from_env()?,
            timeout,
        )),
    };
    Ok(Arc::new(cached::CachedProvider::new(
        inner, quote_ttl, 10_000,
    )))
}

/// The CEP parcels leave from (`SHIPPING_SENDER_CEP`, 8 digits; a hyphen is accepted).
pub fn sender_cep_from_env() -> Result<String, ConfigError> {
    let raw = config::var_or("SHIPPING_SENDER_CEP", "01310-100");
    crate::validation::normalize_cep(&raw).ok_or(ConfigError::Invalid {
        name: "SHIPPING_SENDER_CEP",
        reason: "expected 8 digits, e.g. 01310-100".into(),
    })
}

/// True for a CEP in the normalised form providers expect: exactly 8 ASCII digits.
pub(crate) fn is_normalized_cep(cep: &str) -> bool {
    cep.len() == 8 && cep.bytes().all(|b| b.is_ascii_digit())
}

/// Rejects a request whose CEPs are not normalised, before any network call.
pub(crate) fn check_ceps(request: &QuoteRequest) -> Result<(), ProviderError> {
    for (field, cep) in [
        ("origin_cep", &request.origin_cep),
        ("destination_cep", &request.destination_cep),
    ] {
        if !is_normalized_cep(cep) {
            return Err(ProviderError::Rejected {
                status: 422,
                message: format!("{field} must be 8 digits without a hyphen"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_parse_case_insensitively() {
        assert_eq!("Table".parse(), Ok(ShippingProviderKind::Table));
        assert_eq!("melhorenvio".parse(), Ok(ShippingProviderKind::MelhorEnvio));
        assert_eq!("CORREIOS".parse(), Ok(ShippingProviderKind::Correios));
        assert!("fedex".parse::<ShippingProviderKind>().is_err());
    }

    #[test]
    fn ceps_must_be_eight_digits_without_a_hyphen() {
        let mut request = QuoteRequest {
            origin_cep: "01310100".into(),
            destination_cep: "20040-002".into(),
            package: Package {
                weight_grams: 300,
                height_cm: 2,
                width_cm: 11,
                length_cm: 16,
                declared_value_cents: 0,
            },
        };
        assert!(matches!(
            check_ceps(&request),
            Err(ProviderError::Rejected { status: 422, .. })
        ));
        request.destination_cep = "20040002".into();
        assert!(check_ceps(&request).is_ok());
    }
}
