//! NF-e (nota fiscal eletrônica) emission: one [`NfeProvider`] interface, chosen by
//! `NFE_PROVIDER`.
//!
//! - `sandbox` (default): authorises at once with a well-formed access key, no network.
//! - `focusnfe`: Focus NFe (`POST /v2/nfe?ref=…`, then poll `GET /v2/nfe/…`).
//! - `enotas`: eNotas Gateway v2 (`POST /v2/empresas/{id}/nf-e`, then poll by our id).
//!
//! The order id is the provider-side reference, so emitting twice for one order is
//! impossible: a repeated `emit` for a reference the provider already has answers with that
//! invoice's current state instead of issuing another one.
//!
//! Polling: the worker's job calls [`emit_and_wait`], which emits and then polls
//! [`NfeProvider::status`] with exponential backoff for up to `NFE_POLL_TIMEOUT` (default
//! 60s). If the invoice is still processing then, it answers [`EmitOutcome::Processing`]
//! and the job should schedule itself again; re-running it is safe because `emit` with the
//! same reference never issues a second invoice.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use backon::BackoffBuilder;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    config::{self, ConfigError},
    http_client::ProviderError,
};

pub mod access_key;
pub mod emit;
pub mod enotas;
pub mod focusnfe;
pub mod sandbox;

/// What the job hands a provider: a snapshot of the paid order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceRequest {
    /// The order id: the provider-side reference (Focus `ref`, eNotas `id`).
    pub reference: String,
    pub issued_at: DateTime<Utc>,
    pub recipient: Recipient,
    pub items: Vec<InvoiceItem>,
    pub totals: InvoiceTotals,
    /// How the order was paid (the NF-e's payment group); unknown for requests stored before
    /// it was recorded.
    #[serde(default)]
    pub payment: Option<PaymentMeans>,
}

/// How an order was paid, as the NF-e's payment group (`detPag/tPag`) names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMeans {
    Pix,
    CreditCard,
}

impl PaymentMeans {
    /// From a `payments.method` value.
    pub fn from_method(method: &str) -> Option<Self> {
        match method {
            "pix" => Some(Self::Pix),
            "credit_card" => Some(Self::CreditCard),
            _ => None,
        }
    }

    /// The `tPag` code: 17 is PIX with a charge of its own (dynamic), 03 a credit card.
    pub fn nfe_code(self) -> &'static str {
        match self {
            Self::Pix => "17",
            Self::CreditCard => "03",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub name: String,
    /// 11 digits, no mask.
    pub cpf: String,
    pub email: Option<String>,
    pub address: RecipientAddress,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientAddress {
    pub street: String,
    pub number: String,
    pub complement: Option<String>,
    pub district: String,
    pub city: String,
    /// Two letters (`SP`).
    pub uf: String,
    /// 8 digits, no hyphen.
    pub cep: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceItem {
    /// The product's code in the store (SKU).
    pub code: String,
    pub description: String,
    /// 8-digit Mercosur classification.
    pub ncm: String,
    /// From [`FiscalConfig::cfop_for`]: 5102 inside the emitter's state, 6102 across states.
    pub cfop: u16,
    pub quantity: i64,
    pub unit_price_cents: i64,
    /// `quantity × unit_price_cents`.
    pub total_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceTotals {
    /// Sum of the items' totals.
    pub products_cents: i64,
    pub shipping_cents: i64,
    pub discount_cents: i64,
    /// `products + shipping − discount`.
    pub total_cents: i64,
}

impl InvoiceRequest {
    /// Checks the arithmetic a SEFAZ would reject, before anything is sent. A failure is
    /// our own bug, so it is a permanent rejection (status 422).
    pub fn check(&self) -> Result<(), ProviderError> {
        let reject = |message: String| ProviderError::Rejected {
            status: 422,
            message,
        };
        check_reference(&self.reference)?;
        if self.items.is_empty() {
            return Err(reject("an invoice needs at least one item".into()));
        }
        for (i, item) in self.items.iter().enumerate() {
            if item.quantity < 1 || item.unit_price_cents < 0 {
                return Err(reject(format!("item {}: bad quantity or price", i + 1)));
            }
            if item.quantity.checked_mul(item.unit_price_cents) != Some(item.total_cents) {
                return Err(reject(format!(
                    "item {}: total is not quantity × unit price",
                    i + 1
                )));
            }
        }
        let products: i64 = self.items.iter().map(|i| i.total_cents).sum();
        let totals = &self.totals;
        if products != totals.products_cents {
            return Err(reject(
                "products total differs from the sum of the items".into(),
            ));
        }
        if totals.shipping_cents < 0
            || totals.discount_cents < 0
            || totals.discount_cents > totals.products_cents
        {
            return Err(reject("bad shipping or discount".into()));
        }
        if totals.products_cents + totals.shipping_cents - totals.discount_cents
            != totals.total_cents
        {
            return Err(reject("total is not products + shipping − discount".into()));
        }
        Ok(())
    }
}

/// Providers put the reference in URLs and use it as their key: keep it to 1–64 letters,
/// digits, `-` or `_` (an order's UUID fits).
pub(crate) fn check_reference(reference: &str) -> Result<(), ProviderError> {
    let ok = !reference.is_empty()
        && reference.len() <= 64
        && reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ProviderError::Rejected {
            status: 422,
            message: "the reference must be 1–64 letters, digits, - or _".into(),
        })
    }
}

/// Where an emission stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmitOutcome {
    /// Authorised by SEFAZ: final. The URLs are absolute.
    Authorized {
        number: i64,
        series: i32,
        access_key: String,
        pdf_url: String,
        xml_url: String,
    },
    /// Accepted by the provider, waiting for SEFAZ: poll [`NfeProvider::status`].
    Processing,
    /// Refused (SEFAZ rejection or denial, or cancelled at the provider): final for this
    /// attempt; the message says why.
    Rejected { message: String },
}

#[async_trait]
pub trait NfeProvider: Send + Sync {
    /// Submits the invoice for `request.reference`. Calling it again for the same
    /// reference never issues a second invoice: it reports the existing one's state.
    async fn emit(&self, request: &InvoiceRequest) -> Result<EmitOutcome, ProviderError>;

    /// The current state of the invoice submitted under `reference`.
    async fn status(&self, reference: &str) -> Result<EmitOutcome, ProviderError>;
}

/// SEFAZ environment (`NFE_AMBIENTE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NfeEnvironment {
    /// Testing: invoices have no legal value.
    Homologacao,
    Producao,
}

impl std::str::FromStr for NfeEnvironment {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "homologacao" | "homologação" | "homolog" | "2" => Ok(Self::Homologacao),
            "producao" | "produção" | "production" | "1" => Ok(Self::Producao),
            other => Err(format!("{other:?} is neither homologacao nor producao")),
        }
    }
}

/// In homologação SEFAZ requires this literal recipient name (otherwise rejection 598).
pub const HOMOLOGACAO_RECIPIENT_NAME: &str =
    "NF-E EMITIDA EM AMBIENTE DE HOMOLOGACAO - SEM VALOR FISCAL";

/// A valid CNPJ for the sandbox when `NFE_EMITTER_CNPJ` is unset.
pub const SANDBOX_EMITTER_CNPJ: &str = "11222333000181";

/// The emitter's fiscal settings shared by every provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiscalConfig {
    /// `NFE_AMBIENTE` (default homologacao).
    pub environment: NfeEnvironment,
    /// `NFE_EMITTER_CNPJ`, 14 digits (sandbox default 11222333000181).
    pub emitter_cnpj: String,
    /// `NFE_EMITTER_IE`: state registration, sent when set.
    pub emitter_ie: Option<String>,
    /// `NFE_EMITTER_UF` (default SP): decides intra- or interstate CFOP.
    pub emitter_uf: String,
    /// `NFE_CFOP` (default 5102: sale of goods bought from third parties, same state).
    pub cfop_intrastate: u16,
    /// `NFE_CFOP_INTERSTATE` (default 6102: the same, to another state).
    pub cfop_interstate: u16,
    /// `NFE_ICMS_SITUACAO` (default 102: Simples Nacional without credit). Ask an accountant.
    pub icms_situacao: String,
    /// `NFE_PIS_COFINS_SITUACAO` (default 07: exempt). Ask an accountant.
    pub pis_cofins_situacao: String,
}

impl Default for FiscalConfig {
    fn default() -> Self {
        Self {
            environment: NfeEnvironment::Homologacao,
            emitter_cnpj: SANDBOX_EMITTER_CNPJ.into(),
            emitter_ie: None,
            emitter_uf: "SP".into(),
            cfop_intrastate: 5102,
            cfop_interstate: 6102,
            icms_situacao: "102".into(),
            pis_cofins_situacao: "07".into(),
        }
    }
}

impl FiscalConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let emitter_cnpj = config::var_or("NFE_EMITTER_CNPJ", &defaults.emitter_cnpj);
        let emitter_cnpj: String = emitter_cnpj.chars().filter(char::is_ascii_digit).collect();
        if !is_valid_cnpj(&emitter_cnpj) {
            return Err(ConfigError::Invalid {
                name: "NFE_EMITTER_CNPJ",
                reason: "not a valid CNPJ".into(),
            });
        }
        let emitter_uf =
            config::var_or("NFE_EMITTER_UF", &defaults.emitter_uf).to_ascii_uppercase();
        if access_key::uf_code(&emitter_uf).is_none() {
            return Err(ConfigError::Invalid {
                name: "NFE_EMITTER_UF",
                reason: "not one of the 27 UFs".into(),
            });
        }
        Ok(Self {
            environment: config::var_parsed("NFE_AMBIENTE", defaults.environment)?,
            emitter_cnpj,
            emitter_ie: config::var("NFE_EMITTER_IE"),
            emitter_uf,
            cfop_intrastate: config::var_parsed("NFE_CFOP", defaults.cfop_intrastate)?,
            cfop_interstate: config::var_parsed("NFE_CFOP_INTERSTATE", defaults.cfop_interstate)?,
            icms_situacao: config::var_or("NFE_ICMS_SITUACAO", &defaults.icms_situacao),
            pis_cofins_situacao: config::var_or(
                "NFE_PIS_COFINS_SITUACAO",
                &defaults.pis_cofins_situacao,
            ),
        })
    }

    /// True when the recipient is in another state than the emitter.
    pub fn is_interstate(&self, recipient_uf: &str) -> bool {
        !recipient_uf.trim().eq_ignore_ascii_case(&self.emitter_uf)
    }

    /// The CFOP for a sale shipped to `recipient_uf`.
    pub fn cfop_for(&self, recipient_uf: &str) -> u16 {
        if self.is_interstate(recipient_uf) {
            self.cfop_interstate
        } else {
            self.cfop_intrastate
        }
    }

    /// The name to print for the recipient: theirs, or the literal homologação demands.
    pub fn recipient_name<'a>(&self, recipient: &'a Recipient) -> &'a str {
        match self.environment {
            NfeEnvironment::Homologacao => HOMOLOGACAO_RECIPIENT_NAME,
            NfeEnvironment::Producao => &recipient.name,
        }
    }
}

/// CNPJ check digits (numeric CNPJs; repeated-digit ones are rejected).
fn is_valid_cnpj(cnpj: &str) -> bool {
    let digits: Vec<u32> = cnpj.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 14 || cnpj.len() != 14 || digits.iter().all(|&d| d == digits[0]) {
        return false;
    }
    let check = |body: &[u32]| {
        let weights = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
        let offset = weights.len() - body.len();
        let sum: u32 = body
            .iter()
            .zip(&weights[offset..])
            .map(|(d, w)| d * w)
            .sum();
        let r = sum % 11;
        if r < 2 { 0 } else { 11 - r }
    };
    check(&digits[..12]) == digits[12] && check(&digits[..13]) == digits[13]
}

/// Splits `total` over parts in proportion to `weights`, in whole centavos that add up to
/// `total` exactly (the rounding remainder goes to the last part). Used to spread the
/// order's shipping and discount over the items, as NF-e wants them per item.
pub fn split_proportionally(total: i64, weights: &[i64]) -> Vec<i64> {
    let Some(last) = weights.len().checked_sub(1) else {
        return Vec::new();
    };
    let weight_sum: i128 = weights.iter().map(|&w| i128::from(w.max(0))).sum();
    let mut parts: Vec<i64> = if weight_sum == 0 {
        vec![0; weights.len()]
    } else {
        weights
            .iter()
            .map(|&w| {
                let share = i128::from(total) * i128::from(w.max(0)) / weight_sum;
                i64::try_from(share).unwrap_or(0)
            })
            .collect()
    };
    let assigned: i64 = parts.iter().sum();
    parts[last] += total - assigned;
    parts
}

/// Which provider `NFE_PROVIDER` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NfeProviderKind {
    Sandbox,
    FocusNfe,
    ENotas,
}

impl std::str::FromStr for NfeProviderKind {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "sandbox" => Ok(Self::Sandbox),
            "focusnfe" | "focus" => Ok(Self::FocusNfe),
            "enotas" => Ok(Self::ENotas),
            other => Err(format!(
                "unknown NF-e provider {other:?} (expected sandbox, focusnfe or enotas)"
            )),
        }
    }
}

/// Default bound on one provider call (`NFE_TIMEOUT`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Builds the provider named by `NFE_PROVIDER` (default `sandbox`), each call bounded by
/// `NFE_TIMEOUT` (default 15s). Missing credentials are reported by name.
pub fn provider_from_env() -> Result<Arc<dyn NfeProvider>, ConfigError> {
    let kind: NfeProviderKind = config::var_parsed("NFE_PROVIDER", NfeProviderKind::Sandbox)?;
    let timeout = config::var_duration("NFE_TIMEOUT", DEFAULT_TIMEOUT)?;
    let fiscal = FiscalConfig::from_env()?;
    Ok(match kind {
        NfeProviderKind::Sandbox => Arc::new(sandbox::SandboxNfe::new(
            fiscal,
            config::var_or("FRONTEND_URL", "http://localhost:3000"),
        )),
        NfeProviderKind::FocusNfe => {
            // The sandbox default CNPJ would only earn rejections from a real provider.
            config::required_var("NFE_EMITTER_CNPJ")?;
            Arc::new(focusnfe::FocusNfe::new(
                focusnfe::FocusNfeConfig::from_env(fiscal)?,
                timeout,
            ))
        }
        NfeProviderKind::ENotas => Arc::new(enotas::ENotas::new(
            enotas::ENotasConfig::from_env(fiscal)?,
            timeout,
        )),
    })
}

/// How long and how often [`emit_and_wait`] polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSettings {
    /// `NFE_POLL_TIMEOUT` (default 60s): give up polling after this long.
    pub timeout: Duration,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl PollSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            timeout: config::var_duration("NFE_POLL_TIMEOUT", defaults.timeout)?,
            ..defaults
        })
    }
}

/// Emits, then polls with exponential backoff (and jitter) until the invoice is authorised
/// or rejected, or `settings.timeout` has passed.
///
/// - A failed `emit` is returned at once: it may never have reached the provider, so the
///   job retries the emission itself (safe: same reference, never a second invoice).
/// - While polling, transient errors are retried; a permanent one ends the wait.
/// - After the timeout it answers `Ok(Processing)` (or the last transient error, if the
///   last poll failed) and the job should run again later.
pub async fn emit_and_wait(
    provider: &dyn NfeProvider,
    request: &InvoiceRequest,
    settings: &PollSettings,
) -> Result<EmitOutcome, ProviderError> {
    let deadline = tokio::time::Instant::now() + settings.timeout;
    let first = provider.emit(request).await?;
    if first != EmitOutcome::Processing {
        return Ok(first);
    }
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(settings.first_delay)
        .with_max_delay(settings.max_delay)
        .with_jitter()
        .without_max_times()
        .build();
    let mut last = Ok(EmitOutcome::Processing);
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return last;
        }
        let delay = delays.next().unwrap_or(settings.max_delay);
        tokio::time::sleep(delay.min(deadline - now)).await;
        last = provider.status(&request.reference).await;
        match &last {
            Ok(EmitOutcome::Processing) => {}
            Err(err) if !err.is_permanent() => {
                tracing::warn!(reference = %request.reference, error = %err, "NF-e status poll failed; polling on");
            }
            _ => return last,
        }
    }
}

/// Before posting, what the provider already has under the reference: `Some(outcome)`
/// when it holds an authorised or processing invoice (report it, post nothing), `None` when
/// it has none or only a rejected attempt (a rejected reference may be submitted again).
pub(crate) async fn existing_submission(
    provider: &(impl NfeProvider + ?Sized),
    reference: &str,
) -> Result<Option<EmitOutcome>, ProviderError> {
    match provider.status(reference).await {
        Ok(EmitOutcome::Rejected { .. }) | Err(ProviderError::Rejected { status: 404, .. }) => {
            Ok(None)
        }
        Ok(outcome) => Ok(Some(outcome)),
        Err(err) => Err(err),
    }
}

/// True when a refused submission means "this reference was already submitted": the
/// provider has the invoice, so poll it instead of treating the refusal as final.
pub(crate) fn is_already_submitted(code: &str, message: &str) -> bool {
    let code = code.to_lowercase();
    let message = message.to_lowercase();
    const CODES: [&str; 6] = [
        "em_processamento",
        "already_processed",
        "already_exists",
        "nfe_autorizada",
        "nfe_ja_autorizada",
        "referencia_duplicada",
    ];
    const PHRASES: [&str; 9] = [
        "already",
        "já existe",
        "ja existe",
        "já autorizad",
        "ja autorizad",
        "já foi",
        "ja foi",
        "em processamento",
        "duplicad",
    ];
    CODES.iter().any(|c| code == *c) || PHRASES.iter().any(|p| message.contains(p))
}

#[cfg(test)]
mod tests;
