//! `/api/coupons`: admin management of discount coupons.

use axum::{extract::State, http::StatusCode};
use cart_core::{
    cart,
    coupons::{self, Coupon, CouponInput},
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    error::{ApiResult, Problem},
    extract::{AdminUser, Created, Json, PageParams, Paginated, Path, Query},
    openapi::{Admin, AdminWithBody, PROBLEM, Paged},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_coupons, create_coupon))
        .routes(routes!(get_coupon, update_coupon, delete_coupon))
}

/// Live coupons, newest first (admin).
#[utoipa::path(get, path = "/coupons", tag = "coupons", params(PageParams),
    security(("bearer" = [])),
    responses((status = 200, body = Paginated<Coupon>), Admin, Paged))]
pub async fn list_coupons(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Paginated<Coupon>>> {
    let page = page.clamp(state.config.pagination_max_limit)?;
    let mut conn = state.db.acquire().await?;
    let result = coupons::list(&mut conn, page.limit, page.offset).await?;
    Ok(Json(Paginated::new(result.items, result.total, page)))
}

/// Creates a coupon (admin).
#[utoipa::path(post, path = "/coupons", tag = "coupons", request_body = CouponInput,
    security(("bearer" = [])),
    responses(
        (status = 201, body = Coupon),
        AdminWithBody,
        (status = 409, description = "code taken (case-insensitively)", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn create_coupon(
    State(state): State<AppState>,
    _admin: AdminUser,
    Json(input): Json<CouponInput>,
) -> ApiResult<Created<Coupon>> {
    let mut conn = state.db.acquire().await?;
    Ok(Created(coupons::create(&mut conn, input).await?))
}

#[utoipa::path(get, path = "/coupons/{id}", tag = "coupons", params(("id" = Uuid, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Coupon),
        Admin,
        (status = 404, description = "no such coupon", body = Problem, content_type = PROBLEM),
    ))]
pub async fn get_coupon(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Coupon>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(coupons::get(&mut conn, id).await?))
}

/// Replaces a coupon's settings (admin); its use count stays.
#[utoipa::path(put, path = "/coupons/{id}", tag = "coupons", request_body = CouponInput,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Coupon),
        AdminWithBody,
        (status = 404, description = "no such coupon", body = Problem, content_type = PROBLEM),
        (status = 409, description = "code taken", body = Problem, content_type = PROBLEM),
    ))]
pub async fn update_coupon(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<Uuid>,
    Json(input): Json<CouponInput>,
) -> ApiResult<Json<Coupon>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(coupons::update(&mut conn, id, input).await?))
}

/// Deletes a coupon (admin): its code is free again and carts drop it; counted uses stay.
#[utoipa::path(delete, path = "/coupons/{id}", tag = "coupons",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 204, description = "deleted"),
        Admin,
        (status = 404, description = "no such coupon", body = Problem, content_type = PROBLEM),
    ))]
pub async fn delete_coupon(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    coupons::soft_delete(&mut tx, id).await?;
    cart::detach_coupon(&mut tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
