//! What the real payment clients share: send with our request id, read the whole answer
//! within the client's timeout, and turn bodies into typed values or classified errors.

use chrono::{DateTime, Utc};
use reqwest::{RequestBuilder, StatusCode, header::HeaderMap};
use serde::de::DeserializeOwned;

use crate::http_client::{self, ProviderError};

pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

pub(crate) async fn send(builder: RequestBuilder) -> Result<Answer, ProviderError> {
    let response = http_client::send(builder)
        .await
        .map_err(ProviderError::from_reqwest)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.map_err(ProviderError::from_reqwest)?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Parses a success body. The body itself stays out of the error: it may hold personal data.
pub(crate) fn parse<T: DeserializeOwned>(provider: &str, body: &str) -> Result<T, ProviderError> {
    serde_json::from_str(body)
        .map_err(|e| ProviderError::Malformed(format!("{provider}: unexpected answer: {e}")))
}

/// A required text field of an answer: present and not blank.
pub(crate) fn required(
    provider: &str,
    field: &str,
    value: Option<String>,
) -> Result<String, ProviderError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ProviderError::Malformed(format!("{provider}: answer without {field}")))
}

pub(crate) fn parse_timestamp(
    provider: &str,
    field: &str,
    value: &str,
) -> Result<DateTime<Utc>, ProviderError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ProviderError::Malformed(format!("{provider}: {field} is not a timestamp")))
}

/// Renders the QR image for a BR Code a provider returned.
pub(crate) fn qr_data_url(provider: &str, br_code: &str) -> Result<String, ProviderError> {
    super::qr::png_data_url(br_code).map_err(|e| {
        ProviderError::Malformed(format!("{provider}: BR Code cannot be drawn as QR: {e}"))
    })
}

/// A short, single-line summary of an error body for logs.
pub(crate) fn summary(body: &str) -> String {
    http_client::snippet(&body.replace(['\n', '\r'], " "), 200)
}
