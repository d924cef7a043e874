//! Focus NFe: `POST /v2/nfe?ref=REF`, then `GET /v2/nfe/REF` until SEFAZ decides.
//!
//! HTTP Basic with the token as user name and an empty password. The POST answers 202
//! `processando_autorizacao`; the GET answers `autorizado` (with `chave_nfe`, `numero`,
//! `serie` and relative `caminho_danfe` / `caminho_xml_nota_fiscal`), `erro_autorizacao`
//! or `denegado` (with `mensagem_sefaz`), or `cancelado`. Errors are
//! `{"codigo", "mensagem", "erros": [{"campo", "mensagem"}]}`; 429 and 5xx are retryable.
//!
//! Retries never issue a second NF-e: `emit` first reads the reference and posts only when
//! Focus has nothing (404) or a rejected attempt (`erro_autorizacao` may be resent with the
//! same ref). Should another worker post in between, Focus refuses the second POST with
//! `em_processamento` or an "already authorised" message, which is answered by reading the
//! invoice's state as well.

use std::time::Duration;

use async_trait::async_trait;
use chrono::FixedOffset;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;

use super::{
    EmitOutcome, FiscalConfig, InvoiceRequest, NfeEnvironment, NfeProvider, access_key,
    check_reference, existing_submission, is_already_submitted, split_proportionally,
};
use crate::{
    config::{self, ConfigError},
    http_client::{self, ProviderError},
};

pub const HOMOLOGACAO_URL: &str = "https://homologacao.focusnfe.com.br";
pub const PRODUCAO_URL: &str = "https://api.focusnfe.com.br";

#[derive(Clone)]
pub struct FocusNfeConfig {
    /// `FOCUSNFE_URL`, or the host for `NFE_AMBIENTE`.
    pub base_url: String,
    /// `FOCUSNFE_TOKEN`: one token per environment.
    pub token: SecretString,
    pub fiscal: FiscalConfig,
}

impl std::fmt::Debug for FocusNfeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FocusNfeConfig")
            .field("base_url", &self.base_url)
            .field("fiscal", &self.fiscal)
            .finish_non_exhaustive()
    }
}

impl FocusNfeConfig {
    pub fn from_env(fiscal: FiscalConfig) -> Result<Self, ConfigError> {
        let default_url = match fiscal.environment {
            NfeEnvironment::Homologacao => HOMOLOGACAO_URL,
            NfeEnvironment::Producao => PRODUCAO_URL,
        };
        Ok(Self {
            base_url: config::var_or("FOCUSNFE_URL", default_url),
            token: SecretString::from(config::required_var("FOCUSNFE_TOKEN")?),
            fiscal,
        })
    }
}

pub struct FocusNfe {
    config: FocusNfeConfig,
    client: reqwest::Client,
}

impl std::fmt::Debug for FocusNfe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FocusNfe")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Reais for the JSON body. Focus wants numbers; the integer centavos convert exactly to
/// the shortest decimal (1050 → 10.5), and floats exist only in this serialised form.
fn reais(cents: i64) -> f64 {
    cents as f64 / 100.0
}

#[derive(Serialize)]
struct NfeBody<'a> {
    natureza_operacao: &'static str,
    data_emissao: String,
    tipo_documento: u8,
    finalidade_emissao: u8,
    consumidor_final: u8,
    presenca_comprador: u8,
    local_destino: u8,
    cnpj_emitente: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    inscricao_estadual_emitente: Option<&'a str>,
    nome_destinatario: &'a str,
    cpf_destinatario: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_destinatario: Option<&'a str>,
    logradouro_destinatario: &'a str,
    numero_destinatario: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    complemento_destinatario: Option<&'a str>,
    bairro_destinatario: &'a str,
    municipio_destinatario: &'a str,
    uf_destinatario: &'a str,
    cep_destinatario: &'a str,
    indicador_inscricao_estadual_destinatario: u8,
    modalidade_frete: u8,
    valor_produtos: f64,
    valor_frete: f64,
    valor_desconto: f64,
    valor_total: f64,
    items: Vec<NfeItem<'a>>,
    /// The payment group NF-e 4.00 requires: how much was paid by which means.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    formas_pagamento: Vec<NfePayment>,
}

#[derive(Serialize)]
struct NfePayment {
    forma_pagamento: &'static str,
    valor_pagamento: f64,
}

#[derive(Serialize)]
struct NfeItem<'a> {
    numero_item: usize,
    codigo_produto: &'a str,
    descricao: &'a str,
    cfop: u16,
    codigo_ncm: &'a str,
    unidade_comercial: &'static str,
    quantidade_comercial: i64,
    valor_unitario_comercial: f64,
    valor_bruto: f64,
    unidade_tributavel: &'static str,
    quantidade_tributavel: i64,
    valor_unitario_tributavel: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    valor_frete: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    valor_desconto: Option<f64>,
    icms_origem: u8,
    icms_situacao_tributaria: &'a str,
    pis_situacao_tributaria: &'a str,
    cofins_situacao_tributaria: &'a str,
}

fn nonzero(cents: i64) -> Option<f64> {
    (cents != 0).then(|| reais(cents))
}

fn nfe_body<'a>(request: &'a InvoiceRequest, fiscal: &'a FiscalConfig) -> NfeBody<'a> {
    let item_totals: Vec<i64> = request.items.iter().map(|i| i.total_cents).collect();
    let shipping = split_proportionally(request.totals.shipping_cents, &item_totals);
    let discounts = split_proportionally(request.totals.discount_cents, &item_totals);
    let brasilia = FixedOffset::west_opt(3 * 3600);
    let data_emissao = match brasilia {
        Some(offset) => request
            .issued_at
            .with_timezone(&offset)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        None => request.issued_at.to_rfc3339(),
    };
    let recipient = &request.recipient;
    let address = &recipient.address;
    NfeBody {
        natureza_operacao: "Venda de mercadoria",
        data_emissao,
        tipo_documento: 1,
        finalidade_emissao: 1,
        consumidor_final: 1,
        // 2 = operação não presencial, pela internet.
        presenca_comprador: 2,
        local_destino: if fiscal.is_interstate(&address.uf) {
            2
        } else {
            1
        },
        cnpj_emitente: &fiscal.emitter_cnpj,
        inscricao_estadual_emitente: fiscal.emitter_ie.as_deref(),
        nome_destinatario: fiscal.recipient_name(recipient),
        cpf_destinatario: &recipient.cpf,
        email_destinatario: recipient.email.as_deref(),
        logradouro_destinatario: &address.street,
        numero_destinatario: &address.number,
        complemento_destinatario: address.complement.as_deref().filter(|c| !c.is_empty()),
        bairro_destinatario: &address.district,
        municipio_destinatario: &address.city,
        uf_destinatario: &address.uf,
        cep_destinatario: &address.cep,
        // 9 = não contribuinte (a consumer).
        indicador_inscricao_estadual_destinatario: 9,
        // 0 = freight contracted by the sender (the store ships).
        modalidade_frete: 0,
        valor_produtos: reais(request.totals.products_cents),
        valor_frete: reais(request.totals.shipping_cents),
        valor_desconto: reais(request.totals.discount_cents),
        valor_total: reais(request.totals.total_cents),
        items: request
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| NfeItem {
                numero_item: i + 1,
                codigo_produto: &item.code,
                descricao: &item.description,
                cfop: item.cfop,
                codigo_ncm: &item.ncm,
                unidade_comercial: "UN",
                quantidade_comercial: item.quantity,
                valor_unitario_comercial: reais(item.unit_price_cents),
                valor_bruto: reais(item.total_cents),
                unidade_tributavel: "UN",
                quantidade_tributavel: item.quantity,
                valor_unitario_tributavel: reais(item.unit_price_cents),
                valor_frete: nonzero(shipping[i]),
                valor_desconto: nonzero(discounts[i]),
                icms_origem: 0,
                icms_situacao_tributaria: &fiscal.icms_situacao,
                pis_situacao_tributaria: &fiscal.pis_cofins_situacao,
                cofins_situacao_tributaria: &fiscal.pis_cofins_situacao,
            })
            .collect(),
        formas_pagamento: request
            .payment
            .map(|means| NfePayment {
                forma_pagamento: means.nfe_code(),
                valor_pagamento: reais(request.totals.total_cents),
            })
            .into_iter()
            .collect(),
    }
}

/// Focus's error body, summarised: `codigo: mensagem (campo: mensagem; …)`.
struct FocusError {
    code: String,
    message: String,
}

impl FocusError {
    fn parse(body: &str) -> Self {
        let Ok(json) = serde_json::from_str::<Value>(body) else {
            return Self {
                code: String::new(),
                message: http_client::snippet(body, 200),
            };
        };
        let text =
            |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
        let mut message = text(&json, "mensagem");
        if let Some(errors) = json.get("erros").and_then(Value::as_array) {
            let details: Vec<String> = errors
                .iter()
                .map(|e| match text(e, "campo") {
                    field if field.is_empty() => text(e, "mensagem"),
                    field => format!("{field}: {}", text(e, "mensagem")),
                })
                .collect();
            if !details.is_empty() {
                message = format!("{message} ({})", details.join("; "));
            }
        }
        Self {
            code: text(&json, "codigo"),
            message,
        }
    }

    fn summary(&self) -> String {
        http_client::snippet(&format!("{}: {}", self.code, self.message), 400)
    }
}

/// Numbers that Focus sends as strings (`"numero": "123"`) or numbers.
fn integer(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl FocusNfe {
    pub fn new(config: FocusNfeConfig, timeout: Duration) -> Self {
        Self {
            config,
            client: http_client::build_client(timeout),
        }
    }

    fn base(&self) -> &str {
        self.config.base_url.trim_end_matches('/')
    }

    fn authorized(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        builder
            .basic_auth(self.config.token.expose_secret(), Some(""))
            .header(reqwest::header::ACCEPT, "application/json")
    }

    /// Paths in Focus answers are relative to the API host.
    fn absolute(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}/{}", self.base(), path.trim_start_matches('/'))
        }
    }

    /// Maps one consult answer (`GET /v2/nfe/REF`, or the POST's own answer).
    fn outcome(&self, json: &Value) -> Result<EmitOutcome, ProviderError> {
        let text = |key: &str| json.get(key).and_then(Value::as_str).unwrap_or("").trim();
        match text("status") {
            "processando_autorizacao" => Ok(EmitOutcome::Processing),
            "autorizado" => {
                let malformed = |what: &str| {
                    ProviderError::Malformed(format!("focus nfe autorizado without {what}"))
                };
                let key = text("chave_nfe");
                let key = key.strip_prefix("NFe").unwrap_or(key);
                if !access_key::has_valid_check_digit(key) {
                    return Err(malformed("a valid chave_nfe"));
                }
                let number = integer(json.get("numero")).ok_or_else(|| malformed("numero"))?;
                let series = integer(json.get("serie"))
                    .and_then(|s| i32::try_from(s).ok())
                    .ok_or_else(|| malformed("serie"))?;
                let danfe = Some(text("caminho_danfe"))
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| malformed("caminho_danfe"))?;
                let xml = Some(text("caminho_xml_nota_fiscal"))
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| malformed("caminho_xml_nota_fiscal"))?;
                Ok(EmitOutcome::Authorized {
                    number,
                    series,
                    access_key: key.to_owned(),
                    pdf_url: self.absolute(danfe),
                    xml_url: self.absolute(xml),
                })
            }
            status @ ("erro_autorizacao" | "denegado") => {
                let sefaz = [text("status_sefaz"), text("mensagem_sefaz")]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" - ");
                Ok(EmitOutcome::Rejected {
                    message: if sefaz.is_empty() {
                        status.to_owned()
                    } else {
                        sefaz
                    },
                })
            }
            "cancelado" => Ok(EmitOutcome::Rejected {
                message: "NF-e cancelada".into(),
            }),
            other => Err(ProviderError::Malformed(format!(
                "focus nfe status {other:?}"
            ))),
        }
    }

    async fn read(
        response: reqwest::Response,
    ) -> Result<(reqwest::StatusCode, String), ProviderError> {
        let status = response.status();
        let text = response.text().await.map_err(ProviderError::from_reqwest)?;
        Ok((status, text))
    }

    fn parse_json(text: &str) -> Result<Value, ProviderError> {
        serde_json::from_str(text).map_err(|e| ProviderError::Malformed(format!("focus nfe: {e}")))
    }
}

#[async_trait]
impl NfeProvider for FocusNfe {
    async fn emit(&self, request: &InvoiceRequest) -> Result<EmitOutcome, ProviderError> {
        request.check()?;
        if let Some(existing) = existing_submission(self, &request.reference).await? {
            return Ok(existing);
        }
        let body = nfe_body(request, &self.config.fiscal);
        let response = http_client::send(
            self.authorized(
                self.client
                    // The reference is checked to be URL-safe (letters, digits, - and _).
                    .post(format!("{}/v2/nfe?ref={}", self.base(), request.reference))
                    .json(&body),
            ),
        )
        .await
        .map_err(ProviderError::from_reqwest)?;
        let (status, text) = Self::read(response).await?;
        if status.is_success() {
            let json = Self::parse_json(&text)?;
            // The POST answers `processando_autorizacao`; be ready for a direct verdict too.
            return match json.get("status") {
                Some(_) => self.outcome(&json),
                None => Ok(EmitOutcome::Processing),
            };
        }
        let error = FocusError::parse(&text);
        let may_exist = matches!(status.as_u16(), 400 | 409 | 422);
        if may_exist && is_already_submitted(&error.code, &error.message) {
            tracing::info!(reference = %request.reference, code = %error.code, "focus nfe already has this reference; reading its state");
            return self.status(&request.reference).await;
        }
        Err(ProviderError::from_status(status, error.summary()))
    }

    async fn status(&self, reference: &str) -> Result<EmitOutcome, ProviderError> {
        check_reference(reference)?;
        let response = http_client::send(
            self.authorized(
                self.client
                    .get(format!("{}/v2/nfe/{reference}", self.base())),
            ),
        )
        .await
        .map_err(ProviderError::from_reqwest)?;
        let (status, text) = Self::read(response).await?;
        if !status.is_success() {
            return Err(ProviderError::from_status(
                status,
                FocusError::parse(&text).summary(),
            ));
        }
        self.outcome(&Self::parse_json(&text)?)
    }
}

#[cfg(test)]
mod tests;
