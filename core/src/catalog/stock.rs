//! Stock moves. Stock never goes below zero: every decrement is a conditional `UPDATE`
//! (`… WHERE stock + delta >= 0`), and `products_stock_not_negative` backs it up.

use sqlx::PgConnection;
use uuid::Uuid;

use super::products::Product;
use crate::{Error, Result};

/// What `PATCH /api/products/{id}/stock` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockChange {
    /// Set the stock to this (not negative).
    Set(i32),
    /// Add this (negative to remove); refused when it would go below zero.
    Delta(i64),
}

/// Applies a stock change to a live product and returns it. A delta that would take stock
/// below zero (or past `i32::MAX`) is a `Conflict` and changes nothing.
pub async fn change(conn: &mut PgConnection, id: Uuid, change: StockChange) -> Result<Product> {
    let updated = match change {
        StockChange::Set(stock) => {
            if stock < 0 {
                return Err(Error::invalid("stock", "must not be negative"));
            }
            sqlx::query_as!(
                Product,
                r#"UPDATE products SET stock = $2, updated_at = now()
                   WHERE id = $1 AND deleted_at IS NULL
                   RETURNING id, sku, name, slug, description, price_cents, stock, category_id,
                       featured, weight_grams, height_cm, width_cm, length_cm, ncm, images,
                       created_at, updated_at"#,
                id,
                stock
            )
            .fetch_optional(&mut *conn)
            .await?
        }
        StockChange::Delta(delta) => {
            sqlx::query_as!(
                Product,
                r#"UPDATE products SET stock = (stock + $2::bigint)::integer, updated_at = now()
                   WHERE id = $1 AND deleted_at IS NULL
                     AND stock + $2::bigint BETWEEN 0 AND 2147483647
                   RETURNING id, sku, name, slug, description, price_cents, stock, category_id,
                       featured, weight_grams, height_cm, width_cm, length_cm, ncm, images,
                       created_at, updated_at"#,
                id,
                delta
            )
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    match updated {
        Some(product) => Ok(product),
        None => {
            let live = sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM products WHERE id = $1 AND deleted_at IS NULL) AS "live!""#,
                id
            )
            .fetch_one(&mut *conn)
            .await?;
            if !live {
                Err(Error::NotFound)
            } else if matches!(change, StockChange::Delta(d) if d < 0) {
                Err(Error::conflict("not enough stock"))
            } else {
                Err(Error::conflict("stock would exceed the maximum"))
            }
        }
    }
}

/// For checkout: takes `quantity` units of a live product if that many remain. Returns
/// `false` (and changes nothing) when the product is short or gone.
pub async fn take(conn: &mut PgConnection, product_id: Uuid, quantity: i32) -> Result<bool> {
    if quantity < 1 {
        return Err(Error::invalid("quantity", "must be at least 1"));
    }
    let taken = sqlx::query!(
        "UPDATE products SET stock = stock - $2, updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL AND stock >= $2",
        product_id,
        quantity
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(taken == 1)
}

/// For cancellation and expiry: puts `quantity` units back, deleted product or not (the row
/// stays, and a restock of a deleted product is harmless).
pub async fn put_back(conn: &mut PgConnection, product_id: Uuid, quantity: i32) -> Result<()> {
    if quantity < 1 {
        return Err(Error::invalid("quantity", "must be at least 1"));
    }
    sqlx::query!(
        "UPDATE products SET stock = LEAST(stock::bigint + $2, 2147483647)::integer, updated_at = now()
         WHERE id = $1",
        product_id,
        i64::from(quantity)
    )
    .execute(conn)
    .await?;
    Ok(())
}
