//! The customer e-mails of the order lifecycle ("order placed", "order shipped"), rendered
//! with the store's templates and enqueued as `send_email` jobs in the transaction that
//! changes the order, each with an idempotency key so a retried request never queues a
//! second copy.

use sqlx::PgConnection;
use uuid::Uuid;

use super::model::Order;
use crate::{
    Result,
    jobs::{self, send_email::SendEmail},
    mail::templates::{OrderLine, OrderPlaced, OrderShipped, Templates},
};

/// The order owner, unless the account was anonymised.
async fn recipient(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Recipient>> {
    let row = sqlx::query!(
        "SELECT u.name, u.email FROM orders o JOIN users u ON u.id = o.user_id
         WHERE o.id = $1 AND u.deleted_at IS NULL",
        order_id
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| Recipient {
        name: r.name,
        email: r.email,
    }))
}

/// Who an e-mail goes to.
pub struct Recipient {
    pub name: String,
    pub email: String,
}

/// The "order placed" e-mail job (key `order_placed:<order id>`) to the buyer, whom checkout
/// has already read; checkout enqueues it with its other jobs in one statement.
pub fn order_placed(templates: &Templates, order: &Order, to: &Recipient) -> Result<SendEmail> {
    let message = templates.order_placed(
        &to.email,
        &OrderPlaced {
            customer_name: to.name.clone(),
            order_id: order.id,
            order_number: order.number.clone(),
            items: order
                .items
                .iter()
                .map(|item| OrderLine {
                    name: item.name.clone(),
                    quantity: i64::from(item.quantity),
                    unit_price_cents: item.unit_price_cents,
                    line_total_cents: item.line_total_cents,
                })
                .collect(),
            subtotal_cents: order.subtotal_cents,
            discount_cents: order.discount_cents,
            shipping_cents: order.shipping_cents,
            total_cents: order.total_cents,
        },
    )?;
    Ok(SendEmail {
        message,
        key: Some(format!("order_placed:{}", order.id)),
        order_id: Some(order.id),
    })
}

/// Enqueues the "order shipped" e-mail (key `order_shipped:<order id>`).
pub async fn order_shipped(
    conn: &mut PgConnection,
    templates: &Templates,
    order: &Order,
) -> Result<()> {
    let Some(to) = recipient(conn, order.id).await? else {
        return Ok(());
    };
    let message = templates.order_shipped(
        &to.email,
        &OrderShipped {
            customer_name: to.name,
            order_id: order.id,
            order_number: order.number.clone(),
            carrier: order
                .carrier
                .clone()
                .unwrap_or_else(|| order.shipping.carrier.clone()),
            tracking_number: order.tracking_number.clone().unwrap_or_default(),
        },
    )?;
    let job = SendEmail {
        message,
        key: Some(format!("order_shipped:{}", order.id)),
        order_id: Some(order.id),
    };
    jobs::enqueue(conn, &job).await?;
    Ok(())
}
