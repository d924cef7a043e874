//! The store's business events, each recorded once, where it becomes true (after its
//! transaction commits): one log line with the ids in scope as flat fields (so "what happened
//! to order X" is one filter on `order_id`), and one counter that `/metrics` serves.
//!
//! Counters (both processes; an operator sums them across instances):
//! - `orders_total{event}`: `placed` (API), `cancelled` (API), `expired` (worker);
//! - `payments_total{provider, outcome}`: `started` (API), then in the worker `initiated`
//!   (the provider created the charge), `initiation_failed`, `paid`, `failed`,
//!   `amount_mismatch`, `paid_after_cancel`, `refunded`, `refund_needs_operator`;
//! - `invoices_total{outcome}`: `authorized`, `rejected` (worker).
//!
//! Jobs that give up are logged and counted by the queue (`cart_queue::metrics`); the
//! breaker's state is a gauge read at scrape time (`payments::breaker::sample_states`).

use uuid::Uuid;

use crate::{
    invoices::emit::Invoice,
    orders::model::Order,
    payments::flow::{Payment, PaymentMethod},
};

/// Checkout wrote `order` for `user_id`.
pub(crate) fn order_placed(order: &Order, user_id: Uuid) {
    metrics::counter!("orders_total", "event" => "placed").increment(1);
    tracing::info!(
        order_id = %order.id,
        order_number = %order.number,
        %user_id,
        total_cents = order.total_cents,
        items = order.items.len(),
        "order placed"
    );
}

/// The owner (or an admin, `by`) cancelled an order; a paid one gets its refund enqueued.
pub(crate) fn order_cancelled(order_id: Uuid, by: Uuid, refund_requested: bool) {
    metrics::counter!("orders_total", "event" => "cancelled").increment(1);
    tracing::info!(%order_id, cancelled_by = %by, refund_requested, "order cancelled");
}

/// An unpaid order's payment window closed: it is cancelled and its stock given back.
pub(crate) fn order_expired(order_id: Uuid) {
    metrics::counter!("orders_total", "event" => "expired").increment(1);
    tracing::info!(%order_id, "order expired unpaid");
}

/// What happened to a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PaymentOutcome {
    Started,
    Initiated,
    InitiationFailed,
    Paid,
    Failed,
    AmountMismatch,
    PaidAfterCancel,
    Refunded,
    RefundNeedsOperator,
}

impl PaymentOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Initiated => "initiated",
            Self::InitiationFailed => "initiation_failed",
            Self::Paid => "paid",
            Self::Failed => "failed",
            Self::AmountMismatch => "amount_mismatch",
            Self::PaidAfterCancel => "paid_after_cancel",
            Self::Refunded => "refunded",
            Self::RefundNeedsOperator => "refund_needs_operator",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Started => "payment started; initiation enqueued",
            Self::Initiated => "payment charge created; waiting for the payer",
            Self::InitiationFailed => "payment initiation failed; the order can be paid again",
            Self::Paid => "payment confirmed; order paid",
            Self::Failed => "payment failed; the order can be paid again",
            Self::AmountMismatch => "payment amount differs from the order's; flagged",
            Self::PaidAfterCancel => {
                "payment arrived for an order that no longer takes it; refund enqueued"
            }
            Self::Refunded => "refund issued",
            Self::RefundNeedsOperator => "refund needs an operator",
        }
    }
}

/// The facts of a payment event beyond the payment itself.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PaymentDetail<'a> {
    /// The money that moved, when it differs from the payment's amount (a mismatch, a refund
    /// of what was actually paid).
    pub amount_cents: Option<i64>,
    /// Why it failed, as the provider or our checks put it.
    pub reason: Option<&'a str>,
    /// The provider's id of a refund.
    pub refund_id: Option<&'a str>,
}

/// `outcome` happened to `payment`.
pub(crate) fn payment(outcome: PaymentOutcome, payment: &Payment, detail: PaymentDetail<'_>) {
    metrics::counter!(
        "payments_total",
        "provider" => payment.provider.clone(),
        "outcome" => outcome.label(),
    )
    .increment(1);
    let method = match payment.method {
        PaymentMethod::Pix => "pix",
        PaymentMethod::CreditCard => "credit_card",
    };
    let amount_cents = detail.amount_cents.unwrap_or(payment.amount_cents);
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                payment_id = %payment.id,
                order_id = %payment.order_id,
                provider = %payment.provider,
                method,
                amount_cents,
                reason = detail.reason,
                refund_id = detail.refund_id,
                "{}",
                outcome.message()
            )
        };
    }
    match outcome {
        PaymentOutcome::AmountMismatch | PaymentOutcome::RefundNeedsOperator => line!(error),
        PaymentOutcome::InitiationFailed | PaymentOutcome::PaidAfterCancel => line!(warn),
        _ => line!(info),
    }
}

/// The NF-e of an order was authorised by SEFAZ.
pub(crate) fn invoice_authorized(invoice: &Invoice) {
    metrics::counter!("invoices_total", "outcome" => "authorized").increment(1);
    tracing::info!(
        order_id = %invoice.order_id,
        invoice_id = %invoice.id,
        invoice_number = invoice.number,
        invoice_series = invoice.series,
        access_key = invoice.access_key.as_deref(),
        "invoice authorised"
    );
}

/// The NF-e of an order was rejected; the invoice row keeps the reason.
pub(crate) fn invoice_rejected(invoice: &Invoice) {
    metrics::counter!("invoices_total", "outcome" => "rejected").increment(1);
    tracing::warn!(
        order_id = %invoice.order_id,
        invoice_id = %invoice.id,
        reason = invoice.message.as_deref(),
        "invoice rejected"
    );
}
