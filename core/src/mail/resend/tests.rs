use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path},
};

use super::*;

fn mailer(server: &MockServer, timeout: Duration) -> ResendMailer {
    ResendMailer::new(
        ResendConfig {
            base_url: server.uri(),
            api_key: SecretString::from("re_test_123"),
            from: DEFAULT_FROM.into(),
        },
        timeout,
    )
}

fn message() -> EmailMessage {
    EmailMessage {
        to: "ana@example.com".into(),
        subject: "Pagamento confirmado".into(),
        text: "Recebemos o pagamento do pedido #1042.".into(),
        html: "<p>Recebemos o pagamento do pedido <b>#1042</b>.</p>".into(),
        tag: "payment_confirmed".into(),
    }
}

fn error(status: u16, name: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "statusCode": status, "message": message, "name": name
    }))
}

#[tokio::test]
async fn a_message_is_sent_with_its_key_and_kind_tag() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .and(header("authorization", "Bearer re_test_123"))
        .and(header("idempotency-key", "job-0197a1b2"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "from": "Loja Cart <no-reply@loja.local>",
            "to": ["ana@example.com"],
            "subject": "Pagamento confirmado",
            "html": "<p>Recebemos o pagamento do pedido <b>#1042</b>.</p>",
            "text": "Recebemos o pagamento do pedido #1042.",
            "tags": [{"name": "kind", "value": "payment_confirmed"}]
        })))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let id = mailer(&server, Duration::from_secs(5))
        .send(&message(), "job-0197a1b2")
        .await
        .unwrap();
    assert_eq!(id, "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794");
}

#[tokio::test]
async fn a_validation_error_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(422, "validation_error", "Invalid `to` field."))
        .mount(&server)
        .await;

    let err = mailer(&server, Duration::from_secs(5))
        .send(&message(), "job-1")
        .await
        .unwrap_err();
    assert!(err.is_permanent());
    assert!(
        matches!(&err, ProviderError::Rejected { status: 422, message } if message.contains("validation_error")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_bad_api_key_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(403, "invalid_api_key", "API key is invalid"))
        .mount(&server)
        .await;

    let err = mailer(&server, Duration::from_secs(5))
        .send(&message(), "job-1")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: 403, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn rate_limiting_is_retryable_and_keeps_the_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            error(
                429,
                "rate_limit_exceeded",
                "Too many requests. You can only make 2 requests per second.",
            )
            .insert_header("retry-after", "1")
            .insert_header("ratelimit-limit", "2")
            .insert_header("ratelimit-remaining", "0")
            .insert_header("ratelimit-reset", "1"),
        )
        .mount(&server)
        .await;

    let err = mailer(&server, Duration::from_secs(5))
        .send(&message(), "job-1")
        .await
        .unwrap_err();
    assert!(!err.is_permanent());
    match err {
        ProviderError::Unavailable(message) => {
            assert!(message.contains("rate_limit_exceeded"), "{message}");
            assert!(message.contains("retry after 1s"), "{message}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_concurrent_request_with_the_same_key_is_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(
            409,
            "concurrent_idempotent_requests",
            "Same idempotency key used while original request is still in progress.",
        ))
        .mount(&server)
        .await;

    let err = mailer(&server, Duration::from_secs(5))
        .send(&message(), "job-1")
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn reusing_a_key_with_another_message_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(
            409,
            "invalid_idempotent_request",
            "Same idempotency key used with a different request payload.",
        ))
        .mount(&server)
        .await;

    let err = mailer(&server, Duration::from_secs(5))
        .send(&message(), "job-1")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: 409, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_server_error_is_retryable() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(
            500,
            "application_error",
            "An unexpected error occurred.",
        ))
        .mount(&server)
        .await;

    let err = mailer(&server, Duration::from_secs(5))
        .send(&message(), "job-1")
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
                .set_body_json(json!({"id": "x"}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;

    let started = Instant::now();
    let err = mailer(&server, Duration::from_millis(200))
        .send(&message(), "job-1")
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1_500));
}

#[tokio::test]
async fn an_answer_without_an_id_is_malformed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"object\": \"email\"}"))
        .mount(&server)
        .await;

    let err = mailer(&server, Duration::from_secs(5))
        .send(&message(), "job-1")
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Malformed(_)), "{err:?}");
}

#[test]
fn tags_and_long_keys_are_made_acceptable_to_resend() {
    assert_eq!(tag_value("order_placed"), "order_placed");
    assert_eq!(tag_value("pedido enviado!"), "pedido_enviado_");
    let long = "k".repeat(300);
    let header = idempotency_header(&long);
    assert_eq!(header.len(), 64);
    assert_eq!(header, idempotency_header(&long));
    assert_eq!(idempotency_header("job-1"), "job-1");
}

#[test]
fn resend_without_an_api_key_names_the_variable() {
    // Only meaningful where the variable is not set, which is how tests run.
    if std::env::var_os("RESEND_API_KEY").is_some() {
        return;
    }
    let err = ResendConfig::from_env().unwrap_err();
    assert!(err.to_string().contains("RESEND_API_KEY"), "{err}");
}
