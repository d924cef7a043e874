//! The typed state every handler can reach.

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::PgPool;

use crate::config::ApiConfig;

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub config: Arc<ApiConfig>,
    pub metrics: crate::metrics::Metrics,
}

impl AppState {
    pub fn new(db: PgPool, config: ApiConfig) -> Self {
        Self {
            db,
            config: Arc::new(config),
            metrics: crate::metrics::Metrics::global(),
        }
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}
