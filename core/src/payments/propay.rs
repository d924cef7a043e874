//! ProPay, our PIX gateway. It has no public documentation; this is the contract we hold it to.
//!
//! **Authentication.** Every call carries `Authorization: Bearer <jwt>`: HS256 signed with
//! `GO_TO_PROPAY_SECRET`, claims `iss: "cart"`, `aud: ["propay"]`, `iat`, `exp` (60 s later)
//! and a random `jti`. Webhooks in the other direction are signed with a different secret
//! (`PROPAY_TO_GO_SECRET`, see `signature.rs`). Every call also carries `X-Request-ID` and an
//! `Idempotency-Key`.
//!
//! **Create a PIX charge.** `POST {PROPAY_URL}/v1/pix/charges`, `Idempotency-Key: <payment id>`
//! ```json
//! {"payment_id": "<uuid>", "amount_cents": 1000, "description": "Pedido 1001",
//!  "expires_in": 1800, "payer": {"name": "…", "cpf": "52998224725", "email": "…"}}
//! ```
//! `expires_in` is in seconds. Answers `201` (or `200` when the same `payment_id` was already
//! charged: the existing charge is returned, never a second one):
//! ```json
//! {"txid": "<26–35 alphanumerics>", "br_code": "000201…", "qr_code_url": "https://…" | null,
//!  "expires_at": "2026-11-25T12:30:00Z"}
//! ```
//!
//! **Refund.** `POST {PROPAY_URL}/v1/refunds`, `Idempotency-Key: refund-<payment id>`,
//! `{"txid": "…", "amount_cents": 1000}` → `201 {"refund_id": "…", "status": "pending" | "succeeded"}`.
//!
//! **Errors.** `{"error": "<code>", "message": "<text>"}`. 4xx other than 429 are permanent
//! (`400` invalid request, `401` bad token, `404` unknown txid, `409` idempotency key reused with
//! another body, `422` refused, e.g. a refund larger than the charge); 429 and 5xx are retried.
//!
//! **Webhook** (handled by the API): `POST /api/webhooks/payment`, `X-Propay-Signature`,
//! body `{"event_id", "event": "pix.paid", "txid", "amount_cents", "paid_at"}`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    http::{self, Answer},
    provider::{PixCharge, PixChargeRequest, PixProvider, PixRefundRequest, Refund, RefundStatus},
};
use crate::http_client::{self, ProviderError};

const NAME: &str = "propay";
/// How long a request token is valid: long enough for clock skew, short enough that a leaked
/// token is useless.
pub const TOKEN_TTL: Duration = Duration::from_secs(60);
pub const JWT_ISSUER: &str = "cart";
pub const JWT_AUDIENCE: &str = "propay";

#[derive(Debug, Clone)]
pub struct ProPayConfig {
    /// Base URL, e.g. `https://propay.internal`; paths start with `/v1`.
    pub base_url: String,
    /// `GO_TO_PROPAY_SECRET`: signs our request tokens.
    pub jwt_secret: SecretString,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct ProPayClient {
    config: ProPayConfig,
    http: reqwest::Client,
}

/// The claims of our request tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProPayClaims {
    pub iss: String,
    pub aud: Vec<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

#[derive(Serialize)]
struct CreateCharge<'a> {
    payment_id: Uuid,
    amount_cents: i64,
    description: &'a str,
    expires_in: u64,
    payer: PayerBody<'a>,
}

#[derive(Serialize)]
struct PayerBody<'a> {
    name: &'a str,
    cpf: &'a str,
    email: &'a str,
}

#[derive(Deserialize)]
struct ChargeAnswer {
    txid: Option<String>,
    br_code: Option<String>,
    qr_code_url: Option<String>,
    expires_at: Option<String>,
}

#[derive(Serialize)]
struct CreateRefund<'a> {
    txid: &'a str,
    amount_cents: i64,
}

#[derive(Deserialize)]
struct RefundAnswer {
    refund_id: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
    message: Option<String>,
}

impl ProPayClient {
    pub fn new(config: ProPayConfig) -> Self {
        let http = http_client::build_client(config.timeout);
        Self { config, http }
    }

    fn token(&self) -> Result<String, ProviderError> {
        let now = Utc::now().timestamp();
        let claims = ProPayClaims {
            iss: JWT_ISSUER.to_owned(),
            aud: vec![JWT_AUDIENCE.to_owned()],
            iat: now,
            exp: now + TOKEN_TTL.as_secs() as i64,
            jti: Uuid::new_v4().to_string(),
        };
        let key = EncodingKey::from_secret(self.config.jwt_secret.expose_secret().as_bytes());
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
            .map_err(|e| ProviderError::Config(format!("signing the ProPay token: {e}")))
    }

    async fn post<B: Serialize>(
        &self,
        path: &str,
        idempotency_key: &str,
        body: &B,
    ) -> Result<Answer, ProviderError> {
        let url = format!("{}{path}", self.config.base_url.trim_end_matches('/'));
        let request = self
            .http
            .request(Method::POST, url)
            .bearer_auth(self.token()?)
            .header("Idempotency-Key", idempotency_key)
            .json(body);
        let answer = http::send(request).await?;
        if answer.status.is_success() {
            Ok(answer)
        } else {
            Err(error_from(&answer))
        }
    }
}

fn error_from(answer: &Answer) -> ProviderError {
    let message = match serde_json::from_str::<ErrorAnswer>(&answer.body) {
        Ok(ErrorAnswer { error, message }) if error.is_some() || message.is_some() => {
            format!(
                "{}: {}",
                error.unwrap_or_default(),
                message.unwrap_or_default()
            )
        }
        _ => http::summary(&answer.body),
    };
    ProviderError::from_status(answer.status, format!("{NAME}: {message}"))
}

#[async_trait]
impl PixProvider for ProPayClient {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn create_charge(&self, request: &PixChargeRequest) -> Result<PixCharge, ProviderError> {
        let body = CreateCharge {
            payment_id: request.payment_id,
            amount_cents: request.amount_cents,
            description: &request.description,
            expires_in: request.expires_in.as_secs(),
            payer: PayerBody {
                name: &request.payer.name,
                cpf: &request.payer.cpf,
                email: &request.payer.email,
            },
        };
        let answer = self
            .post("/v1/pix/charges", &request.payment_id.to_string(), &body)
            .await?;
        let charge: ChargeAnswer = http::parse(NAME, &answer.body)?;
        let txid = http::required(NAME, "txid", charge.txid)?;
        let br_code = http::required(NAME, "br_code", charge.br_code)?;
        let expires_at = http::required(NAME, "expires_at", charge.expires_at)?;
        let expires_at = http::parse_timestamp(NAME, "expires_at", &expires_at)?;
        let qr_code = http::qr_data_url(NAME, &br_code)?;
        Ok(PixCharge {
            provider_reference: txid.clone(),
            txid,
            copy_paste: br_code,
            qr_code,
            qr_code_url: charge.qr_code_url.filter(|url| !url.is_empty()),
            expires_at,
        })
    }

    async fn refund(&self, request: &PixRefundRequest) -> Result<Refund, ProviderError> {
        let body = CreateRefund {
            txid: &request.txid,
            amount_cents: request.amount_cents,
        };
        let answer = self
            .post(
                "/v1/refunds",
                &format!("refund-{}", request.payment_id),
                &body,
            )
            .await?;
        let refund: RefundAnswer = http::parse(NAME, &answer.body)?;
        let refund_id = http::required(NAME, "refund_id", refund.refund_id)?;
        let status = match refund.status.as_deref() {
            Some("pending") => RefundStatus::Pending,
            Some("succeeded") => RefundStatus::Succeeded,
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
    use std::time::Instant;

    use jsonwebtoken::{DecodingKey, Validation};
    use serde_json::{Value, json};
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{body_partial_json, header, method, path},
    };

    use super::*;
    use crate::payments::{brcode::BrCode, provider::Payer};

    const SECRET: &str = "go-to-propay-secret-for-tests-only";
    const BR_CODE: &str = "00020101021226760014br.gov.bcb.pix2554pix.example.com/qr/v2/9d36b84fc70b478fb95c12729b90ca255204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63047EC0";

    fn client(server: &MockServer, timeout: Duration) -> ProPayClient {
        ProPayClient::new(ProPayConfig {
            base_url: server.uri(),
            jwt_secret: SecretString::from(SECRET),
            timeout,
        })
    }

    fn request() -> PixChargeRequest {
        PixChargeRequest {
            payment_id: Uuid::now_v7(),
            order_id: Uuid::now_v7(),
            order_number: "1001".into(),
            amount_cents: 1000,
            description: "Pedido 1001".into(),
            payer: Payer {
                name: "Maria Silva".into(),
                cpf: "52998224725".into(),
                email: "maria@example.com".into(),
            },
            expires_in: Duration::from_secs(1800),
        }
    }

    fn created() -> ResponseTemplate {
        ResponseTemplate::new(201).set_body_json(json!({
            "txid": "PROPAY7b2c9e0f4a1d4c3bb8e6a5d4c3b2a1f0",
            "br_code": BR_CODE,
            "qr_code_url": "https://propay.example/qr/7b2c.png",
            "expires_at": "2026-11-25T12:30:00Z"
        }))
    }

    #[tokio::test]
    async fn a_charge_is_created_with_a_signed_token_and_the_agreed_body() {
        let server = MockServer::start().await;
        let request = request();
        Mock::given(method("POST"))
            .and(path("/v1/pix/charges"))
            .and(header("Idempotency-Key", request.payment_id.to_string()))
            .and(header("Content-Type", "application/json"))
            .and(body_partial_json(json!({
                "payment_id": request.payment_id,
                "amount_cents": 1000,
                "description": "Pedido 1001",
                "expires_in": 1800,
                "payer": {"name": "Maria Silva", "cpf": "52998224725", "email": "maria@example.com"}
            })))
            .respond_with(created())
            .expect(1)
            .mount(&server)
            .await;

        let charge = client(&server, Duration::from_secs(5))
            .create_charge(&request)
            .await
            .unwrap();
        assert_eq!(charge.txid, "PROPAY7b2c9e0f4a1d4c3bb8e6a5d4c3b2a1f0");
        assert_eq!(charge.provider_reference, charge.txid);
        assert_eq!(charge.copy_paste, BR_CODE);
        assert!(charge.qr_code.starts_with("data:image/png;base64,"));
        assert_eq!(
            charge.qr_code_url.as_deref(),
            Some("https://propay.example/qr/7b2c.png")
        );
        assert_eq!(charge.expires_at.to_rfc3339(), "2026-11-25T12:30:00+00:00");
        assert!(BrCode::parse(&charge.copy_paste).is_ok());

        // The bearer token is an HS256 JWT for ProPay, from us, valid for about a minute.
        let received = &server.received_requests().await.unwrap()[0];
        let auth = received
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap();
        let token = auth.strip_prefix("Bearer ").unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["propay"]);
        validation.set_issuer(&["cart"]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        let claims = jsonwebtoken::decode::<ProPayClaims>(
            token,
            &DecodingKey::from_secret(SECRET.as_bytes()),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims.aud, vec!["propay".to_owned()]);
        assert_eq!(claims.iss, "cart");
        assert_eq!(claims.exp - claims.iat, 60);
        assert!((claims.iat - Utc::now().timestamp()).abs() <= 5);
        // Another secret does not verify it.
        assert!(
            jsonwebtoken::decode::<ProPayClaims>(
                token,
                &DecodingKey::from_secret(b"another-secret-another-secret!!"),
                &validation
            )
            .is_err()
        );
        let body: Value = serde_json::from_slice(&received.body).unwrap();
        assert!(body.get("order_id").is_none());
    }

    #[tokio::test]
    async fn client_errors_are_permanent_and_keep_the_providers_message() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(422).set_body_json(json!({
                "error": "invalid_payer", "message": "CPF inválido"
            })))
            .mount(&server)
            .await;
        let err = client(&server, Duration::from_secs(5))
            .create_charge(&request())
            .await
            .unwrap_err();
        assert!(err.is_permanent(), "{err}");
        assert!(
            matches!(&err, ProviderError::Rejected { status: 422, message } if message.contains("invalid_payer")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn server_errors_and_429_are_retryable() {
        for status in [500, 502, 503, 429] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(status).set_body_string("busy"))
                .mount(&server)
                .await;
            let err = client(&server, Duration::from_secs(5))
                .create_charge(&request())
                .await
                .unwrap_err();
            assert!(
                matches!(err, ProviderError::Unavailable(_)),
                "{status}: {err}"
            );
            assert!(!err.is_permanent());
        }
    }

    #[tokio::test]
    async fn a_slow_answer_times_out_within_the_configured_bound() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(created().set_delay(Duration::from_secs(3)))
            .mount(&server)
            .await;
        let started = Instant::now();
        let err = client(&server, Duration::from_millis(200))
            .create_charge(&request())
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::Timeout), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn malformed_answers_are_reported_as_such() {
        let cases = [
            ResponseTemplate::new(201).set_body_string("<html>oops</html>"),
            ResponseTemplate::new(201).set_body_json(json!({"txid": "abc"})),
            ResponseTemplate::new(201).set_body_json(json!({
                "txid": "abc", "br_code": BR_CODE, "expires_at": "tomorrow"
            })),
            ResponseTemplate::new(201).set_body_json(json!({
                "txid": "", "br_code": BR_CODE, "expires_at": "2026-11-25T12:30:00Z"
            })),
        ];
        for answer in cases {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(answer)
                .mount(&server)
                .await;
            let err = client(&server, Duration::from_secs(5))
                .create_charge(&request())
                .await
                .unwrap_err();
            assert!(matches!(err, ProviderError::Malformed(_)), "{err}");
        }
    }

    #[tokio::test]
    async fn a_refund_posts_the_txid_and_amount_with_its_own_idempotency_key() {
        let server = MockServer::start().await;
        let payment_id = Uuid::now_v7();
        Mock::given(method("POST"))
            .and(path("/v1/refunds"))
            .and(header("Idempotency-Key", format!("refund-{payment_id}")))
            .and(body_partial_json(
                json!({"txid": "TX123", "amount_cents": 700}),
            ))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "refund_id": "rf_1", "status": "pending"
            })))
            .expect(1)
            .mount(&server)
            .await;
        let refund = client(&server, Duration::from_secs(5))
            .refund(&PixRefundRequest {
                payment_id,
                txid: "TX123".into(),
                provider_reference: "TX123".into(),
                amount_cents: 700,
            })
            .await
            .unwrap();
        assert_eq!(refund.refund_id, "rf_1");
        assert_eq!(refund.status, RefundStatus::Pending);
        let received = &server.received_requests().await.unwrap()[0];
        assert!(
            received
                .headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("Bearer ")
        );
    }

    #[tokio::test]
    async fn a_refused_refund_is_permanent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/refunds"))
            .respond_with(ResponseTemplate::new(422).set_body_json(json!({
                "error": "amount_exceeds_charge", "message": "too much"
            })))
            .mount(&server)
            .await;
        let err = client(&server, Duration::from_secs(5))
            .refund(&PixRefundRequest {
                payment_id: Uuid::now_v7(),
                txid: "TX123".into(),
                provider_reference: "TX123".into(),
                amount_cents: 1_000_000,
            })
            .await
            .unwrap_err();
        assert!(err.is_permanent(), "{err}");
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let config = ProPayConfig {
            base_url: "http://propay".into(),
            jwt_secret: SecretString::from(SECRET),
            timeout: Duration::from_secs(1),
        };
        let shown = format!("{:?}", ProPayClient::new(config));
        assert!(!shown.contains(SECRET), "{shown}");
    }
}
