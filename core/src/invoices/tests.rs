use std::{
    collections::VecDeque,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::*;
use crate::test_support::invoices::sample_request;

#[test]
fn a_consistent_request_passes_the_check() {
    assert!(sample_request().check().is_ok());
}

#[test]
fn inconsistent_totals_are_caught_before_sending() {
    let mut request = sample_request();
    request.items[0].total_cents = 5_990;
    assert!(request.check().is_err());

    let mut request = sample_request();
    request.totals.products_cents = 10_000;
    assert!(request.check().is_err());

    let mut request = sample_request();
    request.totals.total_cents = 11_331;
    assert!(request.check().is_err());

    let mut request = sample_request();
    request.totals.discount_cents = 20_000;
    request.totals.total_cents = 10_480 + 1_850 - 20_000;
    assert!(request.check().is_err());

    let mut request = sample_request();
    request.items.clear();
    assert!(request.check().is_err());

    let mut request = sample_request();
    request.reference = "pedido 12/34".into();
    let err = request.check().unwrap_err();
    assert!(err.is_permanent());
}

#[test]
fn the_cfop_is_interstate_only_across_state_lines() {
    let fiscal = FiscalConfig::default();
    assert_eq!(fiscal.cfop_for("SP"), 5102);
    assert_eq!(fiscal.cfop_for("sp"), 5102);
    assert_eq!(fiscal.cfop_for("MG"), 6102);
    let custom = FiscalConfig {
        emitter_uf: "MG".into(),
        cfop_intrastate: 5405,
        cfop_interstate: 6404,
        ..FiscalConfig::default()
    };
    assert_eq!(custom.cfop_for("MG"), 5405);
    assert_eq!(custom.cfop_for("RJ"), 6404);
}

#[test]
fn homologacao_prints_the_mandatory_recipient_name() {
    let request = sample_request();
    let homolog = FiscalConfig::default();
    assert_eq!(
        homolog.recipient_name(&request.recipient),
        HOMOLOGACAO_RECIPIENT_NAME
    );
    let production = FiscalConfig {
        environment: NfeEnvironment::Producao,
        ..FiscalConfig::default()
    };
    assert_eq!(production.recipient_name(&request.recipient), "Ana Souza");
}

#[test]
fn environments_and_provider_names_parse() {
    assert_eq!("homologacao".parse(), Ok(NfeEnvironment::Homologacao));
    assert_eq!("Producao".parse(), Ok(NfeEnvironment::Producao));
    assert!("staging".parse::<NfeEnvironment>().is_err());
    assert_eq!("sandbox".parse(), Ok(NfeProviderKind::Sandbox));
    assert_eq!("FocusNFe".parse(), Ok(NfeProviderKind::FocusNfe));
    assert_eq!("enotas".parse(), Ok(NfeProviderKind::ENotas));
    assert!("bling".parse::<NfeProviderKind>().is_err());
}

#[test]
fn cnpjs_are_checked_by_their_digits() {
    assert!(is_valid_cnpj("11222333000181"));
    assert!(is_valid_cnpj("12345678000195"));
    assert!(!is_valid_cnpj("11222333000182"));
    assert!(!is_valid_cnpj("11111111111111"));
    assert!(!is_valid_cnpj("1122233300018"));
    assert!(!is_valid_cnpj("11.222.333/0001-81"));
}

#[test]
fn proportional_splits_add_up_exactly() {
    assert_eq!(
        split_proportionally(1_850, &[5_980, 4_500]),
        vec![1_055, 795]
    );
    assert_eq!(split_proportionally(1_000, &[1, 1, 1]), vec![333, 333, 334]);
    assert_eq!(split_proportionally(0, &[10, 20]), vec![0, 0]);
    assert_eq!(split_proportionally(500, &[0, 0]), vec![0, 500]);
    assert!(split_proportionally(500, &[]).is_empty());
    for total in [1, 7, 99, 1_234, 999_999] {
        let parts = split_proportionally(total, &[3, 17, 101, 5]);
        assert_eq!(parts.iter().sum::<i64>(), total);
        assert!(parts.iter().all(|&p| p >= 0));
    }
}

#[test]
fn already_submitted_answers_are_recognised() {
    assert!(is_already_submitted(
        "em_processamento",
        "Nota fiscal em processamento"
    ));
    assert!(is_already_submitted(
        "requisicao_invalida",
        "Nota fiscal já autorizada"
    ));
    assert!(is_already_submitted(
        "",
        "A nota com esta referência já existe"
    ));
    assert!(is_already_submitted("already_processed", ""));
    assert!(!is_already_submitted(
        "erro_validacao_schema",
        "CPF do destinatário inválido"
    ));
    assert!(!is_already_submitted("permissao_negada", "Token inválido"));
}

/// A provider that answers from a script, to test the polling helper without a network.
struct Scripted {
    emit: Mutex<Option<Result<EmitOutcome, ProviderError>>>,
    statuses: Mutex<VecDeque<Result<EmitOutcome, ProviderError>>>,
    polls: Mutex<u32>,
}

impl Scripted {
    fn new(
        emit: Result<EmitOutcome, ProviderError>,
        statuses: Vec<Result<EmitOutcome, ProviderError>>,
    ) -> Self {
        Self {
            emit: Mutex::new(Some(emit)),
            statuses: Mutex::new(statuses.into()),
            polls: Mutex::new(0),
        }
    }

    fn polls(&self) -> u32 {
        *self.polls.lock().unwrap()
    }
}

#[async_trait]
impl NfeProvider for Scripted {
    async fn emit(&self, _request: &InvoiceRequest) -> Result<EmitOutcome, ProviderError> {
        self.emit.lock().unwrap().take().unwrap()
    }

    async fn status(&self, _reference: &str) -> Result<EmitOutcome, ProviderError> {
        *self.polls.lock().unwrap() += 1;
        self.statuses
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Ok(EmitOutcome::Processing))
    }
}

fn authorized() -> EmitOutcome {
    EmitOutcome::Authorized {
        number: 12,
        series: 1,
        access_key: "35261111222333000181550010000001231123456787".into(),
        pdf_url: "https://example.test/danfe.pdf".into(),
        xml_url: "https://example.test/nfe.xml".into(),
    }
}

fn fast_polling(timeout: Duration) -> PollSettings {
    PollSettings {
        timeout,
        first_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

#[tokio::test]
async fn an_immediate_authorisation_needs_no_polling() {
    let provider = Scripted::new(Ok(authorized()), vec![]);
    let outcome = emit_and_wait(
        &provider,
        &sample_request(),
        &fast_polling(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!(outcome, authorized());
    assert_eq!(provider.polls(), 0);
}

#[tokio::test]
async fn polling_continues_through_processing_and_transient_errors_until_authorised() {
    let provider = Scripted::new(
        Ok(EmitOutcome::Processing),
        vec![
            Ok(EmitOutcome::Processing),
            Err(ProviderError::Unavailable("502".into())),
            Err(ProviderError::Timeout),
            Ok(authorized()),
        ],
    );
    let outcome = emit_and_wait(
        &provider,
        &sample_request(),
        &fast_polling(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!(outcome, authorized());
    assert_eq!(provider.polls(), 4);
}

#[tokio::test]
async fn a_rejection_while_polling_ends_the_wait() {
    let rejected = EmitOutcome::Rejected {
        message: "539 - Duplicidade de NF-e".into(),
    };
    let provider = Scripted::new(Ok(EmitOutcome::Processing), vec![Ok(rejected.clone())]);
    let outcome = emit_and_wait(
        &provider,
        &sample_request(),
        &fast_polling(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!(outcome, rejected);
}

#[tokio::test]
async fn a_failed_emission_is_returned_without_polling() {
    let provider = Scripted::new(Err(ProviderError::Timeout), vec![]);
    let err = emit_and_wait(
        &provider,
        &sample_request(),
        &fast_polling(Duration::from_secs(5)),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ProviderError::Timeout));
    assert_eq!(provider.polls(), 0);
}

#[tokio::test]
async fn a_permanent_error_while_polling_ends_the_wait() {
    let provider = Scripted::new(
        Ok(EmitOutcome::Processing),
        vec![Err(ProviderError::Rejected {
            status: 403,
            message: "permissao_negada".into(),
        })],
    );
    let err = emit_and_wait(
        &provider,
        &sample_request(),
        &fast_polling(Duration::from_secs(5)),
    )
    .await
    .unwrap_err();
    assert!(err.is_permanent());
    assert_eq!(provider.polls(), 1);
}

#[tokio::test]
async fn polling_gives_up_at_the_timeout_still_processing() {
    let provider = Scripted::new(Ok(EmitOutcome::Processing), vec![]);
    let started = Instant::now();
    let outcome = emit_and_wait(
        &provider,
        &sample_request(),
        &fast_polling(Duration::from_millis(150)),
    )
    .await
    .unwrap();
    assert_eq!(outcome, EmitOutcome::Processing);
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(provider.polls() >= 2, "polled {} times", provider.polls());
}
