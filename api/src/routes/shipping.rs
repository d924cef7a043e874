//! `POST /api/shipping/calculate`: public shipping quotes for a list of products.

use axum::extract::State;
use cart_core::shipping::{
    ShippingOption,
    quote::{QuoteItem, quote_items},
};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    error::{ApiResult, Problem},
    extract::Json,
    openapi::{PROBLEM, PublicWithBody},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(calculate))
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct QuoteLine {
    pub product_id: Uuid,
    #[schema(minimum = 1, maximum = 10_000)]
    pub quantity: i64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct CalculateShipping {
    /// Destination CEP, 8 digits; a hyphen is accepted (`01310-100`).
    #[schema(pattern = r"^[0-9]{5}-?[0-9]{3}$")]
    pub cep_destino: String,
    /// 1–100 lines (`quote::MAX_ITEMS`).
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<QuoteLine>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShippingQuote {
    /// Cheapest first.
    pub options: Vec<ShippingOption>,
}

/// Quotes every service the configured provider offers from `SHIPPING_SENDER_CEP` to the
/// destination, for a package built from the products' weights and dimensions.
#[utoipa::path(post, path = "/shipping/calculate", tag = "shipping",
    request_body = CalculateShipping,
    responses(
        (status = 200, body = ShippingQuote),
        PublicWithBody,
        (status = 422, description = "bad CEP, no items, bad quantity or unknown product",
            body = Problem, content_type = PROBLEM),
        (status = 502, description = "the shipping provider answered badly", body = Problem,
            content_type = PROBLEM),
    ))]
pub async fn calculate(
    State(state): State<AppState>,
    Json(body): Json<CalculateShipping>,
) -> ApiResult<Json<ShippingQuote>> {
    let items: Vec<QuoteItem> = body
        .items
        .iter()
        .map(|l| QuoteItem {
            product_id: l.product_id,
            quantity: l.quantity,
        })
        .collect();
    let mut conn = state.db.acquire().await?;
    let options = quote_items(
        &mut conn,
        state.shipping.as_ref(),
        &state.config.shipping_sender_cep,
        &body.cep_destino,
        &items,
    )
    .await?;
    Ok(Json(ShippingQuote { options }))
}
