//! The `refund_payment` job: gives back the money of an order that does not keep it: every
//! payment of a cancelled order that was paid, and any payment recorded `paid_after_cancel`
//! (a late or double payment) of any order.
//!
//! Each payment is marked `refund_pending` before the provider is called and `refunded` once
//! the provider accepted the refund; the provider deduplicates on the payment id, so a retry
//! never refunds twice. Providers without a refund API (OpenPix) leave the payment
//! `refund_pending` with the reason and fail the job for an operator. Once nothing is left
//! to refund, a cancelled order moves from `refund_pending` to `refunded`.

use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use super::{
    breaker::{BreakerError, CallError},
    flow::{PaymentMethod, PaymentSettings},
    provider::{CardRefundRequest, PixRefundRequest, Refund, is_manual_refund_required},
};
use crate::{
    Error, Result,
    business_events::{self, PaymentDetail, PaymentOutcome},
    http_client::ProviderError,
    orders::{Actor, OrderState, OrderStatus, PaymentStatus, status},
};

/// Why a refund run did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    /// Worth retrying later (provider down, circuit open, database).
    #[error("refund must be retried: {0}")]
    Retry(String),
    /// Needs an operator (no refund API, provider refused, provider changed).
    #[error("refund needs an operator: {0}")]
    Manual(String),
    #[error(transparent)]
    Core(#[from] Error),
}

/// What was refunded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Refunded {
    pub payments: Vec<Uuid>,
}

struct ToRefund {
    id: Uuid,
    method: PaymentMethod,
    provider: String,
    amount: i64,
    txid: Option<String>,
    provider_reference: Option<String>,
}

pub async fn refund_order(
    pool: &PgPool,
    settings: &PaymentSettings,
    order_id: Uuid,
) -> Result<Refunded, RefundError> {
    let due = {
        let mut conn = pool.acquire().await.map_err(Error::from)?;
        claim(&mut conn, order_id).await?
    };
    let mut refunded = Refunded::default();
    for payment in due {
        let answer = call_provider(pool, settings, &payment).await;
        let mut conn = pool.acquire().await.map_err(Error::from)?;
        match answer {
            Ok(refund) => {
                sqlx::query!(
                    r#"UPDATE payments SET status = 'refunded', refund_reference = $2,
                              updated_at = now()
                       WHERE id = $1 AND status = 'refund_pending'"#,
                    payment.id,
                    refund.refund_id,
                )
                .execute(&mut *conn)
                .await
                .map_err(Error::from)?;
                let detail = PaymentDetail {
                    amount_cents: Some(payment.amount),
                    refund_id: Some(&refund.refund_id),
                    reason: None,
                };
                refund_event(&mut conn, PaymentOutcome::Refunded, payment.id, detail).await;
                refunded.payments.push(payment.id);
            }
            Err(RefundError::Manual(reason)) => {
                note_error(&mut conn, payment.id, &reason).await?;
                let detail = PaymentDetail {
                    amount_cents: Some(payment.amount),
                    reason: Some(&reason),
                    refund_id: None,
                };
                refund_event(
                    &mut conn,
                    PaymentOutcome::RefundNeedsOperator,
                    payment.id,
                    detail,
                )
                .await;
                return Err(RefundError::Manual(format!(
                    "payment {}: {reason}",
                    payment.id
                )));
            }
            Err(err) => return Err(err),
        }
    }
    let mut conn = pool.acquire().await.map_err(Error::from)?;
    finish_order(&mut conn, order_id).await?;
    Ok(refunded)
}

/// Marks every payment due for a refund `refund_pending` and returns them.
async fn claim(conn: &mut PgConnection, order_id: Uuid) -> Result<Vec<ToRefund>> {
    let mut tx = conn.begin().await?;
    let state = status::lock_state(&mut tx, order_id).await?;
    let cancelled = state.status == OrderStatus::Cancelled;
    let rows = sqlx::query!(
        r#"UPDATE payments SET status = 'refund_pending', updated_at = now()
           WHERE order_id = $1
             AND (status IN ('paid_after_cancel', 'refund_pending')
                  OR ($2 AND status = 'paid'))
           RETURNING id, method AS "method: PaymentMethod", provider, amount_cents,
                     paid_amount_cents, txid, provider_reference"#,
        order_id,
        cancelled,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|r| ToRefund {
            id: r.id,
            method: r.method,
            provider: r.provider,
            amount: r.paid_amount_cents.unwrap_or(r.amount_cents),
            txid: r.txid,
            provider_reference: r.provider_reference,
        })
        .collect())
}

async fn call_provider(
    pool: &PgPool,
    settings: &PaymentSettings,
    payment: &ToRefund,
) -> Result<Refund, RefundError> {
    let reference = payment.provider_reference.clone().unwrap_or_default();
    let result = match payment.method {
        PaymentMethod::Pix => {
            let provider = settings.providers.pix.clone();
            check_provider(provider.name(), payment)?;
            let request = PixRefundRequest {
                payment_id: payment.id,
                txid: payment.txid.clone().unwrap_or_default(),
                provider_reference: reference,
                amount_cents: payment.amount,
            };
            settings
                .breaker
                .call(pool, provider.name(), provider.refund(&request))
                .await
        }
        PaymentMethod::CreditCard => {
            let provider = settings.providers.card.clone();
            check_provider(provider.name(), payment)?;
            let request = CardRefundRequest {
                payment_id: payment.id,
                provider_reference: reference,
                amount_cents: payment.amount,
            };
            settings
                .breaker
                .call(pool, provider.name(), provider.refund(&request))
                .await
        }
    };
    result.map_err(|err| match err {
        CallError::Breaker(BreakerError::Open { .. }) => RefundError::Retry(err.to_string()),
        CallError::Breaker(BreakerError::Db(e)) => RefundError::Core(Error::Db(e)),
        CallError::Provider(e) if is_manual_refund_required(&e) => {
            RefundError::Manual(e.to_string())
        }
        CallError::Provider(e @ ProviderError::Rejected { .. }) => {
            RefundError::Manual(e.to_string())
        }
        CallError::Provider(e) if e.is_permanent() => RefundError::Manual(e.to_string()),
        CallError::Provider(e) => RefundError::Retry(e.to_string()),
    })
}

fn check_provider(configured: &str, payment: &ToRefund) -> Result<(), RefundError> {
    if configured == payment.provider {
        Ok(())
    } else {
        Err(RefundError::Manual(format!(
            "paid through {}, but the configured provider is {configured}",
            payment.provider
        )))
    }
}

async fn note_error(conn: &mut PgConnection, payment_id: Uuid, reason: &str) -> Result<()> {
    sqlx::query!(
        "UPDATE payments SET error = $2, updated_at = now() WHERE id = $1",
        payment_id,
        reason,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records what happened to a refunded (or stuck) payment, read back for its ids. The money
/// has moved already: failing to read the row costs the log line, never the refund.
async fn refund_event(
    conn: &mut PgConnection,
    outcome: PaymentOutcome,
    payment_id: Uuid,
    detail: PaymentDetail<'_>,
) {
    match super::flow::get(conn, payment_id).await {
        Ok(payment) => business_events::payment(outcome, &payment, detail),
        Err(e) => {
            tracing::warn!(%payment_id, ?outcome, error = %e, "could not read a refunded payment back")
        }
    }
}

/// A cancelled order whose money is all back is `refunded`.
async fn finish_order(conn: &mut PgConnection, order_id: Uuid) -> Result<()> {
    let mut tx = conn.begin().await?;
    let state = status::lock_state(&mut tx, order_id).await?;
    let outstanding = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM payments
           WHERE order_id = $1 AND status IN ('refund_pending', 'paid_after_cancel')"#,
        order_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    if outstanding == 0
        && state == OrderState::new(OrderStatus::Cancelled, PaymentStatus::RefundPending)
    {
        status::transition(
            &mut tx,
            order_id,
            OrderState::new(OrderStatus::Cancelled, PaymentStatus::Refunded),
            Actor::System,
            "refunded",
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
