//! Reconciliation: the one idempotent function that applies "this payment was paid" (or
//! "failed") to the payment and its order, whoever learned it (a webhook job, the sandbox
//! confirmation).
//!
//! The order moves through the status machine with a conditional update, under the order's
//! row lock: only the run that actually moves it from `pending_payment` enqueues the
//! "payment confirmed" e-mail and the NF-e, so replays change nothing and send nothing.
//! Each webhook route serves only its own providers' payments: an event naming a payment of
//! another provider or method changes nothing (`provider_mismatch`).
//! Money that cannot be applied is never dropped: a wrong amount is flagged
//! `amount_mismatch` for an operator; money for a cancelled, expired or already paid order
//! is recorded `paid_after_cancel` and a refund job is enqueued.

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::{
    flow::{self, Payment, PaymentKey, PaymentState},
    settings::PaymentProviders,
    webhooks::{self, PaymentEvent, PaymentLookup, WebhookSource},
};
use crate::{
    Error, Result,
    business_events::{self, PaymentDetail, PaymentOutcome},
    jobs::{self, emit_invoice::EmitInvoice, refund_payment::RefundPayment, send_email::SendEmail},
    mail::templates::{PaymentConfirmed, Templates},
    orders::{Actor, OrderState, OrderStatus, PaymentStatus, status},
};

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The order is paid now; e-mail and NF-e enqueued.
    Paid,
    /// Already applied (a replay, or a second notice of the same payment).
    AlreadyApplied,
    /// Paid, but not what the payment expects: flagged for an operator, the order stays unpaid.
    AmountMismatch,
    /// Paid for an order that no longer takes this payment: recorded and refunded.
    PaidAfterCancel,
    /// The payment failed; the order can be paid again.
    Failed,
    /// No payment of ours matches.
    UnknownPayment,
    /// The event names a payment made through another provider or method than the route it
    /// came in on: nothing changes.
    ProviderMismatch,
    /// The provider, asked with our own credentials, does not confirm the event (OpenPix):
    /// nothing changes.
    Unconfirmed,
    /// Nothing to apply.
    Ignored,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Paid => "paid",
            Self::AlreadyApplied => "already_applied",
            Self::AmountMismatch => "amount_mismatch",
            Self::PaidAfterCancel => "paid_after_cancel",
            Self::Failed => "failed",
            Self::UnknownPayment => "unknown_payment",
            Self::ProviderMismatch => "provider_mismatch",
            Self::Unconfirmed => "unconfirmed",
            Self::Ignored => "ignored",
        }
    }
}

/// The `reconcile_payment` job: applies the stored webhook event and marks it processed
/// (with its outcome and the payment it named), in one transaction. Running it again for a processed event changes nothing.
///
/// An event the provider's signature cannot tie to our account (OpenPix) is first confirmed
/// with the provider, before the transaction: a network call must not hold row locks. A
/// failed call is an error, so the job retries it; an answer that does not confirm the
/// payment is recorded as [`Outcome::Unconfirmed`].
pub async fn reconcile_webhook_event(
    conn: &mut PgConnection,
    templates: &Templates,
    providers: &PaymentProviders,
    webhook_event_id: Uuid,
) -> Result<Outcome> {
    let event = sqlx::query!(
        r#"SELECT provider, body, processed_at FROM webhook_events WHERE id = $1"#,
        webhook_event_id,
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound)?;
    if event.processed_at.is_some() {
        return Ok(Outcome::AlreadyApplied);
    }
    let source = WebhookSource::parse(&event.provider)
        .ok_or_else(|| Error::BadRequest(format!("unknown provider {}", event.provider)))?;
    let parsed = webhooks::parse(source, &event.body)?;
    let confirmation = confirm(conn, providers, source, &parsed.event).await?;

    let mut tx = conn.begin().await?;
    let processed = sqlx::query_scalar!(
        r#"SELECT processed_at FROM webhook_events WHERE id = $1 FOR UPDATE"#,
        webhook_event_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    if processed.is_some() {
        tx.commit().await?;
        return Ok(Outcome::AlreadyApplied);
    }
    let applied = match confirmation {
        Confirmation::Refused(reason) => {
            tracing::warn!(%webhook_event_id, provider = source.as_str(), reason,
                "payment webhook not confirmed by the provider; nothing applied");
            Applied {
                outcome: Outcome::Unconfirmed,
                payment_id: named_payment(&mut tx, &parsed.event).await?,
                settled: None,
            }
        }
        Confirmation::NotNeeded => apply(&mut tx, templates, source, &parsed.event).await?,
        Confirmation::Confirmed { amount_cents } => {
            // What our own account says was paid, not what the (unauthenticated) body says.
            let event = match parsed.event {
                PaymentEvent::Paid {
                    lookup, paid_at, ..
                } => PaymentEvent::Paid {
                    lookup,
                    amount_cents,
                    paid_at,
                },
                other => other,
            };
            apply(&mut tx, templates, source, &event).await?
        }
    };
    let outcome = applied.outcome;
    sqlx::query!(
        r#"UPDATE webhook_events
           SET processed_at = now(), outcome = $2, payment_id = COALESCE($3, payment_id)
           WHERE id = $1"#,
        webhook_event_id,
        outcome.as_str(),
        applied.payment_id,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    applied.record();
    tracing::info!(%webhook_event_id, outcome = outcome.as_str(), payment_id = ?applied.payment_id,
        "webhook reconciled");
    Ok(outcome)
}

/// What applying an event did, and to which of our payments it was about.
#[derive(Debug, Clone)]
pub struct Applied {
    pub outcome: Outcome,
    /// The payment the event names, whenever one of ours matched, whatever the outcome (an
    /// amount mismatch, a payment of another provider): recorded on the event.
    pub payment_id: Option<Uuid>,
    /// The payment the event moved (paid, failed, flagged or to be refunded), with what the
    /// business event says of it once the transaction has committed.
    settled: Option<Settled>,
}

/// A payment an event moved, for its business event.
#[derive(Debug, Clone)]
struct Settled {
    payment: Payment,
    outcome: PaymentOutcome,
    /// What the provider says was paid, when it is not the payment's amount.
    amount_cents: Option<i64>,
    reason: Option<String>,
}

impl Applied {
    fn about(payment_id: Uuid, outcome: Outcome) -> Self {
        Self {
            outcome,
            payment_id: Some(payment_id),
            settled: None,
        }
    }

    /// Logs and counts what happened to the payment; call it after the commit.
    fn record(&self) {
        if let Some(settled) = &self.settled {
            let detail = PaymentDetail {
                amount_cents: settled.amount_cents,
                reason: settled.reason.as_deref(),
                refund_id: None,
            };
            business_events::payment(settled.outcome, &settled.payment, detail);
        }
    }
}

/// The payment an event names, when it is one of ours (for an event not applied).
async fn named_payment(conn: &mut PgConnection, event: &PaymentEvent) -> Result<Option<Uuid>> {
    let (PaymentEvent::Paid { lookup, .. } | PaymentEvent::Failed { lookup, .. }) = event else {
        return Ok(None);
    };
    Ok(flow::fetch(conn, lookup_key(lookup), false)
        .await?
        .map(|payment| payment.id))
}

/// What the provider, asked with our own credentials, says of a "paid" event.
enum Confirmation {
    /// The route's signature ties the event to our account (every route but OpenPix), or the
    /// event is not about one of our payments of that route: `apply` decides.
    NotNeeded,
    /// Our own account shows the charge paid in full; this is the amount to record.
    Confirmed { amount_cents: i64 },
    /// Our own account does not show it paid: nothing moves.
    Refused(String),
}

/// For an OpenPix "paid" event about one of our OpenPix payments: reads the charge back from
/// our own Woovi account. Woovi signs every account's webhooks with one shared key, so the
/// signature alone proves nothing about whose charge was paid (see `openpix.rs`).
///
/// A charge still `ACTIVE` is asked again later (a retryable error) rather than settled: the
/// webhook may overtake the charge's own status, and a genuine event must not be lost to
/// that race. The event id carries the Pix transaction (`parse_openpix`), so an event refused
/// here never shadows the genuine one as a duplicate either.
async fn confirm(
    conn: &mut PgConnection,
    providers: &PaymentProviders,
    source: WebhookSource,
    event: &PaymentEvent,
) -> Result<Confirmation> {
    let (WebhookSource::OpenPix, PaymentEvent::Paid { lookup, .. }) = (source, event) else {
        return Ok(Confirmation::NotNeeded);
    };
    let Some(payment) = flow::fetch(conn, lookup_key(lookup), false).await? else {
        return Ok(Confirmation::NotNeeded); // `apply` records the unknown payment
    };
    if !source.serves(&payment.provider) {
        return Ok(Confirmation::NotNeeded); // `apply` records the mismatch
    }
    let Some(client) = providers.openpix.as_ref() else {
        return Ok(Confirmation::Refused(
            "PIX_PROVIDER is not openpix: the charge cannot be checked".into(),
        ));
    };
    let correlation_id = payment.id.to_string();
    let Some(charge) = client.fetch_charge(&correlation_id).await? else {
        return Ok(Confirmation::Refused(
            "our Woovi account has no such charge".into(),
        ));
    };
    if charge.status == "ACTIVE" {
        return Err(Error::try_again(
            "the charge is still ACTIVE in our Woovi account; asking again later",
        ));
    }
    Ok(
        match (
            charge.unconfirmed_reason(&correlation_id, payment.amount_cents),
            charge.paid_cents(),
        ) {
            (Some(reason), _) => Confirmation::Refused(reason),
            (None, Some(amount_cents)) => Confirmation::Confirmed { amount_cents },
            (None, None) => Confirmation::Refused("the charge states no value".into()),
        },
    )
}

/// Applies one payment event that came in on `source`'s route, inside the caller's
/// transaction. A payment of another provider or method is left alone.
pub async fn apply(
    conn: &mut PgConnection,
    templates: &Templates,
    source: WebhookSource,
    event: &PaymentEvent,
) -> Result<Applied> {
    let (lookup, paid) = match event {
        PaymentEvent::Paid {
            lookup,
            amount_cents,
            paid_at,
        } => (lookup, Some((*amount_cents, *paid_at))),
        PaymentEvent::Failed { lookup, .. } => (lookup, None),
        PaymentEvent::Ignored => {
            return Ok(Applied {
                outcome: Outcome::Ignored,
                payment_id: None,
                settled: None,
            });
        }
    };
    let Some(payment) = find(conn, lookup).await? else {
        tracing::warn!(?lookup, "payment webhook for an unknown payment");
        return Ok(Applied {
            outcome: Outcome::UnknownPayment,
            payment_id: None,
            settled: None,
        });
    };
    let payment_id = payment.id;
    if !source.serves(&payment.provider) || payment.method != source.method() {
        tracing::warn!(%payment_id, route = source.as_str(),
            payment_provider = %payment.provider, method = ?payment.method,
            "payment webhook names a payment of another provider; ignored");
        return Ok(Applied::about(payment_id, Outcome::ProviderMismatch));
    }
    let (outcome, settled) = match (event, paid) {
        (_, Some((amount_cents, paid_at))) => {
            apply_paid(conn, templates, payment, amount_cents, paid_at).await?
        }
        (PaymentEvent::Failed { reason, .. }, None) => apply_failed(conn, payment, reason).await?,
        _ => (Outcome::Ignored, None),
    };
    Ok(Applied {
        settled,
        ..Applied::about(payment_id, outcome)
    })
}

fn lookup_key(lookup: &PaymentLookup) -> PaymentKey<'_> {
    match lookup {
        PaymentLookup::PaymentId(id) => PaymentKey::Id(*id),
        PaymentLookup::Txid(txid) => PaymentKey::Txid(txid),
        PaymentLookup::ProviderReference(r) => PaymentKey::ProviderReference(r),
    }
}

async fn find(conn: &mut PgConnection, lookup: &PaymentLookup) -> Result<Option<Payment>> {
    let found = flow::fetch(conn, lookup_key(lookup), false).await?;
    let Some(found) = found else { return Ok(None) };
    // Lock in a fixed order (order, then payment) so concurrent deliveries serialise on
    // the order without deadlocking against `pay` or cancellation.
    status::lock_state(conn, found.order_id).await?;
    flow::fetch(conn, PaymentKey::Id(found.id), true).await
}

async fn apply_paid(
    conn: &mut PgConnection,
    templates: &Templates,
    payment: Payment,
    amount_cents: i64,
    paid_at: Option<DateTime<Utc>>,
) -> Result<(Outcome, Option<Settled>)> {
    if !matches!(
        payment.status,
        PaymentState::Initiating | PaymentState::Pending | PaymentState::Failed
    ) {
        return Ok((Outcome::AlreadyApplied, None));
    }
    let order = sqlx::query!(
        r#"SELECT o.total_cents, o.number, u.name, u.email
           FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = $1"#,
        payment.order_id,
    )
    .fetch_one(&mut *conn)
    .await?;
    let state = status::lock_state(conn, payment.order_id).await?;
    let paid_at = paid_at.unwrap_or_else(Utc::now);

    // What the payment expects: recorded at `pay` as the order's total (plus a card plan's
    // interest where installments apply).
    if amount_cents != payment.amount_cents {
        let reason = format!(
            "received {amount_cents} cents for a payment of {} cents (order total {})",
            payment.amount_cents, order.total_cents
        );
        set_paid_status(
            conn,
            payment.id,
            PaymentState::AmountMismatch,
            amount_cents,
            paid_at,
            Some(&reason),
        )
        .await?;
        return Ok((
            Outcome::AmountMismatch,
            Some(Settled {
                payment,
                outcome: PaymentOutcome::AmountMismatch,
                amount_cents: Some(amount_cents),
                reason: Some(reason),
            }),
        ));
    }

    if state.status != OrderStatus::PendingPayment {
        return paid_after_cancel(conn, payment, state, amount_cents, paid_at).await;
    }

    // The atomic move: pending_payment (or failed) → paid, processing. `transition` updates
    // only from the state it read under the row lock and records the order event.
    status::transition(
        conn,
        payment.order_id,
        OrderState::new(OrderStatus::Processing, PaymentStatus::Paid),
        Actor::System,
        "payment confirmed",
    )
    .await?;
    set_paid_status(
        conn,
        payment.id,
        PaymentState::Paid,
        amount_cents,
        paid_at,
        None,
    )
    .await?;

    let message = templates.payment_confirmed(
        &order.email,
        &PaymentConfirmed {
            customer_name: order.name,
            order_id: payment.order_id,
            order_number: order.number,
            amount_cents,
            method: method_name(&payment),
        },
    )?;
    jobs::enqueue(
        conn,
        &SendEmail {
            message,
            key: Some(format!("payment_confirmed:{}", payment.order_id)),
            order_id: Some(payment.order_id),
        },
    )
    .await?;
    jobs::enqueue(
        conn,
        &EmitInvoice {
            order_id: payment.order_id,
        },
    )
    .await?;
    Ok((
        Outcome::Paid,
        Some(Settled {
            payment,
            outcome: PaymentOutcome::Paid,
            amount_cents: None,
            reason: None,
        }),
    ))
}

fn method_name(payment: &Payment) -> String {
    match payment.method {
        flow::PaymentMethod::Pix => "pix".into(),
        flow::PaymentMethod::CreditCard => "credit_card".into(),
    }
}

/// Money for an order that no longer waits for it: keep the record, give the money back.
async fn paid_after_cancel(
    conn: &mut PgConnection,
    payment: Payment,
    state: OrderState,
    amount_cents: i64,
    paid_at: DateTime<Utc>,
) -> Result<(Outcome, Option<Settled>)> {
    set_paid_status(
        conn,
        payment.id,
        PaymentState::PaidAfterCancel,
        amount_cents,
        paid_at,
        Some(&format!(
            "paid while the order was {state}; refund enqueued"
        )),
    )
    .await?;
    if state == OrderState::new(OrderStatus::Cancelled, PaymentStatus::Expired) {
        status::transition(
            conn,
            payment.order_id,
            OrderState::new(OrderStatus::Cancelled, PaymentStatus::RefundPending),
            Actor::System,
            "payment arrived after cancellation; refund",
        )
        .await?;
    }
    jobs::enqueue(
        conn,
        &RefundPayment {
            order_id: payment.order_id,
        },
    )
    .await?;
    Ok((
        Outcome::PaidAfterCancel,
        Some(Settled {
            payment,
            outcome: PaymentOutcome::PaidAfterCancel,
            amount_cents: Some(amount_cents),
            reason: Some(format!("paid while the order was {state}")),
        }),
    ))
}

async fn set_paid_status(
    conn: &mut PgConnection,
    payment_id: Uuid,
    status: PaymentState,
    amount_cents: i64,
    paid_at: DateTime<Utc>,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query!(
        r#"UPDATE payments SET status = $2, paid_amount_cents = $3, paid_at = $4,
                  error = COALESCE($5, error), updated_at = now()
           WHERE id = $1"#,
        payment_id,
        status as PaymentState,
        amount_cents,
        paid_at,
        error,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn apply_failed(
    conn: &mut PgConnection,
    payment: Payment,
    reason: &str,
) -> Result<(Outcome, Option<Settled>)> {
    if !payment.status.is_active() {
        return Ok((Outcome::AlreadyApplied, None));
    }
    sqlx::query!(
        r#"UPDATE payments SET status = 'failed', error = $2, updated_at = now() WHERE id = $1"#,
        payment.id,
        reason,
    )
    .execute(&mut *conn)
    .await?;
    let state = status::lock_state(conn, payment.order_id).await?;
    if state == OrderState::new(OrderStatus::PendingPayment, PaymentStatus::PendingPayment) {
        status::transition(
            conn,
            payment.order_id,
            OrderState::new(OrderStatus::PendingPayment, PaymentStatus::Failed),
            Actor::System,
            "payment failed",
        )
        .await?;
    }
    Ok((
        Outcome::Failed,
        Some(Settled {
            payment,
            outcome: PaymentOutcome::Failed,
            amount_cents: None,
            reason: Some(reason.to_owned()),
        }),
    ))
}
