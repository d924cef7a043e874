//! `/api/categories`: public reads (cached) and admin writes.

use axum::{extract::State, http::StatusCode};
use cart_core::catalog::{Category, CategoryInput, categories};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    error::{ApiResult, Problem},
    extract::{AdminUser, Created, Json, PageParams, Paginated, Path, Query},
    openapi::{Admin, AdminWithBody, PROBLEM, Paged, Public},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_categories, create_category))
        .routes(routes!(get_category, update_category, delete_category))
}

/// Categories by name, a page at a time; `parent_id` gives the tree.
#[utoipa::path(get, path = "/categories", tag = "catalog", params(PageParams),
    responses((status = 200, body = Paginated<Category>), Public, Paged))]
pub async fn list_categories(
    State(state): State<AppState>,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Paginated<Category>>> {
    let page = page.clamp(state.config.pagination_max_limit)?;
    let result = state
        .cache
        .category_list(page.limit, page.offset, || async {
            let mut conn = state.db.acquire().await?;
            categories::list(&mut conn, page.limit, page.offset).await
        })
        .await?;
    Ok(Json(Paginated::new(
        result.items.clone(),
        result.total,
        page,
    )))
}

#[utoipa::path(get, path = "/categories/{id}", tag = "catalog", params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Category),
        Public,
        (status = 404, description = "no such category", body = Problem, content_type = PROBLEM),
    ))]
pub async fn get_category(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Category>> {
    let category = state
        .cache
        .category(id, || async {
            let mut conn = state.db.acquire().await?;
            categories::get(&mut conn, id).await
        })
        .await?;
    Ok(Json(Category::clone(&category)))
}

/// Creates a category (admin), optionally under a parent.
#[utoipa::path(post, path = "/categories", tag = "catalog", request_body = CategoryInput,
    security(("bearer" = [])),
    responses(
        (status = 201, body = Category),
        AdminWithBody,
        (status = 422, description = "empty name, unknown parent", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn create_category(
    State(state): State<AppState>,
    _admin: AdminUser,
    Json(input): Json<CategoryInput>,
) -> ApiResult<Created<Category>> {
    let mut conn = state.db.acquire().await?;
    let category = categories::create(&mut conn, input).await?;
    state.cache.category_changed();
    Ok(Created(category))
}

/// Replaces a category's fields (admin); moving it under its own subtree is refused.
#[utoipa::path(put, path = "/categories/{id}", tag = "catalog", request_body = CategoryInput,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Category),
        AdminWithBody,
        (status = 404, description = "no such category", body = Problem, content_type = PROBLEM),
        (status = 422, description = "empty name, unknown parent, cycle", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn update_category(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<Uuid>,
    Json(input): Json<CategoryInput>,
) -> ApiResult<Json<Category>> {
    let mut conn = state.db.acquire().await?;
    let category = categories::update(&mut conn, id, input).await?;
    state.cache.category_changed();
    Ok(Json(category))
}

/// Deletes an empty category (admin).
#[utoipa::path(delete, path = "/categories/{id}", tag = "catalog",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 204, description = "deleted"),
        Admin,
        (status = 404, description = "no such category", body = Problem, content_type = PROBLEM),
        (status = 409, description = "it still has products or subcategories", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn delete_category(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let mut conn = state.db.acquire().await?;
    categories::delete(&mut conn, id).await?;
    state.cache.category_changed();
    Ok(StatusCode::NO_CONTENT)
}
