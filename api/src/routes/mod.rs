//! One module per area of the contract; each exposes `router() -> OpenApiRouter<AppState>`.

pub mod probes;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Everything under `/api`.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
