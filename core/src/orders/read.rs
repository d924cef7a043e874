//! Reading orders: one, a page of them, and the public tracking view.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use super::{
    model::{Order, OrderItem, PublicTracking, ShippingAddress, ShippingInfo},
    status::{OrderStatus, PaymentStatus},
};
use crate::{Error, Result};

/// Who is looking: owners see their own orders, admins see every order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    pub user_id: Uuid,
    pub is_admin: bool,
}

impl Viewer {
    pub fn may_see(&self, owner: Uuid) -> bool {
        self.is_admin || self.user_id == owner
    }
}

/// `limit`/`offset` already validated and clamped by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    pub offset: i64,
}

/// The columns of `orders` an [`Order`] is built from.
struct OrderRow {
    id: Uuid,
    number: String,
    user_id: Uuid,
    status: OrderStatus,
    payment_status: PaymentStatus,
    subtotal_cents: i64,
    discount_cents: i64,
    shipping_cents: i64,
    total_cents: i64,
    coupon_code: Option<String>,
    shipping_carrier: String,
    shipping_service: String,
    shipping_days: i32,
    shipping_address: Json<ShippingAddress>,
    tracking_number: Option<String>,
    carrier: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl OrderRow {
    fn into_order(self, items: Vec<OrderItem>) -> Order {
        Order {
            id: self.id,
            number: self.number,
            status: self.status,
            payment_status: self.payment_status,
            items,
            subtotal_cents: self.subtotal_cents,
            discount_cents: self.discount_cents,
            shipping_cents: self.shipping_cents,
            total_cents: self.total_cents,
            coupon_code: self.coupon_code,
            shipping: ShippingInfo {
                carrier: self.shipping_carrier,
                service: self.shipping_service,
                days: self.shipping_days,
                address: self.shipping_address.0,
            },
            tracking_number: self.tracking_number,
            carrier: self.carrier,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// An order by id, whoever owns it (for internal callers: jobs, admin tools).
pub async fn get(conn: &mut PgConnection, order_id: Uuid) -> Result<Order> {
    let (order, _owner) = get_with_owner(conn, order_id).await?;
    Ok(order)
}

/// An order by id as `viewer` may see it: someone else's order is `NotFound`, exactly like
/// a missing one.
pub async fn get_visible(conn: &mut PgConnection, order_id: Uuid, viewer: Viewer) -> Result<Order> {
    let (order, owner) = get_with_owner(conn, order_id).await?;
    if viewer.may_see(owner) {
        Ok(order)
    } else {
        Err(Error::NotFound)
    }
}

/// The order and its owner's id.
pub async fn get_with_owner(conn: &mut PgConnection, order_id: Uuid) -> Result<(Order, Uuid)> {
    let row = sqlx::query_as!(
        OrderRow,
        r#"SELECT id, number, user_id,
                  status AS "status: OrderStatus", payment_status AS "payment_status: PaymentStatus",
                  subtotal_cents, discount_cents, shipping_cents, total_cents, coupon_code,
                  shipping_carrier, shipping_service, shipping_days,
                  shipping_address AS "shipping_address: Json<ShippingAddress>",
                  tracking_number, carrier, created_at, updated_at
           FROM orders WHERE id = $1"#,
        order_id,
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound)?;
    let owner = row.user_id;
    let mut items = items_of(conn, &[row.id]).await?;
    let order = row.into_order(items.remove(&order_id).unwrap_or_default());
    Ok((order, owner))
}

/// The user's orders, newest first, optionally only those in one status, and how many
/// there are in all.
pub async fn list_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    status: Option<OrderStatus>,
    page: PageRequest,
) -> Result<(Vec<Order>, i64)> {
    let rows = sqlx::query_as!(
        OrderRow,
        r#"SELECT id, number, user_id,
                  status AS "status: OrderStatus", payment_status AS "payment_status: PaymentStatus",
                  subtotal_cents, discount_cents, shipping_cents, total_cents, coupon_code,
                  shipping_carrier, shipping_service, shipping_days,
                  shipping_address AS "shipping_address: Json<ShippingAddress>",
                  tracking_number, carrier, created_at, updated_at
           FROM orders WHERE user_id = $1 AND ($2::text IS NULL OR status = $2)
           ORDER BY created_at DESC, id DESC
           LIMIT $3 OFFSET $4"#,
        user_id,
        status as Option<OrderStatus>,
        page.limit,
        page.offset,
    )
    .fetch_all(&mut *conn)
    .await?;
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM orders
           WHERE user_id = $1 AND ($2::text IS NULL OR status = $2)"#,
        user_id,
        status as Option<OrderStatus>,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((with_items(conn, rows).await?, total))
}

/// Every order (admins), newest first, optionally only those in one status.
pub async fn list_all(
    conn: &mut PgConnection,
    status: Option<OrderStatus>,
    page: PageRequest,
) -> Result<(Vec<Order>, i64)> {
    let rows = sqlx::query_as!(
        OrderRow,
        r#"SELECT id, number, user_id,
                  status AS "status: OrderStatus", payment_status AS "payment_status: PaymentStatus",
                  subtotal_cents, discount_cents, shipping_cents, total_cents, coupon_code,
                  shipping_carrier, shipping_service, shipping_days,
                  shipping_address AS "shipping_address: Json<ShippingAddress>",
                  tracking_number, carrier, created_at, updated_at
           FROM orders WHERE ($1::text IS NULL OR status = $1)
           ORDER BY created_at DESC, id DESC
           LIMIT $2 OFFSET $3"#,
        status as Option<OrderStatus>,
        page.limit,
        page.offset,
    )
    .fetch_all(&mut *conn)
    .await?;
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM orders WHERE ($1::text IS NULL OR status = $1)"#,
        status as Option<OrderStatus>,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok((with_items(conn, rows).await?, total))
}

/// The public view of an order by its number or by the carrier's tracking code (what the
/// shipment e-mail gives the buyer), either in any case. The carrier is the one carrying the
/// parcel once shipped, before that the one chosen at checkout. Should a tracking code be on
/// several orders (a parcel shipped for two, a code reused), the latest one answers; an order
/// number always wins over a tracking code.
pub async fn track(conn: &mut PgConnection, number: &str) -> Result<PublicTracking> {
    let code = number.trim().to_uppercase();
    sqlx::query_as!(
        PublicTracking,
        r#"SELECT number, status AS "status: OrderStatus",
                  COALESCE(carrier, shipping_carrier) AS carrier,
                  tracking_number, updated_at
           FROM orders
           WHERE number = $1 OR (upper(tracking_number) = $1 AND tracking_number IS NOT NULL)
           ORDER BY number = $1 DESC, updated_at DESC, id DESC
           LIMIT 1"#,
        code,
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound)
}

async fn with_items(conn: &mut PgConnection, rows: Vec<OrderRow>) -> Result<Vec<Order>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut items = items_of(conn, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let lines = items.remove(&row.id).unwrap_or_default();
            row.into_order(lines)
        })
        .collect())
}

/// The items of several orders at once, by order id.
async fn items_of(
    conn: &mut PgConnection,
    order_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<OrderItem>>> {
    if order_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query!(
        r#"SELECT order_id, product_id, sku, name, unit_price_cents, quantity, line_total_cents
           FROM order_items WHERE order_id = ANY($1)
           ORDER BY order_id, sku COLLATE "C", product_id"#,
        order_ids,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut by_order: HashMap<Uuid, Vec<OrderItem>> = HashMap::new();
    for row in rows {
        by_order.entry(row.order_id).or_default().push(OrderItem {
            product_id: row.product_id,
            sku: row.sku,
            name: row.name,
            unit_price_cents: row.unit_price_cents,
            quantity: row.quantity,
            line_total_cents: row.line_total_cents,
        });
    }
    Ok(by_order)
}
