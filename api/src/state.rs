//! The typed state every handler can reach.

use std::sync::Arc;

use axum::extract::FromRef;
use cart_core::{
    listen::{HubConfig, ListenHub},
    shipping::ShippingProvider,
};
use sqlx::PgPool;

use cart_core::mail::templates::{Branding, Templates};

use crate::{cache::CatalogCache, config::ApiConfig};

/// Cloned for every request (extractors, middleware), so it is one pointer.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

#[derive(Clone)]
pub struct Shared {
    pub db: PgPool,
    pub config: Arc<ApiConfig>,
    pub metrics: crate::metrics::Metrics,
    /// The process's one listening connection, which the cache and the payment waiters share.
    pub listen_hub: Arc<ListenHub>,
    /// Product and category reads; it follows the catalog's changes from `crate::startup`.
    pub cache: CatalogCache,
    /// Prices shipping at checkout (`SHIPPING_PROVIDER`, see `with_shipping`).
    pub shipping: Arc<dyn ShippingProvider>,
    /// Requests waiting for a payment's initiation job (heard through `listen_hub`).
    pub payment_waiters: cart_core::payments::flow_wait::PaymentWaiters,
    /// The e-mail templates, compiled once (store name and links from the configuration).
    pub templates: Arc<Templates>,
}

impl AppState {
    /// Starts the listening hub (it connects once something subscribes), so this must run
    /// inside a Tokio runtime.
    pub fn new(db: PgPool, config: ApiConfig) -> Self {
        let templates = Templates::new(Branding::new(&config.store_name, &config.frontend_url))
            // The sources are compiled into the binary and a unit test compiles them all.
            .expect("the built-in e-mail templates compile");
        let listen_hub = ListenHub::start(&db, HubConfig::default());
        Self(Arc::new(Shared {
            payment_waiters: cart_core::payments::flow_wait::PaymentWaiters::new(
                db.clone(),
                listen_hub.clone(),
            ),
            listen_hub,
            db,
            cache: CatalogCache::new(&config.cache),
            config: Arc::new(config),
            metrics: crate::metrics::Metrics::global(),
            // The default provider (`SHIPPING_PROVIDER=table`): no network, deterministic.
            shipping: Arc::new(cart_core::shipping::table::TableProvider::new()),
            templates: Arc::new(templates),
        }))
    }

    /// Uses `provider` for shipping quotes (`serve` passes the one `SHIPPING_PROVIDER` names).
    pub fn with_shipping(mut self, provider: Arc<dyn ShippingProvider>) -> Self {
        Arc::make_mut(&mut self.0).shipping = provider;
        self
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}
