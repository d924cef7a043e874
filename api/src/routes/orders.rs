//! `/api/orders`: checkout, reads, cancellation, fulfilment and public tracking, plus the
//! `Idempotency-Key` handling that `POST /api/orders/{id}/pay` reuses.

use std::{collections::BTreeMap, panic::AssertUnwindSafe};

use axum::{
    body::Body,
    extract::{FromRequestParts, State},
    http::{HeaderName, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use cart_core::{
    idempotency::{self, Begin, KeyRef, Lease, StoredResponse},
    orders::{
        self, Actor, Order, OrderStatus, PageRequest, PublicTracking, Viewer,
        checkout::{CheckoutContext, CheckoutRequest},
    },
};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult, Problem, Transient},
    extract::{AdminUser, AuthUser, Created, Json, PageParams, Paginated, Path, Query},
    openapi::{Admin, AdminWithBody, Authenticated, AuthenticatedWithBody, PROBLEM, Paged, Public},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(utoipa_axum::routes!(list_orders, place_order))
        .routes(utoipa_axum::routes!(cancel_order))
        .routes(utoipa_axum::routes!(get_order))
        .routes(utoipa_axum::routes!(track_order))
        .routes(utoipa_axum::routes!(ship_order))
        .routes(utoipa_axum::routes!(deliver_order))
}

impl From<AuthUser> for Viewer {
    fn from(user: AuthUser) -> Self {
        Viewer {
            user_id: user.id,
            is_admin: user.is_admin(),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct OrdersQuery {
    /// Admins only: every customer's orders instead of the caller's own.
    #[serde(default)]
    pub all: bool,
    /// Only orders in this status.
    #[param(nullable = false)]
    pub status: Option<OrderStatus>,
}

/// Checkout: the caller's cart becomes an order, in one transaction (stock taken, coupon use
/// counted, cart emptied, confirmation e-mail and payment deadline scheduled). Shipping is
/// priced here, for the chosen service. With an `Idempotency-Key`, a repeat with the same
/// body within 24 h gets the first answer again (`Idempotent-Replayed: true`).
#[utoipa::path(post, path = "/orders", tag = "orders",
    params(IdempotencyKey),
    request_body = CheckoutRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, body = Order),
        AuthenticatedWithBody,
        (status = 409, description = "not enough stock (the detail names the product), the \
            caller already holds `MAX_UNPAID_ORDERS` unpaid orders, or the Idempotency-Key was \
            used with another body; with `Retry-After`, a conflict that passes (the key is in \
            use by a running request, the cart kept changing): repeat the request, such an \
            answer is not stored for the key", body = Problem, content_type = PROBLEM),
        (status = 422, description = "empty cart, no CPF on the profile, unknown address \
            (`address_id`: not in the caller's address book), shipping service not offered, \
            or a coupon that no longer applies", body = Problem, content_type = PROBLEM),
        (status = 502, description = "the shipping provider answered badly", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn place_order(
    State(state): State<AppState>,
    user: AuthUser,
    key: IdempotencyKey,
    Json(body): Json<CheckoutRequest>,
) -> Response {
    let (work_state, work_body) = (state.clone(), body.clone());
    idempotent(
        &state,
        user.id,
        "POST /api/orders".into(),
        key,
        &body,
        move || async move {
            match checkout(&work_state, user.id, &work_body).await {
                Ok(order) => Created(order).into_response(),
                Err(e) => e.into_response(),
            }
        },
    )
    .await
}
async fn checkout(state: &AppState, user_id: Uuid, body: &CheckoutRequest) -> ApiResult<Order> {
    let ctx = CheckoutContext {
        shipping: state.shipping.as_ref(),
        sender_cep: &state.config.shipping_sender_cep,
        payment_ttl: state.config.orders.payment_ttl,
        templates: &state.templates,
        max_unpaid_orders: state.config.orders.max_unpaid,
    };
    let mut conn = state.db.acquire().await?;
    Ok(orders::checkout::place_order(&mut conn, &ctx, user_id, body).await?)
}

/// Cancel an order that has not shipped: unpaid → stock and coupon use given back; paid →
/// also refunded (payment status `refund_pending`, a refund job enqueued).
#[utoipa::path(patch, path = "/orders/{id}/cancel", tag = "orders",
    params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Order),
        Authenticated,
        (status = 404, description = "no such order, or someone else's", body = Problem,
            content_type = PROBLEM),
        (status = 409, description = "already shipped, delivered or cancelled", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn cancel_order(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Order>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(
        orders::cancel::cancel(&mut conn, id, user.into()).await?,
    ))
}

/// The caller's orders, newest first (admins: every order with `?all=true`).
#[utoipa::path(get, path = "/orders", tag = "orders",
    params(PageParams, OrdersQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Paginated<Order>),
        Authenticated,
        Paged,
        (status = 403, description = "`all=true` from a non-admin", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn list_orders(
    State(state): State<AppState>,
    user: AuthUser,
    Query(page): Query<PageParams>,
    Query(filter): Query<OrdersQuery>,
) -> ApiResult<Json<Paginated<Order>>> {
    let page = page.clamp(state.config.pagination_max_limit)?;
    let request = PageRequest {
        limit: page.limit,
        offset: page.offset,
    };
    let mut conn = state.db.acquire().await?;
    let (items, total) = if filter.all {
        if !user.is_admin() {
            return Err(cart_core::Error::Forbidden.into());
        }
        orders::read::list_all(&mut conn, filter.status, request).await?
    } else {
        orders::read::list_for_user(&mut conn, user.id, filter.status, request).await?
    };
    Ok(Json(Paginated::new(items, total, page)))
}

/// One order: its owner's or, for admins, anyone's.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders",
    params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Order),
        Authenticated,
        (status = 404, description = "no such order, or someone else's", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn get_order(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Order>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(
        orders::read::get_visible(&mut conn, id, user.into()).await?,
    ))
}

/// Public tracking by the carrier's tracking code (the one the shipment e-mail gives) or by
/// order number, in any case: status and carrier data, nothing personal.
#[utoipa::path(get, path = "/orders/tracking/{number}", tag = "orders",
    params(("number" = String, Path, example = "AA123456789BR",
        description = "the carrier's tracking code (e.g. `AA123456789BR`) or the order number \
            (e.g. `CART-7K3M9Q2X`)")),
    responses(
        (status = 200, body = PublicTracking),
        Public,
        (status = 404, description = "no order with that tracking code or number",
            body = Problem, content_type = PROBLEM),
    ))]
pub async fn track_order(
    State(state): State<AppState>,
    Path(number): Path<String>,
) -> ApiResult<Json<PublicTracking>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(orders::read::track(&mut conn, &number).await?))
}

/// Each field: 1–64 characters once trimmed, none of them a control character. The pattern
/// spells that out: whitespace trim removes (which may be control characters), then text
/// without control characters that starts and ends with something else, then whitespace again.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
pub struct TrackingRequest {
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\u0000-\u001F\u007F-\u009F]([^\u0000-\u001F\u007F-\u009F]*[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\u0000-\u001F\u007F-\u009F])?[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub tracking_number: String,
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\u0000-\u001F\u007F-\u009F]([^\u0000-\u001F\u007F-\u009F]*[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\u0000-\u001F\u007F-\u009F])?[\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]*$"
    )]
    pub carrier: String,
}

/// Admin: the order shipped. `processing` → `shipped`; the customer is e-mailed.
#[utoipa::path(patch, path = "/orders/{id}/tracking", tag = "orders",
    params(("id" = Uuid, Path)),
    request_body = TrackingRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, body = Order),
        AdminWithBody,
        (status = 404, description = "no such order", body = Problem, content_type = PROBLEM),
        (status = 409, description = "not paid yet, already shipped, or cancelled",
            body = Problem, content_type = PROBLEM),
    ))]
pub async fn ship_order(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<Uuid>,
    Json(body): Json<TrackingRequest>,
) -> ApiResult<Json<Order>> {
    let mut conn = state.db.acquire().await?;
    let order = orders::lifecycle::mark_shipped(
        &mut conn,
        &state.templates,
        id,
        &body.tracking_number,
        &body.carrier,
        Actor::User(admin.id),
    )
    .await?;
    Ok(Json(order))
}

/// Admin: the parcel arrived. `shipped` → `delivered`.
#[utoipa::path(patch, path = "/orders/{id}/delivered", tag = "orders",
    params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Order),
        Admin,
        (status = 404, description = "no such order", body = Problem, content_type = PROBLEM),
        (status = 409, description = "not shipped", body = Problem, content_type = PROBLEM),
    ))]
pub async fn deliver_order(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Order>> {
    let mut conn = state.db.acquire().await?;
    let order = orders::lifecycle::mark_delivered(&mut conn, id, Actor::User(admin.id)).await?;
    Ok(Json(order))
}

// ---- Idempotency-Key ----------------------------------------------------------------

pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The optional `Idempotency-Key` header; a malformed one is a 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl utoipa::IntoParams for IdempotencyKey {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::{
            Required,
            path::{ParameterBuilder, ParameterIn},
            schema::{ObjectBuilder, Type},
        };
        vec![
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Makes the request safe to retry: a repeat with the same key and body \
                     within 24 h gets the first answer again. 1–255 printable ASCII \
                     characters, not only spaces.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(idempotency::MAX_KEY_LEN))
                        .pattern(Some("^[ -~]*[!-~][ -~]*$")),
                ))
                .build(),
        ]
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(raw) = parts.headers.get(&IDEMPOTENCY_KEY) else {
            return Ok(IdempotencyKey(None));
        };
        let key = raw
            .to_str()
            .map_err(|_| ApiError::BadRequest("Idempotency-Key must be printable ASCII".into()))?;
        idempotency::validate_key(key)?;
        Ok(IdempotencyKey(Some(key.to_owned())))
    }
}

/// Response headers a replay repeats.
const REPLAYED_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, header::LOCATION];
/// Answers larger than this are not JSON documents we produce; never buffer more.
const MAX_STORED_BODY: usize = 1024 * 1024;

/// Runs `work` at most once per `(user, route, key)`: a repeat with the same body gets the
/// stored answer with `Idempotent-Replayed: true`; the same key with another body, or while
/// the first request still runs, is a 409. Answers that are not final (5xx, and a 409 that
/// means "try again": `cart_core::Error::TryAgain`) give the key back so a retry runs afresh.
/// Without a key, `work` simply runs.
///
/// With a key, the work and the storing of its answer run in a task of their own, so a client
/// that hangs up (or a request timeout) cannot leave a committed order behind a key that
/// never learns its answer: the retry then gets the stored answer instead of a 409.
pub async fn idempotent<Fut>(
    state: &AppState,
    user_id: Uuid,
    route: String,
    key: IdempotencyKey,
    body: &impl Serialize,
    work: impl FnOnce() -> Fut + Send + 'static,
) -> Response
where
    Fut: Future<Output = Response> + Send + 'static,
{
    let Some(key) = key.0 else {
        return work().await;
    };
    match run_idempotent(
        state,
        KeyRef {
            user_id,
            route,
            key,
        },
        body,
        work,
    )
    .await
    {
        Ok(response) | Err(response) => response,
    }
}

async fn run_idempotent<Fut>(
    state: &AppState,
    key: KeyRef,
    body: &impl Serialize,
    work: impl FnOnce() -> Fut + Send + 'static,
) -> Result<Response, Response>
where
    Fut: Future<Output = Response> + Send + 'static,
{
    let hash = idempotency::request_hash(body).map_err(problem)?;
    // Claimed on a connection of its own, outside the work's transaction, so a concurrent
    // duplicate sees the claim at once; the connection goes back before the work starts.
    let begun = {
        let mut conn = state.db.acquire().await.map_err(problem)?;
        idempotency::begin(&mut conn, key, &hash)
            .await
            .map_err(problem)?
    };
    let lease = match begun {
        Begin::Fresh(lease) => lease,
        Begin::Replay(stored) => return Ok(replay(stored)),
        Begin::Conflict(conflict) => return Err(problem(cart_core::Error::from(conflict))),
    };

    let db = state.db.clone();
    let finish = async move {
        let response = match AssertUnwindSafe(work()).catch_unwind().await {
            Ok(response) => response,
            Err(_) => {
                tracing::error!("an idempotent request panicked");
                ApiError::Panic.into_response()
            }
        };
        settle(&db, &lease, response).await
    };
    // The task keeps the request's id and span, like the handler would have.
    let finish = finish.instrument(tracing::Span::current());
    let task = match cart_core::request_id::current() {
        Some(id) => tokio::spawn(cart_core::request_id::scope(id, finish)),
        None => tokio::spawn(finish),
    };
    task.await
        .map_err(|e| problem(anyhow::anyhow!("idempotent request task failed: {e}")))
}

/// Stores the answer for replays, or gives the key back after an answer that is not final
/// (a 5xx, or a 409 that means "try again"); answers the response.
async fn settle(db: &sqlx::PgPool, lease: &Lease, response: Response) -> Response {
    let status = response.status();
    let transient = status.is_server_error() || response.extensions().get::<Transient>().is_some();
    let mut conn = match db.acquire().await {
        Ok(conn) => conn,
        Err(e) => {
            // The claim goes stale and is taken over by a retry after a while.
            tracing::error!(error = %e, "no connection to settle an idempotency key");
            return response;
        }
    };
    if transient {
        if let Err(e) = idempotency::release(&mut conn, lease).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_STORED_BODY).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = idempotency::release(&mut conn, lease).await;
            return problem(anyhow::anyhow!("reading a response to store: {e}"));
        }
    };
    let stored = StoredResponse {
        status: status.as_u16(),
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        headers: REPLAYED_HEADERS
            .iter()
            .filter_map(|name| {
                let value = parts.headers.get(name)?.to_str().ok()?;
                Some((name.as_str().to_owned(), value.to_owned()))
            })
            .collect::<BTreeMap<_, _>>(),
    };
    if let Err(e) = idempotency::complete(&mut conn, lease, &stored).await {
        // The work is done and its answer is right; only a later replay would miss it.
        tracing::error!(error = %e, "could not store an idempotent response");
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let bytes = serde_json::to_vec(&stored.body).unwrap_or_default();
    let mut response = (status, bytes).into_response();
    let headers = response.headers_mut();
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    headers.insert(
        IDEMPOTENT_REPLAYED.clone(),
        HeaderValue::from_static("true"),
    );
    response
}

fn problem(err: impl Into<ApiError>) -> Response {
    err.into().into_response()
}
