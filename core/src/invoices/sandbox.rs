//! The default NF-e provider: authorises at once, no network.
//!
//! The access key is well formed (IBGE state code of `NFE_EMITTER_UF`, the issue month in
//! Brasília time, `NFE_EMITTER_CNPJ`, model 55, series 1, tpEmis 1, right check digit).
//! Number and cNF are derived from a SHA-256 of the reference, so a retried emission for
//! the same order gets the same key. The PDF and XML URLs point under `FRONTEND_URL`
//! (`/sandbox/nfe/{key}.pdf|.xml`); nothing is served there.
//!
//! `status` answers from what this process emitted; an unknown reference is a 404
//! rejection (the sandbox never leaves an invoice processing, so nobody needs to poll it).

use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;
use chrono::{Datelike, FixedOffset, Offset};
use sha2::{Digest, Sha256};

use super::{
    EmitOutcome, FiscalConfig, InvoiceRequest, NfeProvider,
    access_key::{self, AccessKeyParts, MODEL_NFE},
};
use crate::http_client::ProviderError;

const SERIES: u16 = 1;

pub struct SandboxNfe {
    fiscal: FiscalConfig,
    base_url: String,
    issued: Mutex<HashMap<String, EmitOutcome>>,
}

impl std::fmt::Debug for SandboxNfe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxNfe")
            .field("fiscal", &self.fiscal)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SandboxNfe {
    /// `base_url` is where the fake DANFE and XML links point (the store's front end).
    pub fn new(fiscal: FiscalConfig, base_url: impl Into<String>) -> Self {
        Self {
            fiscal,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            issued: Mutex::new(HashMap::new()),
        }
    }

    /// The authorised outcome for `request`, a pure function of the request's reference,
    /// issue month and the emitter settings.
    pub fn authorize(&self, request: &InvoiceRequest) -> Result<EmitOutcome, ProviderError> {
        let digest = Sha256::digest(request.reference.as_bytes());
        let word = |i: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&digest[i..i + 8]);
            u64::from_be_bytes(bytes)
        };
        let number = u32::try_from(word(0) % 999_999_999 + 1).unwrap_or(1);
        let mut numeric_code = u32::try_from(word(8) % 100_000_000).unwrap_or(0);
        // SEFAZ refuses a cNF equal to the invoice number.
        if numeric_code == number {
            numeric_code = (numeric_code + 1) % 100_000_000;
        }
        let brasilia = FixedOffset::west_opt(3 * 3600).unwrap_or_else(|| chrono::Utc.fix());
        let issued = request.issued_at.with_timezone(&brasilia);
        let uf_code = access_key::uf_code(&self.fiscal.emitter_uf)
            .ok_or_else(|| ProviderError::Config("NFE_EMITTER_UF is not a UF".into()))?;
        let key = access_key::build(&AccessKeyParts {
            uf_code,
            year: u16::try_from(issued.year()).unwrap_or(2000),
            month: u8::try_from(issued.month()).unwrap_or(1),
            cnpj: self.fiscal.emitter_cnpj.clone(),
            model: MODEL_NFE,
            series: SERIES,
            number,
            emission_type: 1,
            numeric_code,
        })
        .map_err(|e| ProviderError::Config(format!("sandbox access key: {e}")))?;
        Ok(EmitOutcome::Authorized {
            number: i64::from(number),
            series: i32::from(SERIES),
            pdf_url: format!("{}/sandbox/nfe/{key}.pdf", self.base_url),
            xml_url: format!("{}/sandbox/nfe/{key}.xml", self.base_url),
            access_key: key,
        })
    }
}

#[async_trait]
impl NfeProvider for SandboxNfe {
    async fn emit(&self, request: &InvoiceRequest) -> Result<EmitOutcome, ProviderError> {
        request.check()?;
        let outcome = self.authorize(request)?;
        if let Ok(mut issued) = self.issued.lock() {
            issued.insert(request.reference.clone(), outcome.clone());
        }
        Ok(outcome)
    }

    async fn status(&self, reference: &str) -> Result<EmitOutcome, ProviderError> {
        let known = self
            .issued
            .lock()
            .ok()
            .and_then(|issued| issued.get(reference).cloned());
        known.ok_or_else(|| ProviderError::Rejected {
            status: 404,
            message: format!("no sandbox invoice for reference {reference}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::invoices::sample_request;

    fn sandbox() -> SandboxNfe {
        SandboxNfe::new(FiscalConfig::default(), "http://localhost:3000/")
    }

    #[tokio::test]
    async fn the_sandbox_authorises_at_once_with_a_valid_key() {
        let outcome = sandbox().emit(&sample_request()).await.unwrap();
        let EmitOutcome::Authorized {
            number,
            series,
            access_key,
            pdf_url,
            xml_url,
        } = outcome
        else {
            panic!("expected an authorisation, got {outcome:?}");
        };
        let parts = access_key::validate(&access_key).unwrap();
        assert_eq!(parts.uf_code, 35);
        assert_eq!((parts.year, parts.month), (2026, 11));
        assert_eq!(parts.cnpj, "11222333000181");
        assert_eq!(parts.model, 55);
        assert_eq!(i64::from(parts.number), number);
        assert_eq!(i32::from(parts.series), series);
        assert_ne!(parts.numeric_code, parts.number);
        assert_eq!(
            pdf_url,
            format!("http://localhost:3000/sandbox/nfe/{access_key}.pdf")
        );
        assert_eq!(
            xml_url,
            format!("http://localhost:3000/sandbox/nfe/{access_key}.xml")
        );
    }

    #[tokio::test]
    async fn a_retry_for_the_same_order_gets_the_same_invoice() {
        let request = sample_request();
        let first = sandbox().emit(&request).await.unwrap();
        let second = sandbox().emit(&request).await.unwrap();
        assert_eq!(first, second);

        let mut other = request.clone();
        other.reference = "0197a1b2-other-order".into();
        assert_ne!(sandbox().emit(&other).await.unwrap(), first);
    }

    #[tokio::test]
    async fn the_issue_month_is_taken_in_brasilia_time() {
        let mut request = sample_request();
        // 02:00 UTC on 1 December is still 30 November in Brasília.
        request.issued_at = "2026-12-01T02:00:00Z".parse().unwrap();
        let EmitOutcome::Authorized { access_key, .. } = sandbox().emit(&request).await.unwrap()
        else {
            panic!("expected an authorisation");
        };
        assert_eq!(&access_key[2..6], "2611");
    }

    #[tokio::test]
    async fn status_reports_what_was_emitted_and_404s_the_unknown() {
        let provider = sandbox();
        let request = sample_request();
        let emitted = provider.emit(&request).await.unwrap();
        assert_eq!(provider.status(&request.reference).await.unwrap(), emitted);
        let err = provider.status("never-emitted").await.unwrap_err();
        assert!(
            matches!(err, ProviderError::Rejected { status: 404, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn the_emitter_settings_shape_the_key() {
        let fiscal = FiscalConfig {
            emitter_uf: "RJ".into(),
            emitter_cnpj: "12345678000195".into(),
            ..FiscalConfig::default()
        };
        let EmitOutcome::Authorized { access_key, .. } =
            SandboxNfe::new(fiscal, "https://loja.test")
                .emit(&sample_request())
                .await
                .unwrap()
        else {
            panic!("expected an authorisation");
        };
        assert!(access_key.starts_with("33"));
        assert_eq!(&access_key[6..20], "12345678000195");
    }

    #[tokio::test]
    async fn an_inconsistent_request_is_rejected_permanently() {
        let mut request = sample_request();
        request.totals.total_cents += 1;
        let err = sandbox().emit(&request).await.unwrap_err();
        assert!(err.is_permanent());
    }
}
