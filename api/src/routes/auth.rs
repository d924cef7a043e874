//! `/api/auth/*`: register, log in, forgot and reset password.

use axum::{extract::State, http::StatusCode};
use cart_core::rate_limits::{self, Verdict};
use cart_core::users::{
    User, credentials,
    password_reset::{self, ForgotPassword, ResetPassword, ResetSettings},
};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::{ApiError, ApiResult, Problem},
    extract::{Created, Json},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
}

/// A session: the bearer token, when it expires, and whose it is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuthResponse {
    pub user: User,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

fn session_for(state: &AppState, user: User) -> ApiResult<AuthResponse> {
    let (token, expires_at) = state.config.jwt.issue(user.id, user.role)?;
    Ok(AuthResponse {
        user,
        token,
        expires_at,
    })
}

/// Create a customer account and log it in. Unknown fields (such as `role`) are ignored.
#[utoipa::path(post, path = "/auth/register", tag = "auth",
    request_body = credentials::Registration,
    responses(
        (status = 201, body = AuthResponse),
        (status = 400, body = Problem, description = "malformed JSON"),
        (status = 409, body = Problem, description = "e-mail already registered"),
        (status = 422, body = Problem, description = "invalid name, e-mail, CPF or a password under 8 characters"),
        (status = 429, body = Problem, description = "too many registrations from this address"),
        (status = 503, body = Problem, description = "password hashing is saturated; retry after `Retry-After`"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    Json(input): Json<credentials::Registration>,
) -> ApiResult<Created<AuthResponse>> {
    let user = credentials::register(&state.db, &state.config.passwords, input).await?;
    Ok(Created(session_for(&state, user)?))
}

/// Log in with e-mail and password. Any mismatch is the same 401, after the same work.
/// Failed logins are also limited per account (`RATE_LIMIT_FAILED_LOGINS`), whatever the
/// client's address, and whether or not the account exists: once they are spent, every
/// attempt at that e-mail is a 429, even with the right password.
#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body = credentials::Login,
    responses(
        (status = 200, body = AuthResponse),
        (status = 400, body = Problem, description = "malformed JSON"),
        (status = 401, body = Problem, description = "e-mail or password do not match"),
        (status = 429, body = Problem, description = "too many attempts from this address, or too many failed logins for this e-mail; retry after `Retry-After`"),
        (status = 503, body = Problem, description = "password hashing is saturated; retry after `Retry-After`"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    Json(input): Json<credentials::Login>,
) -> ApiResult<Json<AuthResponse>> {
    let Some(quota) = state.config.rate_limits.failed_logins() else {
        let user = credentials::login(&state.db, &state.config.passwords, input).await?;
        return Ok(Json(session_for(&state, user)?));
    };
    // Spent before the password is checked, so concurrent guesses cannot overrun the budget;
    // given back unless the attempt turns out to be a failed login.
    let account = rate_limits::account_key(&input.email);
    if let Verdict::Exhausted { retry_after } =
        rate_limits::take(&state.db, rate_limits::FAILED_LOGINS, &account, quota).await?
    {
        return Err(ApiError::TooManyRequests { retry_after });
    }
    let outcome = credentials::login(&state.db, &state.config.passwords, input).await;
    if !matches!(outcome, Err(cart_core::Error::Unauthorized(_)))
        && let Err(e) =
            rate_limits::give_back(&state.db, rate_limits::FAILED_LOGINS, &account, quota).await
    {
        // The attempt stays counted: a budget that is one short is not worth failing a login.
        tracing::warn!(error = %e, "could not give back a login attempt");
    }
    Ok(Json(session_for(&state, outcome?)?))
}

fn reset_settings(state: &AppState) -> ResetSettings {
    ResetSettings {
        ttl: state.config.password_reset_ttl,
        frontend_url: state.config.frontend_url.clone(),
        store_name: state.config.store_name.clone(),
    }
}

/// Ask for a password reset e-mail. Always 202, whether or not the account exists.
#[utoipa::path(post, path = "/auth/forgot-password", tag = "auth",
    request_body = ForgotPassword,
    responses(
        (status = 202, description = "accepted; an e-mail follows when the account exists"),
        (status = 400, body = Problem, description = "malformed JSON"),
        (status = 422, body = Problem, description = "not an e-mail address"),
        (status = 429, body = Problem, description = "too many requests from this address"),
    ))]
pub async fn forgot_password(
    State(state): State<AppState>,
    Json(input): Json<ForgotPassword>,
) -> ApiResult<StatusCode> {
    let mut conn = state.db.acquire().await?;
    password_reset::request_reset(&mut conn, input, &reset_settings(&state)).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with the token from the e-mail. The token works once, until it
/// expires; sessions issued before the reset stop working.
#[utoipa::path(post, path = "/auth/reset-password", tag = "auth",
    request_body = ResetPassword,
    responses(
        (status = 204, description = "password changed"),
        (status = 400, body = Problem, description = "malformed JSON"),
        (status = 422, body = Problem, description = "unknown, used or expired token (`errors.token`), or a password under 8 characters (`errors.password`)"),
        (status = 503, body = Problem, description = "password hashing is saturated; retry after `Retry-After`"),
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    Json(input): Json<ResetPassword>,
) -> ApiResult<StatusCode> {
    password_reset::reset_password(&state.db, &state.config.passwords, input).await?;
    Ok(StatusCode::NO_CONTENT)
}
