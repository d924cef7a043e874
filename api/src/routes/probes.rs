//! Liveness, readiness, metrics and the API's own documentation.

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use std::time::Duration;

use crate::{
    error::{ApiError, Problem},
    openapi::PROBLEM,
    state::AppState,
};

#[derive(Serialize, utoipa::ToSchema)]
pub struct Status {
    pub status: &'static str,
}

/// `/openapi.json` (the finished document) and `/docs`; the probes themselves are
/// registered with their OpenAPI entries in `crate::routes::unmetered()`.
pub fn docs_router(openapi: utoipa::openapi::OpenApi) -> Router<AppState> {
    let doc = openapi.to_pretty_json().unwrap_or_else(|_| "{}".into());
    Router::new()
        .route(
            "/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], doc) }),
        )
        .merge(super::docs::router())
}

/// 200 while the process runs; never touches the database.
#[utoipa::path(get, path = "/health", tag = "probes", responses((status = 200, body = Status)))]
pub async fn health() -> axum::Json<Status> {
    axum::Json(Status { status: "ok" })
}

/// 200 when the database answers a ping within a second, else 503.
#[utoipa::path(get, path = "/ready", tag = "probes",
    responses(
        (status = 200, body = Status),
        (status = 503, description = "the database did not answer", body = Problem,
            content_type = PROBLEM, headers(("Retry-After" = u64))),
    ))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let ping = tokio::time::timeout(
        Duration::from_secs(1),
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.db),
    )
    .await;
    match ping {
        Ok(Ok(_)) => axum::Json(Status { status: "ready" }).into_response(),
        Ok(Err(e)) => unavailable(format!("database ping failed: {e}")),
        Err(_) => unavailable("database ping timed out".into()),
    }
}

fn unavailable(reason: String) -> Response {
    ApiError::from(cart_core::Error::Unavailable {
        reason,
        retry_after: Some(Duration::from_secs(5)),
    })
    .into_response()
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "probes", responses((status = 200, body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let idle = state.db.num_idle() as f64;
    let size = f64::from(state.db.size());
    metrics::gauge!("db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("db_pool_connections", "state" => "in_use").set(size - idle);
    let providers = &state.config.payments.providers;
    cart_core::payments::breaker::sample_states(
        &state.db,
        &[providers.pix.name(), providers.card.name()],
    )
    .await;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
