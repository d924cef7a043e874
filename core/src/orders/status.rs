//! The order state machine. An order's state is the pair ([`OrderStatus`], [`PaymentStatus`]);
//! every change goes through [`transition`], which validates it with [`check_transition`]
//! and writes the `order_events` row. Nothing else updates those two columns.
//!
//! ```text
//! status:   pending_payment ─▶ processing ─▶ shipped ─▶ delivered
//!                 │                 │
//!                 └──────▶ cancelled ◀──────┘
//! payment:  pending_payment ─▶ paid ─▶ refund_pending ─▶ refunded
//!             │   ▲   │                      ▲
//!             ▼   │   └──────▶ expired ──────┘   (a payment that arrives too late)
//!            failed ─────────▶ paid / expired
//! ```
//!
//! An unpaid order that is cancelled (by its owner or by expiry) gets payment status
//! `expired`: no payment is expected any more, and a late one must not revive the order
//! (payment reconciliation only acts on `pending_payment`).

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Error, Result};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    Processing,
    Shipped,
    Delivered,
    Cancelled,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum PaymentStatus {
    PendingPayment,
    Paid,
    Failed,
    Expired,
    RefundPending,
    Refunded,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::PendingPayment,
        OrderStatus::Processing,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::Processing => "processing",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 6] = [
        PaymentStatus::PendingPayment,
        PaymentStatus::Paid,
        PaymentStatus::Failed,
        PaymentStatus::Expired,
        PaymentStatus::RefundPending,
        PaymentStatus::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::PendingPayment => "pending_payment",
            PaymentStatus::Paid => "paid",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Expired => "expired",
            PaymentStatus::RefundPending => "refund_pending",
            PaymentStatus::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an order stands: both statuses together, since they constrain each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderState {
    pub status: OrderStatus,
    pub payment: PaymentStatus,
}

impl OrderState {
    pub const fn new(status: OrderStatus, payment: PaymentStatus) -> Self {
        Self { status, payment }
    }

    /// Whether this pair may exist at all (mirrored by the `orders_status_payment_consistent`
    /// CHECK in the database).
    pub fn is_consistent(self) -> bool {
        use OrderStatus as S;
        use PaymentStatus as P;
        match self.status {
            S::PendingPayment => matches!(self.payment, P::PendingPayment | P::Failed),
            S::Processing | S::Shipped | S::Delivered => self.payment == P::Paid,
            S::Cancelled => matches!(self.payment, P::Expired | P::RefundPending | P::Refunded),
        }
    }
}

impl std::fmt::Display for OrderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.status, self.payment)
    }
}

fn status_step_allowed(from: OrderStatus, to: OrderStatus) -> bool {
    use OrderStatus as S;
    from == to
        || matches!(
            (from, to),
            (S::PendingPayment, S::Processing)
                | (S::PendingPayment, S::Cancelled)
                | (S::Processing, S::Shipped)
                | (S::Processing, S::Cancelled)
                | (S::Shipped, S::Delivered)
        )
}

fn payment_step_allowed(from: PaymentStatus, to: PaymentStatus) -> bool {
    use PaymentStatus as P;
    from == to
        || matches!(
            (from, to),
            (P::PendingPayment, P::Paid)
                | (P::PendingPayment, P::Failed)
                | (P::PendingPayment, P::Expired)
                // A failed attempt may be retried, succeed later, or run out of time.
                | (P::Failed, P::PendingPayment)
                | (P::Failed, P::Paid)
                | (P::Failed, P::Expired)
                | (P::Paid, P::RefundPending)
                // Money that arrived for an expired or cancelled order goes back.
                | (P::Expired, P::RefundPending)
                | (P::RefundPending, P::Refunded)
        )
}

/// The one rule book: `Ok` when an order may go from `from` to `to`, `Conflict` otherwise
/// (including "no change at all", so a repeated request is reported, not silently redone).
pub fn check_transition(from: OrderState, to: OrderState) -> Result<()> {
    let allowed = from != to
        && to.is_consistent()
        && status_step_allowed(from.status, to.status)
        && payment_step_allowed(from.payment, to.payment);
    if allowed {
        Ok(())
    } else {
        Err(Error::conflict(format!(
            "order cannot go from {from} to {to}"
        )))
    }
}

/// Who changed an order, as written to `order_events.actor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    User(Uuid),
    /// The expiry ticker, jobs and payment webhooks.
    System,
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::User(id) => write!(f, "{id}"),
            Actor::System => f.write_str("system"),
        }
    }
}

/// Locks the order's row for the rest of the caller's transaction and returns its state.
/// Concurrent changes (cancel vs. expiry vs. payment) serialise on this lock. `NO KEY`: no
/// transition changes the order's key, and rows that reference the order (events, payments)
/// can still be written by others meanwhile.
pub async fn lock_state(conn: &mut PgConnection, order_id: Uuid) -> Result<OrderState> {
    let row = sqlx::query!(
        r#"SELECT status AS "status: OrderStatus", payment_status AS "payment: PaymentStatus"
           FROM orders WHERE id = $1 FOR NO KEY UPDATE"#,
        order_id,
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound)?;
    Ok(OrderState::new(row.status, row.payment))
}

/// Moves the order to `to` after checking the move with [`check_transition`], and records
/// the event. Run it inside the transaction that makes the change's side effects (stock,
/// coupon, jobs) so they commit together. Returns the state the order was in.
pub async fn transition(
    conn: &mut PgConnection,
    order_id: Uuid,
    to: OrderState,
    actor: Actor,
    reason: &str,
) -> Result<OrderState> {
    let from = lock_state(conn, order_id).await?;
    check_transition(from, to)?;
    // Conditional on the state just read: with the row lock held this always matches, and
    // without it (a caller outside a transaction) a concurrent change makes it a no-op.
    let updated = sqlx::query!(
        r#"UPDATE orders SET status = $2, payment_status = $3, updated_at = now()
           WHERE id = $1 AND status = $4 AND payment_status = $5"#,
        order_id,
        to.status as OrderStatus,
        to.payment as PaymentStatus,
        from.status as OrderStatus,
        from.payment as PaymentStatus,
    )
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(Error::try_again(
            "the order changed concurrently; try again",
        ));
    }
    record_event(conn, order_id, Some(from), to, actor, reason).await?;
    Ok(from)
}

/// Writes one `order_events` row; `from` is `None` for the order's creation.
pub(crate) async fn record_event(
    conn: &mut PgConnection,
    order_id: Uuid,
    from: Option<OrderState>,
    to: OrderState,
    actor: Actor,
    reason: &str,
) -> Result<()> {
    sqlx::query!(
        r#"INSERT INTO order_events
               (order_id, from_status, to_status, from_payment_status, to_payment_status,
                actor, reason, request_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
        order_id,
        from.map(|s| s.status) as Option<OrderStatus>,
        to.status as OrderStatus,
        from.map(|s| s.payment) as Option<PaymentStatus>,
        to.payment as PaymentStatus,
        actor.to_string(),
        (!reason.is_empty()).then_some(reason),
        crate::request_id::current(),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderStatus as S;
    use PaymentStatus as P;

    fn state(status: S, payment: P) -> OrderState {
        OrderState::new(status, payment)
    }

    #[test]
    fn the_happy_path_is_allowed_step_by_step() {
        let steps = [
            state(S::PendingPayment, P::PendingPayment),
            state(S::Processing, P::Paid),
            state(S::Shipped, P::Paid),
            state(S::Delivered, P::Paid),
        ];
        for pair in steps.windows(2) {
            check_transition(pair[0], pair[1]).unwrap();
        }
    }

    #[test]
    fn cancellations_are_allowed_only_before_shipping() {
        let unpaid = state(S::PendingPayment, P::PendingPayment);
        check_transition(unpaid, state(S::Cancelled, P::Expired)).unwrap();
        check_transition(
            state(S::PendingPayment, P::Failed),
            state(S::Cancelled, P::Expired),
        )
        .unwrap();
        check_transition(
            state(S::Processing, P::Paid),
            state(S::Cancelled, P::RefundPending),
        )
        .unwrap();
        for shipped in [S::Shipped, S::Delivered] {
            let err = check_transition(
                state(shipped, P::Paid),
                state(S::Cancelled, P::RefundPending),
            )
            .unwrap_err();
            assert!(matches!(err, Error::Conflict(_)), "{err:?}");
        }
    }

    #[test]
    fn illegal_moves_are_conflicts() {
        let illegal = [
            // Skipping payment.
            (
                state(S::PendingPayment, P::PendingPayment),
                state(S::Shipped, P::Paid),
            ),
            // Back from a final state.
            (
                state(S::Cancelled, P::Expired),
                state(S::PendingPayment, P::PendingPayment),
            ),
            (state(S::Delivered, P::Paid), state(S::Shipped, P::Paid)),
            // Inconsistent targets.
            (
                state(S::PendingPayment, P::PendingPayment),
                state(S::Processing, P::PendingPayment),
            ),
            (
                state(S::PendingPayment, P::PendingPayment),
                state(S::Cancelled, P::Paid),
            ),
            // A cancelled unpaid order is not revived by a late payment.
            (
                state(S::Cancelled, P::Expired),
                state(S::Processing, P::Paid),
            ),
            // No change.
            (state(S::Shipped, P::Paid), state(S::Shipped, P::Paid)),
            // Refunds only after money arrived.
            (
                state(S::PendingPayment, P::PendingPayment),
                state(S::Cancelled, P::RefundPending),
            ),
        ];
        for (from, to) in illegal {
            assert!(
                matches!(check_transition(from, to), Err(Error::Conflict(_))),
                "{from} -> {to} should be refused"
            );
        }
    }

    #[test]
    fn late_payments_and_refunds_move_only_the_payment_status() {
        check_transition(
            state(S::Cancelled, P::Expired),
            state(S::Cancelled, P::RefundPending),
        )
        .unwrap();
        check_transition(
            state(S::Cancelled, P::RefundPending),
            state(S::Cancelled, P::Refunded),
        )
        .unwrap();
        check_transition(
            state(S::PendingPayment, P::PendingPayment),
            state(S::PendingPayment, P::Failed),
        )
        .unwrap();
        check_transition(
            state(S::PendingPayment, P::Failed),
            state(S::Processing, P::Paid),
        )
        .unwrap();
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for p in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(OrderStatus::parse("paid"), None);
    }
}
