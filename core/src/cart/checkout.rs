//! What checkout (the orders module) needs from the cart, read under lock.
//!
//! In the checkout transaction: [`lock_for_checkout`], then take stock for each line
//! (`catalog::stock::take`), check the coupon (`coupons::check`) and price it
//! (`coupons::discount_cents`), write the order, `coupons::redeem`, and finally
//! `cart::clear`.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Result, coupons::Coupon};

/// A cart line with the product data an order snapshots and shipping needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutLine {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    /// The current price, which the order snapshots.
    pub unit_price_cents: i64,
    pub quantity: i32,
    /// Stock as locked; `quantity > stock` means the line cannot be sold.
    pub stock: i32,
    pub weight_grams: i32,
    pub height_cm: i32,
    pub width_cm: i32,
    pub length_cm: i32,
    pub ncm: String,
}

impl CheckoutLine {
    pub fn line_total_cents(&self) -> i64 {
        self.unit_price_cents * i64::from(self.quantity)
    }
}

/// A user's cart with its rows locked until the caller's transaction ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedCart {
    pub user_id: Uuid,
    /// In product id order (the order the product rows were locked in).
    pub lines: Vec<CheckoutLine>,
    /// The attached coupon, not yet checked against its rules.
    pub coupon: Option<Coupon>,
}

impl LockedCart {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn subtotal_cents(&self) -> i64 {
        self.lines.iter().map(CheckoutLine::line_total_cents).sum()
    }

    /// Lines asking for more than is in stock.
    pub fn short_lines(&self) -> impl Iterator<Item = &CheckoutLine> {
        self.lines.iter().filter(|l| l.quantity > l.stock)
    }
}

/// Locks the user's cart row and the products of its lines (in product id order, so that
/// concurrent checkouts cannot deadlock) and reads them, in one statement. Call it inside the
/// checkout transaction. Lines of soft-deleted products are left out; a cart without live
/// lines (or no cart) reads as empty, and then nothing is locked: checkout refuses it.
///
/// Each output row is locked as it is produced, the cart's row before the row's product (the
/// order of the `FOR` clauses), so two checkouts of the same cart queue on the cart row before
/// either holds a product. The products are locked `FOR NO KEY UPDATE`, the lock the stock
/// decrement takes anyway: it serialises checkouts of the same product but, unlike
/// `FOR UPDATE`, lets other transactions insert rows that reference the product meanwhile (a
/// cart line's or an order item's foreign key check takes `KEY SHARE`), so adding the product
/// to a cart does not wait for someone else's checkout to commit.
pub async fn lock_for_checkout(conn: &mut PgConnection, user_id: Uuid) -> Result<LockedCart> {
    let rows = sqlx::query!(
        r#"SELECT c.coupon_id, p.id AS product_id, p.sku, p.name,
                  p.price_cents AS unit_price_cents, ci.quantity, p.stock, p.weight_grams,
                  p.height_cm, p.width_cm, p.length_cm, p.ncm
           FROM carts c
           JOIN cart_items ci ON ci.user_id = c.user_id
           JOIN products p ON p.id = ci.product_id
           WHERE c.user_id = $1 AND p.deleted_at IS NULL
           ORDER BY p.id
           FOR UPDATE OF c FOR NO KEY UPDATE OF p"#,
        user_id
    )
    .fetch_all(&mut *conn)
    .await?;
    let coupon_id = rows.first().and_then(|row| row.coupon_id);
    let lines: Vec<CheckoutLine> = rows
        .into_iter()
        .map(|row| CheckoutLine {
            product_id: row.product_id,
            sku: row.sku,
            name: row.name,
            unit_price_cents: row.unit_price_cents,
            quantity: row.quantity,
            stock: row.stock,
            weight_grams: row.weight_grams,
            height_cm: row.height_cm,
            width_cm: row.width_cm,
            length_cm: row.length_cm,
            ncm: row.ncm,
        })
        .collect();
    let coupon = match coupon_id {
        Some(id) => crate::coupons::find(conn, id).await?,
        None => None,
    };
    Ok(LockedCart {
        user_id,
        lines,
        coupon,
    })
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;
    use crate::{
        cart::MAX_LINE_QUANTITY,
        catalog::products::MAX_PRICE_CENTS,
        coupons::{CouponKind, discount_cents},
    };

    /// A line as the catalog and cart limits allow it.
    fn line() -> impl Strategy<Value = CheckoutLine> {
        (1..=MAX_PRICE_CENTS, 1..=MAX_LINE_QUANTITY).prop_map(|(unit_price_cents, quantity)| {
            CheckoutLine {
                product_id: Uuid::nil(),
                sku: "SKU".into(),
                name: "Produto".into(),
                unit_price_cents,
                quantity: i32::try_from(quantity).unwrap(),
                stock: 0,
                weight_grams: 1,
                height_cm: 1,
                width_cm: 1,
                length_cm: 1,
                ncm: "00000000".into(),
            }
        })
    }

    proptest! {
        #[test]
        fn any_cart_within_the_limits_totals_without_overflow_or_going_negative(
            lines in proptest::collection::vec(line(), 0..50),
            percent in 1i64..=100,
            fixed in 1i64..=i64::MAX,
        ) {
            let cart = LockedCart { user_id: Uuid::nil(), lines, coupon: None };
            let subtotal = cart.subtotal_cents();
            let expected: i128 = cart
                .lines
                .iter()
                .map(|l| i128::from(l.unit_price_cents) * i128::from(l.quantity))
                .sum();
            prop_assert_eq!(i128::from(subtotal), expected);
            for (kind, value) in [(CouponKind::Percent, percent), (CouponKind::Fixed, fixed)] {
                let total = subtotal - discount_cents(kind, value, subtotal);
                prop_assert!((0..=subtotal).contains(&total));
            }
        }
    }
}
