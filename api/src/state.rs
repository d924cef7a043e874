//! The typed state every handler can reach.

use std::sync::Arc;

use axum::extract::FromRef;
use cart_core::shipping::ShippingProvider;
use sqlx::PgPool;

use crate::{cache::CatalogCache, config::ApiConfig};

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub config: Arc<ApiConfig>,
    pub metrics: crate::metrics::Metrics,
    /// Product and category reads; its invalidation listener starts in `crate::startup`.
    pub cache: CatalogCache,
    /// Prices shipping at checkout (`SHIPPING_PROVIDER`, see `with_shipping`).
    pub shipping: Arc<dyn ShippingProvider>,
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
            // The default provider (`SHIPPING_PROVIDER=table`): no network, deterministic.
            shipping: Arc::new(cart_core::shipping::table::TableProvider::new()),
        }
    }

    /// Uses `provider` for shipping quotes (`serve` passes the one `SHIPPING_PROVIDER` names).
    pub fn with_shipping(mut self, provider: Arc<dyn ShippingProvider>) -> Self {
        self.shipping = provider;
        self
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}
