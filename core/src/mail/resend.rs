//! Resend: `POST /emails` with `Authorization: Bearer re_…` and an `Idempotency-Key`, so a
//! retried job within Resend's 24 h window sends nothing twice.
//!
//! Errors are `{"statusCode", "message", "name"}`. 429 (`rate_limit_exceeded`,
//! `daily_quota_exceeded`), 5xx and 409 `concurrent_idempotent_requests` are retryable (the
//! `retry-after` header, when present, is kept in the message); every other 4xx is
//! permanent, including 409 `invalid_idempotent_request` (same key, different body).

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{EmailMessage, Mailer};
use crate::{
    config::{self, ConfigError},
    http_client::{self, ProviderError},
};

pub const DEFAULT_URL: &str = "https://api.resend.com";
pub const DEFAULT_FROM: &str = "Loja Cart <no-reply@loja.local>";
/// Resend accepts idempotency keys up to this length.
const MAX_IDEMPOTENCY_KEY: usize = 256;

#[derive(Clone)]
pub struct ResendConfig {
    /// `RESEND_URL`.
    pub base_url: String,
    /// `RESEND_API_KEY` (`re_…`).
    pub api_key: SecretString,
    /// `MAIL_FROM`: a sender on a domain verified at Resend.
    pub from: String,
}

impl std::fmt::Debug for ResendConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResendConfig")
            .field("base_url", &self.base_url)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl ResendConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            base_url: config::var_or("RESEND_URL", DEFAULT_URL),
            api_key: SecretString::from(config::required_var("RESEND_API_KEY")?),
            from: config::var_or("MAIL_FROM", DEFAULT_FROM),
        })
    }
}

#[derive(Debug)]
pub struct ResendMailer {
    config: ResendConfig,
    client: reqwest::Client,
}

#[derive(Serialize)]
struct SendBody<'a> {
    from: &'a str,
    to: [&'a str; 1],
    subject: &'a str,
    html: &'a str,
    text: &'a str,
    tags: [Tag; 1],
}

#[derive(Serialize)]
struct Tag {
    name: &'static str,
    value: String,
}

#[derive(Deserialize)]
struct SendAnswer {
    id: String,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    name: String,
}

/// Tag values allow only ASCII letters, digits, `_` and `-`.
fn tag_value(tag: &str) -> String {
    let value: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(256)
        .collect();
    if value.is_empty() {
        "email".into()
    } else {
        value
    }
}

/// Keys longer than Resend accepts are replaced by their SHA-256, still one per key.
fn idempotency_header(key: &str) -> String {
    if key.len() <= MAX_IDEMPOTENCY_KEY {
        key.to_owned()
    } else {
        hex::encode(Sha256::digest(key.as_bytes()))
    }
}

impl ResendMailer {
    pub fn new(config: ResendConfig, timeout: Duration) -> Self {
        Self {
            config,
            client: http_client::build_client(timeout),
        }
    }
}

#[async_trait]
impl Mailer for ResendMailer {
    async fn send(
        &self,
        message: &EmailMessage,
        idempotency_key: &str,
    ) -> Result<String, ProviderError> {
        if idempotency_key.is_empty() {
            return Err(ProviderError::Config(
                "resend needs an idempotency key".into(),
            ));
        }
        let body = SendBody {
            from: &self.config.from,
            to: [&message.to],
            subject: &message.subject,
            html: &message.html,
            text: &message.text,
            tags: [Tag {
                name: "kind",
                value: tag_value(&message.tag),
            }],
        };
        let response = http_client::send(
            self.client
                .post(format!(
                    "{}/emails",
                    self.config.base_url.trim_end_matches('/')
                ))
                .bearer_auth(self.config.api_key.expose_secret())
                .header("Idempotency-Key", idempotency_header(idempotency_key))
                .header(reqwest::header::ACCEPT, "application/json")
                .json(&body),
        )
        .await
        .map_err(ProviderError::from_reqwest)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.map_err(ProviderError::from_reqwest)?;
        if status.is_success() {
            let answer: SendAnswer = serde_json::from_str(&text)
                .map_err(|e| ProviderError::Malformed(format!("resend answer: {e}")))?;
            return Ok(answer.id);
        }
        let error: ErrorBody = serde_json::from_str(&text).unwrap_or_else(|_| ErrorBody {
            message: http_client::snippet(&text, 200),
            name: String::new(),
        });
        let mut summary = format!("{}: {}", error.name, error.message);
        if let Some(seconds) = retry_after {
            summary.push_str(&format!(" (retry after {seconds}s)"));
        }
        let summary = http_client::snippet(&summary, 400);
        if status == reqwest::StatusCode::CONFLICT && error.name == "concurrent_idempotent_requests"
        {
            // The same key is being processed right now: try again shortly.
            return Err(ProviderError::Unavailable(format!("{status}: {summary}")));
        }
        Err(ProviderError::from_status(status, summary))
    }
}

#[cfg(test)]
mod tests;
