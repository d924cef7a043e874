//! `/api/users/*`: the caller's profile, address books, the LGPD export and erasure, and
//! two admin reads.
//!
//! Under `/users/{id}/…`, `{id}` is the caller's own id or `me`; admins may use any id.
//! Anyone else's id answers 404, exactly as an id that does not exist.

use axum::{extract::State, http::StatusCode};
use cart_core::rate_limits::{self, Verdict};
use cart_core::users::{
    self, ProfileUpdate, User,
    addresses::{self, Address, AddressInput},
    privacy,
};
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult, Problem},
    extract::{AdminUser, AuthUser, Created, Json, PageParams, Paginated, Path, Query},
    openapi::{Admin, Authenticated, AuthenticatedWithBody, PROBLEM, Paged},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, update_me, delete_me))
        .routes(routes!(export_me))
        .routes(routes!(list_users))
        .routes(routes!(get_user))
        .routes(routes!(list_addresses, create_address))
        .routes(routes!(update_address, delete_address))
        .routes(routes!(make_default_address))
}

/// Whose address book (`{id}`): `me`, the caller's own id, or (admins) any user id.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(
    pattern = r"^(me|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
)]
pub struct AccountRef(pub String);

/// The account the caller may act on: themselves (`me` or their id), or anyone for admins.
async fn owner(state: &AppState, caller: AuthUser, raw_id: &str) -> ApiResult<Uuid> {
    if raw_id == "me" {
        return Ok(caller.id);
    }
    let id = Uuid::parse_str(raw_id)
        .map_err(|_| ApiError::BadRequest("the user id must be a UUID or `me`".into()))?;
    if id == caller.id {
        return Ok(id);
    }
    if !caller.is_admin() {
        return Err(cart_core::Error::NotFound.into());
    }
    let mut conn = state.db.acquire().await?;
    users::find(&mut conn, id).await?;
    Ok(id)
}

/// The caller's profile.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = User), Authenticated))]
pub async fn get_me(State(state): State<AppState>, caller: AuthUser) -> ApiResult<Json<User>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(users::find(&mut conn, caller.id).await?))
}

/// Change name, e-mail or CPF; absent fields stay. Role and other server-owned fields are
/// not accepted from clients (they are ignored). A new e-mail needs `current_password`; it
/// notifies the old address, ends the account's other sessions and voids reset links. Each
/// `current_password` checked spends the account's failed-login budget, shared with login:
/// once it is spent, the answer is 429.
#[utoipa::path(put, path = "/users/me", tag = "users", security(("bearer" = [])),
    request_body = ProfileUpdate,
    responses(
        (status = 200, body = User),
        AuthenticatedWithBody,
        (status = 403, description = "a new e-mail without the right `current_password`; \
            nothing changed", body = Problem, content_type = PROBLEM),
        (status = 409, description = "e-mail already registered", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn update_me(
    State(state): State<AppState>,
    caller: AuthUser,
    Json(update): Json<ProfileUpdate>,
) -> ApiResult<Json<User>> {
    let deps = users::ProfileDeps {
        hasher: &state.config.passwords,
        templates: &state.templates,
    };
    let caller = users::Caller {
        user_id: caller.id,
        session_id: caller.session_id,
    };
    // A stolen token must not make a password oracle: each `current_password` checked spends
    // the account's failed-login budget, exactly as a login does, and only a wrong one keeps it
    // spent.
    let budget = match (
        update.current_password.is_some(),
        state.config.rate_limits.failed_logins(),
    ) {
        (true, Some(quota)) => {
            let mut conn = state.db.acquire().await?;
            let email = users::find(&mut conn, caller.user_id).await?.email;
            drop(conn);
            let account = rate_limits::account_key(&email);
            if let Verdict::Exhausted { retry_after } =
                rate_limits::take(&state.db, rate_limits::FAILED_LOGINS, &account, quota).await?
            {
                return Err(ApiError::TooManyRequests { retry_after });
            }
            Some((account, quota))
        }
        _ => None,
    };
    let outcome = users::update_profile(&state.db, &deps, caller, update).await;
    if let Some((account, quota)) = budget
        && !matches!(outcome, Err(cart_core::Error::Forbidden))
        && let Err(e) =
            rate_limits::give_back(&state.db, rate_limits::FAILED_LOGINS, &account, quota).await
    {
        tracing::warn!(error = %e, "could not give back a password check");
    }
    Ok(Json(outcome?))
}

/// Anonymise the caller's account (LGPD erasure). Personal data is scrubbed irreversibly,
/// orders and invoices are kept for fiscal law; login and every token stop working.
#[utoipa::path(delete, path = "/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 204, description = "anonymised"), Authenticated))]
pub async fn delete_me(State(state): State<AppState>, caller: AuthUser) -> ApiResult<StatusCode> {
    let mut conn = state.db.acquire().await?;
    privacy::anonymise(&mut conn, caller.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Everything stored about the caller (LGPD art. 18 access), as one JSON document:
/// `profile`, `addresses`, `password_reset_requests`, `privacy_requests`, `orders`,
/// `payments` (without provider secrets), `invoices`, `sessions`, `email_changes` and the
/// caller's rows of other areas.
#[utoipa::path(get, path = "/users/me/export", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Object), Authenticated))]
pub async fn export_me(State(state): State<AppState>, caller: AuthUser) -> ApiResult<Json<Value>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(privacy::export(&mut conn, caller.id).await?))
}

/// Active accounts, oldest first (admins only).
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = Paginated<User>), Admin, Paged))]
pub async fn list_users(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<Paginated<User>>> {
    let page = params.clamp(state.config.pagination_max_limit)?;
    let mut conn = state.db.acquire().await?;
    let (items, total) = users::list(&mut conn, page.limit, page.offset).await?;
    Ok(Json(Paginated::new(items, total, page)))
}

/// Any active account (admins only).
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = User),
        Admin,
        (status = 404, description = "no such active account", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn get_user(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<User>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(users::find(&mut conn, id).await?))
}

/// The address book, default first, paginated like every list.
#[utoipa::path(get, path = "/users/{id}/addresses", tag = "addresses", security(("bearer" = [])),
    params(
        ("id" = inline(AccountRef), Path),
        PageParams,
    ),
    responses(
        (status = 200, body = Paginated<Address>),
        Authenticated,
        Paged,
        (status = 404, description = "someone else's account, or no such account", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn list_addresses(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(AccountRef(id)): Path<AccountRef>,
    Query(page): Query<PageParams>,
) -> ApiResult<Json<Paginated<Address>>> {
    let page = page.clamp(state.config.pagination_max_limit)?;
    let owner = owner(&state, caller, &id).await?;
    let mut conn = state.db.acquire().await?;
    let (items, total) = addresses::list_page(&mut conn, owner, page.limit, page.offset).await?;
    Ok(Json(Paginated::new(items, total, page)))
}

/// Add an address. The first one becomes the default; `is_default: true` moves it here.
#[utoipa::path(post, path = "/users/{id}/addresses", tag = "addresses", security(("bearer" = [])),
    params(("id" = inline(AccountRef), Path)),
    request_body = AddressInput,
    responses(
        (status = 201, body = Address),
        AuthenticatedWithBody,
        (status = 404, description = "someone else's account, or no such account", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn create_address(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(AccountRef(id)): Path<AccountRef>,
    Json(input): Json<AddressInput>,
) -> ApiResult<Created<Address>> {
    let owner = owner(&state, caller, &id).await?;
    let mut conn = state.db.acquire().await?;
    Ok(Created(addresses::create(&mut conn, owner, input).await?))
}

/// Replace an address. `is_default: false` on the default is refused (422): move the
/// default to another address instead.
#[utoipa::path(put, path = "/users/{id}/addresses/{aid}", tag = "addresses", security(("bearer" = [])),
    params(
        ("id" = inline(AccountRef), Path),
        ("aid" = Uuid, Path),
    ),
    request_body = AddressInput,
    responses(
        (status = 200, body = Address),
        AuthenticatedWithBody,
        (status = 404, description = "no such address in this account's book, or someone \
            else's account", body = Problem, content_type = PROBLEM),
    ))]
pub async fn update_address(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((account, address_id)): Path<(AccountRef, Uuid)>,
    Json(input): Json<AddressInput>,
) -> ApiResult<Json<Address>> {
    let owner = owner(&state, caller, &account.0).await?;
    let mut conn = state.db.acquire().await?;
    Ok(Json(
        addresses::update(&mut conn, owner, address_id, input).await?,
    ))
}

/// Delete an address. When it was the default, the newest remaining address becomes it.
#[utoipa::path(delete, path = "/users/{id}/addresses/{aid}", tag = "addresses", security(("bearer" = [])),
    params(
        ("id" = inline(AccountRef), Path),
        ("aid" = Uuid, Path),
    ),
    responses(
        (status = 204, description = "deleted"),
        Authenticated,
        (status = 404, description = "no such address in this account's book, or someone \
            else's account", body = Problem, content_type = PROBLEM),
    ))]
pub async fn delete_address(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((account, address_id)): Path<(AccountRef, Uuid)>,
) -> ApiResult<StatusCode> {
    let owner = owner(&state, caller, &account.0).await?;
    let mut conn = state.db.acquire().await?;
    addresses::delete(&mut conn, owner, address_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Make this address the only default.
#[utoipa::path(patch, path = "/users/{id}/addresses/{aid}/default", tag = "addresses", security(("bearer" = [])),
    params(
        ("id" = inline(AccountRef), Path),
        ("aid" = Uuid, Path),
    ),
    responses(
        (status = 200, body = Address),
        Authenticated,
        (status = 404, description = "no such address in this account's book, or someone \
            else's account", body = Problem, content_type = PROBLEM),
    ))]
pub async fn make_default_address(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((account, address_id)): Path<(AccountRef, Uuid)>,
) -> ApiResult<Json<Address>> {
    let owner = owner(&state, caller, &account.0).await?;
    let mut conn = state.db.acquire().await?;
    Ok(Json(
        addresses::make_default(&mut conn, owner, address_id).await?,
    ))
}
