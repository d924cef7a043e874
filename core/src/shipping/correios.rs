//! Correios contract API (CWS): a bearer token from the posting card, then for each
//! configured service a price call and a delivery-time call.
//!
//! - `POST /token/v1/autentica/cartaopostagem` (Basic `usuario:codigoAcesso`, body
//!   `{"numero": cartão}`) → 201 `{token, emissao, expiraEm, …}`. The token is cached until
//!   shortly before it expires; concurrent quotes wait for one fetch instead of racing.
//! - `GET /preco/v1/nacional/{coProduto}?cepOrigem&cepDestino&psObjeto&tpObjeto=2&comprimento&largura&altura`
//!   → `pcFinal` as a Brazilian decimal string (`"1.234,56"`).
//! - `GET /prazo/v1/nacional/{coProduto}?cepOrigem&cepDestino` → `prazoEntrega` in days.
//!
//! A service the contract or route does not cover (400/404/422 for that service) is
//! skipped, as long as another service answered. Weight goes in grams, dimensions in cm
//! raised to the Correios minimum box (16×11×2 cm).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::{QuoteRequest, ShippingOption, ShippingProvider, check_ceps};
use crate::{
    config::{self, ConfigError},
    http_client::{self, ProviderError},
    money,
};

pub const DEFAULT_URL: &str = "https://api.correios.com.br";
/// Contract codes for PAC and SEDEX.
pub const DEFAULT_SERVICES: &str = "03298:PAC,03220:SEDEX";

const CARRIER: &str = "Correios";
const MIN_LENGTH_CM: i32 = 16;
const MIN_WIDTH_CM: i32 = 11;
const MIN_HEIGHT_CM: i32 = 2;
/// Never keep a token closer than this to its expiry.
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Brasília time, used when the token's timestamps carry no offset.
const BRASILIA_OFFSET_SECS: i32 = -3 * 3600;

/// A service to quote: the contract product code and the name customers see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorreiosService {
    pub code: String,
    pub name: String,
}

/// Parses `CORREIOS_SERVICES`: comma-separated `code` or `code:Name` entries. Known codes
/// get their usual names (03298 PAC, 03220 SEDEX, 04227 PAC Mini, 04162 SEDEX, 04669 PAC).
pub fn parse_services(raw: &str) -> Result<Vec<CorreiosService>, String> {
    let services: Vec<CorreiosService> = raw
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (code, name) = match entry.split_once(':') {
                Some((code, name)) => (code.trim(), Some(name.trim())),
                None => (entry, None),
            };
            if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("service code {code:?} is not numeric"));
            }
            let name = match name {
                Some(name) if !name.is_empty() => name.to_owned(),
                _ => known_service_name(code).unwrap_or(code).to_owned(),
            };
            Ok(CorreiosService {
                code: code.to_owned(),
                name,
            })
        })
        .collect::<Result<_, _>>()?;
    if services.is_empty() {
        return Err("no service codes".into());
    }
    Ok(services)
}

fn known_service_name(code: &str) -> Option<&'static str> {
    match code {
        "03298" | "04669" => Some("PAC"),
        "03220" | "04162" => Some("SEDEX"),
        "04227" => Some("PAC Mini"),
        _ => None,
    }
}

#[derive(Clone)]
pub struct CorreiosConfig {
    /// `CORREIOS_URL`; homologation is `https://apihom.correios.com.br`.
    pub base_url: String,
    /// `CORREIOS_USER`: the "Meu Correios" user name.
    pub user: String,
    /// `CORREIOS_ACCESS_CODE`: the API access code generated for that user.
    pub access_code: SecretString,
    /// `CORREIOS_POSTING_CARD`: the contract's cartão de postagem number.
    pub posting_card: String,
    /// `CORREIOS_SERVICES` (default PAC 03298 and SEDEX 03220).
    pub services: Vec<CorreiosService>,
}

impl std::fmt::Debug for CorreiosConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorreiosConfig")
            .field("base_url", &self.base_url)
            .field("user", &self.user)
            .field("posting_card", &self.posting_card)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl CorreiosConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let services = parse_services(&config::var_or("CORREIOS_SERVICES", DEFAULT_SERVICES))
            .map_err(|reason| ConfigError::Invalid {
                name: "CORREIOS_SERVICES",
                reason,
            })?;
        Ok(Self {
            base_url: config::var_or("CORREIOS_URL", DEFAULT_URL),
            user: config::required_var("CORREIOS_USER")?,
            access_code: SecretString::from(config::required_var("CORREIOS_ACCESS_CODE")?),
            posting_card: config::required_var("CORREIOS_POSTING_CARD")?,
            services,
        })
    }
}

struct CachedToken {
    token: String,
    refresh_at: Instant,
}

pub struct CorreiosProvider {
    config: CorreiosConfig,
    client: reqwest::Client,
    token: Mutex<Option<CachedToken>>,
}

impl std::fmt::Debug for CorreiosProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorreiosProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    token: String,
    emissao: Option<String>,
    #[serde(rename = "expiraEm")]
    expira_em: Option<String>,
    #[serde(rename = "zoneOffset")]
    zone_offset: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PriceAnswer {
    #[serde(rename = "pcFinal")]
    pc_final: Option<String>,
}

#[derive(Debug, Deserialize)]
struct DeadlineAnswer {
    #[serde(rename = "prazoEntrega")]
    prazo_entrega: Option<Value>,
}

/// A timestamp as Correios writes it: usually local time without an offset.
enum Stamp {
    Zoned(DateTime<FixedOffset>),
    Local(NaiveDateTime),
}

fn parse_stamp(raw: &str) -> Option<Stamp> {
    let raw = raw.trim();
    if let Ok(zoned) = DateTime::parse_from_rfc3339(raw) {
        return Some(Stamp::Zoned(zoned));
    }
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(Stamp::Local)
}

/// `zoneOffset` as `-03:00`; Brasília time when absent or unreadable.
fn parse_offset(raw: Option<&str>) -> FixedOffset {
    let parsed = raw.map(str::trim).and_then(|r| {
        let (sign, rest) = match r.as_bytes().first()? {
            b'-' => (-1, &r[1..]),
            b'+' => (1, &r[1..]),
            _ => (1, r),
        };
        let (hours, minutes) = rest.split_once(':').unwrap_or((rest, "0"));
        let seconds = hours.parse::<i32>().ok()? * 3600 + minutes.parse::<i32>().ok()? * 60;
        FixedOffset::east_opt(sign * seconds)
    });
    parsed
        .or_else(|| FixedOffset::east_opt(BRASILIA_OFFSET_SECS))
        .unwrap_or_else(|| Utc.fix())
}

/// How long the token stays valid from now. Prefers `expiraEm − emissao` (both from the
/// server's clock, so our clock's skew does not matter); otherwise `expiraEm − now`.
fn token_lifetime(answer: &TokenAnswer, now: DateTime<Utc>) -> Option<Duration> {
    let expires = parse_stamp(answer.expira_em.as_deref()?)?;
    let issued = answer.emissao.as_deref().and_then(parse_stamp);
    let seconds = match (&expires, issued) {
        (Stamp::Local(expires), Some(Stamp::Local(issued))) => {
            (*expires - issued).num_milliseconds()
        }
        (Stamp::Zoned(expires), Some(Stamp::Zoned(issued))) => {
            (*expires - issued).num_milliseconds()
        }
        (Stamp::Zoned(expires), _) => (expires.with_timezone(&Utc) - now).num_milliseconds(),
        (Stamp::Local(expires), _) => {
            let offset = parse_offset(answer.zone_offset.as_deref());
            let expires = expires.and_local_timezone(offset).single()?;
            (expires.with_timezone(&Utc) - now).num_milliseconds()
        }
    };
    u64::try_from(seconds).ok().map(Duration::from_millis)
}

/// Keep the token until `margin` before expiry, where the margin is five minutes or half
/// the lifetime for short-lived tokens.
fn refresh_after(lifetime: Duration) -> Duration {
    lifetime.saturating_sub(TOKEN_REFRESH_MARGIN.min(lifetime / 2))
}

/// Correios error bodies carry `msgs: [..]` (sometimes `causa` or `message`).
fn error_summary(body: &str) -> String {
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        return http_client::snippet(body, 200);
    };
    let msgs: Vec<&str> = json
        .get("msgs")
        .and_then(Value::as_array)
        .map(|m| m.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let summary = if !msgs.is_empty() {
        msgs.join("; ")
    } else {
        ["message", "causa", "mensagem"]
            .iter()
            .find_map(|key| json.get(*key).and_then(Value::as_str))
            .map(str::to_owned)
            .unwrap_or_else(|| http_client::snippet(body, 200))
    };
    http_client::snippet(&summary, 300)
}

/// A rejection that only means "this service does not serve this route or contract".
fn is_service_unavailable(err: &ProviderError) -> bool {
    matches!(
        err,
        ProviderError::Rejected {
            status: 400 | 404 | 422,
            ..
        }
    )
}

impl CorreiosProvider {
    pub fn new(config: CorreiosConfig, timeout: Duration) -> Self {
        Self {
            config,
            client: http_client::build_client(timeout),
            token: Mutex::new(None),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url.trim_end_matches('/'))
    }

    /// The cached token, or a fresh one. The lock is held across the fetch on purpose.
    async fn bearer(&self) -> Result<String, ProviderError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| t.refresh_at > Instant::now()) {
            return Ok(token.token.clone());
        }
        let answer = self.fetch_token().await?;
        let refresh_at = match token_lifetime(&answer, Utc::now()) {
            Some(lifetime) => Instant::now() + refresh_after(lifetime),
            None => {
                tracing::warn!("correios token without a usable expiraEm; it will not be reused");
                Instant::now()
            }
        };
        let token = answer.token;
        *cached = Some(CachedToken {
            token: token.clone(),
            refresh_at,
        });
        Ok(token)
    }

    /// Drops the cached token if it is still the one that was refused (another call may
    /// already have replaced it).
    async fn forget_token(&self, refused: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.token == refused) {
            *cached = None;
        }
    }

    async fn fetch_token(&self) -> Result<TokenAnswer, ProviderError> {
        let response = http_client::send(
            self.client
                .post(self.url("/token/v1/autentica/cartaopostagem"))
                .basic_auth(
                    &self.config.user,
                    Some(self.config.access_code.expose_secret()),
                )
                .header(reqwest::header::ACCEPT, "application/json")
                .json(&serde_json::json!({ "numero": self.config.posting_card })),
        )
        .await
        .map_err(ProviderError::from_reqwest)?;
        let status = response.status();
        let text = response.text().await.map_err(ProviderError::from_reqwest)?;
        if !status.is_success() {
            return Err(ProviderError::from_status(
                status,
                format!("correios token: {}", error_summary(&text)),
            ));
        }
        let answer: TokenAnswer = serde_json::from_str(&text)
            .map_err(|e| ProviderError::Malformed(format!("correios token: {e}")))?;
        if answer.token.trim().is_empty() {
            return Err(ProviderError::Malformed(
                "correios token: empty token".into(),
            ));
        }
        Ok(answer)
    }

    /// One authenticated GET with `token`; on 401 the cached token is dropped and the call
    /// made once more with a fresh one (a token revoked or expired early on the server).
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ProviderError> {
        let query = serde_urlencoded::to_string(query)
            .map_err(|e| ProviderError::Config(format!("correios query: {e}")))?;
        let url = format!("{}?{query}", self.url(path));
        let mut token = token.to_owned();
        let mut retried = false;
        loop {
            let response = http_client::send(
                self.client
                    .get(&url)
                    .bearer_auth(&token)
                    .header(reqwest::header::ACCEPT, "application/json"),
            )
            .await
            .map_err(ProviderError::from_reqwest)?;
            let status = response.status();
            let text = response.text().await.map_err(ProviderError::from_reqwest)?;
            if status == reqwest::StatusCode::UNAUTHORIZED && !retried {
                retried = true;
                self.forget_token(&token).await;
                token = self.bearer().await?;
                continue;
            }
            if !status.is_success() {
                return Err(ProviderError::from_status(
                    status,
                    format!("correios {path}: {}", error_summary(&text)),
                ));
            }
            return serde_json::from_str(&text)
                .map_err(|e| ProviderError::Malformed(format!("correios {path}: {e}")));
        }
    }

    async fn quote_service(
        &self,
        token: &str,
        service: &CorreiosService,
        request: &QuoteRequest,
    ) -> Result<ShippingOption, ProviderError> {
        let package = &request.package;
        let route = [
            ("cepOrigem", request.origin_cep.clone()),
            ("cepDestino", request.destination_cep.clone()),
        ];
        let mut price_query = route.to_vec();
        price_query.extend([
            ("psObjeto", package.weight_grams.max(1).to_string()),
            ("tpObjeto", "2".to_owned()),
            (
                "comprimento",
                package.length_cm.max(MIN_LENGTH_CM).to_string(),
            ),
            ("largura", package.width_cm.max(MIN_WIDTH_CM).to_string()),
            ("altura", package.height_cm.max(MIN_HEIGHT_CM).to_string()),
        ]);
        let price_path = format!("/preco/v1/nacional/{}", service.code);
        let deadline_path = format!("/prazo/v1/nacional/{}", service.code);
        let (price, deadline) = futures::try_join!(
            self.get_json::<PriceAnswer>(token, &price_path, &price_query),
            self.get_json::<DeadlineAnswer>(token, &deadline_path, &route),
        )?;
        let price_cents = price
            .pc_final
            .as_deref()
            .and_then(money::parse_decimal)
            .ok_or_else(|| {
                ProviderError::Malformed(format!("correios price for {}: no pcFinal", service.code))
            })?;
        let days = match deadline.prazo_entrega {
            Some(Value::Number(n)) => n.as_i64().and_then(|d| i32::try_from(d).ok()),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            ProviderError::Malformed(format!(
                "correios deadline for {}: no prazoEntrega",
                service.code
            ))
        })?;
        Ok(ShippingOption {
            carrier: CARRIER.to_owned(),
            service: service.name.clone(),
            price_cents,
            days,
        })
    }
}

#[async_trait]
impl ShippingProvider for CorreiosProvider {
    async fn quote(&self, request: &QuoteRequest) -> Result<Vec<ShippingOption>, ProviderError> {
        check_ceps(request)?;
        let token = self.bearer().await?;
        let results = futures::future::join_all(
            self.config
                .services
                .iter()
                .map(|service| self.quote_service(&token, service, request)),
        )
        .await;
        let mut options = Vec::with_capacity(results.len());
        let mut first_skipped = None;
        for (service, result) in self.config.services.iter().zip(results) {
            match result {
                Ok(option) => options.push(option),
                Err(err) if is_service_unavailable(&err) => {
                    tracing::info!(service = %service.code, error = %err, "correios service not available; skipped");
                    first_skipped.get_or_insert(err);
                }
                Err(err) => return Err(err),
            }
        }
        match (options.is_empty(), first_skipped) {
            (true, Some(err)) => Err(err),
            _ => Ok(options),
        }
    }
}

#[cfg(test)]
mod tests;
