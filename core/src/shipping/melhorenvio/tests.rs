use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_partial_json, header, method, path},
};

use super::*;
use crate::shipping::Package;

const CALCULATE: &str = "/api/v2/me/shipment/calculate";

fn provider(server: &MockServer, timeout: Duration) -> MelhorEnvioProvider {
    MelhorEnvioProvider::new(
        MelhorEnvioConfig {
            base_url: server.uri(),
            token: SecretString::from("me-token-123"),
            user_agent: "Loja Teste (tech@loja.com.br)".into(),
            services: None,
        },
        timeout,
    )
}

fn request() -> QuoteRequest {
    QuoteRequest {
        origin_cep: "96020360".into(),
        destination_cep: "01018020".into(),
        package: Package {
            weight_grams: 300,
            height_cm: 17,
            width_cm: 11,
            length_cm: 11,
            declared_value_cents: 1_010,
        },
    }
}

/// The answer's shape as Melhor Envio sends it, trimmed to what matters plus a few extras.
fn quote_answer() -> serde_json::Value {
    json!([
        {
            "id": 1, "name": "PAC", "price": "23.90", "custom_price": "21.50", "discount": "2.40",
            "currency": "R$", "delivery_time": 6, "delivery_range": {"min": 5, "max": 6},
            "custom_delivery_time": 7, "custom_delivery_range": {"min": 6, "max": 7},
            "packages": [{"price": "23.90", "format": "box", "weight": "0.30",
                          "dimensions": {"height": 17, "width": 11, "length": 11}}],
            "additional_services": {"receipt": false, "own_hand": false, "collect": false},
            "company": {"id": 1, "name": "Correios", "picture": "https://example.test/correios.png"}
        },
        {
            "id": 2, "name": "SEDEX", "price": "45.10", "custom_price": "45.10", "discount": "0.00",
            "currency": "R$", "delivery_time": 2, "custom_delivery_time": 2,
            "company": {"id": 1, "name": "Correios", "picture": "https://example.test/correios.png"}
        },
        {
            "id": 3, "name": ".Package", "price": "19.99", "currency": "R$", "delivery_time": 5,
            "company": {"id": 2, "name": "Jadlog", "picture": "https://example.test/jadlog.png"}
        },
        {
            "id": 17, "name": "Mini Envios", "error": "Serviço indisponível para o trecho.",
            "company": {"id": 1, "name": "Correios", "picture": "https://example.test/correios.png"}
        }
    ])
}

#[tokio::test]
async fn a_quote_maps_services_preferring_custom_values_and_skipping_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CALCULATE))
        .respond_with(ResponseTemplate::new(200).set_body_json(quote_answer()))
        .expect(1)
        .mount(&server)
        .await;

    let options = provider(&server, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap();

    assert_eq!(
        options,
        vec![
            ShippingOption {
                carrier: "Correios".into(),
                service: "PAC".into(),
                price_cents: 2_150,
                days: 7
            },
            ShippingOption {
                carrier: "Correios".into(),
                service: "SEDEX".into(),
                price_cents: 4_510,
                days: 2
            },
            ShippingOption {
                carrier: "Jadlog".into(),
                service: ".Package".into(),
                price_cents: 1_999,
                days: 5
            },
        ]
    );
}

#[tokio::test]
async fn the_request_carries_auth_user_agent_accept_and_the_package_in_cm_and_kg() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CALCULATE))
        .and(header("authorization", "Bearer me-token-123"))
        .and(header("user-agent", "Loja Teste (tech@loja.com.br)"))
        .and(header("accept", "application/json"))
        .and(header("content-type", "application/json"))
        .and(body_partial_json(json!({
            "from": {"postal_code": "96020360"},
            "to": {"postal_code": "01018020"},
            "products": [{"width": 11, "height": 17, "length": 11, "weight": 0.3,
                          "insurance_value": 10.1, "quantity": 1}],
            "options": {"receipt": false, "own_hand": false}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(1)
        .mount(&server)
        .await;

    let options = provider(&server, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap();
    assert!(options.is_empty());

    let received = server.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert!(
        body.get("services").is_none(),
        "no service filter unless configured"
    );
}

#[tokio::test]
async fn configured_services_are_sent_and_a_single_object_answer_is_accepted() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(CALCULATE))
        .and(body_partial_json(json!({"services": "2"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 2, "name": "SEDEX", "price": "45.10", "delivery_time": 2,
            "company": {"id": 1, "name": "Correios"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let mut provider = provider(&server, Duration::from_secs(5));
    provider.config.services = Some("2".into());

    let options = provider.quote(&request()).await.unwrap();
    assert_eq!(options.len(), 1);
    assert_eq!(options[0].service, "SEDEX");
    assert_eq!(options[0].price_cents, 4_510);
}

#[tokio::test]
async fn unauthenticated_is_a_permanent_rejection() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Unauthenticated."})),
        )
        .mount(&server)
        .await;

    let err = provider(&server, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap_err();
    assert!(err.is_permanent());
    assert!(
        matches!(&err, ProviderError::Rejected { status: 401, message } if message.contains("Unauthenticated")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_missing_scope_is_a_permanent_rejection() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": "This action is unauthorized."})),
        )
        .mount(&server)
        .await;

    let err = provider(&server, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: 403, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalid_data_is_a_permanent_rejection_naming_the_field() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "The given data was invalid.",
            "errors": {"from.postal_code": ["O campo from.postal_code é obrigatório."]}
        })))
        .mount(&server)
        .await;

    let err = provider(&server, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap_err();
    assert!(err.is_permanent());
    match err {
        ProviderError::Rejected { status, message } => {
            assert_eq!(status, 422);
            assert!(message.contains("from.postal_code"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_error_is_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("<html>Server Error</html>"))
        .mount(&server)
        .await;

    let err = provider(&server, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
    assert!(!err.is_permanent());
}

#[tokio::test]
async fn too_many_requests_is_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429).set_body_json(json!({"message": "Too Many Attempts."})),
        )
        .mount(&server)
        .await;

    let err = provider(&server, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_slow_answer_times_out_within_the_client_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(quote_answer())
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;

    let started = Instant::now();
    let err = provider(&server, Duration::from_millis(200))
        .quote(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1_500));
}

#[tokio::test]
async fn a_body_that_is_not_json_is_malformed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("[{\"id\": 1, \"name\": "))
        .mount(&server)
        .await;

    let err = provider(&server, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Malformed(_)), "{err:?}");
}

#[tokio::test]
async fn a_bad_cep_is_rejected_before_any_call() {
    let server = MockServer::start().await;
    let mut bad = request();
    bad.destination_cep = "01018-020".into();

    let err = provider(&server, Duration::from_secs(5))
        .quote(&bad)
        .await
        .unwrap_err();
    assert!(err.is_permanent());
    assert!(server.received_requests().await.unwrap().is_empty());
}
