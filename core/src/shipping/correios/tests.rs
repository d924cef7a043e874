use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, header, method, path, query_param},
};

use super::*;
use crate::shipping::Package;

const TOKEN_PATH: &str = "/token/v1/autentica/cartaopostagem";

fn config(server: &MockServer) -> CorreiosConfig {
    CorreiosConfig {
        base_url: server.uri(),
        user: "lojateste".into(),
        access_code: SecretString::from("codigo-secreto"),
        posting_card: "0067599079".into(),
        services: parse_services(DEFAULT_SERVICES).unwrap(),
    }
}

fn provider(server: &MockServer, timeout: Duration) -> CorreiosProvider {
    CorreiosProvider::new(config(server), timeout)
}

fn request() -> QuoteRequest {
    QuoteRequest {
        origin_cep: "70902000".into(),
        destination_cep: "71930000".into(),
        package: Package {
            weight_grams: 300,
            height_cm: 1,
            width_cm: 5,
            length_cm: 10,
            declared_value_cents: 20_000,
        },
    }
}

fn token_answer(emissao: &str, expira_em: &str) -> serde_json::Value {
    json!({
        "ambiente": "PRODUCAO", "id": "lojateste", "ip": "127.0.0.1", "perfil": "PJ",
        "cnpj": "11222333000181",
        "cartaoPostagem": {"numero": "0067599079", "contrato": "9912208555", "dr": 10,
                           "api": [27, 34, 35, 36, 37, 41, 76, 78, 80, 83, 87, 566, 587, 623]},
        "emissao": emissao, "expiraEm": expira_em, "zoneOffset": "-03:00",
        "token": "eyJhbGciOiJSUzI1NiJ9.correios.token"
    })
}

fn price_answer(code: &str, pc_final: &str) -> serde_json::Value {
    json!({
        "coProduto": code, "pcBase": pc_final, "pcBaseGeral": pc_final, "peVariacao": "0,0000",
        "pcReferencia": pc_final, "vlBaseCalculoImposto": pc_final, "inPesoCubico": "N",
        "psCobrado": "300", "servicoAdicional": [], "peAdValorem": "0,0000",
        "vlSeguroAutomatico": "0,00", "qtAdicional": "0", "pcFaixa": pc_final,
        "pcFaixaVariacao": pc_final, "pcProduto": pc_final, "pcTotalServicosAdicionais": "0,00",
        "pcFinal": pc_final
    })
}

fn deadline_answer(code: &str, days: i64) -> serde_json::Value {
    json!({
        "coProduto": code, "prazoEntrega": days, "dataMaxima": "2026-12-04T23:59:00",
        "entregaDomiciliar": "S", "entregaSabado": "N"
    })
}

/// A token valid for 24 h, as in the manual's example.
async fn mount_token(server: &MockServer, expected_calls: u64) {
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(token_answer("2026-11-25T10:00:00", "2026-11-26T10:00:00")),
        )
        .expect(expected_calls)
        .mount(server)
        .await;
}

async fn mount_service(server: &MockServer, code: &str, pc_final: &str, days: i64) {
    Mock::given(method("GET"))
        .and(path(format!("/preco/v1/nacional/{code}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(price_answer(code, pc_final)))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/prazo/v1/nacional/{code}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(deadline_answer(code, days)))
        .mount(server)
        .await;
}

#[tokio::test]
async fn pac_and_sedex_are_quoted_with_brazilian_prices_and_days() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_service(&server, "03298", "19,92", 7).await;
    mount_service(&server, "03220", "1.234,56", 2).await;

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
                price_cents: 1_992,
                days: 7
            },
            ShippingOption {
                carrier: "Correios".into(),
                service: "SEDEX".into(),
                price_cents: 123_456,
                days: 2
            },
        ]
    );
}

#[tokio::test]
async fn the_token_call_uses_basic_auth_and_the_posting_card() {
    let server = MockServer::start().await;
    let basic = base64::engine::general_purpose::STANDARD.encode("lojateste:codigo-secreto");
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .and(header("authorization", format!("Basic {basic}").as_str()))
        .and(header("accept", "application/json"))
        .and(body_json(json!({"numero": "0067599079"})))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(token_answer("2026-11-25T10:00:00", "2026-11-26T10:00:00")),
        )
        .expect(1)
        .mount(&server)
        .await;
    mount_service(&server, "03298", "19,92", 7).await;
    mount_service(&server, "03220", "35,10", 2).await;

    provider(&server, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap();
}

#[tokio::test]
async fn price_and_deadline_calls_carry_the_bearer_and_the_package_at_least_the_minimum_box() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path("/preco/v1/nacional/03298"))
        .and(header(
            "authorization",
            "Bearer eyJhbGciOiJSUzI1NiJ9.correios.token",
        ))
        .and(header("accept", "application/json"))
        .and(query_param("cepOrigem", "70902000"))
        .and(query_param("cepDestino", "71930000"))
        .and(query_param("psObjeto", "300"))
        .and(query_param("tpObjeto", "2"))
        .and(query_param("comprimento", "16"))
        .and(query_param("largura", "11"))
        .and(query_param("altura", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(price_answer("03298", "19,92")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/prazo/v1/nacional/03298"))
        .and(header(
            "authorization",
            "Bearer eyJhbGciOiJSUzI1NiJ9.correios.token",
        ))
        .and(query_param("cepOrigem", "70902000"))
        .and(query_param("cepDestino", "71930000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(deadline_answer("03298", 7)))
        .expect(1)
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.services = parse_services("03298").unwrap();

    let options = CorreiosProvider::new(config, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap();
    assert_eq!(options.len(), 1);
    assert_eq!(options[0].service, "PAC");
}

#[tokio::test]
async fn the_token_is_fetched_once_and_reused_across_quotes() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_service(&server, "03298", "19,92", 7).await;
    mount_service(&server, "03220", "35,10", 2).await;
    let provider = provider(&server, Duration::from_secs(5));

    for _ in 0..3 {
        assert_eq!(provider.quote(&request()).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn concurrent_quotes_share_one_token_fetch() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(token_answer("2026-11-25T10:00:00", "2026-11-26T10:00:00"))
                .set_delay(Duration::from_millis(100)),
        )
        .expect(1)
        .mount(&server)
        .await;
    mount_service(&server, "03298", "19,92", 7).await;
    mount_service(&server, "03220", "35,10", 2).await;
    let provider = provider(&server, Duration::from_secs(5));

    let request = request();
    let (a, b) = tokio::join!(provider.quote(&request), provider.quote(&request));
    assert_eq!(a.unwrap().len(), 2);
    assert_eq!(b.unwrap().len(), 2);
}

#[tokio::test]
async fn a_token_at_its_expiry_is_not_reused() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(token_answer("2026-11-25T10:00:00", "2026-11-25T10:00:00")),
        )
        .expect(2)
        .mount(&server)
        .await;
    mount_service(&server, "03298", "19,92", 7).await;
    let mut config = config(&server);
    config.services = parse_services("03298").unwrap();
    let provider = CorreiosProvider::new(config, Duration::from_secs(5));

    provider.quote(&request()).await.unwrap();
    provider.quote(&request()).await.unwrap();
}

#[tokio::test]
async fn a_token_refused_by_the_price_api_is_replaced_once() {
    let server = MockServer::start().await;
    mount_token(&server, 2).await;
    Mock::given(method("GET"))
        .and(path("/preco/v1/nacional/03298"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"msgs": ["Token expirado"]})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_service(&server, "03298", "19,92", 7).await;
    let mut config = config(&server);
    config.services = parse_services("03298").unwrap();

    let options = CorreiosProvider::new(config, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap();
    assert_eq!(options[0].price_cents, 1_992);
}

#[tokio::test]
async fn a_service_the_route_does_not_cover_is_skipped() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_service(&server, "03298", "19,92", 7).await;
    Mock::given(method("GET"))
        .and(path("/preco/v1/nacional/03220"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "msgs": ["PRC-119: Serviço 03220 não disponível para o CEP de destino."],
            "date": "2026-11-25T10:00:00", "method": "GET", "path": "/preco/v1/nacional/03220",
            "causa": null, "stackTrace": null
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/prazo/v1/nacional/03220"))
        .respond_with(ResponseTemplate::new(200).set_body_json(deadline_answer("03220", 2)))
        .mount(&server)
        .await;

    let options = provider(&server, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap();
    assert_eq!(options.len(), 1);
    assert_eq!(options[0].service, "PAC");
}

#[tokio::test]
async fn when_no_service_covers_the_route_the_rejection_is_returned() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"msgs": ["PRC-100: CEP de destino inválido."]})),
        )
        .mount(&server)
        .await;

    let err = provider(&server, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap_err();
    assert!(err.is_permanent());
    assert!(err.to_string().contains("PRC-100"), "{err}");
}

#[tokio::test]
async fn bad_credentials_are_a_permanent_rejection() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "msgs": ["Usuário ou senha inválidos."], "method": "POST", "path": TOKEN_PATH
        })))
        .mount(&server)
        .await;

    let err = provider(&server, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: 401, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_server_error_is_retryable_even_if_another_service_answered() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_service(&server, "03298", "19,92", 7).await;
    Mock::given(method("GET"))
        .and(path("/preco/v1/nacional/03220"))
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/prazo/v1/nacional/03220"))
        .respond_with(ResponseTemplate::new(200).set_body_json(deadline_answer("03220", 2)))
        .mount(&server)
        .await;

    let err = provider(&server, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_slow_deadline_call_times_out_within_the_client_timeout() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path("/preco/v1/nacional/03298"))
        .respond_with(ResponseTemplate::new(200).set_body_json(price_answer("03298", "19,92")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/prazo/v1/nacional/03298"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(deadline_answer("03298", 7))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.services = parse_services("03298").unwrap();

    let started = Instant::now();
    let err = CorreiosProvider::new(config, Duration::from_millis(300))
        .quote(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1_500));
}

#[tokio::test]
async fn a_price_answer_without_a_readable_price_is_malformed() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path("/preco/v1/nacional/03298"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"coProduto": "03298", "pcFinal": "grátis"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/prazo/v1/nacional/03298"))
        .respond_with(ResponseTemplate::new(200).set_body_json(deadline_answer("03298", 7)))
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.services = parse_services("03298").unwrap();

    let err = CorreiosProvider::new(config, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Malformed(_)), "{err:?}");
}

#[tokio::test]
async fn a_token_answer_that_is_not_json_is_malformed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(ResponseTemplate::new(201).set_body_string("<html>gateway</html>"))
        .mount(&server)
        .await;

    let err = provider(&server, Duration::from_secs(5))
        .quote(&request())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Malformed(_)), "{err:?}");
}

#[test]
fn service_lists_accept_codes_with_or_without_names() {
    assert_eq!(
        parse_services("03298, 03220:SEDEX Contrato,04227").unwrap(),
        vec![
            CorreiosService {
                code: "03298".into(),
                name: "PAC".into()
            },
            CorreiosService {
                code: "03220".into(),
                name: "SEDEX Contrato".into()
            },
            CorreiosService {
                code: "04227".into(),
                name: "PAC Mini".into()
            },
        ]
    );
    assert_eq!(parse_services("99999").unwrap()[0].name, "99999");
    assert!(parse_services("").is_err());
    assert!(parse_services("PAC").is_err());
}

#[test]
fn token_lifetime_comes_from_the_servers_own_timestamps() {
    let answer = |emissao: Option<&str>, expira: Option<&str>, offset: Option<&str>| TokenAnswer {
        token: "t".into(),
        emissao: emissao.map(str::to_owned),
        expira_em: expira.map(str::to_owned),
        zone_offset: offset.map(str::to_owned),
    };
    let now: DateTime<Utc> = "2026-11-25T13:00:00Z".parse().unwrap();
    // Issued and expiring in local time: the difference, whatever our clock says.
    assert_eq!(
        token_lifetime(
            &answer(
                Some("2026-11-25T10:00:00"),
                Some("2026-11-26T10:00:00"),
                None
            ),
            now
        ),
        Some(Duration::from_secs(86_400))
    );
    // Only the expiry, local at -03:00: 10:00 local tomorrow is 13:00 UTC tomorrow.
    assert_eq!(
        token_lifetime(
            &answer(None, Some("2026-11-26T10:00:00"), Some("-03:00")),
            now
        ),
        Some(Duration::from_secs(86_400))
    );
    // Already expired, or missing: not cached.
    assert_eq!(
        token_lifetime(&answer(None, Some("2026-11-24T10:00:00"), None), now),
        None
    );
    assert_eq!(token_lifetime(&answer(None, None, None), now), None);
}

#[test]
fn tokens_are_refreshed_five_minutes_early_or_halfway_when_short_lived() {
    assert_eq!(
        refresh_after(Duration::from_secs(86_400)),
        Duration::from_secs(86_100)
    );
    assert_eq!(
        refresh_after(Duration::from_secs(120)),
        Duration::from_secs(60)
    );
    assert_eq!(refresh_after(Duration::ZERO), Duration::ZERO);
}
