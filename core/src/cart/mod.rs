//! One cart per user: lines keyed by product, an optional coupon, totals computed from
//! current prices on every read.
//!
//! Lines whose product was soft-deleted are dropped (deleting a product removes it from every
//! cart, and reads skip such lines anyway). Lines that ask for more than the product's current
//! stock stay in the cart flagged `available: false`, still counted in the totals; checkout
//! refuses them (409) rather than selling them, and the customer lowers or removes them.
//! A coupon stays attached while it no longer applies (say, the subtotal fell below its
//! minimum) with `applicable: false` and no discount, so it applies again once the cart
//! qualifies.

mod checkout;

pub use checkout::{CheckoutLine, LockedCart, lock_for_checkout};

use std::time::Duration;

use serde::Serialize;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::{
    Error, Result,
    coupons::{self, CouponKind, Inapplicable},
};

/// The most units of one product a line may hold.
pub const MAX_LINE_QUANTITY: i64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CartLine {
    pub product_id: Uuid,
    pub name: String,
    /// The product's current price.
    pub unit_price_cents: i64,
    pub quantity: i32,
    pub line_total_cents: i64,
    /// `false` when the product has fewer units in stock than `quantity`: checkout would refuse.
    pub available: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CartCoupon {
    pub code: String,
    pub kind: CouponKind,
    pub value: i64,
    /// `false` when the coupon is attached but its rules do not hold right now (no discount).
    pub applicable: bool,
    /// Why not, when `applicable` is `false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The contract's `cart`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Cart {
    pub items: Vec<CartLine>,
    pub subtotal_cents: i64,
    pub discount_cents: i64,
    pub total_cents: i64,
    pub coupon: Option<CartCoupon>,
}

/// The caller's cart with current prices and stock (empty when they have none).
pub async fn get(conn: &mut PgConnection, user_id: Uuid) -> Result<Cart> {
    let coupon_id = sqlx::query_scalar!("SELECT coupon_id FROM carts WHERE user_id = $1", user_id)
        .fetch_optional(&mut *conn)
        .await?
        .flatten();
    assemble(conn, user_id, coupon_id).await
}

/// The cart's lines and totals, with the coupon `carts.coupon_id` holds (a coupon deleted
/// since is ignored). Writers pass the id they got from [`lock_cart`], which saves a query.
async fn assemble(conn: &mut PgConnection, user_id: Uuid, coupon_id: Option<Uuid>) -> Result<Cart> {
    let rows = sqlx::query!(
        r#"SELECT ci.product_id, p.name, p.price_cents, ci.quantity, p.stock
           FROM cart_items ci JOIN products p ON p.id = ci.product_id
           WHERE ci.user_id = $1 AND p.deleted_at IS NULL
           ORDER BY ci.added_at, ci.product_id"#,
        user_id
    )
    .fetch_all(&mut *conn)
    .await?;
    let items = rows
        .into_iter()
        .map(|r| CartLine::new(r.product_id, r.name, r.price_cents, r.quantity, r.stock))
        .collect();
    priced(conn, user_id, coupon_id, items).await
}

impl CartLine {
    fn new(
        product_id: Uuid,
        name: String,
        unit_price_cents: i64,
        quantity: i32,
        stock: i32,
    ) -> Self {
        Self {
            product_id,
            name,
            unit_price_cents,
            quantity,
            line_total_cents: unit_price_cents * i64::from(quantity),
            available: stock >= quantity,
        }
    }
}

/// The cart with these lines (in display order): totals, and the coupon checked against them.
async fn priced(
    conn: &mut PgConnection,
    user_id: Uuid,
    coupon_id: Option<Uuid>,
    items: Vec<CartLine>,
) -> Result<Cart> {
    let subtotal_cents: i64 = items.iter().map(|l| l.line_total_cents).sum();

    let coupon = match coupon_id {
        Some(id) => coupons::find(conn, id).await?,
        None => None,
    };
    let (coupon, discount_cents) = match coupon {
        None => (None, 0),
        Some(coupon) => {
            let reason = coupons::check(conn, &coupon, user_id, subtotal_cents).await?;
            let discount = match reason {
                None => coupons::discount_cents(coupon.kind, coupon.value, subtotal_cents),
                Some(_) => 0,
            };
            let attached = CartCoupon {
                code: coupon.code,
                kind: coupon.kind,
                value: coupon.value,
                applicable: reason.is_none(),
                reason: reason.map(|r| r.message()),
            };
            (Some(attached), discount)
        }
    };
    Ok(Cart {
        items,
        subtotal_cents,
        discount_cents,
        total_cents: subtotal_cents - discount_cents,
        coupon,
    })
}

fn validate_quantity(quantity: i64, min: i64) -> Result<i32> {
    if quantity < min {
        return Err(Error::invalid(
            "quantity",
            format!("must be at least {min}"),
        ));
    }
    if quantity > MAX_LINE_QUANTITY {
        return Err(Error::invalid(
            "quantity",
            format!("must be at most {MAX_LINE_QUANTITY}"),
        ));
    }
    i32::try_from(quantity).map_err(|_| Error::invalid("quantity", "out of range"))
}

/// Creates the cart row if needed and locks it: a user's cart changes one at a time.
/// Returns the id of the attached coupon, if any.
async fn lock_cart(conn: &mut PgConnection, user_id: Uuid) -> Result<Option<Uuid>> {
    let coupon_id = sqlx::query_scalar!(
        "INSERT INTO carts (user_id) VALUES ($1)
         ON CONFLICT (user_id) DO UPDATE SET updated_at = now()
         RETURNING coupon_id",
        user_id
    )
    .fetch_one(conn)
    .await?;
    Ok(coupon_id)
}

/// Stock of a live product; `NotFound` for unknown or deleted ones.
async fn live_stock(conn: &mut PgConnection, product_id: Uuid) -> Result<i32> {
    sqlx::query_scalar!(
        "SELECT stock FROM products WHERE id = $1 AND deleted_at IS NULL",
        product_id
    )
    .fetch_optional(conn)
    .await?
    .ok_or(Error::NotFound)
}

fn ensure_in_stock(wanted: i64, stock: i32) -> Result<()> {
    if wanted > i64::from(stock) {
        Err(Error::conflict(format!(
            "only {stock} unit(s) of this product in stock"
        )))
    } else {
        Ok(())
    }
}

/// Adds `quantity` (≥ 1) of a product, on top of what the line already holds.
pub async fn add_item(
    conn: &mut PgConnection,
    user_id: Uuid,
    product_id: Uuid,
    quantity: i64,
) -> Result<Cart> {
    let quantity = validate_quantity(quantity, 1)?;
    let mut tx = conn.begin().await?;
    // The cart first: what it already holds is read under its lock.
    let coupon_id = lock_cart(&mut tx, user_id).await?;
    let line = sqlx::query!(
        r#"SELECT p.stock,
                  (SELECT quantity FROM cart_items WHERE user_id = $1 AND product_id = p.id)
                      AS "existing?"
           FROM products p WHERE p.id = $2 AND p.deleted_at IS NULL"#,
        user_id,
        product_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NotFound)?;
    let stock = line.stock;
    let wanted = i64::from(line.existing.unwrap_or(0)) + i64::from(quantity);
    let wanted = validate_quantity(wanted, 1)?;
    ensure_in_stock(i64::from(wanted), stock)?;
    // The upsert and the cart's lines in one round trip. The statement's snapshot predates
    // its own upsert, so the written line comes from RETURNING and the others from the table
    // (which the cart's writers, all holding the lock we hold, cannot have changed).
    let rows = sqlx::query!(
        r#"WITH line AS (
               INSERT INTO cart_items (user_id, product_id, quantity) VALUES ($1, $2, $3)
               ON CONFLICT (user_id, product_id) DO UPDATE SET quantity = EXCLUDED.quantity
               RETURNING product_id, quantity, added_at
           )
           SELECT l.product_id AS "product_id!", p.name, p.price_cents,
                  l.quantity AS "quantity!", p.stock
           FROM (SELECT product_id, quantity, added_at FROM line
                 UNION ALL
                 SELECT product_id, quantity, added_at FROM cart_items
                 WHERE user_id = $1 AND product_id <> $2) l
           JOIN products p ON p.id = l.product_id
           WHERE p.deleted_at IS NULL
           ORDER BY l.added_at, l.product_id"#,
        user_id,
        product_id,
        wanted
    )
    .fetch_all(&mut *tx)
    .await?;
    let items = rows
        .into_iter()
        .map(|r| CartLine::new(r.product_id, r.name, r.price_cents, r.quantity, r.stock))
        .collect();
    let cart = priced(&mut tx, user_id, coupon_id, items).await?;
    tx.commit().await?;
    Ok(cart)
}

/// Sets a line's quantity; 0 removes the line.
pub async fn set_quantity(
    conn: &mut PgConnection,
    user_id: Uuid,
    product_id: Uuid,
    quantity: i64,
) -> Result<Cart> {
    let quantity = validate_quantity(quantity, 0)?;
    let mut tx = conn.begin().await?;
    let coupon_id;
    if quantity == 0 {
        coupon_id = lock_cart(&mut tx, user_id).await?;
        let removed = sqlx::query!(
            "DELETE FROM cart_items WHERE user_id = $1 AND product_id = $2",
            user_id,
            product_id
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if removed == 0 {
            // Nothing to remove: still a 404 for a product that does not exist.
            live_stock(&mut tx, product_id).await?;
        }
    } else {
        let stock = live_stock(&mut tx, product_id).await?;
        ensure_in_stock(i64::from(quantity), stock)?;
        coupon_id = lock_cart(&mut tx, user_id).await?;
        sqlx::query!(
            "INSERT INTO cart_items (user_id, product_id, quantity) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, product_id) DO UPDATE SET quantity = EXCLUDED.quantity",
            user_id,
            product_id,
            quantity
        )
        .execute(&mut *tx)
        .await?;
    }
    let cart = assemble(&mut tx, user_id, coupon_id).await?;
    tx.commit().await?;
    Ok(cart)
}

/// Removes a line; `NotFound` when the cart has no line for the product.
pub async fn remove_item(conn: &mut PgConnection, user_id: Uuid, product_id: Uuid) -> Result<Cart> {
    let mut tx = conn.begin().await?;
    // The cart's lock first, as every other writer of its lines takes it.
    let coupon_id = lock_cart(&mut tx, user_id).await?;
    let removed = sqlx::query!(
        "DELETE FROM cart_items ci USING products p
         WHERE ci.user_id = $1 AND ci.product_id = $2
           AND p.id = ci.product_id AND p.deleted_at IS NULL",
        user_id,
        product_id
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if removed == 0 {
        return Err(Error::NotFound);
    }
    let cart = assemble(&mut tx, user_id, coupon_id).await?;
    tx.commit().await?;
    Ok(cart)
}

/// Empties the cart: lines and coupon. Checkout calls this in its transaction once the order
/// is written.
pub async fn clear(conn: &mut PgConnection, user_id: Uuid) -> Result<()> {
    sqlx::query!("DELETE FROM carts WHERE user_id = $1", user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Attaches a coupon by code (case-insensitive). Refused with 422 on `code` when it is unknown,
/// inactive, outside its window, used up, used up by this user, or above this cart's subtotal.
pub async fn apply_coupon(conn: &mut PgConnection, user_id: Uuid, code: &str) -> Result<Cart> {
    if code.trim().is_empty() {
        return Err(Error::invalid("code", "must not be empty"));
    }
    let mut tx = conn.begin().await?;
    let coupon = coupons::find_by_code(&mut tx, code)
        .await?
        .ok_or_else(|| Inapplicable::Unknown.into_error("code"))?;
    lock_cart(&mut tx, user_id).await?;
    let subtotal = get(&mut tx, user_id).await?.subtotal_cents;
    if let Some(reason) = coupons::check(&mut tx, &coupon, user_id, subtotal).await? {
        return Err(reason.into_error("code"));
    }
    sqlx::query!(
        "UPDATE carts SET coupon_id = $2 WHERE user_id = $1",
        user_id,
        coupon.id
    )
    .execute(&mut *tx)
    .await?;
    let cart = get(&mut tx, user_id).await?;
    tx.commit().await?;
    Ok(cart)
}

/// Detaches the coupon, if any.
pub async fn remove_coupon(conn: &mut PgConnection, user_id: Uuid) -> Result<Cart> {
    sqlx::query!(
        "UPDATE carts SET coupon_id = NULL, updated_at = now() WHERE user_id = $1",
        user_id
    )
    .execute(&mut *conn)
    .await?;
    get(conn, user_id).await
}

/// Removes a (just soft-deleted) product from every cart; runs in the deleting transaction.
pub async fn drop_product(conn: &mut PgConnection, product_id: Uuid) -> Result<u64> {
    Ok(
        sqlx::query!("DELETE FROM cart_items WHERE product_id = $1", product_id)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// Detaches a (just deleted) coupon from every cart.
pub async fn detach_coupon(conn: &mut PgConnection, coupon_id: Uuid) -> Result<u64> {
    Ok(sqlx::query!(
        "UPDATE carts SET coupon_id = NULL WHERE coupon_id = $1",
        coupon_id
    )
    .execute(conn)
    .await?
    .rows_affected())
}

/// Deletes carts (and their lines) untouched for longer than `older_than`; returns how many.
/// For the worker's cleanup ticker, with `CART_TTL` (default 30 days).
pub async fn purge_abandoned(conn: &mut PgConnection, older_than: Duration) -> Result<u64> {
    Ok(sqlx::query!(
        "DELETE FROM carts WHERE updated_at < now() - make_interval(secs => $1)",
        older_than.as_secs_f64()
    )
    .execute(conn)
    .await?
    .rows_affected())
}

#[cfg(test)]
mod tests;
