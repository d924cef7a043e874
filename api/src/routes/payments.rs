//! `POST /api/orders/{id}/pay` and `GET /api/orders/{id}/payment`.

use axum::{
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use cart_core::payments::flow::{self, Payment, PaymentMethod, PaymentState, PaymentView};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::{
    error::{ApiResult, Problem},
    extract::{AuthUser, Json, Path},
    openapi::{Authenticated, AuthenticatedWithBody, PROBLEM},
    routes::orders::{IdempotencyKey, idempotent},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(utoipa_axum::routes!(pay))
        .routes(utoipa_axum::routes!(get_payment))
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct PayRequest {
    pub method: PaymentMethod,
}

/// The answer while the provider has not been reached yet.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentInitiating {
    pub payment_id: Uuid,
    /// Always `initiating`.
    pub status: PaymentState,
}

/// Starts paying an order. The provider is called by a job; the request waits up to
/// `PAYMENT_WAIT` for it. A repeat while a payment is in flight returns that payment. A PIX
/// code never expires after the order does. A refused payment (`status: failed`) carries a
/// reason for the buyer in `error`; the provider's own text is shown to admins only.
#[utoipa::path(post, path = "/orders/{id}/pay", tag = "payments",
    params(("id" = Uuid, Path),
           IdempotencyKey),
    request_body = PayRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "the charge is ready (PIX code or card client secret), or the provider refused it (`status: failed`)", body = PaymentView),
        (status = 202, description = "still initiating; poll the Location", body = PaymentInitiating,
         headers(("Location" = String, description = "/api/orders/{id}/payment"))),
        AuthenticatedWithBody,
        (status = 404, description = "no such order, or someone else's", body = Problem,
            content_type = PROBLEM),
        (status = 409, description = "the order is not waiting for a payment; PIX with less than \
            `PIX_MIN_REMAINING` of the order's payment window left; the Idempotency-Key was used \
            with another body; or, with `Retry-After`, a payment for the order is being started \
            right now (repeat the request: such an answer is not stored for the key)",
            body = Problem, content_type = PROBLEM),
        (status = 503, description = "the provider's circuit is open (nothing was recorded), \
            or the database is unavailable", body = Problem, content_type = PROBLEM,
            headers(("Retry-After" = u64, description = "seconds to wait before trying again"))),
    ))]
pub async fn pay(
    State(state): State<AppState>,
    user: AuthUser,
    Path(order_id): Path<Uuid>,
    key: IdempotencyKey,
    Json(body): Json<PayRequest>,
) -> Response {
    let route = format!("POST /api/orders/{order_id}/pay");
    let method = body.method;
    let work_state = state.clone();
    idempotent(&state, user.id, route, key, &body, move || async move {
        match start_and_wait(&work_state, user.id, order_id, method).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        }
    })
    .await
}

async fn start_and_wait(
    state: &AppState,
    user_id: Uuid,
    order_id: Uuid,
    method: PaymentMethod,
) -> ApiResult<Response> {
    let settings = &state.config.payments;
    let started = {
        let mut conn = state.db.acquire().await?;
        flow::start(&mut conn, settings, user_id, order_id, method).await?
    };
    let payment = started.payment();
    let payment = if payment.status == PaymentState::Initiating {
        state
            .payment_waiters
            .wait(payment.id, settings.wait)
            .await?
    } else {
        payment.clone()
    };
    Ok(answer(order_id, payment))
}

fn answer(order_id: Uuid, payment: Payment) -> Response {
    if payment.status == PaymentState::Initiating {
        let location = format!("/api/orders/{order_id}/payment");
        let mut response = (
            StatusCode::ACCEPTED,
            Json(PaymentInitiating {
                payment_id: payment.id,
                status: payment.status,
            }),
        )
            .into_response();
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        return response;
    }
    // Only the order's owner pays: the buyer's view, without the provider's text.
    (StatusCode::CREATED, Json(PaymentView::new(payment, false))).into_response()
}

/// The latest payment of an order (owner or admin). A payment that did not go through says
/// why in words for the buyer (`error`); admins also see the provider's text (`provider_error`).
#[utoipa::path(get, path = "/orders/{id}/payment", tag = "payments",
    params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, body = PaymentView),
        Authenticated,
        (status = 404, description = "no such order, someone else's, or no payment yet",
            body = Problem, content_type = PROBLEM),
    ))]
pub async fn get_payment(
    State(state): State<AppState>,
    user: AuthUser,
    Path(order_id): Path<Uuid>,
) -> ApiResult<Json<PaymentView>> {
    let is_admin = user.is_admin();
    let mut conn = state.db.acquire().await?;
    let payment = flow::latest_for_order(&mut conn, order_id, user.into()).await?;
    Ok(Json(PaymentView::new(payment, is_admin)))
}
