//! Quoting shipping for a list of products (the public `POST /api/shipping/calculate`):
//! the package comes from the products' own weights and dimensions, never from the client.

use std::collections::HashMap;

use sqlx::PgConnection;
use uuid::Uuid;

use super::{PackageLine, QuoteRequest, ShippingOption, ShippingProvider, package_from_lines};
use crate::{Error, Result, error::FieldErrors, validation::normalize_cep};

/// Most lines a quote may carry; a cart is far smaller.
pub const MAX_ITEMS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteItem {
    pub product_id: Uuid,
    pub quantity: i64,
}

/// Validates the request, loads the (non-deleted) products, builds the package and asks the
/// provider. Bad CEP, empty or oversized item lists, quantities below 1 and unknown products
/// are 422s naming the field.
pub async fn quote_items(
    conn: &mut PgConnection,
    provider: &dyn ShippingProvider,
    origin_cep: &str,
    destination_cep: &str,
    items: &[QuoteItem],
) -> Result<Vec<ShippingOption>> {
    let mut errors = FieldErrors::new();
    let destination = normalize_cep(destination_cep);
    if destination.is_none() {
        errors.add("cep_destino", "must be a CEP of 8 digits, e.g. 01310-100");
    }
    if items.is_empty() {
        errors.add("items", "must list at least one product");
    } else if items.len() > MAX_ITEMS {
        errors.add("items", format!("at most {MAX_ITEMS} lines"));
    }
    for (i, item) in items.iter().enumerate() {
        if !(1..=10_000).contains(&item.quantity) {
            errors.add(
                format!("items[{i}].quantity"),
                "must be between 1 and 10000",
            );
        }
    }
    errors.into_result()?;
    let destination = destination.unwrap_or_default();

    let ids: Vec<Uuid> = items.iter().map(|i| i.product_id).collect();
    let rows = sqlx::query!(
        r#"
        SELECT id, price_cents, weight_grams, height_cm, width_cm, length_cm
        FROM products
        WHERE id = ANY($1) AND deleted_at IS NULL
        "#,
        &ids,
    )
    .fetch_all(&mut *conn)
    .await?;
    let by_id: HashMap<Uuid, _> = rows.into_iter().map(|r| (r.id, r)).collect();

    let mut unknown = FieldErrors::new();
    let mut lines = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match by_id.get(&item.product_id) {
            Some(p) => lines.push(PackageLine {
                weight_grams: i64::from(p.weight_grams),
                height_cm: p.height_cm,
                width_cm: p.width_cm,
                length_cm: p.length_cm,
                quantity: item.quantity,
                unit_price_cents: p.price_cents,
            }),
            None => unknown.add(format!("items[{i}].product_id"), "no such product"),
        }
    }
    unknown.into_result()?;

    let request = QuoteRequest {
        origin_cep: origin_cep.to_owned(),
        destination_cep: destination,
        package: package_from_lines(&lines),
    };
    let mut options = provider.quote(&request).await.map_err(Error::from)?;
    options.sort_by(|a, b| a.price_cents.cmp(&b.price_cents).then(a.days.cmp(&b.days)));
    Ok(options)
}
