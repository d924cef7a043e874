use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_partial_json, header, method, path},
};

use super::*;
use crate::{
    invoices::{PollSettings, emit_and_wait},
    test_support::invoices::sample_request,
};

const COMPANY: &str = "67023eae-7384-4469-bb0a-26f44e670800";
const REF: &str = "0197a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const KEY: &str = "35261111222333000181550010000001231123456787";

fn nfe_path() -> String {
    format!("/v2/empresas/{COMPANY}/nf-e")
}

fn status_path() -> String {
    format!("/v2/empresas/{COMPANY}/nf-e/{REF}")
}

fn config(server: &MockServer) -> ENotasConfig {
    ENotasConfig {
        base_url: server.uri(),
        api_key: SecretString::from("ZW5vdGFzLWFwaS1rZXk"),
        company_id: COMPANY.into(),
        fiscal: FiscalConfig::default(),
    }
}

fn provider(server: &MockServer) -> ENotas {
    ENotas::new(config(server), Duration::from_secs(5))
}

fn consult(status: &str) -> serde_json::Value {
    json!({
        "id": REF, "tipo": "NF-e", "status": status, "motivoStatus": null,
        "ambienteEmissao": "Homologacao", "enviadaPorEmail": false,
        "dataCriacao": "2026-11-25T12:00:05", "dataUltimaAlteracao": "2026-11-25T12:00:09"
    })
}

fn authorized() -> serde_json::Value {
    let mut answer = consult("Autorizada");
    let fields = json!({
        "numero": 123, "serie": 1, "chaveAcesso": KEY,
        "dataAutorizacao": "2026-11-25T12:00:09",
        "linkDanfe": format!("https://api.enotasgw.com.br/file/{KEY}/pdf"),
        "linkDownloadXml": format!("https://api.enotasgw.com.br/file/{KEY}/xml"),
        "protocolo": {"numero": "135260000012345", "dataAutorizacao": "2026-11-25T12:00:09"},
        "valorTotal": 113.3
    });
    for (k, v) in fields.as_object().unwrap() {
        answer[k] = v.clone();
    }
    answer
}

/// eNotas has nothing under our id yet (answered once, before the first POST).
async fn mount_not_submitted_yet(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(status_path()))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!([{
            "codigo": "NFE_NAO_ENCONTRADA", "mensagem": "Nota fiscal não encontrada."
        }])))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(server)
        .await;
}

fn expected_authorization() -> EmitOutcome {
    EmitOutcome::Authorized {
        number: 123,
        series: 1,
        access_key: KEY.into(),
        pdf_url: format!("https://api.enotasgw.com.br/file/{KEY}/pdf"),
        xml_url: format!("https://api.enotasgw.com.br/file/{KEY}/xml"),
    }
}

fn fast_polling() -> PollSettings {
    PollSettings {
        timeout: Duration::from_secs(5),
        first_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
    }
}

#[tokio::test]
async fn an_invoice_is_authorised_after_polling() {
    let server = MockServer::start().await;
    mount_not_submitted_yet(&server).await;
    Mock::given(method("POST"))
        .and(path(nfe_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"nfeId": REF})))
        .expect(1)
        .mount(&server)
        .await;
    for (priority, status) in [(2, "AguardandoAutorizacao"), (3, "EmProcessoDeAutorizacao")] {
        Mock::given(method("GET"))
            .and(path(status_path()))
            .respond_with(ResponseTemplate::new(200).set_body_json(consult(status)))
            .up_to_n_times(1)
            .with_priority(priority)
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path(status_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(authorized()))
        .with_priority(4)
        .expect(1)
        .mount(&server)
        .await;

    let outcome = emit_and_wait(&provider(&server), &sample_request(), &fast_polling())
        .await
        .unwrap();
    assert_eq!(outcome, expected_authorization());
}

#[tokio::test]
async fn the_request_carries_the_raw_key_our_id_and_the_homologacao_name() {
    let server = MockServer::start().await;
    mount_not_submitted_yet(&server).await;
    Mock::given(method("POST"))
        .and(path(nfe_path()))
        .and(header("authorization", "Basic ZW5vdGFzLWFwaS1rZXk"))
        .and(header("accept", "application/json"))
        .and(body_partial_json(json!({
            "id": REF,
            "ambienteEmissao": "Homologacao",
            "naturezaOperacao": "Venda de mercadoria",
            "tipoOperacao": "Saida",
            "consumidorFinal": true,
            "enviarPorEmail": false,
            "pedido": {"presencaConsumidor": "OperacaoPelaInternet"},
            "cliente": {
                "tipoPessoa": "F", "indicadorContribuinteICMS": "NaoContribuinte",
                "nome": "NF-E EMITIDA EM AMBIENTE DE HOMOLOGACAO - SEM VALOR FISCAL",
                "email": "ana@example.com", "cpfCnpj": "52998224725",
                "endereco": {"uf": "MG", "cidade": "Belo Horizonte", "logradouro": "Rua Sergipe",
                             "numero": "1014", "complemento": "7o andar", "bairro": "Savassi",
                             "cep": "30130174"}
            },
            "transporte": {"frete": {"modalidade": "PorContaDoEmitente", "valor": 18.5}},
            "valorTotal": 113.3
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"nfeId": REF})))
        .expect(1)
        .mount(&server)
        .await;

    let outcome = provider(&server).emit(&sample_request()).await.unwrap();
    assert_eq!(outcome, EmitOutcome::Processing);

    let received = server.received_requests().await.unwrap();
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(
            request.headers.get("authorization").unwrap(),
            "Basic ZW5vdGFzLWFwaS1rZXk"
        );
    }
    let post = received
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
    assert_eq!(
        body["itens"][0],
        json!({
            "cfop": "6102", "codigo": "CAFE-500", "descricao": "Café especial 500 g",
            "ncm": "09012100", "quantidade": 2, "unidadeMedida": "UN", "valorUnitario": 29.9,
            "descontos": 5.7,
            "impostos": {"icms": {"origem": 0, "situacaoTributaria": "102"},
                         "pis": {"situacaoTributaria": "07"},
                         "cofins": {"situacaoTributaria": "07"}}
        })
    );
    assert_eq!(body["itens"][1]["descontos"], json!(4.3));
}

#[tokio::test]
async fn a_denied_invoice_is_rejected_with_the_reason() {
    let server = MockServer::start().await;
    let mut denied = consult("Negada");
    denied["motivoStatus"] = json!("Rejeição 204: Duplicidade de NF-e");
    Mock::given(method("GET"))
        .and(path(status_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(denied))
        .mount(&server)
        .await;

    let outcome = provider(&server).status(REF).await.unwrap();
    assert_eq!(
        outcome,
        EmitOutcome::Rejected {
            message: "Rejeição 204: Duplicidade de NF-e".into()
        }
    );
}

#[tokio::test]
async fn a_cancelled_invoice_is_no_longer_valid() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(status_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(consult("Cancelada")))
        .mount(&server)
        .await;

    let outcome = provider(&server).status(REF).await.unwrap();
    assert!(
        matches!(outcome, EmitOutcome::Rejected { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_post_refused_because_the_id_exists_reads_it_instead() {
    let server = MockServer::start().await;
    // Nothing yet when this worker looked, but another one posted in between.
    mount_not_submitted_yet(&server).await;
    Mock::given(method("POST"))
        .and(path(nfe_path()))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!([{
            "codigo": "NFE_ID_DUPLICADO",
            "mensagem": format!("Já existe uma nota fiscal com o id '{REF}' para esta empresa.")
        }])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(status_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(authorized()))
        .expect(1)
        .mount(&server)
        .await;

    let outcome = provider(&server).emit(&sample_request()).await.unwrap();
    assert_eq!(outcome, expected_authorization());
}

#[tokio::test]
async fn a_validation_error_is_permanent() {
    let server = MockServer::start().await;
    mount_not_submitted_yet(&server).await;
    Mock::given(method("POST"))
        .and(path(nfe_path()))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!([{
            "codigo": "CPF_INVALIDO", "mensagem": "O CPF do cliente é inválido."
        }])))
        .expect(1)
        .mount(&server)
        .await;

    let err = provider(&server).emit(&sample_request()).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Rejected { status: 400, message } if message.contains("CPF_INVALIDO")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_retry_for_an_authorised_id_posts_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(status_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(authorized()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"nfeId": REF})))
        .expect(0)
        .mount(&server)
        .await;

    let outcome = provider(&server).emit(&sample_request()).await.unwrap();
    assert_eq!(outcome, expected_authorization());
}

#[tokio::test]
async fn a_bad_api_key_is_permanent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "Unauthorized"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "Unauthorized"})))
        .expect(0)
        .mount(&server)
        .await;

    let err = provider(&server).emit(&sample_request()).await.unwrap_err();
    assert!(
        matches!(err, ProviderError::Rejected { status: 401, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn server_errors_are_retryable() {
    let server = MockServer::start().await;
    mount_not_submitted_yet(&server).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500).set_body_string("Internal Server Error"))
        .mount(&server)
        .await;

    let provider = provider(&server);
    let err = provider.emit(&sample_request()).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
    let err = provider.status(REF).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn a_slow_provider_times_out_within_the_client_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(authorized())
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;

    let started = Instant::now();
    let err = ENotas::new(config(&server), Duration::from_millis(200))
        .status(REF)
        .await
        .unwrap_err();
    assert!(matches!(err, ProviderError::Timeout), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1_500));
}

#[tokio::test]
async fn answers_that_cannot_be_read_are_malformed() {
    let server = MockServer::start().await;
    mount_not_submitted_yet(&server).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"nfeId\": "))
        .mount(&server)
        .await;
    let err = provider(&server).emit(&sample_request()).await.unwrap_err();
    assert!(matches!(err, ProviderError::Malformed(_)), "{err:?}");

    let server = MockServer::start().await;
    let mut keyless = authorized();
    keyless["chaveAcesso"] = json!("123");
    Mock::given(method("GET"))
        .and(path(status_path()))
        .respond_with(ResponseTemplate::new(200).set_body_json(keyless))
        .mount(&server)
        .await;
    let err = provider(&server).status(REF).await.unwrap_err();
    assert!(matches!(err, ProviderError::Malformed(_)), "{err:?}");
}
