//! Sandbox helpers for developers (only with `PIX_PROVIDER=sandbox`).

use axum::{extract::State, http::HeaderMap};
use cart_core::payments::{
    flow::{self, PaymentMethod, PaymentState},
    signature::sign_propay,
    webhooks::{PROPAY_PIX_PAID, WebhookSource},
};
use secrecy::ExposeSecret;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::{
    error::{ApiResult, Problem},
    extract::{AdminUser, Json, Path},
    openapi::{Admin, PROBLEM},
    routes::webhooks::{WebhookAck, receive},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(utoipa_axum::routes!(confirm_payment))
}

/// Admin, sandbox only: "the payer paid". Signs a ProPay-shaped `pix.paid` webhook for the
/// payment with `PROPAY_TO_GO_SECRET` and feeds it to the payment webhook's own ingestion,
/// so the order is reconciled by the worker exactly as with a real provider.
#[utoipa::path(post, path = "/sandbox/payments/{payment_id}/confirm", tag = "sandbox",
    params(("payment_id" = Uuid, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the signed webhook was accepted", body = WebhookAck),
        Admin,
        (status = 404, description = "no such payment, or PIX_PROVIDER is not sandbox",
            body = Problem, content_type = PROBLEM),
        (status = 409, description = "not a pending PIX payment, or PROPAY_TO_GO_SECRET is unset",
            body = Problem, content_type = PROBLEM),
    ))]
pub async fn confirm_payment(
    State(state): State<AppState>,
    AdminUser(_admin): AdminUser,
    Path(payment_id): Path<Uuid>,
) -> ApiResult<Json<WebhookAck>> {
    let settings = &state.config.payments;
    if !settings.pix_sandbox {
        return Err(cart_core::Error::NotFound.into());
    }
    let payment = {
        let mut conn = state.db.acquire().await?;
        flow::get(&mut conn, payment_id).await?
    };
    let (PaymentMethod::Pix, PaymentState::Pending, Some(txid)) =
        (payment.method, payment.status, payment.txid.as_deref())
    else {
        return Err(
            cart_core::Error::conflict("only a pending PIX payment can be confirmed").into(),
        );
    };
    let Some(secret) = settings.verifiers.propay_secret.as_ref() else {
        return Err(cart_core::Error::conflict(
            "set PROPAY_TO_GO_SECRET to sign sandbox payment webhooks",
        )
        .into());
    };
    let body = serde_json::to_vec(&serde_json::json!({
        "event_id": format!("sandbox-{payment_id}"),
        "event": PROPAY_PIX_PAID,
        "txid": txid,
        "amount_cents": payment.amount_cents,
        "paid_at": chrono::Utc::now(),
    }))
    .map_err(anyhow::Error::from)?;
    let signature = sign_propay(secret.expose_secret().as_bytes(), &body);
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-propay-signature",
        signature.parse().map_err(anyhow::Error::from)?,
    );
    receive(&state, WebhookSource::ProPay, &headers, &body).await
}
