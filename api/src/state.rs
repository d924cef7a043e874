//! The typed state every handler can reach.

use std::sync::Arc;

use axum::extract::FromRef;
use sqlx::PgPool;

use crate::{cache::CatalogCache, config::ApiConfig};

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub config: Arc<ApiConfig>,
    pub metrics: crate::metrics::Metrics,
    /// Product and category reads; its invalidation listener starts in `crate::startup`.
    pub cache: CatalogCache,
    /// Requests waiting for a payment's initiation job (one shared LISTEN).
    pub payment_waiters: cart_core::payments::flow_wait::PaymentWaiters,
}

impl AppState {
    pub fn new(db: PgPool, config: ApiConfig) -> Self {
        Self {
            payment_waiters: cart_core::payments::flow_wait::PaymentWaiters::new(db.clone()),
            db,
            cache: CatalogCache::new(&config.cache),
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
