//! Stripe card payments through PaymentIntents, with plain form-encoded calls.
//!
//! - `POST /v1/payment_intents`: `amount` (centavos), `currency=brl`,
//!   `automatic_payment_methods[enabled]=true`, `metadata[order_id]`, `metadata[payment_id]`,
//!   `Idempotency-Key: <payment id>`; the browser confirms it with `client_secret`.
//! - `POST /v1/refunds`: `payment_intent`, `amount`, `Idempotency-Key: refund-<payment id>`.
//!
//! Errors are `{"error": {"type", "code", "message"}}`. `card_error` and
//! `invalid_request_error` (and any other 4xx) are permanent; `api_error`, 429 and 5xx are
//! retried. When Stripe sends `Stripe-Should-Retry`, its answer wins.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{
    http::{self, Answer},
    provider::{
        CardIntent, CardIntentRequest, CardProvider, CardRefundRequest, Refund, RefundStatus,
    },
};
use crate::http_client::{self, ProviderError};

const NAME: &str = "stripe";
pub const DEFAULT_URL: &str = "https://api.stripe.com";

#[derive(Debug, Clone)]
pub struct StripeConfig {
    pub base_url: String,
    /// `STRIPE_SECRET_KEY`, `sk_test_…` or `sk_live_…`.
    pub secret_key: SecretString,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct StripeClient {
    config: StripeConfig,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct PaymentIntentAnswer {
    id: Option<String>,
    client_secret: Option<String>,
}

#[derive(Deserialize)]
struct RefundAnswer {
    id: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: StripeError,
}

#[derive(Deserialize)]
struct StripeError {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    message: Option<String>,
}

impl StripeClient {
    pub fn new(config: StripeConfig) -> Self {
        let http = http_client::build_client(config.timeout);
        Self { config, http }
    }

    async fn post_form(
        &self,
        path: &str,
        idempotency_key: &str,
        form: &[(&str, String)],
    ) -> Result<Answer, ProviderError> {
        let url = format!("{}{path}", self.config.base_url.trim_end_matches('/'));
        let call = self
            .http
            .post(url)
            .bearer_auth(self.config.secret_key.expose_secret())
            .header("Idempotency-Key", idempotency_key)
            .form(form);
        let answer = http::send(call).await?;
        if answer.status.is_success() {
            Ok(answer)
        } else {
            Err(error_from(&answer))
        }
    }
}

fn error_from(answer: &Answer) -> ProviderError {
    let parsed = serde_json::from_str::<ErrorAnswer>(&answer.body).ok();
    let kind = parsed.as_ref().and_then(|e| e.error.kind.clone());
    let message = match &parsed {
        Some(ErrorAnswer { error }) => format!(
            "{NAME}: {}/{}: {}",
            error.kind.as_deref().unwrap_or("unknown"),
            error.code.as_deref().unwrap_or("-"),
            error.message.as_deref().unwrap_or("")
        ),
        None => format!("{NAME}: {}", http::summary(&answer.body)),
    };
    let should_retry = answer
        .headers
        .get("stripe-should-retry")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.eq_ignore_ascii_case("true"));
    let retryable = should_retry.unwrap_or_else(|| {
        answer.status.as_u16() == 429
            || answer.status.is_server_error()
            || matches!(kind.as_deref(), Some("api_error" | "rate_limit_error"))
    });
    if retryable {
        ProviderError::Unavailable(format!("{}: {message}", answer.status))
    } else {
        ProviderError::Rejected {
            status: answer.status.as_u16(),
            message,
        }
    }
}

#[async_trait]
impl CardProvider for StripeClient {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn create_intent(
        &self,
        request: &CardIntentRequest,
    ) -> Result<CardIntent, ProviderError> {
        let form = [
            ("amount", request.amount_cents.to_string()),
            ("currency", "brl".to_owned()),
            ("automatic_payment_methods[enabled]", "true".to_owned()),
            ("description", request.description.clone()),
            ("metadata[order_id]", request.order_id.to_string()),
            ("metadata[order_number]", request.order_number.clone()),
            ("metadata[payment_id]", request.payment_id.to_string()),
        ];
        let answer = self
            .post_form(
                "/v1/payment_intents",
                &request.payment_id.to_string(),
                &form,
            )
            .await?;
        let intent: PaymentIntentAnswer = http::parse(NAME, &answer.body)?;
        let id = http::required(NAME, "id", intent.id)?;
        if !id.starts_with("pi_") {
            return Err(ProviderError::Malformed(format!(
                "{NAME}: {id} is not a payment intent id"
            )));
        }
        let client_secret = http::required(NAME, "client_secret", intent.client_secret)?;
        Ok(CardIntent {
            provider_reference: id,
            client_secret,
        })
    }

    async fn refund(&self, request: &CardRefundRequest) -> Result<Refund, ProviderError> {
        let form = [
            ("payment_intent", request.provider_reference.clone()),
            ("amount", request.amount_cents.to_string()),
            ("metadata[payment_id]", request.payment_id.to_string()),
        ];
        let answer = self
            .post_form(
                "/v1/refunds",
                &format!("refund-{}", request.payment_id),
                &form,
            )
            .await?;
        let refund: RefundAnswer = http::parse(NAME, &answer.body)?;
        let refund_id = http::required(NAME, "id", refund.id)?;
        let status = match refund.status.as_deref() {
            Some("succeeded") => RefundStatus::Succeeded,
            Some("pending" | "requires_action") => RefundStatus::Pending,
            Some(status @ ("failed" | "canceled")) => {
                return Err(ProviderError::Rejected {
                    status: 402,
                    message: format!("{NAME}: refund {refund_id} {status}"),
                });
            }
            _ => {
                return Err(ProviderError::Malformed(format!(
                    "{NAME}: unknown refund status"
                )));
            }
        };
        Ok(Refund { refund_id, status })
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, time::Instant};

    use serde_json::json;
    use uuid::Uuid;
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{header, method, path},
    };

    use super::*;
    use crate::payments::provider::Payer;

    const KEY: &str = "sk_test_51Hcart0000000000000000000000";

    fn client(server: &MockServer, timeout: Duration) -> StripeClient {
        StripeClient::new(StripeConfig {
            base_url: server.uri(),
            secret_key: SecretString::from(KEY),
            timeout,
        })
    }

    fn request() -> CardIntentRequest {
        CardIntentRequest {
            payment_id: Uuid::now_v7(),
            order_id: Uuid::now_v7(),
            order_number: "1001".into(),
            amount_cents: 2000,
            description: "Pedido 1001".into(),
            payer: Payer {
                name: "Maria Silva".into(),
                cpf: "52998224725".into(),
                email: "maria@example.com".into(),
            },
        }
    }

    fn intent() -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(json!({
            "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
            "object": "payment_intent",
            "amount": 2000,
            "currency": "brl",
            "status": "requires_payment_method",
            "client_secret": "pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH"
        }))
    }

    fn form_of(body: &[u8]) -> HashMap<String, String> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .unwrap()
            .into_iter()
            .collect()
    }

    #[tokio::test]
    async fn a_payment_intent_is_created_form_encoded_with_an_idempotency_key() {
        let server = MockServer::start().await;
        let request = request();
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents"))
            .and(header("Authorization", format!("Bearer {KEY}")))
            .and(header("Idempotency-Key", request.payment_id.to_string()))
            .and(header("Content-Type", "application/x-www-form-urlencoded"))
            .respond_with(intent())
            .expect(1)
            .mount(&server)
            .await;

        let created = client(&server, Duration::from_secs(5))
            .create_intent(&request)
            .await
            .unwrap();
        assert_eq!(created.provider_reference, "pi_3MtwBwLkdIwHu7ix28a3tqPa");
        assert_eq!(
            created.client_secret,
            "pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH"
        );

        let received = &server.received_requests().await.unwrap()[0];
        let form = form_of(&received.body);
        assert_eq!(form["amount"], "2000");
        assert_eq!(form["currency"], "brl");
        assert_eq!(form["automatic_payment_methods[enabled]"], "true");
        assert_eq!(form["metadata[order_id]"], request.order_id.to_string());
        assert_eq!(form["metadata[payment_id]"], request.payment_id.to_string());
    }

    #[tokio::test]
    async fn card_and_request_errors_are_permanent() {
        for (status, kind) in [
            (402, "card_error"),
            (400, "invalid_request_error"),
            (400, "idempotency_error"),
        ] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                    "error": {"type": kind, "code": "some_code", "message": "nope"}
                })))
                .mount(&server)
                .await;
            let err = client(&server, Duration::from_secs(5))
                .create_intent(&request())
                .await
                .unwrap_err();
            assert!(
                matches!(&err, ProviderError::Rejected { message, .. } if message.contains(kind)),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn api_errors_and_rate_limits_are_retryable() {
        let cases = [
            ResponseTemplate::new(500).set_body_json(json!({"error": {"type": "api_error", "message": "oops"}})),
            ResponseTemplate::new(429).set_body_json(json!({"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "slow down"}})),
            ResponseTemplate::new(503).set_body_string("upstream connect error"),
            // Stripe's own verdict wins over the status.
            ResponseTemplate::new(409)
                .insert_header("Stripe-Should-Retry", "true")
                .set_body_json(json!({"error": {"type": "idempotency_error", "message": "in progress"}})),
        ];
        for response in cases {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(response)
                .mount(&server)
                .await;
            let err = client(&server, Duration::from_secs(5))
                .create_intent(&request())
                .await
                .unwrap_err();
            assert!(matches!(err, ProviderError::Unavailable(_)), "{err}");
        }
    }

    #[tokio::test]
    async fn a_slow_answer_times_out_within_the_configured_bound() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(intent().set_delay(Duration::from_secs(3)))
            .mount(&server)
            .await;
        let started = Instant::now();
        let err = client(&server, Duration::from_millis(200))
            .create_intent(&request())
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::Timeout), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn malformed_answers_are_reported_as_such() {
        let cases = [
            ResponseTemplate::new(200).set_body_string("{"),
            ResponseTemplate::new(200).set_body_json(json!({"id": "pi_1"})),
            ResponseTemplate::new(200).set_body_json(json!({"id": "ch_1", "client_secret": "x"})),
        ];
        for response in cases {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(response)
                .mount(&server)
                .await;
            let err = client(&server, Duration::from_secs(5))
                .create_intent(&request())
                .await
                .unwrap_err();
            assert!(matches!(err, ProviderError::Malformed(_)), "{err}");
        }
    }

    #[tokio::test]
    async fn a_refund_names_the_intent_and_amount_with_its_own_idempotency_key() {
        let server = MockServer::start().await;
        let payment_id = Uuid::now_v7();
        Mock::given(method("POST"))
            .and(path("/v1/refunds"))
            .and(header("Authorization", format!("Bearer {KEY}")))
            .and(header("Idempotency-Key", format!("refund-{payment_id}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "re_1Nispe2eZvKYlo2Cd31jOCgZ", "object": "refund", "status": "succeeded"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let refund = client(&server, Duration::from_secs(5))
            .refund(&CardRefundRequest {
                payment_id,
                provider_reference: "pi_3MtwBwLkdIwHu7ix28a3tqPa".into(),
                amount_cents: 1500,
            })
            .await
            .unwrap();
        assert_eq!(refund.refund_id, "re_1Nispe2eZvKYlo2Cd31jOCgZ");
        assert_eq!(refund.status, RefundStatus::Succeeded);
        let form = form_of(&server.received_requests().await.unwrap()[0].body);
        assert_eq!(form["payment_intent"], "pi_3MtwBwLkdIwHu7ix28a3tqPa");
        assert_eq!(form["amount"], "1500");
    }

    #[tokio::test]
    async fn a_failed_refund_is_permanent_and_a_pending_one_is_pending() {
        for (status, expect_pending) in [("failed", false), ("pending", true)] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .and(path("/v1/refunds"))
                .respond_with(
                    ResponseTemplate::new(200)
                        .set_body_json(json!({"id": "re_1", "status": status})),
                )
                .mount(&server)
                .await;
            let result = client(&server, Duration::from_secs(5))
                .refund(&CardRefundRequest {
                    payment_id: Uuid::now_v7(),
                    provider_reference: "pi_1".into(),
                    amount_cents: 100,
                })
                .await;
            if expect_pending {
                assert_eq!(result.unwrap().status, RefundStatus::Pending);
            } else {
                assert!(result.unwrap_err().is_permanent());
            }
        }
    }

    #[test]
    fn debug_output_hides_the_secret_key() {
        let client = StripeClient::new(StripeConfig {
            base_url: DEFAULT_URL.into(),
            secret_key: SecretString::from(KEY),
            timeout: Duration::from_secs(1),
        });
        assert!(!format!("{client:?}").contains(KEY));
    }
}
