//! Melhor Envio quotes: `POST /api/v2/me/shipment/calculate`.
//!
//! The package is sent as one product (cm, kg, unit insurance value in reais). The answer is
//! an array of services; a service that does not serve the route carries an `error` and is
//! skipped. Prices are decimal strings; `custom_price`/`custom_delivery_time` include the
//! account's own rules and win over `price`/`delivery_time`.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{QuoteRequest, ShippingOption, ShippingProvider, check_ceps};
use crate::{
    config::{self, ConfigError},
    http_client::{self, ProviderError},
    money,
};

pub const DEFAULT_URL: &str = "https://melhorenvio.com.br";

#[derive(Clone)]
pub struct MelhorEnvioConfig {
    /// `MELHORENVIO_URL`; the sandbox is `https://sandbox.melhorenvio.com.br`.
    pub base_url: String,
    /// `MELHORENVIO_TOKEN`: a personal or OAuth token with the `shipping-calculate` scope.
    pub token: SecretString,
    /// `MELHORENVIO_USER_AGENT`: required by Melhor Envio, `App name (tech-contact@domain)`.
    pub user_agent: String,
    /// `MELHORENVIO_SERVICES`: optional comma-separated service ids (`1,2`); all when unset.
    pub services: Option<String>,
}

impl std::fmt::Debug for MelhorEnvioConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelhorEnvioConfig")
            .field("base_url", &self.base_url)
            .field("user_agent", &self.user_agent)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl MelhorEnvioConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: config::var_or("MELHORENVIO_URL", DEFAULT_URL),
            token: SecretString::from(config::required_var("MELHORENVIO_TOKEN")?),
            user_agent: config::required_var("MELHORENVIO_USER_AGENT")?,
            services: config::var("MELHORENVIO_SERVICES"),
        })
    }
}

#[derive(Debug)]
pub struct MelhorEnvioProvider {
    config: MelhorEnvioConfig,
    client: reqwest::Client,
}

impl MelhorEnvioProvider {
    pub fn new(config: MelhorEnvioConfig, timeout: Duration) -> Self {
        Self {
            config,
            client: http_client::build_client(timeout),
        }
    }
}

#[derive(Serialize)]
struct CalculateBody<'a> {
    from: PostalCode<'a>,
    to: PostalCode<'a>,
    products: [Product; 1],
    options: Options,
    #[serde(skip_serializing_if = "Option::is_none")]
    services: Option<&'a str>,
}

#[derive(Serialize)]
struct PostalCode<'a> {
    postal_code: &'a str,
}

#[derive(Serialize)]
struct Product {
    id: &'static str,
    width: i32,
    height: i32,
    length: i32,
    /// Kilograms.
    weight: f64,
    /// Reais, per unit.
    insurance_value: f64,
    quantity: i32,
}

#[derive(Serialize)]
struct Options {
    receipt: bool,
    own_hand: bool,
}

/// One element of the answer. Everything is optional because a service with `error`
/// comes back with little more than its id and name.
#[derive(Debug, Deserialize)]
struct Service {
    name: Option<String>,
    price: Option<Value>,
    custom_price: Option<Value>,
    delivery_time: Option<Value>,
    custom_delivery_time: Option<Value>,
    error: Option<Value>,
    company: Option<Company>,
}

#[derive(Debug, Deserialize)]
struct Company {
    name: Option<String>,
}

/// With one service requested the API may answer a bare object instead of an array.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CalculateAnswer {
    Many(Vec<Service>),
    One(Box<Service>),
}

/// Reais as a string (`"23.90"`) or, leniently, a JSON number, into centavos.
fn price_cents(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => money::parse_decimal(s),
        Value::Number(n) => money::parse_decimal(&n.to_string()),
        _ => None,
    }
}

fn whole_days(value: &Value) -> Option<i32> {
    match value {
        Value::Number(n) => n.as_i64().and_then(|d| i32::try_from(d).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn has_error(service: &Service) -> bool {
    match &service.error {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    }
}

fn to_option(service: Service) -> Option<ShippingOption> {
    let name = service.name.clone().unwrap_or_default();
    if has_error(&service) {
        tracing::debug!(service = %name, error = ?service.error, "melhor envio service unavailable for this route");
        return None;
    }
    let price = service
        .custom_price
        .as_ref()
        .and_then(price_cents)
        .or_else(|| service.price.as_ref().and_then(price_cents));
    let days = service
        .custom_delivery_time
        .as_ref()
        .and_then(whole_days)
        .or_else(|| service.delivery_time.as_ref().and_then(whole_days));
    let carrier = service.company.and_then(|c| c.name);
    match (price, days, carrier) {
        (Some(price_cents), Some(days), Some(carrier)) if !name.is_empty() => {
            Some(ShippingOption {
                carrier,
                service: name,
                price_cents,
                days,
            })
        }
        _ => {
            tracing::warn!(service = %name, "melhor envio service without price, days or carrier; skipped");
            None
        }
    }
}

/// The Laravel error body: `{"message": "...", "errors": {"field": ["..."]}}`.
fn error_summary(body: &str) -> String {
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        return http_client::snippet(body, 200);
    };
    let mut summary = json
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message")
        .to_owned();
    if let Some(errors) = json.get("errors").and_then(Value::as_object) {
        let details: Vec<String> = errors
            .iter()
            .map(|(field, messages)| {
                let text = messages
                    .as_array()
                    .map(|m| {
                        m.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default();
                format!("{field}: {text}")
            })
            .collect();
        if !details.is_empty() {
            summary = format!("{summary} ({})", details.join(", "));
        }
    }
    http_client::snippet(&summary, 300)
}

#[async_trait]
impl ShippingProvider for MelhorEnvioProvider {
    async fn quote(&self, request: &QuoteRequest) -> Result<Vec<ShippingOption>, ProviderError> {
        check_ceps(request)?;
        let package = &request.package;
        let body = CalculateBody {
            from: PostalCode {
                postal_code: &request.origin_cep,
            },
            to: PostalCode {
                postal_code: &request.destination_cep,
            },
            products: [Product {
                id: "package",
                width: package.width_cm.max(1),
                height: package.height_cm.max(1),
                length: package.length_cm.max(1),
                weight: package.weight_grams.max(1) as f64 / 1000.0,
                insurance_value: package.declared_value_cents.max(0) as f64 / 100.0,
                quantity: 1,
            }],
            options: Options {
                receipt: false,
                own_hand: false,
            },
            services: self.config.services.as_deref(),
        };
        let url = format!(
            "{}/api/v2/me/shipment/calculate",
            self.config.base_url.trim_end_matches('/')
        );
        let response = http_client::send(
            self.client
                .post(url)
                .bearer_auth(self.config.token.expose_secret())
                .header(reqwest::header::USER_AGENT, &self.config.user_agent)
                .header(reqwest::header::ACCEPT, "application/json")
                .json(&body),
        )
        .await
        .map_err(ProviderError::from_reqwest)?;
        let status = response.status();
        let text = response.text().await.map_err(ProviderError::from_reqwest)?;
        if !status.is_success() {
            return Err(ProviderError::from_status(status, error_summary(&text)));
        }
        let answer: CalculateAnswer = serde_json::from_str(&text)
            .map_err(|e| ProviderError::Malformed(format!("melhor envio quote: {e}")))?;
        let services = match answer {
            CalculateAnswer::Many(services) => services,
            CalculateAnswer::One(service) => vec![*service],
        };
        Ok(services.into_iter().filter_map(to_option).collect())
    }
}

#[cfg(test)]
mod tests;
