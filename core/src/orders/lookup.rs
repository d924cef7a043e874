//! Finding an order the way an operator names it, and the background jobs that work for it.

use cart_queue::admin::{self, JobSummary, ListFilter, Serving};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    Result,
    jobs::{Job, reconcile_payment::ReconcilePayment},
};

/// The order an operator means: its id, or its number (`CART-7K3M9Q2X`, any case, with or
/// without the prefix).
pub async fn resolve_order(pool: &PgPool, reference: &str) -> Result<Option<Uuid>> {
    let reference = reference.trim();
    if let Ok(id) = reference.parse::<Uuid>() {
        let found = sqlx::query_scalar!("SELECT id FROM orders WHERE id = $1", id)
            .fetch_optional(pool)
            .await?;
        return Ok(found);
    }
    let upper = reference.to_ascii_uppercase();
    let number = if upper.starts_with(super::number::PREFIX) {
        upper
    } else {
        format!("{}{upper}", super::number::PREFIX)
    };
    let found = sqlx::query_scalar!("SELECT id FROM orders WHERE number = $1", number)
        .fetch_optional(pool)
        .await?;
    Ok(found)
}

/// The jobs that work for `order_id`, newest first: those that name the order or one of its
/// payments, and the reconciliation jobs of its payments' webhook events (which name only
/// their event). Every row carries the order's id.
pub async fn jobs_serving(pool: &PgPool, order_id: Uuid, limit: i64) -> Result<Vec<JobSummary>> {
    let serving = serving_order(pool, order_id).await?;
    let mut jobs = admin::list(
        pool,
        &ListFilter {
            serving: Some(serving),
            limit,
            ..ListFilter::default()
        },
    )
    .await?;
    for job in &mut jobs {
        job.order_id.get_or_insert(order_id);
    }
    Ok(jobs)
}

/// What the jobs of an order may name: the order, its payments, its payments' webhook events.
pub async fn serving_order(pool: &PgPool, order_id: Uuid) -> Result<Serving> {
    let payment_ids = sqlx::query_scalar!("SELECT id FROM payments WHERE order_id = $1", order_id)
        .fetch_all(pool)
        .await?;
    Ok(Serving {
        order_ids: vec![order_id],
        keys: reconciliation_keys(pool, &payment_ids).await?,
        payment_ids,
    })
}

/// What the jobs of a payment may name: the payment and its webhook events.
pub async fn serving_payment(pool: &PgPool, payment_id: Uuid) -> Result<Serving> {
    Ok(Serving {
        order_ids: Vec::new(),
        keys: reconciliation_keys(pool, &[payment_id]).await?,
        payment_ids: vec![payment_id],
    })
}

/// The reconciliation jobs of these payments' webhook events, by kind and idempotency key.
async fn reconciliation_keys(pool: &PgPool, payment_ids: &[Uuid]) -> Result<Vec<(String, String)>> {
    let events = sqlx::query_scalar!(
        "SELECT id FROM webhook_events WHERE payment_id = ANY($1)",
        payment_ids,
    )
    .fetch_all(pool)
    .await?;
    Ok(events
        .into_iter()
        .filter_map(|webhook_event_id| {
            ReconcilePayment { webhook_event_id }
                .idempotency_key()
                .map(|key| (ReconcilePayment::NAME.to_owned(), key))
        })
        .collect())
}

/// Gives every job that names only a payment the order of that payment.
pub async fn fill_orders(pool: &PgPool, jobs: &mut [JobSummary]) -> Result<()> {
    let payment_ids: Vec<Uuid> = jobs
        .iter()
        .filter(|job| job.order_id.is_none())
        .filter_map(|job| job.payment_id)
        .collect();
    if payment_ids.is_empty() {
        return Ok(());
    }
    let orders = sqlx::query!(
        "SELECT id, order_id FROM payments WHERE id = ANY($1)",
        &payment_ids,
    )
    .fetch_all(pool)
    .await?;
    for job in jobs.iter_mut().filter(|job| job.order_id.is_none()) {
        job.order_id = orders
            .iter()
            .find(|row| Some(row.id) == job.payment_id)
            .map(|row| row.order_id);
    }
    Ok(())
}

/// The order a payment belongs to.
pub async fn order_of_payment(pool: &PgPool, payment_id: Uuid) -> Result<Option<Uuid>> {
    let found = sqlx::query_scalar!("SELECT order_id FROM payments WHERE id = $1", payment_id)
        .fetch_optional(pool)
        .await?;
    Ok(found)
}
