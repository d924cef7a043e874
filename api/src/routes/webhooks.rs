//! Payment webhooks: public routes (no JWT) that verify the provider's signature on the raw
//! body, store the event once and enqueue its reconciliation, answering within milliseconds.

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderName},
};
use cart_core::payments::webhooks::{self, Ingested, SignatureHeaders, WebhookSource};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult, Problem},
    extract::Json,
    openapi::{PROBLEM, Webhook},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(utoipa_axum::routes!(propay_webhook))
        .routes(utoipa_axum::routes!(openpix_webhook))
        .routes(utoipa_axum::routes!(stripe_webhook))
}

/// The acknowledgement every accepted webhook gets.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookAck {
    pub received: bool,
    /// True when the event was seen before and ignored this time.
    pub duplicate: bool,
    /// The stored event (absent for a duplicate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_event_id: Option<Uuid>,
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Option<&'a str> {
    headers
        .get(HeaderName::from_static(name))
        .and_then(|v| v.to_str().ok())
}

/// Verifies, stores and enqueues one webhook in one transaction. Each route serves only the
/// payments of its own providers (`/webhooks/payment`: ProPay and the sandbox PIX;
/// `/webhooks/openpix`: OpenPix; `/webhooks/stripe`: Stripe and the sandbox card), and is a
/// 404 while none of them is configured.
pub(crate) async fn receive(
    state: &AppState,
    source: WebhookSource,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Json<WebhookAck>> {
    let signatures = SignatureHeaders {
        propay: header(headers, "x-propay-signature"),
        stripe: header(headers, "stripe-signature"),
        openpix_rsa: header(headers, "x-webhook-signature"),
        openpix_hmac: header(headers, "x-openpix-signature"),
    };
    // A route none of whose providers is configured does not exist for this store.
    if !state.config.payments.route_is_served(source) {
        return Err(ApiError::RouteNotFound);
    }
    // The signature first, before the database is touched.
    webhooks::verify(&state.config.payments.verifiers, source, &signatures, body)?;
    let parsed = webhooks::parse(source, body)?;
    let mut tx = state.db.begin().await?;
    let ingested = webhooks::store(&mut tx, source, &parsed, body).await?;
    tx.commit().await?;
    Ok(Json(match ingested {
        Ingested::Stored { webhook_event_id } => WebhookAck {
            received: true,
            duplicate: false,
            webhook_event_id: Some(webhook_event_id),
        },
        Ingested::Duplicate => WebhookAck {
            received: true,
            duplicate: true,
            webhook_event_id: None,
        },
    }))
}

/// ProPay (and the sandbox PIX provider): `X-Propay-Signature` is the lowercase hex
/// HMAC-SHA256 of the raw body with `PROPAY_TO_GO_SECRET` (`sha256=` prefix accepted).
/// Body `{event_id, event: "pix.paid", txid, amount_cents, paid_at}`.
#[utoipa::path(post, path = "/webhooks/payment", tag = "webhooks",
    params(("X-Propay-Signature" = String, Header)),
    request_body(content = String, content_type = "application/json"),
    responses(
        (status = 200, description = "stored (or a duplicate, ignored)", body = WebhookAck),
        Webhook,
        (status = 404, description = "PIX_PROVIDER is neither propay nor sandbox",
            body = Problem, content_type = PROBLEM),
    ))]
pub async fn propay_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<WebhookAck>> {
    receive(&state, WebhookSource::ProPay, &headers, &body).await
}

/// OpenPix/Woovi: `x-webhook-signature` (RSA-SHA256 with Woovi's public key), or the
/// deprecated `X-OpenPix-Signature` HMAC when `OPENPIX_WEBHOOK_SECRET` is set. Events
/// `OPENPIX:CHARGE_COMPLETED` and `OPENPIX:TRANSACTION_RECEIVED` with
/// `charge.correlationID` = our payment id and `pix.value` = what was paid. Woovi's key is
/// the same for every account, so before the order moves the charge is read back from our
/// own account (`OPENPIX_APP_ID`) and must be `COMPLETED` with the expected value.
#[utoipa::path(post, path = "/webhooks/openpix", tag = "webhooks",
    params(("x-webhook-signature" = Option<String>, Header),
           ("X-OpenPix-Signature" = Option<String>, Header)),
    request_body(content = String, content_type = "application/json"),
    responses(
        (status = 200, description = "stored (or a duplicate, ignored)", body = WebhookAck),
        Webhook,
        (status = 404, description = "PIX_PROVIDER is not openpix", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn openpix_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<WebhookAck>> {
    receive(&state, WebhookSource::OpenPix, &headers, &body).await
}

/// Stripe: `Stripe-Signature: t=…,v1=…` (HMAC-SHA256 of `"{t}.{body}"` with
/// `STRIPE_WEBHOOK_SECRET`, any `v1`, `t` within 300 s). Events
/// `payment_intent.succeeded` (paid amount: `amount_received`) and
/// `payment_intent.payment_failed`.
#[utoipa::path(post, path = "/webhooks/stripe", tag = "webhooks",
    params(("Stripe-Signature" = String, Header)),
    request_body(content = String, content_type = "application/json"),
    responses(
        (status = 200, description = "stored (or a duplicate, ignored)", body = WebhookAck),
        Webhook,
        (status = 404, description = "CARD_PROVIDER is neither stripe nor sandbox",
            body = Problem, content_type = PROBLEM),
    ))]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<WebhookAck>> {
    receive(&state, WebhookSource::Stripe, &headers, &body).await
}
