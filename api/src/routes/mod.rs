//! One module per area of the contract; each exposes `router() -> OpenApiRouter<AppState>`.

pub mod auth;
pub mod cart;
pub mod categories;
pub mod coupons;
pub mod docs;
pub mod invoices;
pub mod orders;
pub mod payments;
pub mod probes;
pub mod products;
pub mod sandbox;
pub mod shipping;
pub mod users;
pub mod webhooks;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Everything under `/api`.
/// Everything under `/api` that clients call, and that the rate limits meter.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(payments::router())
        .merge(invoices::router())
        .merge(sandbox::router())
        .merge(orders::router())
        .merge(shipping::router())
        .merge(products::router())
        .merge(categories::router())
        .merge(cart::router())
        .merge(coupons::router())
}

/// Routes the rate limits leave alone: providers' webhooks (a gateway retrying a burst of
/// events from a few addresses must never be refused, or a payment is confirmed late) and
/// the probes an orchestrator polls.
pub fn unmetered() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .nest("/api", webhooks::router())
        .routes(utoipa_axum::routes!(probes::health))
        .routes(utoipa_axum::routes!(probes::ready))
        .routes(utoipa_axum::routes!(probes::metrics))
}
