//! The worker's own HTTP endpoints: `/health` (the process runs), `/ready` (the database
//! answers), `/metrics` (Prometheus text, with the queue depth read at scrape time) and, when
//! `BOARD_TOKEN` is set, the operator board under `/board` (`crate::board`).

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use sqlx::PgPool;

use crate::board::BoardConfig;

#[derive(Clone)]
struct HttpState {
    pool: PgPool,
    metrics: PrometheusHandle,
}

pub fn router(
    pool: PgPool,
    metrics: PrometheusHandle,
    board: Option<&BoardConfig>,
) -> anyhow::Result<Router> {
    let endpoints = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(HttpState {
            pool: pool.clone(),
            metrics,
        });
    Ok(match board {
        Some(board) => endpoints.nest("/board", crate::board::router(pool, board)?),
        None => endpoints,
    })
}

async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn ready(State(state): State<HttpState>) -> impl IntoResponse {
    let ping = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool),
    )
    .await;
    match ping {
        Ok(Ok(_)) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": "database"})),
        ),
    }
}

async fn render_metrics(State(state): State<HttpState>) -> impl IntoResponse {
    cart_queue::metrics::sample_queue(&state.pool).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
