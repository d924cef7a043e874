//! The one way provider clients make HTTP calls: bounded timeouts, our request id on every
//! call (and, when traces are exported, a client span whose context goes along as
//! `traceparent`), and one error type that tells a job whether to retry.

use std::time::Duration;

use tracing::Instrument;

use crate::telemetry::traces;

/// Why a call to an external provider failed. `is_permanent` tells jobs not to retry.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider timed out")]
    Timeout,
    /// Network failure, 5xx or 429: worth retrying later.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request (4xx other than 429): retrying will not help.
    #[error("provider rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// The provider answered with something we cannot understand.
    #[error("malformed provider answer: {0}")]
    Malformed(String),
    /// Our own configuration is missing or wrong for this provider.
    #[error("provider misconfigured: {0}")]
    Config(String),
}

impl ProviderError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Rejected { .. } | Self::Config(_))
    }

    /// Classifies a transport error from reqwest.
    pub fn from_reqwest(err: reqwest::Error) -> Self {
        if err.is_timeout() {
            Self::Timeout
        } else if err.is_decode() {
            Self::Malformed(err.to_string())
        } else {
            Self::Unavailable(err.to_string())
        }
    }

    /// Classifies a non-success status; `message` is a short summary of the body for logs.
    pub fn from_status(status: reqwest::StatusCode, message: impl Into<String>) -> Self {
        let message = message.into();
        if status.as_u16() == 429 || status.is_server_error() {
            Self::Unavailable(format!("{status}: {message}"))
        } else {
            Self::Rejected {
                status: status.as_u16(),
                message,
            }
        }
    }
}

impl From<ProviderError> for crate::Error {
    fn from(err: ProviderError) -> Self {
        match err {
            ProviderError::Timeout | ProviderError::Unavailable(_) => crate::Error::Unavailable {
                reason: err.to_string(),
                retry_after: Some(Duration::from_secs(5)),
            },
            other => crate::Error::Upstream(other.to_string()),
        }
    }
}

/// A client with connect and total timeouts. Providers keep one and reuse it.
pub fn build_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .user_agent(concat!("cart/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Adds `X-Request-ID` from the current scope, so a provider's logs can be matched to ours.
fn with_request_id(builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match crate::request_id::current() {
        Some(id) => builder.header("X-Request-ID", id),
        None => builder,
    }
}

/// Sends a provider call with our request id. When traces are exported the call gets a
/// client span (method, host, path, status) and the provider the `traceparent` that names it,
/// so its own traces join ours; otherwise this is `builder.send()`.
pub async fn send(builder: reqwest::RequestBuilder) -> Result<reqwest::Response, reqwest::Error> {
    let builder = with_request_id(builder);
    if !traces::exporting() {
        return builder.send().await;
    }
    let (client, request) = builder.build_split();
    let mut request = request?;
    let url = request.url();
    let Some((span, traceparent)) = traces::provider_call(
        request.method().as_str(),
        url.host_str().unwrap_or_default(),
        url.path(),
    ) else {
        return client.execute(request).await;
    };
    if let Ok(value) = reqwest::header::HeaderValue::from_str(&traceparent) {
        request.headers_mut().insert("traceparent", value);
    }
    let response = client.execute(request).instrument(span.clone()).await;
    traces::provider_answered(&span, response.as_ref().ok().map(|r| r.status().as_u16()));
    response
}

/// Keeps at most `max` characters of an upstream body for an error message.
pub fn snippet(body: &str, max: usize) -> String {
    body.chars().take(max).collect()
}
