//! Payment webhooks: verify the signature on the raw bytes, store the event once per
//! provider event id, and enqueue its reconciliation in the same transaction.
//!
//! Nothing here touches payments or orders: the route answers within milliseconds and the
//! `reconcile_payment` job does the work, so a slow database lock or a crash after the
//! answer never loses an event (the provider's retry finds it stored and is acknowledged).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{flow::PaymentMethod, signature::WebhookVerifiers};
use crate::{
    Error, Result,
    jobs::{self, reconcile_payment::ReconcilePayment},
};

/// Who sent a webhook; stored as `webhook_events.provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookSource {
    /// `POST /api/webhooks/payment`: ProPay, and the sandbox PIX provider acting like it.
    ProPay,
    OpenPix,
    Stripe,
}

impl WebhookSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProPay => "propay",
            Self::OpenPix => "openpix",
            Self::Stripe => "stripe",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::ProPay, Self::OpenPix, Self::Stripe]
            .into_iter()
            .find(|source| source.as_str() == s)
    }

    /// Whether this route speaks for `provider` (a provider's `name()`, as payments record
    /// it): each route serves only the payments of its own providers, so a signature that is
    /// valid for one route can never move a payment made through another.
    pub fn serves(self, provider: &str) -> bool {
        match self {
            Self::ProPay => matches!(provider, "propay" | "sandbox_pix"),
            Self::OpenPix => provider == "openpix",
            Self::Stripe => matches!(provider, "stripe" | "sandbox_card"),
        }
    }

    /// The payment method of every payment this route serves.
    pub fn method(self) -> PaymentMethod {
        match self {
            Self::ProPay | Self::OpenPix => PaymentMethod::Pix,
            Self::Stripe => PaymentMethod::CreditCard,
        }
    }
}

/// The signature headers of a webhook request, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignatureHeaders<'a> {
    /// `X-Propay-Signature`.
    pub propay: Option<&'a str>,
    /// `Stripe-Signature`.
    pub stripe: Option<&'a str>,
    /// `x-webhook-signature` (OpenPix RSA).
    pub openpix_rsa: Option<&'a str>,
    /// `X-OpenPix-Signature` (OpenPix HMAC, deprecated).
    pub openpix_hmac: Option<&'a str>,
}

/// How a payment webhook refers to our payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentLookup {
    PaymentId(Uuid),
    Txid(String),
    ProviderReference(String),
}

/// What a webhook says happened to a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentEvent {
    Paid {
        lookup: PaymentLookup,
        amount_cents: i64,
        paid_at: Option<DateTime<Utc>>,
    },
    Failed {
        lookup: PaymentLookup,
        reason: String,
    },
    /// An event kind we do not act on (charge created, refund notices…): stored, not applied.
    Ignored,
}

impl PaymentEvent {
    /// How the event names its payment, when it is about one.
    pub fn lookup(&self) -> Option<&PaymentLookup> {
        match self {
            Self::Paid { lookup, .. } | Self::Failed { lookup, .. } => Some(lookup),
            Self::Ignored => None,
        }
    }
}

/// A verified webhook body, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedWebhook {
    /// Unique per provider: the deduplication key.
    pub event_id: String,
    pub event_type: String,
    pub event: PaymentEvent,
}

/// What became of a webhook request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Stored; reconciliation enqueued when the event is one we act on.
    Stored { webhook_event_id: Uuid },
    /// The provider sent this event before: acknowledged, nothing done.
    Duplicate,
}

/// Checks the signature of `body` for `source`. Every failure is `Unauthorized` (401).
pub fn verify(
    verifiers: &WebhookVerifiers,
    source: WebhookSource,
    headers: &SignatureHeaders<'_>,
    body: &[u8],
) -> Result<()> {
    match source {
        WebhookSource::ProPay => verifiers.verify_propay(headers.propay, body)?,
        WebhookSource::Stripe => verifiers.verify_stripe(headers.stripe, body)?,
        WebhookSource::OpenPix => {
            verifiers.verify_openpix(headers.openpix_rsa, headers.openpix_hmac, body)?
        }
    }
    Ok(())
}

/// Verifies, stores and enqueues one webhook inside the caller's transaction.
/// Bad signature → `Unauthorized`; a body that is not the provider's JSON → `BadRequest`.
pub async fn ingest(
    conn: &mut PgConnection,
    verifiers: &WebhookVerifiers,
    source: WebhookSource,
    headers: &SignatureHeaders<'_>,
    body: &[u8],
) -> Result<Ingested> {
    verify(verifiers, source, headers, body)?;
    let parsed = parse(source, body)?;
    store(conn, source, &parsed, body).await
}

/// Stores an already verified event and enqueues its reconciliation.
pub async fn store(
    conn: &mut PgConnection,
    source: WebhookSource,
    parsed: &ParsedWebhook,
    body: &[u8],
) -> Result<Ingested> {
    let ignored = parsed.event == PaymentEvent::Ignored;
    let payment_id = match parsed.event.lookup() {
        Some(lookup) => payment_of(conn, lookup).await?,
        None => None,
    };
    let inserted = sqlx::query_scalar!(
        r#"
        INSERT INTO webhook_events
            (id, provider, event_id, event_type, body, processed_at, outcome, payment_id)
        VALUES ($1, $2, $3, $4, $5,
                CASE WHEN $6 THEN now() END, CASE WHEN $6 THEN 'ignored' END, $7)
        ON CONFLICT (provider, event_id) DO NOTHING
        RETURNING id
        "#,
        Uuid::now_v7(),
        source.as_str(),
        parsed.event_id,
        parsed.event_type,
        body,
        ignored,
        payment_id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(webhook_event_id) = inserted else {
        tracing::info!(provider = source.as_str(), event_id = %parsed.event_id, "duplicate webhook acknowledged");
        return Ok(Ingested::Duplicate);
    };
    if !ignored {
        jobs::enqueue(conn, &ReconcilePayment { webhook_event_id }).await?;
    }
    tracing::info!(
        provider = source.as_str(),
        event_id = %parsed.event_id,
        event_type = %parsed.event_type,
        %webhook_event_id,
        "webhook stored"
    );
    Ok(Ingested::Stored { webhook_event_id })
}

/// The id of our payment an event names, if any. Recorded with the event when it is stored, so
/// that operators find the event (and its reconciliation job, pending or failing) from the
/// order before it is reconciled; reconciliation looks the payment up again, under its locks.
async fn payment_of(conn: &mut PgConnection, lookup: &PaymentLookup) -> Result<Option<Uuid>> {
    let found = match lookup {
        PaymentLookup::PaymentId(id) => {
            sqlx::query_scalar!("SELECT id FROM payments WHERE id = $1", id)
                .fetch_optional(&mut *conn)
                .await?
        }
        PaymentLookup::Txid(txid) => {
            sqlx::query_scalar!("SELECT id FROM payments WHERE txid = $1", txid)
                .fetch_optional(&mut *conn)
                .await?
        }
        PaymentLookup::ProviderReference(reference) => {
            sqlx::query_scalar!(
                "SELECT id FROM payments WHERE provider_reference = $1",
                reference
            )
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    Ok(found)
}

/// Understands a verified body. Also used by reconciliation on the stored bytes.
pub fn parse(source: WebhookSource, body: &[u8]) -> Result<ParsedWebhook> {
    match source {
        WebhookSource::ProPay => parse_propay(body),
        WebhookSource::OpenPix => parse_openpix(body),
        WebhookSource::Stripe => parse_stripe(body),
    }
}

fn malformed(provider: &str, err: serde_json::Error) -> Error {
    Error::BadRequest(format!("malformed {provider} webhook: {err}"))
}

#[derive(Deserialize)]
struct ProPayBody {
    event_id: String,
    event: String,
    #[serde(default)]
    txid: Option<String>,
    #[serde(default)]
    amount_cents: Option<i64>,
    #[serde(default)]
    paid_at: Option<DateTime<Utc>>,
}

/// The ProPay event the sandbox also sends when a developer confirms a payment.
pub const PROPAY_PIX_PAID: &str = "pix.paid";

fn parse_propay(body: &[u8]) -> Result<ParsedWebhook> {
    let raw: ProPayBody = serde_json::from_slice(body).map_err(|e| malformed("ProPay", e))?;
    if raw.event_id.trim().is_empty() {
        return Err(Error::BadRequest("ProPay webhook without event_id".into()));
    }
    let event = match raw.event.as_str() {
        PROPAY_PIX_PAID => {
            let (Some(txid), Some(amount_cents)) = (raw.txid, raw.amount_cents) else {
                return Err(Error::BadRequest(
                    "pix.paid webhook needs txid and amount_cents".into(),
                ));
            };
            PaymentEvent::Paid {
                lookup: PaymentLookup::Txid(txid),
                amount_cents,
                paid_at: raw.paid_at,
            }
        }
        _ => PaymentEvent::Ignored,
    };
    Ok(ParsedWebhook {
        event_id: raw.event_id,
        event_type: raw.event,
        event,
    })
}

#[derive(Deserialize)]
struct OpenPixBody {
    event: String,
    #[serde(default)]
    charge: Option<OpenPixCharge>,
    #[serde(default)]
    pix: Option<OpenPixPix>,
}

#[derive(Deserialize)]
struct OpenPixCharge {
    #[serde(rename = "correlationID", default)]
    correlation_id: Option<String>,
}

#[derive(Deserialize)]
struct OpenPixPix {
    #[serde(default)]
    value: Option<i64>,
    #[serde(default)]
    time: Option<DateTime<Utc>>,
    #[serde(rename = "endToEndId", default)]
    end_to_end_id: Option<String>,
    #[serde(rename = "transactionID", default)]
    transaction_id: Option<String>,
    #[serde(default)]
    charge: Option<OpenPixCharge>,
}

const OPENPIX_PAID_EVENTS: [&str; 2] = ["OPENPIX:CHARGE_COMPLETED", "OPENPIX:TRANSACTION_RECEIVED"];

fn parse_openpix(body: &[u8]) -> Result<ParsedWebhook> {
    let raw: OpenPixBody = serde_json::from_slice(body).map_err(|e| malformed("OpenPix", e))?;
    let pix = raw.pix.as_ref();
    let correlation_id = raw
        .charge
        .as_ref()
        .and_then(|c| c.correlation_id.clone())
        .or_else(|| pix.and_then(|p| p.charge.as_ref()?.correlation_id.clone()));
    let end_to_end = pix.and_then(|p| p.end_to_end_id.clone().or(p.transaction_id.clone()));
    // OpenPix signs no event id: the event, the charge and the Pix transaction identify it
    // (the body's digest where no transaction is named). The charge alone would not do: any
    // Woovi account can send a signed event naming our charge, and had it been stored first,
    // the genuine event would be dropped as its duplicate.
    let transaction = end_to_end.unwrap_or_else(|| body_digest(body));
    let event_id = match &correlation_id {
        Some(charge) => format!("{}:{charge}:{transaction}", raw.event),
        None => format!("{}:{transaction}", raw.event),
    };
    let payment_id = correlation_id
        .as_deref()
        .and_then(|c| Uuid::parse_str(c).ok());
    // What was paid is the Pix transaction's value; `charge.value` is only what was asked.
    let amount = pix.and_then(|p| p.value);
    let event = match (
        OPENPIX_PAID_EVENTS.contains(&raw.event.as_str()),
        payment_id,
        amount,
    ) {
        (true, Some(payment_id), Some(amount_cents)) => PaymentEvent::Paid {
            lookup: PaymentLookup::PaymentId(payment_id),
            amount_cents,
            paid_at: pix.and_then(|p| p.time),
        },
        (true, _, _) => {
            return Err(Error::BadRequest(
                "OpenPix payment webhook needs charge.correlationID (a payment id) and pix.value"
                    .into(),
            ));
        }
        _ => PaymentEvent::Ignored,
    };
    Ok(ParsedWebhook {
        event_id,
        event_type: raw.event,
        event,
    })
}

/// A stable id for an event that carries nothing to identify it (e.g. a test ping): the
/// SHA-256 of its body.
fn body_digest(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(body))
}

#[derive(Deserialize)]
struct StripeEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: StripeData,
}

#[derive(Deserialize)]
struct StripeData {
    object: StripeIntent,
}

#[derive(Deserialize)]
struct StripeIntent {
    #[serde(default)]
    id: Option<String>,
    /// What was actually captured; `amount` is only what the intent asked for.
    #[serde(default)]
    amount_received: Option<i64>,
    #[serde(default)]
    metadata: std::collections::HashMap<String, String>,
    #[serde(default)]
    last_payment_error: Option<StripePaymentError>,
}

#[derive(Deserialize)]
struct StripePaymentError {
    #[serde(default)]
    message: Option<String>,
}

fn parse_stripe(body: &[u8]) -> Result<ParsedWebhook> {
    let raw: StripeEvent = serde_json::from_slice(body).map_err(|e| malformed("Stripe", e))?;
    let intent = &raw.data.object;
    let lookup = intent
        .metadata
        .get("payment_id")
        .and_then(|id| Uuid::parse_str(id).ok())
        .map(PaymentLookup::PaymentId)
        .or_else(|| intent.id.clone().map(PaymentLookup::ProviderReference));
    let event = match (raw.kind.as_str(), lookup) {
        ("payment_intent.succeeded", Some(lookup)) => PaymentEvent::Paid {
            lookup,
            amount_cents: intent.amount_received.ok_or_else(|| {
                Error::BadRequest("payment intent without amount_received".into())
            })?,
            paid_at: None,
        },
        ("payment_intent.payment_failed", Some(lookup)) => PaymentEvent::Failed {
            lookup,
            reason: intent
                .last_payment_error
                .as_ref()
                .and_then(|e| e.message.clone())
                .unwrap_or_else(|| "card payment failed".into()),
        },
        ("payment_intent.succeeded" | "payment_intent.payment_failed", None) => {
            return Err(Error::BadRequest(
                "payment intent event without metadata.payment_id or id".into(),
            ));
        }
        _ => PaymentEvent::Ignored,
    };
    Ok(ParsedWebhook {
        event_id: raw.id,
        event_type: raw.kind,
        event,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bytes(value: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn a_propay_pix_paid_event_points_at_the_txid() {
        let parsed = parse(
            WebhookSource::ProPay,
            &bytes(
                json!({"event_id": "ev1", "event": "pix.paid", "txid": "abc",
                          "amount_cents": 1500, "paid_at": "2026-11-25T12:00:00Z"}),
            ),
        )
        .unwrap();
        assert_eq!(parsed.event_id, "ev1");
        assert_eq!(
            parsed.event,
            PaymentEvent::Paid {
                lookup: PaymentLookup::Txid("abc".into()),
                amount_cents: 1500,
                paid_at: Some("2026-11-25T12:00:00Z".parse().unwrap()),
            }
        );
    }

    #[test]
    fn malformed_bodies_are_bad_requests() {
        for source in [
            WebhookSource::ProPay,
            WebhookSource::OpenPix,
            WebhookSource::Stripe,
        ] {
            assert!(matches!(
                parse(source, b"{not json"),
                Err(Error::BadRequest(_))
            ));
        }
        assert!(matches!(
            parse(
                WebhookSource::ProPay,
                &bytes(json!({"event_id": "e", "event": "pix.paid"}))
            ),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn openpix_events_are_identified_by_event_and_correlation_id() {
        let payment_id = Uuid::now_v7();
        let body = bytes(json!({
            "event": "OPENPIX:CHARGE_COMPLETED",
            "charge": {"correlationID": payment_id.to_string(), "value": 990, "status": "COMPLETED"},
            "pix": {"value": 990, "time": "2026-11-25T12:00:00Z", "endToEndId": "E123"}
        }));
        let parsed = parse(WebhookSource::OpenPix, &body).unwrap();
        assert_eq!(
            parsed.event_id,
            format!("OPENPIX:CHARGE_COMPLETED:{payment_id}:E123")
        );
        assert!(matches!(
            parsed.event,
            PaymentEvent::Paid { lookup: PaymentLookup::PaymentId(id), amount_cents: 990, .. } if id == payment_id
        ));

        let created = parse(
            WebhookSource::OpenPix,
            &bytes(json!({"event": "OPENPIX:CHARGE_CREATED", "charge": {"correlationID": "x"}})),
        )
        .unwrap();
        assert_eq!(created.event, PaymentEvent::Ignored);
    }

    #[test]
    fn stripe_events_use_the_payment_id_from_metadata() {
        let payment_id = Uuid::now_v7();
        let succeeded = parse(
            WebhookSource::Stripe,
            &bytes(json!({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
                "data": {"object": {"id": "pi_1", "amount": 2000, "amount_received": 2000,
                    "metadata": {"order_id": Uuid::now_v7().to_string(), "payment_id": payment_id.to_string()}}}})),
        )
        .unwrap();
        assert_eq!(succeeded.event_id, "evt_1");
        assert!(matches!(
            succeeded.event,
            PaymentEvent::Paid { lookup: PaymentLookup::PaymentId(id), amount_cents: 2000, .. } if id == payment_id
        ));

        let failed = parse(
            WebhookSource::Stripe,
            &bytes(
                json!({"id": "evt_2", "type": "payment_intent.payment_failed",
                "data": {"object": {"id": "pi_1", "metadata": {},
                    "last_payment_error": {"message": "card declined"}}}}),
            ),
        )
        .unwrap();
        assert_eq!(
            failed.event,
            PaymentEvent::Failed {
                lookup: PaymentLookup::ProviderReference("pi_1".into()),
                reason: "card declined".into()
            }
        );
    }

    #[test]
    fn the_paid_amount_is_what_was_received_not_what_was_asked() {
        let payment_id = Uuid::now_v7();
        let stripe = parse(
            WebhookSource::Stripe,
            &bytes(json!({"id": "evt_p", "type": "payment_intent.succeeded",
                "data": {"object": {"id": "pi_1", "amount": 2000, "amount_received": 1500,
                    "metadata": {"payment_id": payment_id.to_string()}}}})),
        )
        .unwrap();
        assert!(matches!(
            stripe.event,
            PaymentEvent::Paid {
                amount_cents: 1500,
                ..
            }
        ));
        let asked_only = parse(
            WebhookSource::Stripe,
            &bytes(json!({"id": "evt_q", "type": "payment_intent.succeeded",
                "data": {"object": {"id": "pi_1", "amount": 2000,
                    "metadata": {"payment_id": payment_id.to_string()}}}})),
        );
        assert!(matches!(asked_only, Err(Error::BadRequest(_))));

        let openpix = parse(
            WebhookSource::OpenPix,
            &bytes(json!({"event": "OPENPIX:CHARGE_COMPLETED",
                "charge": {"correlationID": payment_id.to_string(), "value": 990},
                "pix": {"value": 10, "endToEndId": "E1"}})),
        )
        .unwrap();
        assert!(matches!(
            openpix.event,
            PaymentEvent::Paid {
                amount_cents: 10,
                ..
            }
        ));
    }

    #[test]
    fn each_route_serves_only_its_own_providers() {
        use WebhookSource::*;
        for (source, served) in [
            (ProPay, ["propay", "sandbox_pix"].as_slice()),
            (OpenPix, ["openpix"].as_slice()),
            (Stripe, ["stripe", "sandbox_card"].as_slice()),
        ] {
            for provider in ["propay", "sandbox_pix", "openpix", "stripe", "sandbox_card"] {
                assert_eq!(
                    source.serves(provider),
                    served.contains(&provider),
                    "{source:?} {provider}"
                );
            }
        }
        assert_eq!(Stripe.method(), PaymentMethod::CreditCard);
        assert_eq!(OpenPix.method(), PaymentMethod::Pix);
    }

    fn verifiers() -> WebhookVerifiers {
        crate::payments::settings::webhook_verifiers_from(&|name: &str| match name {
            "PROPAY_TO_GO_SECRET" => Some("propay-secret".to_owned()),
            "STRIPE_WEBHOOK_SECRET" => Some("whsec_test".to_owned()),
            _ => None,
        })
        .unwrap()
    }

    async fn reconcile_jobs(pool: &sqlx::PgPool) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE job_type = 'reconcile_payment'")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[sqlx::test(migrations = false)]
    async fn a_signed_event_is_stored_once_with_one_reconciliation_job(pool: sqlx::PgPool) {
        crate::db::migrate(&pool).await.unwrap();
        let body = bytes(
            json!({"event_id": "ev-1", "event": "pix.paid", "txid": "t1",
                               "amount_cents": 100, "paid_at": "2026-11-25T12:00:00Z"}),
        );
        let signature = crate::payments::signature::sign_propay(b"propay-secret", &body);
        let headers = SignatureHeaders {
            propay: Some(&signature),
            ..Default::default()
        };
        let mut conn = pool.acquire().await.unwrap();
        let first = ingest(
            &mut conn,
            &verifiers(),
            WebhookSource::ProPay,
            &headers,
            &body,
        )
        .await
        .unwrap();
        assert!(matches!(first, Ingested::Stored { .. }));
        let again = ingest(
            &mut conn,
            &verifiers(),
            WebhookSource::ProPay,
            &headers,
            &body,
        )
        .await
        .unwrap();
        assert_eq!(again, Ingested::Duplicate);
        assert_eq!(reconcile_jobs(&pool).await, 1);
        let stored: Vec<u8> = sqlx::query_scalar("SELECT body FROM webhook_events")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(stored, body);
    }

    #[sqlx::test(migrations = false)]
    async fn a_bad_signature_stores_nothing(pool: sqlx::PgPool) {
        crate::db::migrate(&pool).await.unwrap();
        let body = bytes(
            json!({"event_id": "ev-1", "event": "pix.paid", "txid": "t1", "amount_cents": 100}),
        );
        let signature = crate::payments::signature::sign_propay(b"another-secret", &body);
        let mut conn = pool.acquire().await.unwrap();
        for propay in [Some(signature.as_str()), None] {
            let headers = SignatureHeaders {
                propay,
                ..Default::default()
            };
            let err = ingest(
                &mut conn,
                &verifiers(),
                WebhookSource::ProPay,
                &headers,
                &body,
            )
            .await
            .unwrap_err();
            assert!(matches!(err, Error::Unauthorized(_)), "{err:?}");
        }
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_events")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(count, 0);
    }

    #[sqlx::test(migrations = false)]
    async fn an_event_we_do_not_act_on_is_stored_as_ignored_without_a_job(pool: sqlx::PgPool) {
        crate::db::migrate(&pool).await.unwrap();
        let body = bytes(json!({"id": "evt_9", "type": "charge.refunded", "data": {"object": {}}}));
        let now = chrono::Utc::now().timestamp();
        let header = crate::payments::signature::sign_stripe("whsec_test", now, &body);
        let headers = SignatureHeaders {
            stripe: Some(&header),
            ..Default::default()
        };
        let mut conn = pool.acquire().await.unwrap();
        ingest(
            &mut conn,
            &verifiers(),
            WebhookSource::Stripe,
            &headers,
            &body,
        )
        .await
        .unwrap();
        assert_eq!(reconcile_jobs(&pool).await, 0);
        let outcome: Option<String> = sqlx::query_scalar("SELECT outcome FROM webhook_events")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(outcome.as_deref(), Some("ignored"));
    }
}
