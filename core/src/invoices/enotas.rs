//! eNotas Gateway, NF-e API v2 (marked unconfirmed in our integration notes: check the
//! shapes against a real account before going live).
//!
//! - `POST /v2/empresas/{empresaId}/nf-e` with our reference as the invoice `id` (eNotas's
//!   "id externo") and `ambienteEmissao` `Homologacao` or `Producao`.
//! - `GET /v2/empresas/{empresaId}/nf-e/{id}` reads it back: `status` `Autorizada`
//!   (`numero`, `serie`, `chaveAcesso`, `linkDanfe`, `linkDownloadXml`), `Negada`
//!   (`motivoStatus`), `Cancelada`, or one of the in-progress states.
//! - `Authorization: Basic <api key>`: the raw key, not a base64 user:password pair.
//!
//! Retries never issue a second NF-e: `emit` reads our id first and posts only when eNotas
//! has nothing (404) or a refused attempt; a POST refused because the id already exists is
//! answered by reading it.
//!
//! The v2 paths and field names follow eNotas's published v2 Postman collection; the older
//! `/nfes` + `idExterno` + `porIdExterno` shapes belong to the v1 NFS-e API.

use std::time::Duration;

use async_trait::async_trait;
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

pub const DEFAULT_URL: &str = "https://api.enotasgw.com.br";

#[derive(Clone)]
pub struct ENotasConfig {
    /// `ENOTAS_URL`.
    pub base_url: String,
    /// `ENOTAS_API_KEY`.
    pub api_key: SecretString,
    /// `ENOTAS_COMPANY_ID`: the emitter's id at eNotas (a UUID).
    pub company_id: String,
    pub fiscal: FiscalConfig,
}

impl std::fmt::Debug for ENotasConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ENotasConfig")
            .field("base_url", &self.base_url)
            .field("company_id", &self.company_id)
            .field("fiscal", &self.fiscal)
            .finish_non_exhaustive()
    }
}

impl ENotasConfig {
    pub fn from_env(fiscal: FiscalConfig) -> Result<Self, ConfigError> {
        let company_id = config::required_var("ENOTAS_COMPANY_ID")?;
        if !company_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(ConfigError::Invalid {
                name: "ENOTAS_COMPANY_ID",
                reason: "expected the company's id (letters, digits and -)".into(),
            });
        }
        Ok(Self {
            base_url: config::var_or("ENOTAS_URL", DEFAULT_URL),
            api_key: SecretString::from(config::required_var("ENOTAS_API_KEY")?),
            company_id,
            fiscal,
        })
    }
}

pub struct ENotas {
    config: ENotasConfig,
    client: reqwest::Client,
}

impl std::fmt::Debug for ENotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ENotas")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Reais for the JSON body (exact for integer centavos; see `focusnfe::reais`).
fn reais(cents: i64) -> f64 {
    cents as f64 / 100.0
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NotaBody<'a> {
    id: &'a str,
    ambiente_emissao: &'static str,
    natureza_operacao: &'static str,
    tipo_operacao: &'static str,
    finalidade: &'static str,
    consumidor_final: bool,
    enviar_por_email: bool,
    pedido: Pedido,
    cliente: Cliente<'a>,
    transporte: Transporte,
    itens: Vec<Item<'a>>,
    valor_total: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pedido {
    presenca_consumidor: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cliente<'a> {
    tipo_pessoa: &'static str,
    #[serde(rename = "indicadorContribuinteICMS")]
    indicador_contribuinte_icms: &'static str,
    nome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    cpf_cnpj: &'a str,
    endereco: Endereco<'a>,
}

#[derive(Serialize)]
struct Endereco<'a> {
    uf: &'a str,
    cidade: &'a str,
    logradouro: &'a str,
    numero: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    complemento: Option<&'a str>,
    bairro: &'a str,
    cep: &'a str,
}

#[derive(Serialize)]
struct Transporte {
    frete: Frete,
}

#[derive(Serialize)]
struct Frete {
    modalidade: &'static str,
    valor: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item<'a> {
    cfop: String,
    codigo: &'a str,
    descricao: &'a str,
    ncm: &'a str,
    quantidade: i64,
    unidade_medida: &'static str,
    valor_unitario: f64,
    descontos: f64,
    impostos: Impostos<'a>,
}

#[derive(Serialize)]
struct Impostos<'a> {
    icms: Icms<'a>,
    pis: Situacao<'a>,
    cofins: Situacao<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Icms<'a> {
    origem: u8,
    situacao_tributaria: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Situacao<'a> {
    situacao_tributaria: &'a str,
}

fn nota_body<'a>(request: &'a InvoiceRequest, fiscal: &'a FiscalConfig) -> NotaBody<'a> {
    let item_totals: Vec<i64> = request.items.iter().map(|i| i.total_cents).collect();
    let discounts = split_proportionally(request.totals.discount_cents, &item_totals);
    let recipient = &request.recipient;
    let address = &recipient.address;
    NotaBody {
        id: &request.reference,
        ambiente_emissao: match fiscal.environment {
            NfeEnvironment::Homologacao => "Homologacao",
            NfeEnvironment::Producao => "Producao",
        },
        natureza_operacao: "Venda de mercadoria",
        tipo_operacao: "Saida",
        finalidade: "Normal",
        consumidor_final: true,
        // The store sends its own e-mails.
        enviar_por_email: false,
        pedido: Pedido {
            presenca_consumidor: "OperacaoPelaInternet",
        },
        cliente: Cliente {
            tipo_pessoa: "F",
            indicador_contribuinte_icms: "NaoContribuinte",
            nome: fiscal.recipient_name(recipient),
            email: recipient.email.as_deref(),
            cpf_cnpj: &recipient.cpf,
            endereco: Endereco {
                uf: &address.uf,
                cidade: &address.city,
                logradouro: &address.street,
                numero: &address.number,
                complemento: address.complement.as_deref().filter(|c| !c.is_empty()),
                bairro: &address.district,
                cep: &address.cep,
            },
        },
        transporte: Transporte {
            frete: Frete {
                modalidade: "PorContaDoEmitente",
                valor: reais(request.totals.shipping_cents),
            },
        },
        itens: request
            .items
            .iter()
            .zip(discounts)
            .map(|(item, discount)| Item {
                cfop: item.cfop.to_string(),
                codigo: &item.code,
                descricao: &item.description,
                ncm: &item.ncm,
                quantidade: item.quantity,
                unidade_medida: "UN",
                valor_unitario: reais(item.unit_price_cents),
                descontos: reais(discount),
                impostos: Impostos {
                    icms: Icms {
                        origem: 0,
                        situacao_tributaria: &fiscal.icms_situacao,
                    },
                    pis: Situacao {
                        situacao_tributaria: &fiscal.pis_cofins_situacao,
                    },
                    cofins: Situacao {
                        situacao_tributaria: &fiscal.pis_cofins_situacao,
                    },
                },
            })
            .collect(),
        valor_total: reais(request.totals.total_cents),
    }
}

/// eNotas errors come as `[{"codigo", "mensagem"}]` or a single such object.
fn error_parts(body: &str) -> (String, String) {
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        return (String::new(), http_client::snippet(body, 200));
    };
    let entries: Vec<&Value> = match &json {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let field = |v: &Value, keys: &[&str]| {
        keys.iter()
            .find_map(|k| v.get(*k).and_then(Value::as_str))
            .unwrap_or("")
            .to_owned()
    };
    let code = entries
        .first()
        .map(|e| field(e, &["codigo", "code"]))
        .unwrap_or_default();
    let message = entries
        .iter()
        .map(|e| field(e, &["mensagem", "message"]))
        .filter(|m| !m.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    (code, http_client::snippet(&message, 400))
}

fn integer(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn outcome(json: &Value) -> Result<EmitOutcome, ProviderError> {
    let text = |key: &str| json.get(key).and_then(Value::as_str).unwrap_or("").trim();
    let status = text("status");
    match status {
        // A refused cancellation leaves the invoice authorised.
        "Autorizada" | "CancelamentoNegado" => {
            let malformed =
                |what: &str| ProviderError::Malformed(format!("enotas {status} without {what}"));
            let key = text("chaveAcesso");
            if !access_key::has_valid_check_digit(key) {
                return Err(malformed("a valid chaveAcesso"));
            }
            let link = |name: &str| {
                Some(text(name))
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
            };
            Ok(EmitOutcome::Authorized {
                number: integer(json.get("numero")).ok_or_else(|| malformed("numero"))?,
                series: integer(json.get("serie"))
                    .and_then(|s| i32::try_from(s).ok())
                    .ok_or_else(|| malformed("serie"))?,
                access_key: key.to_owned(),
                pdf_url: link("linkDanfe").ok_or_else(|| malformed("linkDanfe"))?,
                xml_url: link("linkDownloadXml").ok_or_else(|| malformed("linkDownloadXml"))?,
            })
        }
        "Negada" | "Denegada" | "Rejeitada" => Ok(EmitOutcome::Rejected {
            message: match json.get("motivoStatus") {
                Some(Value::String(reason)) if !reason.is_empty() => reason.clone(),
                Some(Value::Null) | None => status.to_owned(),
                Some(other) => http_client::snippet(&other.to_string(), 400),
            },
        }),
        "" => Err(ProviderError::Malformed(
            "enotas answer without status".into(),
        )),
        other if other.contains("Cancel") => Ok(EmitOutcome::Rejected {
            message: format!("NF-e cancelada ({other})"),
        }),
        // AguardandoAutorizacao, SolicitandoAutorizacao, AutorizacaoSolicitada,
        // EmProcessoDeAutorizacao, AutorizadaAguardandoGeracaoPDF, and any new in-progress
        // state: keep polling; the wait is bounded by the caller.
        other => {
            tracing::debug!(status = %other, "enotas invoice still in progress");
            Ok(EmitOutcome::Processing)
        }
    }
}

impl ENotas {
    pub fn new(config: ENotasConfig, timeout: Duration) -> Self {
        Self {
            config,
            client: http_client::build_client(timeout),
        }
    }

    fn url(&self, suffix: &str) -> String {
        format!(
            "{}/v2/empresas/{}/nf-e{suffix}",
            self.config.base_url.trim_end_matches('/'),
            self.config.company_id
        )
    }

    fn authorized(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let mut value = reqwest::header::HeaderValue::from_str(&format!(
            "Basic {}",
            self.config.api_key.expose_secret()
        ))
        .map_err(|_| ProviderError::Config("ENOTAS_API_KEY is not a valid header value".into()))?;
        value.set_sensitive(true);
        Ok(builder
            .header(reqwest::header::AUTHORIZATION, value)
            .header(reqwest::header::ACCEPT, "application/json"))
    }
}

#[async_trait]
impl NfeProvider for ENotas {
    async fn emit(&self, request: &InvoiceRequest) -> Result<EmitOutcome, ProviderError> {
        request.check()?;
        if let Some(existing) = existing_submission(self, &request.reference).await? {
            return Ok(existing);
        }
        let body = nota_body(request, &self.config.fiscal);
        let response =
            http_client::send(self.authorized(self.client.post(self.url("")).json(&body))?)
                .await
                .map_err(ProviderError::from_reqwest)?;
        let status = response.status();
        let text = response.text().await.map_err(ProviderError::from_reqwest)?;
        if status.is_success() {
            // eNotas answers with its own id; the state is read back by ours.
            if !text.trim().is_empty() {
                serde_json::from_str::<Value>(&text)
                    .map_err(|e| ProviderError::Malformed(format!("enotas emit: {e}")))?;
            }
            return Ok(EmitOutcome::Processing);
        }
        let (code, message) = error_parts(&text);
        if matches!(status.as_u16(), 400 | 409 | 422) && is_already_submitted(&code, &message) {
            tracing::info!(reference = %request.reference, "enotas already has this id; reading its state");
            return self.status(&request.reference).await;
        }
        Err(ProviderError::from_status(
            status,
            if code.is_empty() {
                message
            } else {
                format!("{code}: {message}")
            },
        ))
    }

    async fn status(&self, reference: &str) -> Result<EmitOutcome, ProviderError> {
        check_reference(reference)?;
        let response = http_client::send(
            self.authorized(self.client.get(self.url(&format!("/{reference}"))))?,
        )
        .await
        .map_err(ProviderError::from_reqwest)?;
        let status = response.status();
        let text = response.text().await.map_err(ProviderError::from_reqwest)?;
        if !status.is_success() {
            let (code, message) = error_parts(&text);
            return Err(ProviderError::from_status(
                status,
                format!("{code}: {message}"),
            ));
        }
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| ProviderError::Malformed(format!("enotas status: {e}")))?;
        outcome(&json)
    }
}

#[cfg(test)]
mod tests;
