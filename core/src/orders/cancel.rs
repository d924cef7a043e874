//! Cancellation (owner or admin) and expiry (the `expire_order` job and the ticker).
//!
//! Both give back what checkout reserved — stock and the coupon use — in the transaction
//! that changes the status. The order's row lock (taken by the state check) serialises a
//! cancel racing an expiry, a second cancel, or a payment: whoever comes second sees the
//! first one's result, so the reservations are given back exactly once.

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::{
    model::Order,
    read::{self, Viewer},
    status::{Actor, OrderState, OrderStatus, PaymentStatus, lock_state, transition},
};
use crate::{
    Error, Result,
    jobs::{self, refund_payment::RefundPayment},
};

/// Why an order is being cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelCause {
    /// Its owner (or an admin) asked.
    Requested(Actor),
    /// Its payment window closed.
    Expired,
}

/// What a cancellation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// An unpaid order: stock and coupon use were given back.
    Unpaid,
    /// A paid order: stock and coupon use were given back and a refund was enqueued.
    RefundRequested,
}

/// Owner or admin: cancels an order that has not shipped. Someone else's order is
/// `NotFound`; a shipped, delivered or already cancelled one is a `Conflict`.
pub async fn cancel(conn: &mut PgConnection, order_id: Uuid, viewer: Viewer) -> Result<Order> {
    let mut tx = conn.begin().await?;
    let owner = sqlx::query_scalar!("SELECT user_id FROM orders WHERE id = $1", order_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound)?;
    if !viewer.may_see(owner) {
        return Err(Error::NotFound);
    }
    let outcome = cancel_in(
        &mut tx,
        order_id,
        CancelCause::Requested(Actor::User(viewer.user_id)),
    )
    .await?;
    let order = read::get(&mut tx, order_id).await?;
    tx.commit().await?;
    crate::business_events::order_cancelled(
        order_id,
        viewer.user_id,
        outcome == Cancelled::RefundRequested,
    );
    Ok(order)
}

/// Cancels inside the caller's transaction and gives the reservations back.
///
/// - unpaid (`pending_payment`) → `cancelled`, payment `expired`;
/// - paid, not shipped (`processing`) → `cancelled`, payment `refund_pending`, and a
///   `refund_payment` job (only on request: a paid order never expires);
/// - shipped, delivered or cancelled → `Conflict`.
pub async fn cancel_in(
    conn: &mut PgConnection,
    order_id: Uuid,
    cause: CancelCause,
) -> Result<Cancelled> {
    let from = lock_state(conn, order_id).await?;
    let (to, outcome) = match (from.status, cause) {
        (OrderStatus::PendingPayment, _) => (
            OrderState::new(OrderStatus::Cancelled, PaymentStatus::Expired),
            Cancelled::Unpaid,
        ),
        (OrderStatus::Processing, CancelCause::Requested(_)) => (
            OrderState::new(OrderStatus::Cancelled, PaymentStatus::RefundPending),
            Cancelled::RefundRequested,
        ),
        (OrderStatus::Processing, CancelCause::Expired) => {
            return Err(Error::conflict("a paid order does not expire"));
        }
        (OrderStatus::Shipped | OrderStatus::Delivered, _) => {
            return Err(Error::conflict(format!(
                "the order is already {} and can no longer be cancelled",
                from.status
            )));
        }
        (OrderStatus::Cancelled, _) => {
            return Err(Error::conflict("the order is already cancelled"));
        }
    };
    let (actor, reason) = match cause {
        CancelCause::Requested(actor) => (actor, "cancelled on request"),
        CancelCause::Expired => (Actor::System, "payment window expired"),
    };
    transition(conn, order_id, to, actor, reason).await?;
    give_back_reservations(conn, order_id).await?;
    if outcome == Cancelled::RefundRequested {
        jobs::enqueue(conn, &RefundPayment { order_id }).await?;
    }
    Ok(outcome)
}

/// Puts the order's units back in stock (in product id order, the order checkout takes
/// product locks in, so this cannot deadlock with a checkout) and releases its coupon use.
/// Called only right after a transition out of a live state, so it runs once per order.
async fn give_back_reservations(conn: &mut PgConnection, order_id: Uuid) -> Result<()> {
    let items = sqlx::query!(
        "SELECT product_id, quantity FROM order_items WHERE order_id = $1 ORDER BY product_id",
        order_id
    )
    .fetch_all(&mut *conn)
    .await?;
    for item in items {
        crate::catalog::stock::put_back(conn, item.product_id, item.quantity).await?;
    }
    crate::coupons::release(conn, order_id).await?;
    Ok(())
}

/// What [`expire_one`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Cancelled now, reservations given back.
    Expired,
    /// Still within its payment window, which ends at this instant.
    NotDue(DateTime<Utc>),
    /// Paid, cancelled or otherwise no longer waiting for payment: nothing to do.
    NotPending,
}

/// Expires one order if it is still unpaid and past its deadline (for the `expire_order`
/// job, scheduled at the deadline). Idempotent: a second run, or a run after a payment or a
/// cancel, finds nothing to do.
pub async fn expire_one(conn: &mut PgConnection, order_id: Uuid) -> Result<Expiry> {
    expire_if_due(conn, order_id, None).await
}

/// [`expire_one`] judged at `as_of`, or by the database clock when `None`.
async fn expire_if_due(
    conn: &mut PgConnection,
    order_id: Uuid,
    as_of: Option<DateTime<Utc>>,
) -> Result<Expiry> {
    let mut tx = conn.begin().await?;
    let state = match lock_state(&mut tx, order_id).await {
        Ok(state) => state,
        Err(Error::NotFound) => return Ok(Expiry::NotPending),
        Err(other) => return Err(other),
    };
    if state.status != OrderStatus::PendingPayment {
        return Ok(Expiry::NotPending);
    }
    let deadline = sqlx::query!(
        r#"SELECT expires_at, expires_at <= COALESCE($2, now()) AS "due!"
           FROM orders WHERE id = $1"#,
        order_id,
        as_of,
    )
    .fetch_one(&mut *tx)
    .await?;
    if !deadline.due {
        return Ok(Expiry::NotDue(deadline.expires_at));
    }
    cancel_in(&mut tx, order_id, CancelCause::Expired).await?;
    tx.commit().await?;
    crate::business_events::order_expired(order_id);
    Ok(Expiry::Expired)
}

/// How many due orders one [`expire_due`] call handles at most; the next tick takes the rest.
pub const EXPIRE_BATCH: i64 = 500;

/// Expires every unpaid order whose deadline is at or before `now` (for a ticker), each in a
/// transaction of its own so one failure does not hold back the others. Returns how many
/// were expired.
pub async fn expire_due(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<u64> {
    let due = sqlx::query_scalar!(
        "SELECT id FROM orders
         WHERE status = 'pending_payment' AND expires_at <= $1
         ORDER BY expires_at
         LIMIT $2",
        now,
        EXPIRE_BATCH
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut expired = 0;
    let mut first_error = None;
    for order_id in due {
        match expire_if_due(conn, order_id, Some(now)).await {
            Ok(Expiry::Expired) => expired += 1,
            Ok(Expiry::NotDue(_) | Expiry::NotPending) => {}
            Err(e) => {
                tracing::warn!(%order_id, error = %e, "could not expire an order");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        // Report a failure only when nothing could be done, so the ticker retries.
        Some(e) if expired == 0 => Err(e),
        _ => Ok(expired),
    }
}
