//! `/api/auth/*`: register, log in, log out, forgot and reset password.

use axum::{extract::State, http::StatusCode};
use cart_core::rate_limits::{self, Verdict};
use cart_core::users::{
    User, credentials,
    password_reset::{self, ForgotPassword, ResetPassword},
    sessions::{self, Issued},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::{ApiError, ApiResult, Problem},
    extract::{AuthUser, Created, Json, Query},
    openapi::{Authenticated, PROBLEM, PublicWithBody},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
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

impl AuthResponse {
    fn new(user: User, session: Issued) -> Self {
        Self {
            user,
            token: session.token,
            expires_at: session.expires_at,
        }
    }
}

/// Create a customer account and log it in. Unknown fields (such as `role`) are ignored.
#[utoipa::path(post, path = "/auth/register", tag = "auth",
    request_body = credentials::Registration,
    responses(
        (status = 201, body = AuthResponse),
        PublicWithBody,
        (status = 409, description = "e-mail already registered", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn register(
    State(state): State<AppState>,
    Json(input): Json<credentials::Registration>,
) -> ApiResult<Created<AuthResponse>> {
    let (user, session) =
        credentials::register(&state.db, &state.config.passwords, &state.config.jwt, input).await?;
    Ok(Created(AuthResponse::new(user, session)))
}

/// Log in with e-mail and password. Any mismatch is the same 401, after the same work.
/// Failed logins are also limited per account (`RATE_LIMIT_FAILED_LOGINS`), whatever the
/// client's address, and whether or not the account exists: once they are spent, every
/// attempt at that e-mail is a 429, even with the right password.
#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body = credentials::Login,
    responses(
        (status = 200, body = AuthResponse),
        PublicWithBody,
        (status = 401, description = "e-mail or password do not match", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn login(
    State(state): State<AppState>,
    Json(input): Json<credentials::Login>,
) -> ApiResult<Json<AuthResponse>> {
    let Some(quota) = state.config.rate_limits.failed_logins() else {
        let user = credentials::login(&state.db, &state.config.passwords, input).await?;
        return Ok(Json(open_session(&state, user).await?));
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
    Ok(Json(open_session(&state, outcome?).await?))
}

async fn open_session(state: &AppState, user: User) -> ApiResult<AuthResponse> {
    let mut conn = state.db.acquire().await?;
    let session = sessions::open(&mut conn, &state.config.jwt, &user).await?;
    Ok(AuthResponse::new(user, session))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::IntoParams)]
pub struct LogoutParams {
    /// `true`: end every session of the account, not only this one.
    #[serde(default)]
    pub all: bool,
}

/// End this session (or, with `?all=true`, every session of the account). The token is
/// refused from then on, by every instance at once.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    params(LogoutParams),
    responses((status = 204, description = "logged out"), Authenticated))]
pub async fn logout(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(params): Query<LogoutParams>,
) -> ApiResult<StatusCode> {
    let mut conn = state.db.acquire().await?;
    if params.all {
        sessions::end_all(&mut conn, caller.id, None).await?;
    } else {
        sessions::end(&mut conn, caller.id, caller.session_id).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Ask for a password reset e-mail. Always 202, whether or not the account exists.
#[utoipa::path(post, path = "/auth/forgot-password", tag = "auth",
    request_body = ForgotPassword,
    responses(
        (status = 202, description = "accepted; an e-mail follows when the account exists"),
        PublicWithBody,
    ))]
pub async fn forgot_password(
    State(state): State<AppState>,
    Json(input): Json<ForgotPassword>,
) -> ApiResult<StatusCode> {
    let mut conn = state.db.acquire().await?;
    password_reset::request_reset(
        &mut conn,
        input,
        state.config.jwt.reset_key(),
        state.config.password_reset_ttl,
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with the token from the e-mail. The token works once, until it
/// expires; every session of the account ends.
#[utoipa::path(post, path = "/auth/reset-password", tag = "auth",
    request_body = ResetPassword,
    responses(
        (status = 204, description = "password changed"),
        PublicWithBody,
        (status = 422, description = "unknown, used or expired token (`errors.token`), or a \
            password under 8 characters (`errors.password`)", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    Json(input): Json<ResetPassword>,
) -> ApiResult<StatusCode> {
    password_reset::reset_password(&state.db, &state.config.passwords, input).await?;
    Ok(StatusCode::NO_CONTENT)
}
