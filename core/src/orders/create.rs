//! Writing a new order with its snapshots (the checkout decides what goes in).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use super::{
    model::{Order, OrderItem, ShippingAddress, ShippingInfo},
    number,
    status::{Actor, OrderState, OrderStatus, PaymentStatus},
};
use crate::{Error, Result};

/// One line as sold: product data copied from the catalog at checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrderItem {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub unit_price_cents: i64,
    pub quantity: i32,
    pub ncm: Option<String>,
    pub weight_grams: Option<i32>,
}

impl NewOrderItem {
    pub fn line_total_cents(&self) -> Result<i64> {
        self.unit_price_cents
            .checked_mul(i64::from(self.quantity))
            .ok_or_else(|| Error::invalid("items", "line total is too large"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedCoupon {
    pub id: Uuid,
    pub code: String,
    pub discount_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenShipping {
    pub carrier: String,
    pub service: String,
    pub price_cents: i64,
    pub days: i32,
    pub address: ShippingAddress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub user_id: Uuid,
    pub items: Vec<NewOrderItem>,
    pub coupon: Option<AppliedCoupon>,
    pub shipping: ChosenShipping,
    /// 11 digits, for the NF-e.
    pub recipient_cpf: String,
    pub expires_at: DateTime<Utc>,
}

/// What was written: enough for the caller to enqueue follow-up work, and the order exactly
/// as a read would now return it (so checkout answers without reading it back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedOrder {
    pub id: Uuid,
    pub number: String,
    pub total_cents: i64,
    pub expires_at: DateTime<Utc>,
    pub order: Order,
}

/// The order row as the insert returned it.
struct Written {
    number: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// How many random numbers to try before giving up; with 40 random bits a single clash is
/// already unlikely for the lifetime of a store.
const NUMBER_ATTEMPTS: usize = 5;

/// Inserts the order, its items and its creation event. The caller owns the transaction and
/// has already reserved stock and the coupon.
pub async fn insert(conn: &mut PgConnection, new: &NewOrder) -> Result<CreatedOrder> {
    insert_within_unpaid_cap(conn, new, None).await
}

/// The answer when a buyer already holds `cap` unpaid orders.
fn too_many_unpaid(cap: u32) -> Error {
    Error::conflict(format!(
        "you already have {cap} unpaid order{}, the most this store holds stock for: pay or \
         cancel one before placing another",
        if cap == 1 { "" } else { "s" }
    ))
}

/// Like [`insert`], refusing with a 409 (and writing nothing) when the buyer already holds
/// `cap` unpaid orders. The count is part of the insert's statement, so it sees every order
/// committed before the statement began: the caller takes the lock that serialises the
/// buyer's checkouts first (checkout's cart lock).
pub async fn insert_within_unpaid_cap(
    conn: &mut PgConnection,
    new: &NewOrder,
    cap: Option<u32>,
) -> Result<CreatedOrder> {
    if new.items.is_empty() {
        return Err(Error::invalid("cart", "the cart is empty"));
    }
    // The lines as sold, each total computed once: for the subtotal, the insert and the answer.
    let mut items: Vec<OrderItem> = new
        .items
        .iter()
        .map(|item| {
            Ok(OrderItem {
                product_id: item.product_id,
                sku: item.sku.clone(),
                name: item.name.clone(),
                unit_price_cents: item.unit_price_cents,
                quantity: item.quantity,
                line_total_cents: item.line_total_cents()?,
            })
        })
        .collect::<Result<_>>()?;
    let subtotal = items
        .iter()
        .try_fold(0_i64, |sum, item| sum.checked_add(item.line_total_cents))
        .ok_or_else(|| Error::invalid("items", "subtotal is too large"))?;
    let discount = new
        .coupon
        .as_ref()
        .map_or(0, |c| c.discount_cents.clamp(0, subtotal));
    let total = subtotal - discount + new.shipping.price_cents;
    let id = Uuid::now_v7();
    let initial = OrderState::new(OrderStatus::PendingPayment, PaymentStatus::PendingPayment);

    let mut written = None;
    for _ in 0..NUMBER_ATTEMPTS {
        let candidate = number::generate();
        // ON CONFLICT on the number only: a clash is retried without aborting the
        // caller's transaction.
        let attempt = sqlx::query!(
            r#"WITH unpaid AS (
                   SELECT count(*) AS held FROM orders
                   WHERE user_id = $3 AND status = 'pending_payment'
               ), inserted AS (
                   INSERT INTO orders
                       (id, number, user_id, status, payment_status,
                        subtotal_cents, discount_cents, shipping_cents, total_cents,
                        coupon_id, coupon_code,
                        shipping_carrier, shipping_service, shipping_days, shipping_address,
                        recipient_cpf, expires_at)
                   SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                          $16, $17
                   FROM unpaid WHERE $18::bigint IS NULL OR unpaid.held < $18
                   ON CONFLICT (number) DO NOTHING
                   RETURNING number, created_at, updated_at
               )
               SELECT unpaid.held AS "held!", inserted.number AS "number?",
                      inserted.created_at AS "created_at?", inserted.updated_at AS "updated_at?"
               FROM unpaid LEFT JOIN inserted ON true"#,
            id,
            candidate,
            new.user_id,
            initial.status as OrderStatus,
            initial.payment as PaymentStatus,
            subtotal,
            discount,
            new.shipping.price_cents,
            total,
            new.coupon.as_ref().map(|c| c.id),
            new.coupon.as_ref().map(|c| c.code.clone()),
            new.shipping.carrier,
            new.shipping.service,
            new.shipping.days,
            Json(&new.shipping.address) as _,
            new.recipient_cpf,
            new.expires_at,
            cap.map(i64::from),
        )
        .fetch_one(&mut *conn)
        .await?;
        if let Some(cap) = cap
            && attempt.held >= i64::from(cap)
        {
            return Err(too_many_unpaid(cap));
        }
        let inserted = match (attempt.number, attempt.created_at, attempt.updated_at) {
            (Some(number), Some(created_at), Some(updated_at)) => Some(Written {
                number,
                created_at,
                updated_at,
            }),
            _ => None,
        };
        if inserted.is_some() {
            written = inserted;
            break;
        }
    }
    let written = written.ok_or_else(|| anyhow::anyhow!("no free order number found"))?;

    let mut product_ids = Vec::with_capacity(new.items.len());
    let mut skus = Vec::with_capacity(new.items.len());
    let mut names = Vec::with_capacity(new.items.len());
    let mut prices = Vec::with_capacity(new.items.len());
    let mut quantities = Vec::with_capacity(new.items.len());
    let line_totals: Vec<i64> = items.iter().map(|item| item.line_total_cents).collect();
    let mut ncms = Vec::with_capacity(new.items.len());
    let mut weights = Vec::with_capacity(new.items.len());
    for item in &new.items {
        product_ids.push(item.product_id);
        skus.push(item.sku.clone());
        names.push(item.name.clone());
        prices.push(item.unit_price_cents);
        quantities.push(item.quantity);
        ncms.push(item.ncm.clone());
        weights.push(item.weight_grams);
    }
    // The items and the creation event in one statement (one round trip fewer per checkout);
    // the event row is what `status::record_event` writes for every later transition.
    let actor = Actor::User(new.user_id).to_string();
    sqlx::query!(
        r#"WITH items AS (
               INSERT INTO order_items
                   (order_id, product_id, sku, name, unit_price_cents, quantity, line_total_cents,
                    ncm, weight_grams)
               SELECT $1, * FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::bigint[],
                                        $6::int[], $7::bigint[], $8::text[], $9::int[])
           )
           INSERT INTO order_events
               (order_id, from_status, to_status, from_payment_status, to_payment_status,
                actor, reason, request_id)
           VALUES ($1, NULL, $10, NULL, $11, $12, 'order placed', $13)"#,
        id,
        &product_ids,
        &skus,
        &names,
        &prices,
        &quantities,
        &line_totals,
        &ncms as &[Option<String>],
        &weights as &[Option<i32>],
        initial.status as OrderStatus,
        initial.payment as PaymentStatus,
        actor,
        crate::request_id::current(),
    )
    .execute(&mut *conn)
    .await?;

    // In the order reads give them (byte order of the SKU, as `COLLATE "C"`).
    items.sort_by(|a, b| (&a.sku, a.product_id).cmp(&(&b.sku, b.product_id)));
    let order = Order {
        id,
        number: written.number.clone(),
        status: initial.status,
        payment_status: initial.payment,
        items,
        subtotal_cents: subtotal,
        discount_cents: discount,
        shipping_cents: new.shipping.price_cents,
        total_cents: total,
        coupon_code: new.coupon.as_ref().map(|c| c.code.clone()),
        shipping: ShippingInfo {
            carrier: new.shipping.carrier.clone(),
            service: new.shipping.service.clone(),
            days: new.shipping.days,
            address: new.shipping.address.clone(),
        },
        tracking_number: None,
        carrier: None,
        created_at: written.created_at,
        updated_at: written.updated_at,
    };

    Ok(CreatedOrder {
        id,
        number: written.number,
        total_cents: total,
        expires_at: new.expires_at,
        order,
    })
}
