//! Fulfilment after payment: shipping and delivery (admins).

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::{
    model::Order,
    notify, read,
    status::{Actor, OrderState, OrderStatus, lock_state, transition},
};
use crate::{Result, error::FieldErrors, mail::templates::Templates};

const MAX_TRACKING_LEN: usize = 64;
const MAX_CARRIER_LEN: usize = 64;

fn clean_field(errors: &mut FieldErrors, field: &str, value: &str, max: usize) -> String {
    let value = value.trim();
    if value.is_empty() {
        errors.add(field, "must not be empty");
    } else if value.chars().count() > max {
        errors.add(field, format!("must be at most {max} characters"));
    } else if value.chars().any(char::is_control) {
        errors.add(field, "must not contain control characters");
    }
    value.to_owned()
}

/// Admin: the order left the warehouse. `processing` → `shipped`, with its tracking data,
/// and the "order shipped" e-mail enqueued in the same transaction.
pub async fn mark_shipped(
    conn: &mut PgConnection,
    templates: &Templates,
    order_id: Uuid,
    tracking_number: &str,
    carrier: &str,
    actor: Actor,
) -> Result<Order> {
    let mut errors = FieldErrors::new();
    let tracking_number = clean_field(
        &mut errors,
        "tracking_number",
        tracking_number,
        MAX_TRACKING_LEN,
    );
    let carrier = clean_field(&mut errors, "carrier", carrier, MAX_CARRIER_LEN);
    errors.into_result()?;

    let mut tx = conn.begin().await?;
    let from = lock_state(&mut tx, order_id).await?;
    let to = OrderState::new(OrderStatus::Shipped, from.payment);
    super::status::check_transition(from, to)?;
    // The tracking data first: the database insists a shipped order has a tracking number.
    sqlx::query!(
        "UPDATE orders SET tracking_number = $2, carrier = $3 WHERE id = $1",
        order_id,
        tracking_number,
        carrier,
    )
    .execute(&mut *tx)
    .await?;
    transition(&mut tx, order_id, to, actor, "shipped").await?;
    let order = read::get(&mut tx, order_id).await?;
    notify::order_shipped(&mut tx, templates, &order).await?;
    tx.commit().await?;
    Ok(order)
}

/// Admin: the parcel arrived. `shipped` → `delivered`.
pub async fn mark_delivered(
    conn: &mut PgConnection,
    order_id: Uuid,
    actor: Actor,
) -> Result<Order> {
    let mut tx = conn.begin().await?;
    let from = lock_state(&mut tx, order_id).await?;
    transition(
        &mut tx,
        order_id,
        OrderState::new(OrderStatus::Delivered, from.payment),
        actor,
        "delivered",
    )
    .await?;
    let order = read::get(&mut tx, order_id).await?;
    tx.commit().await?;
    Ok(order)
}
