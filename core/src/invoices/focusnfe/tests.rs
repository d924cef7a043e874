use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_partial_json, header, method, path, query_param},
};

use super::*;
use crate::{
    invoices::{NfeEnvironment, PollSettings, emit_and_wait},
    test_support::invoices::sample_request,
};

const REF: &str = "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const KEY: &str = "35261111222333000181550010000001231123456787";

fn config(server: &MockServer) -> FocusNfeConfig {
    FocusNfeConfig {
        base_url: server.uri(),
        token: SecretString::from("focus-token-abc"),
        fiscal: FiscalConfig::default(),
    }
}

fn provider(server: &MockServer) -> FocusNfe {
    FocusNfe::new(config(server), Duration::from_secs(5))
}

fn fast_polling() -> PollSettings {
    PollSettings {
        timeout: Duration::from_secs(5),
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    }
}

fn processing() -> serde_json::Value {
    json!({"cnpj_emitente": "11222333000181", "ref": REF, "status": "processando_autorizacao"})
}

fn authorized() -> serde_json::Value {
    json!({
        "cnpj_emitente": "11222333000181", "ref": REF, "status": "autorizado",
        "status_sefaz": "100", "mensagem_sefaz": "Autorizado o uso da NF-e",
        "chave_nfe": format!("NFe{KEY}"), "numero": "123", "serie": "1",
        "caminho_xml_nota_fiscal": format!("/arquivos_development/11222333000181/202611/XMLs/{KEY}-nfe.xml"),
        "caminho_danfe": format!("/arquivos_development/11222333000181/202611/DANFEs/{KEY}.pdf")
    })
}

/// Focus has nothing under `REF` yet (answered once, before the first POST).
async fn mount_not_submitted_yet(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(format!("/v2/nfe/{REF}")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "codigo": "nao_encontrado", "mensagem": "Nota fiscal não encontrada"
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(server)
        .await;
}

fn expected_authorization(server: &MockServer) -> EmitOutcome {
    EmitOutcome::Authorized {
        number: 123,
        series: 1,
        access_key: KEY.into(),
        pdf_url: format!(
            "{}/arquivos_development/11222333000181/202611/DANFEs/{KEY}.pdf",
            server.uri()
        ),
        xml_url: format!(
            "{}/arquivos_development/11222333000181/202611/XMLs/{KEY}-nfe.xml",
            server.uri()
        ),
    }
}

#[tokio::test]
async fn an_invoice_is_authorised_after_polling() {
    let server = MockServer::start().await;
    mount_not_submitted_yet(&server).await;
    Mock::given(method("POST"))
        .and(path("/v2/nfe"))
        .and(query_param("ref", REF))
        .respond_with(ResponseTemplate::new(202).set_body_json(processing()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/nfe/{REF}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(processing()))
        .up_to_n_times(2)
        .with_priority(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/nfe/{REF}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(authorized()))
        .expect(1)
        .mount(&server)
        .await;

    let outcome = emit_and_wait(&provider(&server), &sample_request(), &fast_polling())
        .await
        .unwrap();
    assert_eq!(outcome, expected_authorization(&server));
}

#[tokio::test]
async fn the_request_uses_basic_auth_the_ref_and_the_homologacao_recipient_name() {
    let server = MockServer::start().await;
    mount_not_submitted_yet(&server).await;
    let basic = base64::engine::general_purpose::STANDARD.encode("focus-token-abc:");
    Mock::given(method("POST"))
        .and(path("/v2/nfe"))
        .and(query_param("ref", REF))
        .and(header("authorization", format!("Basic {basic}").as_str()))
        .and(header("accept", "application/json"))
        .and(body_partial_json(json!({
            "natureza_operacao": "Venda de mercadoria",
            "data_emissao": "2026-11-25T12:00:00-03:00",
            "tipo_documento": 1, "finalidade_emissao": 1, "consumidor_final": 1,
            "presenca_comprador": 2, "local_destino": 2,
            "cnpj_emitente": "11222333000181",
            "nome_destinatario": "NF-E EMITIDA EM AMBIENTE DE HOMOLOGACAO - SEM VALOR FISCAL",
            "cpf_destinatario": "52998224725", "email_destinatario": "ana@example.com",
            "logradouro_destinatario": "Rua Sergipe", "numero_destinatario": "1014",
            "complemento_destinatario": "7o andar", "bairro_destinatario": "Savassi",
            "municipio_destinatario": "Belo Horizonte", "uf_destinatario": "MG",
            "cep_destinatario": "30130174", "indicador_inscricao_estadual_destinatario": 9,
            "modalidade_frete": 0,
            "valor_produtos": 104.8, "valor_frete": 18.5, "valor_desconto": 10.0, "valor_total": 113.3,
            // Paid with PIX (tPag 17), the whole total.
            "formas_pagamento": [{"forma_pagamento": "17", "valor_pagamento": 113.3}]
        })))
        .respond_with(ResponseTemplate::new(202).set_body_json(processing()))
        .expect(1)
        .mount(&server)
        .await;

    let outcome = provider(&server).emit(&sample_request()).await.unwrap();
    assert_eq!(outcome, EmitOutcome::Processing);

    let received = server.received_requests().await.unwrap();
    // The read before the POST is authenticated the same way.
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(
            request.headers.get("authorization").unwrap(),
            &format!("Basic {basic}")
        );
    }
    let post = received
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0],
        json!({
            "numero_item": 1, "codigo_produto": "CAFE-500", "descricao": "Café especial 500 g",
            "cfop": 6102, "codigo_ncm": "09012100", "unidade_comercial": "UN",
            "quantidade_comercial": 2, "valor_unitario_comercial": 29.9, "valor_bruto": 59.8,
            "unidade_tributavel": "UN", "quantidade_tributavel": 2, "valor_unitario_tributavel": 29.9,
            "valor_frete": 10.55, "valor_desconto": 5.7,
            "icms_origem": 0, "icms_situacao_tributaria": "102",
            "pis_situacao_tributaria": "07", "cofins_situacao_tributaria": "07"
        })
    );
    // Shipping and discount spread over the items add up to the order's.
    assert_eq!(items[1]["valor_frete"], json!(7.95));
    assert_eq!(items[1]["valor_desconto"], json!(4.3));
    assert!(body.get("inscricao_estadual_emitente").is_none());
}

#[tokio::test]
async fn in_production_the_recipients_own_name_is_sent() {
    let server = MockServer::start().await;
    mount_not_submitted_yet(&server).await;
    Mock::given(method("POST"))
        .and(path("/v2/nfe"))
        .and(body_partial_json(json!({
            "nome_destinatario": "Ana Souza",
            "inscricao_estadual_emitente": "123456789110"
        })))
        .respond_with(ResponseTemplate::new(202).set_body_json(processing()))
        .expect(1)
        .mount(&server)
        .await;
    let mut config = config(&server);
    config.fiscal.environment = NfeEnvironment::Producao;
    config.fiscal.emitter_ie = Some("123456789110".into());

    let outcome = FocusNfe::new(config, Duration::from_secs(5))
        .emit(&sample_request())
        .await
        .unwrap();
    assert_eq!(outcome, EmitOutcome::Processing);
}

#[tokio::test]
async fn a_sefaz_rejection_is_reported_with_its_message() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/nfe/{REF}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "cnpj_emitente": "11222333000181", "ref": REF, "status": "erro_autorizacao",
            "status_sefaz": "598",
            "mensagem_sefaz": "Rejeicao: NF-e emitida em ambiente de homologacao com Razao Social do destinatario diferente de NF-E EMITIDA EM AMBIENTE DE HOMOLOGACAO - SEM VALOR FISCAL"
        })))
        .mount(&server)
        .await;

    let outcome = provider(&server).status(REF).await.unwrap();
    let EmitOutcome::Rejected { message } = outcome else {
        panic!("expected a rejection, got {outcome:?}");
    };
    assert!(message.starts_with("598 - Rejeicao"), "{message}");
}

#[tokio::test]
async fn a_denied_invoice_is_rejected() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/nfe/{REF}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ref": REF, "status": "denegado", "status_sefaz": "302",
            "mensagem_sefaz": "Uso Denegado: Irregularidade fiscal do destinatario"
        })))
        .mount(&server)
        .await;

    let outcome = provider(&server).status(REF).await.unwrap();
    assert!(
        matches!(&outcome, EmitOutcome::Rejected { message } if message.contains("Denegado")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_concurrent_post_refused_as_in_processing_reads_the_state_instead() {
    let server = MockServer::start().await;
    // Nothing yet when this worker looked, but another one posted in between.
    mount_not_submitted_yet(&server).await;
    Mock::given(method("POST"))
        .and(path("/v2/nfe"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "codigo": "em_processamento",
            "mensagem": "Nota fiscal em processamento, aguarde o retorno da SEFAZ"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/nfe/{REF}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(authorized()))
        .expect(1)
        .mount(&server)
        .await;

    let outcome = provider(&server).emit(&sample_request()).await.unwrap();
    assert_eq!(outcome, expected_authorization(&server));
}

#[tokio::test]
async fn a_post_refused_as_already_authorised_returns_the_existing_invoice() {
    let server = MockServer::start().await;
    mount_not_submitted_yet(&server).await;
    Mock::given(method("POST"))
        .and(path("/v2/nfe"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "codigo": "requisicao_invalida",
            "mensagem": "Nota fiscal já autorizada com esta referência"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/nfe/{REF}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(authorized()))
        .expect(1)
        .mount(&server)
        .await;

    let outcome = provider(&server).emit(&sample_request()).await.unwrap();
    assert_eq!(outcome, expected_authorization(&server));
}

#[tokio::test]
async fn a_validation_error_is_permanent() {
    let server = MockServer::start().await;
    mount_not_submitted_yet(&server).await;
    Mock::given(method("POST"))
        .and(path("/v2/nfe"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "codigo": "erro_validacao_schema",
            "mensagem": "Erro na validação do schema",
            "erros": [{"mensagem": "CPF inválido", "campo": "cpf_destinatario"}]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let err = provider(&server).emit(&sample_request()).await.unwrap_err();
    match err {
        ProviderError::Rejected { status, message } => {
            assert_eq!(status, 422);
            assert!(message.contains("erro_validacao_schema"), "{message}");
            assert!(
                message.contains("cpf_destinatario: CPF inválido"),
                "{message}"
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn a_retry_for_an_authorised_ref_posts_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/nfe/{REF}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(authorized()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202).set_body_json(processing()))
        .expect(0)
        .mount(&server)
        .await;

    let outcome = provider(&server).emit(&sample_request()).await.unwrap();
    assert_eq!(outcome, expected_authorization(&server));
}

#[tokio::test]
async fn a_retry_for_a_ref_still_processing_posts_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/nfe/{REF}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(processing()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202).set_body_json(processing()))
        .expect(0)
        .mount(&server)
        .await;

    let outcome = provider(&server).emit(&sample_request()).await.unwrap();
    assert_eq!(outcome, EmitOutcome::Processing);
}

#[tokio::test]
async fn a_ref_whose_authorisation_failed_is_submitted_again() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v2/nfe/{REF}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "ref": REF, "status": "erro_autorizacao", "status_sefaz": "225",
            "mensagem_sefaz": "Rejeicao: Falha no Schema XML da NFe"
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v2/nfe"))
        .and(query_param("ref", REF))
        .respond_with(ResponseTemplate::new(202).set_body_json(processing()))
        .expect(1)
        .mount(&server)
        .await;

    let outcome = provider(&server).emit(&sample_request()).await.unwrap();
    assert_eq!(outcome, EmitOutcome::Processing);
}

#[tokio::test]
async fn a_bad_token_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "codigo": "permissao_negada", "mensagem": "Acesso negado"
        })))
        .mount(&server)
        .await;

    let err = provider(&server).emit(&sample_request()).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: 403, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retryable() {
    for status in [429, 500, 503] {
        let server = MockServer::start().await;
        mount_not_submitted_yet(&server).await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "codigo": "limite_excedido", "mensagem": "Limite de requisições excedido"
            })))
            .mount(&server)
            .await;

        let err = provider(&server).emit(&sample_request()).await.unwrap_err();
        assert!(
            matches!(err, ProviderError::Unavailable(_)),
            "{status}: {err:?}"
        );
    }
}

#[tokio::test]
async fn an_unknown_ref_is_a_404_rejection() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/nfe/nao-existe"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "codigo": "nao_encontrado", "mensagem": "Nota fiscal não encontrada"
        })))
        .mount(&server)
        .await;

    let err = provider(&server).status("nao-existe").await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: 404, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_slow_provider_times_out_within_the_client_timeout() {
    let server = MockServer::start().await;
    mount_not_submitted_yet(&server).await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_json(processing())
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;

    let started = Instant::now();
    let err = FocusNfe::new(config(&server), Duration::from_millis(200))
        .emit(&sample_request())
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1_500));
}

#[tokio::test]
async fn answers_that_cannot_be_read_are_malformed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/nfe/not-json"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>502 Bad Gateway</html>"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/nfe/no-key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "status": "autorizado", "numero": "123", "serie": "1", "chave_nfe": "NFe123",
            "caminho_danfe": "/x.pdf", "caminho_xml_nota_fiscal": "/x.xml"
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/nfe/odd-status"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "em_digitacao"})))
        .mount(&server)
        .await;

    let provider = provider(&server);
    for reference in ["not-json", "no-key", "odd-status"] {
        let err = provider.status(reference).await.unwrap_err();
        assert!(
            matches!(err, ProviderError::Malformed(_)),
            "{reference}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_reference_unfit_for_a_url_is_refused_before_any_call() {
    let server = MockServer::start().await;
    let err = provider(&server)
        .status("../../v2/hooks")
        .await
        .unwrap_err();
    assert!(err.is_permanent());
    assert!(server.received_requests().await.unwrap().is_empty());
}
