//! `/api/cart`: the caller's cart. Every mutation answers with the updated cart.

use axum::extract::State;
use cart_core::cart::{self, Cart};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    error::{ApiResult, Problem},
    extract::{AuthUser, Json, Path},
    openapi::{Authenticated, AuthenticatedWithBody, PROBLEM},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_cart, clear_cart))
        .routes(routes!(add_item))
        .routes(routes!(set_quantity, remove_item))
        .routes(routes!(apply_coupon, remove_coupon))
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct AddItem {
    pub product_id: Uuid,
    /// At least 1; added to what the line already holds, which stays at most 10000
    /// (`cart::MAX_LINE_QUANTITY`).
    #[schema(minimum = 1, maximum = 10_000)]
    pub quantity: i64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct SetQuantity {
    /// The line's new quantity; 0 removes it.
    #[schema(minimum = 0, maximum = 10_000)]
    pub quantity: i64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CouponCode {
    /// Case-insensitive.
    #[schema(
        min_length = 1,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub code: String,
}

/// The caller's cart at current prices. Lines of deleted products are dropped; lines beyond
/// the current stock are flagged `available: false`.
#[utoipa::path(get, path = "/cart", tag = "cart", security(("bearer" = [])),
    responses((status = 200, body = Cart), Authenticated))]
pub async fn get_cart(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Cart>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(cart::get(&mut conn, user.id).await?))
}

/// Adds a quantity of a product.
#[utoipa::path(post, path = "/cart/items", tag = "cart", request_body = AddItem,
    security(("bearer" = [])),
    responses(
        (status = 200, body = Cart),
        AuthenticatedWithBody,
        (status = 404, description = "unknown or deleted product", body = Problem,
            content_type = PROBLEM),
        (status = 409, description = "more than in stock", body = Problem, content_type = PROBLEM),
    ))]
pub async fn add_item(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<AddItem>,
) -> ApiResult<Json<Cart>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(
        cart::add_item(&mut conn, user.id, body.product_id, body.quantity).await?,
    ))
}

/// Sets a line's quantity; 0 removes the line.
#[utoipa::path(put, path = "/cart/items/{product_id}", tag = "cart", request_body = SetQuantity,
    params(("product_id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Cart),
        AuthenticatedWithBody,
        (status = 404, description = "unknown or deleted product", body = Problem,
            content_type = PROBLEM),
        (status = 409, description = "more than in stock", body = Problem, content_type = PROBLEM),
    ))]
pub async fn set_quantity(
    State(state): State<AppState>,
    user: AuthUser,
    Path(product_id): Path<Uuid>,
    Json(body): Json<SetQuantity>,
) -> ApiResult<Json<Cart>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(
        cart::set_quantity(&mut conn, user.id, product_id, body.quantity).await?,
    ))
}

/// Removes a line.
#[utoipa::path(delete, path = "/cart/items/{product_id}", tag = "cart",
    params(("product_id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Cart),
        Authenticated,
        (status = 404, description = "no such line in the cart", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn remove_item(
    State(state): State<AppState>,
    user: AuthUser,
    Path(product_id): Path<Uuid>,
) -> ApiResult<Json<Cart>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(
        cart::remove_item(&mut conn, user.id, product_id).await?,
    ))
}

/// Empties the cart (lines and coupon).
#[utoipa::path(delete, path = "/cart", tag = "cart", security(("bearer" = [])),
    responses((status = 200, body = Cart), Authenticated))]
pub async fn clear_cart(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Cart>> {
    let mut conn = state.db.acquire().await?;
    cart::clear(&mut conn, user.id).await?;
    Ok(Json(cart::get(&mut conn, user.id).await?))
}

/// Attaches a coupon.
#[utoipa::path(post, path = "/cart/coupon", tag = "cart", request_body = CouponCode,
    security(("bearer" = [])),
    responses(
        (status = 200, body = Cart),
        AuthenticatedWithBody,
        (status = 422, description = "unknown, inactive, outside its window, used up or below \
            its minimum", body = Problem, content_type = PROBLEM),
    ))]
pub async fn apply_coupon(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<CouponCode>,
) -> ApiResult<Json<Cart>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(
        cart::apply_coupon(&mut conn, user.id, &body.code).await?,
    ))
}

/// Detaches the coupon.
#[utoipa::path(delete, path = "/cart/coupon", tag = "cart", security(("bearer" = [])),
    responses((status = 200, body = Cart), Authenticated))]
pub async fn remove_coupon(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Cart>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(cart::remove_coupon(&mut conn, user.id).await?))
}
