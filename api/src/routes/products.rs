//! `/api/products`: public reads (cached, see `crate::cache`) and admin writes.

use axum::{extract::State, http::StatusCode, response::Response};
use cart_core::{
    cart,
    catalog::{Product, ProductFilter, ProductInput, ProductSort, StockChange, products, stock},
    error::FieldErrors,
};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    cache::{JsonBody, ProductListKey},
    error::{ApiResult, Problem},
    extract::{AdminUser, Created, Json, Page, PageParams, Paginated, Path, Query},
    openapi::{Admin, AdminWithBody, PROBLEM, Paged, Public},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_products, create_product))
        .routes(routes!(search_products))
        .routes(routes!(featured_products))
        .routes(routes!(products_in_category))
        .routes(routes!(get_product, update_product, delete_product))
        .routes(routes!(change_stock))
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::IntoParams)]
pub struct SortParams {
    /// `newest` (default), `price_asc`, `price_desc` or `name`; ties are ordered by id.
    #[param(inline, nullable = false)]
    pub sort: Option<ProductSort>,
}

#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
pub struct SearchParams {
    /// Words to look for in name, SKU and description; accents and plurals do not matter.
    /// Missing, empty or only spaces is refused.
    #[param(
        required = true,
        nullable = false,
        min_length = 1,
        max_length = 200,
        pattern = r"[^\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]"
    )]
    pub q: Option<String>,
}

/// `{stock}` sets the stock; `{delta}` moves it (negative to remove). Exactly one of them.
#[derive(Debug, Clone, Deserialize)]
pub struct StockPatch {
    pub stock: Option<i64>,
    pub delta: Option<i64>,
}

/// Written out rather than derived: the derive cannot say "exactly one of them".
impl utoipa::PartialSchema for StockPatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        let limit = i64::from(i32::MAX);
        // One field given, the other absent or null.
        let only = |field: &str, other: &str, minimum: i64, description: &str| {
            ObjectBuilder::new()
                .property(
                    field,
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                        .minimum(Some(minimum))
                        .maximum(Some(limit))
                        .description(Some(description)),
                )
                .required(field)
                .property(other, ObjectBuilder::new().schema_type(Type::Null))
        };
        OneOfBuilder::new()
            .description(Some(
                "`{stock}` sets the stock; `{delta}` moves it (negative to remove). Exactly one \
                 of them.",
            ))
            .item(only("stock", "delta", 0, "the new stock"))
            .item(only(
                "delta",
                "stock",
                -limit,
                "units to add, or with a minus sign to remove",
            ))
            .into()
    }
}

impl utoipa::ToSchema for StockPatch {}

impl StockPatch {
    fn into_change(self) -> Result<StockChange, cart_core::Error> {
        let limit = i64::from(i32::MAX);
        match (self.stock, self.delta) {
            (Some(stock), None) if (0..=limit).contains(&stock) => {
                Ok(StockChange::Set(i32::try_from(stock).unwrap_or(i32::MAX)))
            }
            (Some(_), None) => Err(cart_core::Error::invalid(
                "stock",
                format!("must be between 0 and {limit}"),
            )),
            (None, Some(delta)) if (-limit..=limit).contains(&delta) => {
                Ok(StockChange::Delta(delta))
            }
            (None, Some(_)) => Err(cart_core::Error::invalid(
                "delta",
                format!("must be between -{limit} and {limit}"),
            )),
            _ => {
                let mut errors = FieldErrors::new();
                errors.add("stock", "give either stock or delta");
                errors.add("delta", "give either stock or delta");
                Err(cart_core::Error::Invalid(errors))
            }
        }
    }
}

async fn list(
    state: &AppState,
    filter: ProductFilter,
    sort: ProductSort,
    page: Page,
) -> ApiResult<Response> {
    let key = ProductListKey {
        filter,
        sort,
        limit: page.limit,
        offset: page.offset,
    };
    let body = state
        .cache
        .product_list(key, || async {
            let mut conn = state.db.acquire().await?;
            let found = products::list(&mut conn, filter, sort, page.limit, page.offset).await?;
            JsonBody::of(&Paginated::new(found.items, found.total, page))
        })
        .await?;
    Ok(body.response())
}

/// Live products, a page at a time.
#[utoipa::path(get, path = "/products", tag = "catalog", params(PageParams, SortParams),
    responses((status = 200, body = Paginated<Product>), Public, Paged))]
pub async fn list_products(
    State(state): State<AppState>,
    Query(page): Query<PageParams>,
    Query(sort): Query<SortParams>,
) -> ApiResult<Response> {
    let page = page.clamp(state.config.pagination_max_limit)?;
    list(
        &state,
        ProductFilter::All,
        sort.sort.unwrap_or_default(),
        page,
    )
    .await
}

/// Featured live products, a page at a time.
#[utoipa::path(get, path = "/products/featured", tag = "catalog", params(PageParams, SortParams),
    responses((status = 200, body = Paginated<Product>), Public, Paged))]
pub async fn featured_products(
    State(state): State<AppState>,
    Query(page): Query<PageParams>,
    Query(sort): Query<SortParams>,
) -> ApiResult<Response> {
    let page = page.clamp(state.config.pagination_max_limit)?;
    list(
        &state,
        ProductFilter::Featured,
        sort.sort.unwrap_or_default(),
        page,
    )
    .await
}

/// Live products of a category and of all its subcategories.
#[utoipa::path(get, path = "/products/category/{id}", tag = "catalog",
    params(("id" = Uuid, Path, description = "category id"), PageParams, SortParams),
    responses(
        (status = 200, body = Paginated<Product>),
        Public,
        Paged,
        (status = 404, description = "no such category", body = Problem, content_type = PROBLEM),
    ))]
pub async fn products_in_category(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Query(page): Query<PageParams>,
    Query(sort): Query<SortParams>,
) -> ApiResult<Response> {
    let page = page.clamp(state.config.pagination_max_limit)?;
    list(
        &state,
        ProductFilter::Category(id),
        sort.sort.unwrap_or_default(),
        page,
    )
    .await
}

/// Full-text search (Portuguese stemming, accents ignored, typo-tolerant names), best first.
#[utoipa::path(get, path = "/products/search", tag = "catalog", params(SearchParams, PageParams),
    responses(
        (status = 200, body = Paginated<Product>),
        Public,
        (status = 422, description = "`q` empty or too long, `limit` below 1 or a negative \
            `offset`", body = Problem, content_type = PROBLEM),
    ))]
pub async fn search_products(
    State(state): State<AppState>,
    Query(search): Query<SearchParams>,
    Query(page): Query<PageParams>,
) -> ApiResult<Response> {
    let page = page.clamp(state.config.pagination_max_limit)?;
    let query = search.q.unwrap_or_default();
    let body = state
        .cache
        .product_search(&query, page.limit, page.offset, || async {
            let mut conn = state.db.acquire().await?;
            let found = products::search(&mut conn, &query, page.limit, page.offset).await?;
            JsonBody::of(&Paginated::new(found.items, found.total, page))
        })
        .await?;
    Ok(body.response())
}

/// One live product.
#[utoipa::path(get, path = "/products/{id}", tag = "catalog",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Product),
        Public,
        (status = 404, description = "unknown or deleted", body = Problem, content_type = PROBLEM),
    ))]
pub async fn get_product(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Product>> {
    let product = state
        .cache
        .product(id, || async {
            let mut conn = state.db.acquire().await?;
            products::get(&mut conn, id).await
        })
        .await?;
    Ok(Json(Product::clone(&product)))
}

/// Creates a product (admin). The slug is derived from the name.
#[utoipa::path(post, path = "/products", tag = "catalog", request_body = ProductInput,
    security(("bearer" = [])),
    responses(
        (status = 201, body = Product),
        AdminWithBody,
        (status = 409, description = "SKU taken", body = Problem, content_type = PROBLEM),
    ))]
pub async fn create_product(
    State(state): State<AppState>,
    _admin: AdminUser,
    Json(input): Json<ProductInput>,
) -> ApiResult<Created<Product>> {
    let mut conn = state.db.acquire().await?;
    let product = products::create(&mut conn, input).await?;
    state.cache.product_changed(product.id).await;
    Ok(Created(product))
}

/// Replaces a product's fields (admin). Leaving `stock` out keeps the current stock.
#[utoipa::path(put, path = "/products/{id}", tag = "catalog", request_body = ProductInput,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Product),
        AdminWithBody,
        (status = 404, description = "unknown or deleted", body = Problem, content_type = PROBLEM),
        (status = 409, description = "SKU taken", body = Problem, content_type = PROBLEM),
    ))]
pub async fn update_product(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<Uuid>,
    Json(input): Json<ProductInput>,
) -> ApiResult<Json<Product>> {
    let mut conn = state.db.acquire().await?;
    let product = products::update(&mut conn, id, input).await?;
    state.cache.product_changed(id).await;
    Ok(Json(product))
}

/// Soft-deletes a product (admin): gone from reads and carts, kept for old orders.
#[utoipa::path(delete, path = "/products/{id}", tag = "catalog",
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 204, description = "deleted"),
        Admin,
        (status = 404, description = "unknown or already deleted", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn delete_product(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let mut tx = state.db.begin().await?;
    products::soft_delete(&mut tx, id).await?;
    cart::drop_product(&mut tx, id).await?;
    tx.commit().await?;
    state.cache.product_changed(id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets (`{stock}`) or moves (`{delta}`) a product's stock (admin); never below zero.
#[utoipa::path(patch, path = "/products/{id}/stock", tag = "catalog", request_body = StockPatch,
    params(("id" = Uuid, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Product),
        AdminWithBody,
        (status = 404, description = "unknown or deleted", body = Problem, content_type = PROBLEM),
        (status = 409, description = "the delta would take stock below zero", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn change_stock(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<Uuid>,
    Json(patch): Json<StockPatch>,
) -> ApiResult<Json<Product>> {
    let change = patch.into_change()?;
    let mut conn = state.db.acquire().await?;
    let product = stock::change(&mut conn, id, change).await?;
    state.cache.product_changed(id).await;
    Ok(Json(product))
}
