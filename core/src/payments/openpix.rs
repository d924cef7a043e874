//! Woovi (formerly OpenPix) PIX charges.
//!
//! `POST {OPENPIX_URL}/api/v1/charge?return_existing=true` with `Authorization: <AppID>` (no
//! `Bearer`). Our payment id is the `correlationID`, which Woovi keeps unique; with
//! `return_existing` a retried call gets the existing charge back instead of an error.
//! `value` is centavos, `expiresIn` seconds, `comment` at most 140 characters.
//!
//! The answer's `charge.brCode` is the copy-and-paste code; `charge.qrCodeImage` is a hosted
//! PNG we pass on as `qr_code_url` (we still draw our own data URL so the page needs no second
//! request). A `400 {"error": "…"}` is permanent.
//!
//! Refunds: this client does not refund through the API; [`PixProvider::refund`] answers
//! [`manual_refund_required`] and an operator returns the money from Woovi's dashboard.
//!
//! Confirming a webhook ([`OpenPixClient::fetch_charge`]): Woovi signs every webhook with one
//! RSA key shared by all of its accounts, so a signed `OPENPIX:CHARGE_COMPLETED` proves only
//! that *some* Woovi account was paid. Anyone can create a charge in their own account whose
//! `correlationID` is one of our payment ids and point its webhook at us. Before an order
//! moves, the charge is read back with our own AppID (integrations.md §3a, from
//! woovibr/woovi-developers `src/swaggers/woovi.yml`):
//!
//! - `GET {OPENPIX_URL}/api/v1/charge/{id}`, where `id` is the charge id or the URL-encoded
//!   `correlationID`; `Authorization: <AppID>`, no `Bearer`.
//! - `200 {"charge": {status: ACTIVE|COMPLETED|EXPIRED, value, correlationID, globalID,
//!   transactionID, paymentMethods.pix{value, status, txId}, …}}`; the GET has no `paidAt`.
//! - A charge that is not in our account: `404` (or `400`) with `{"error": "…"}`.
//!
//! Only `COMPLETED` with our correlationID and the value we asked for confirms a payment.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use reqwest::header::AUTHORIZATION;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{
    http,
    provider::{
        PixCharge, PixChargeRequest, PixProvider, PixRefundRequest, Refund, manual_refund_required,
    },
};
use crate::http_client::{self, ProviderError};

const NAME: &str = "openpix";
pub const DEFAULT_URL: &str = "https://api.woovi.com";
const MAX_COMMENT_CHARS: usize = 140;

#[derive(Debug, Clone)]
pub struct OpenPixConfig {
    pub base_url: String,
    /// `OPENPIX_APP_ID`, sent as-is in `Authorization`.
    pub app_id: SecretString,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct OpenPixClient {
    config: OpenPixConfig,
    http: reqwest::Client,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreateCharge<'a> {
    #[serde(rename = "correlationID")]
    correlation_id: String,
    value: i64,
    comment: String,
    expires_in: u64,
    customer: Customer<'a>,
    additional_info: Vec<AdditionalInfo<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Customer<'a> {
    name: &'a str,
    email: &'a str,
    #[serde(rename = "taxID")]
    tax_id: &'a str,
}

#[derive(Serialize)]
struct AdditionalInfo<'a> {
    key: &'a str,
    value: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChargeAnswer {
    charge: Option<Charge>,
    br_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Charge {
    value: Option<i64>,
    #[serde(rename = "correlationID")]
    correlation_id: Option<String>,
    #[serde(rename = "transactionID")]
    transaction_id: Option<String>,
    br_code: Option<String>,
    qr_code_image: Option<String>,
    payment_link_url: Option<String>,
    expires_date: Option<String>,
}

/// A charge as our own account sees it (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeStatus {
    /// `ACTIVE`, `COMPLETED` or `EXPIRED`.
    pub status: String,
    pub value: Option<i64>,
    pub correlation_id: Option<String>,
    /// `paymentMethods.pix.value`: what the Pix transaction behind the charge paid.
    pub paid_value: Option<i64>,
}

impl ChargeStatus {
    /// What our own account says was paid: the Pix method's value, else the charge's.
    pub fn paid_cents(&self) -> Option<i64> {
        self.paid_value.or(self.value)
    }

    /// Whether this charge shows `correlation_id` paid in full for `value_cents`: `None` when
    /// it does, otherwise why not (for the webhook event's record and the logs).
    pub fn unconfirmed_reason(&self, correlation_id: &str, value_cents: i64) -> Option<String> {
        if self.status != "COMPLETED" {
            return Some(format!("charge status is {}, not COMPLETED", self.status));
        }
        if self.correlation_id.as_deref() != Some(correlation_id) {
            return Some("charge answered for another correlationID".into());
        }
        if self.value != Some(value_cents) {
            return Some(format!(
                "charge value is {:?} centavos, not {value_cents}",
                self.value
            ));
        }
        None
    }
}

#[derive(Deserialize)]
struct FetchedAnswer {
    charge: Option<FetchedCharge>,
}

#[derive(Deserialize)]
struct FetchedCharge {
    status: Option<String>,
    value: Option<i64>,
    #[serde(rename = "correlationID")]
    correlation_id: Option<String>,
    #[serde(rename = "paymentMethods", default)]
    payment_methods: Option<FetchedMethods>,
}

#[derive(Deserialize)]
struct FetchedMethods {
    #[serde(default)]
    pix: Option<FetchedPix>,
}

#[derive(Deserialize)]
struct FetchedPix {
    #[serde(default)]
    value: Option<i64>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<String>,
}

/// Woovi's `{"error": "…"}`, or a summary of a body that is not one.
fn error_message(body: &str) -> String {
    serde_json::from_str::<ErrorAnswer>(body)
        .ok()
        .and_then(|e| e.error)
        .unwrap_or_else(|| http::summary(body))
}

impl OpenPixClient {
    pub fn new(config: OpenPixConfig) -> Self {
        let http = http_client::build_client(config.timeout);
        Self { config, http }
    }

    /// Reads the charge `correlation_id` from our own account: `Ok(None)` when our account
    /// has no such charge (Woovi's 404, or 400 `{"error"}`). Another 4xx (a bad AppID) is a
    /// permanent error; 429, 5xx and transport failures are retryable.
    pub async fn fetch_charge(
        &self,
        correlation_id: &str,
    ) -> Result<Option<ChargeStatus>, ProviderError> {
        let mut url = reqwest::Url::parse(self.config.base_url.trim_end_matches('/'))
            .map_err(|_| ProviderError::Config(format!("{NAME}: OPENPIX_URL is not a URL")))?;
        url.path_segments_mut()
            .map_err(|()| ProviderError::Config(format!("{NAME}: OPENPIX_URL cannot be a base")))?
            .pop_if_empty()
            .extend(["api", "v1", "charge", correlation_id]);
        let call = self
            .http
            .get(url)
            .header(AUTHORIZATION, self.config.app_id.expose_secret());
        let answer = http::send(call).await?;
        if matches!(answer.status.as_u16(), 400 | 404) {
            let message = error_message(&answer.body);
            tracing::info!(status = answer.status.as_u16(), %message, "openpix: no such charge in our account");
            return Ok(None);
        }
        if !answer.status.is_success() {
            let message = error_message(&answer.body);
            return Err(ProviderError::from_status(
                answer.status,
                format!("{NAME}: {message}"),
            ));
        }
        let parsed: FetchedAnswer = http::parse(NAME, &answer.body)?;
        let charge = parsed
            .charge
            .ok_or_else(|| ProviderError::Malformed(format!("{NAME}: answer without charge")))?;
        Ok(Some(ChargeStatus {
            status: http::required(NAME, "charge.status", charge.status)?,
            value: charge.value,
            correlation_id: charge.correlation_id,
            paid_value: charge
                .payment_methods
                .and_then(|methods| methods.pix?.value),
        }))
    }
}

#[async_trait]
impl PixProvider for OpenPixClient {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn create_charge(&self, request: &PixChargeRequest) -> Result<PixCharge, ProviderError> {
        let correlation_id = request.payment_id.to_string();
        let body = CreateCharge {
            correlation_id: correlation_id.clone(),
            value: request.amount_cents,
            comment: request
                .description
                .chars()
                .take(MAX_COMMENT_CHARS)
                .collect(),
            expires_in: request.expires_in.as_secs(),
            customer: Customer {
                name: &request.payer.name,
                email: &request.payer.email,
                tax_id: &request.payer.cpf,
            },
            additional_info: vec![AdditionalInfo {
                key: "Pedido",
                value: &request.order_number,
            }],
        };
        let url = format!(
            "{}/api/v1/charge?return_existing=true",
            self.config.base_url.trim_end_matches('/')
        );
        let call = self
            .http
            .post(url)
            .header(AUTHORIZATION, self.config.app_id.expose_secret())
            .json(&body);
        let answer = http::send(call).await?;
        if !answer.status.is_success() {
            let message = error_message(&answer.body);
            return Err(ProviderError::from_status(
                answer.status,
                format!("{NAME}: {message}"),
            ));
        }

        let parsed: ChargeAnswer = http::parse(NAME, &answer.body)?;
        let charge = parsed
            .charge
            .ok_or_else(|| ProviderError::Malformed(format!("{NAME}: answer without charge")))?;
        if let Some(returned) = &charge.correlation_id
            && returned != &correlation_id
        {
            return Err(ProviderError::Malformed(format!(
                "{NAME}: answered for another correlationID"
            )));
        }
        if let Some(value) = charge.value
            && value != request.amount_cents
        {
            return Err(ProviderError::Malformed(format!(
                "{NAME}: charge is for {value} centavos, not {}",
                request.amount_cents
            )));
        }
        let br_code = http::required(NAME, "brCode", charge.br_code.or(parsed.br_code))?;
        let expires_at = match charge.expires_date.as_deref() {
            Some(date) => http::parse_timestamp(NAME, "expiresDate", date)?,
            None => {
                let expires_in = chrono::Duration::from_std(request.expires_in)
                    .map_err(|_| ProviderError::Config("PIX expiry out of range".into()))?;
                Utc::now() + expires_in
            }
        };
        // The PIX txid of a Woovi charge is its transactionID; fall back to our own id's hex
        // form, which is what the webhook's correlationID leads back to anyway.
        let txid = charge
            .transaction_id
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| request.payment_id.simple().to_string());
        let qr_code = http::qr_data_url(NAME, &br_code)?;
        Ok(PixCharge {
            txid,
            copy_paste: br_code,
            qr_code,
            qr_code_url: charge
                .qr_code_image
                .or(charge.payment_link_url)
                .filter(|url| !url.is_empty()),
            expires_at,
            provider_reference: correlation_id,
        })
    }

    async fn refund(&self, _request: &PixRefundRequest) -> Result<Refund, ProviderError> {
        Err(manual_refund_required(NAME))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::{Value, json};
    use uuid::Uuid;
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{body_partial_json, header, method, path, query_param},
    };

    use super::*;
    use crate::payments::provider::{Payer, is_manual_refund_required};

    const APP_ID: &str = "Q2xpZW50X0lkXzEyMzpDbGllbnRfU2VjcmV0XzQ1Ng==";
    const BR_CODE: &str = "00020101021226760014br.gov.bcb.pix2554pix.example.com/qr/v2/9d36b84fc70b478fb95c12729b90ca255204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63047EC0";

    fn client(server: &MockServer, timeout: Duration) -> OpenPixClient {
        OpenPixClient::new(OpenPixConfig {
            base_url: server.uri(),
            app_id: SecretString::from(APP_ID),
            timeout,
        })
    }

    fn request() -> PixChargeRequest {
        PixChargeRequest {
            payment_id: Uuid::now_v7(),
            order_id: Uuid::now_v7(),
            order_number: "1001".into(),
            amount_cents: 1000,
            description: "Pedido 1001 ".repeat(20),
            payer: Payer {
                name: "Maria Silva".into(),
                cpf: "52998224725".into(),
                email: "maria@example.com".into(),
            },
            expires_in: Duration::from_secs(1800),
        }
    }

    fn answer(correlation_id: &str, value: i64) -> Value {
        json!({
            "charge": {
                "status": "ACTIVE",
                "value": value,
                "correlationID": correlation_id,
                "transactionID": "9134e2866f71427abf00241681624586",
                "brCode": BR_CODE,
                "paymentLinkID": "7777a23s-6f71-427a-bf00-241681624586",
                "paymentLinkUrl": "https://woovi.com/pay/7777a23s",
                "qrCodeImage": "https://api.woovi.com/openpix/charge/brcode/image/7777a23s.png",
                "expiresIn": 1800,
                "expiresDate": "2026-11-25T12:30:00.000Z",
                "globalID": "Q2hhcmdlOjYwM2U3NDlhNDI1NjAyYmJiZjRlN2JlZA==",
                "createdAt": "2026-11-25T12:00:00.000Z",
                "updatedAt": "2026-11-25T12:00:00.000Z"
            },
            "correlationID": correlation_id,
            "brCode": BR_CODE
        })
    }

    #[tokio::test]
    async fn a_charge_is_created_with_the_app_id_and_our_payment_id_as_correlation_id() {
        let server = MockServer::start().await;
        let request = request();
        let correlation_id = request.payment_id.to_string();
        Mock::given(method("POST"))
            .and(path("/api/v1/charge"))
            .and(query_param("return_existing", "true"))
            .and(header("Authorization", APP_ID))
            .and(body_partial_json(json!({
                "correlationID": correlation_id,
                "value": 1000,
                "expiresIn": 1800,
                "customer": {"name": "Maria Silva", "email": "maria@example.com", "taxID": "52998224725"}
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer(&correlation_id, 1000)))
            .expect(1)
            .mount(&server)
            .await;

        let charge = client(&server, Duration::from_secs(5))
            .create_charge(&request)
            .await
            .unwrap();
        assert_eq!(charge.copy_paste, BR_CODE);
        assert_eq!(charge.txid, "9134e2866f71427abf00241681624586");
        assert_eq!(charge.provider_reference, correlation_id);
        assert_eq!(
            charge.qr_code_url.as_deref(),
            Some("https://api.woovi.com/openpix/charge/brcode/image/7777a23s.png")
        );
        assert!(charge.qr_code.starts_with("data:image/png;base64,"));
        assert_eq!(charge.expires_at.to_rfc3339(), "2026-11-25T12:30:00+00:00");

        let received = &server.received_requests().await.unwrap()[0];
        let body: Value = serde_json::from_slice(&received.body).unwrap();
        assert_eq!(body["comment"].as_str().unwrap().chars().count(), 140);
        assert!(
            !received
                .headers
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }

    #[tokio::test]
    async fn a_400_with_an_error_is_permanent() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(400)
                    .set_body_json(json!({"error": "customer taxID is invalid"})),
            )
            .mount(&server)
            .await;
        let err = client(&server, Duration::from_secs(5))
            .create_charge(&request())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProviderError::Rejected { status: 400, message } if message.contains("taxID is invalid")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_unknown_app_id_is_permanent_and_outages_are_retryable() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(401).set_body_json(json!({"error": "appID inválido"})),
            )
            .mount(&server)
            .await;
        let err = client(&server, Duration::from_secs(5))
            .create_charge(&request())
            .await
            .unwrap_err();
        assert!(err.is_permanent(), "{err}");

        for status in [429, 500, 503] {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(status))
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
        }
    }

    #[tokio::test]
    async fn a_slow_answer_times_out_within_the_configured_bound() {
        let server = MockServer::start().await;
        let request = request();
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(answer(&request.payment_id.to_string(), 1000))
                    .set_delay(Duration::from_secs(3)),
            )
            .mount(&server)
            .await;
        let started = Instant::now();
        let err = client(&server, Duration::from_millis(200))
            .create_charge(&request)
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::Timeout), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn malformed_or_mismatched_answers_are_rejected() {
        let request = request();
        let id = request.payment_id.to_string();
        let mut without_br_code = answer(&id, 1000);
        without_br_code["charge"]["brCode"] = Value::Null;
        without_br_code["brCode"] = Value::Null;
        let cases = [
            ResponseTemplate::new(200).set_body_string("not json"),
            ResponseTemplate::new(200).set_body_json(json!({"correlationID": id})),
            ResponseTemplate::new(200).set_body_json(without_br_code),
            ResponseTemplate::new(200).set_body_json(answer(&id, 999)),
            ResponseTemplate::new(200).set_body_json(answer(&Uuid::now_v7().to_string(), 1000)),
        ];
        for response in cases {
            let server = MockServer::start().await;
            Mock::given(method("POST"))
                .respond_with(response)
                .mount(&server)
                .await;
            let err = client(&server, Duration::from_secs(5))
                .create_charge(&request)
                .await
                .unwrap_err();
            assert!(matches!(err, ProviderError::Malformed(_)), "{err}");
        }
    }

    /// What Woovi's `GET /api/v1/charge/{id}` answers (integrations.md §3a).
    fn fetched(correlation_id: &str, status: &str, value: i64) -> Value {
        json!({"charge": {
            "status": status, "value": value, "correlationID": correlation_id,
            "globalID": "Q2hhcmdlOjYwM2U3NDlhNDI1NjAyYmJiZjRlN2JlZA==",
            "transactionID": "9134e2866f71427abf00241681624586",
            "paymentMethods": {"pix": {"value": value, "status": status,
                "txId": "9134e2866f71427abf00241681624586"}},
            "createdAt": "2026-11-25T12:00:00.000Z", "updatedAt": "2026-11-25T12:05:00.000Z"
        }})
    }

    #[tokio::test]
    async fn a_charge_is_read_back_with_our_app_id_by_its_encoded_correlation_id() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v1/charge/pedido%201%2F2"))
            .and(header("Authorization", APP_ID))
            .respond_with(ResponseTemplate::new(200).set_body_json(fetched(
                "pedido 1/2",
                "COMPLETED",
                1000,
            )))
            .expect(1)
            .mount(&server)
            .await;
        let charge = client(&server, Duration::from_secs(5))
            .fetch_charge("pedido 1/2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(charge.unconfirmed_reason("pedido 1/2", 1000), None);
        assert!(charge.unconfirmed_reason("pedido 1/2", 999).is_some());
        assert!(charge.unconfirmed_reason("another", 1000).is_some());
        let received = &server.received_requests().await.unwrap()[0];
        let auth = received
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(auth, APP_ID);
    }

    #[tokio::test]
    async fn an_active_or_expired_charge_confirms_nothing() {
        for status in ["ACTIVE", "EXPIRED"] {
            let server = MockServer::start().await;
            Mock::given(method("GET"))
                .respond_with(ResponseTemplate::new(200).set_body_json(fetched("c", status, 1000)))
                .mount(&server)
                .await;
            let charge = client(&server, Duration::from_secs(5))
                .fetch_charge("c")
                .await
                .unwrap()
                .unwrap();
            assert!(charge.unconfirmed_reason("c", 1000).is_some(), "{status}");
        }
    }

    #[tokio::test]
    async fn a_charge_our_account_does_not_have_is_none() {
        for (status, body) in [
            (404, json!({"error": "Cobrança não encontrada"})),
            (400, json!({"error": "charge not found"})),
        ] {
            let server = MockServer::start().await;
            Mock::given(method("GET"))
                .respond_with(ResponseTemplate::new(status).set_body_json(body))
                .mount(&server)
                .await;
            let fetched = client(&server, Duration::from_secs(5))
                .fetch_charge(&Uuid::now_v7().to_string())
                .await
                .unwrap();
            assert_eq!(fetched, None, "{status}");
        }
    }

    #[tokio::test]
    async fn fetching_a_charge_retries_outages_and_not_a_bad_app_id() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(401).set_body_json(json!({"error": "appID inválido"})),
            )
            .mount(&server)
            .await;
        let err = client(&server, Duration::from_secs(5))
            .fetch_charge("c")
            .await
            .unwrap_err();
        assert!(err.is_permanent(), "{err}");
        for status in [429, 500, 503] {
            let server = MockServer::start().await;
            Mock::given(method("GET"))
                .respond_with(ResponseTemplate::new(status))
                .mount(&server)
                .await;
            let err = client(&server, Duration::from_secs(5))
                .fetch_charge("c")
                .await
                .unwrap_err();
            assert!(!err.is_permanent(), "{status}: {err}");
        }
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"charge": {}})))
            .mount(&server)
            .await;
        let err = client(&server, Duration::from_secs(5))
            .fetch_charge("c")
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::Malformed(_)), "{err}");
    }

    #[tokio::test]
    async fn refunds_need_an_operator() {
        let server = MockServer::start().await;
        let err = client(&server, Duration::from_secs(5))
            .refund(&PixRefundRequest {
                payment_id: Uuid::now_v7(),
                txid: "tx".into(),
                provider_reference: "ref".into(),
                amount_cents: 100,
            })
            .await
            .unwrap_err();
        assert!(err.is_permanent());
        assert!(is_manual_refund_required(&err));
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[test]
    fn debug_output_hides_the_app_id() {
        let client = OpenPixClient::new(OpenPixConfig {
            base_url: DEFAULT_URL.into(),
            app_id: SecretString::from(APP_ID),
            timeout: Duration::from_secs(1),
        });
        assert!(!format!("{client:?}").contains(APP_ID));
    }
}
