//! The orders sections of the LGPD access export (`users::privacy::export`): every order of
//! the user as stored, with its items and its status history, and their payments and
//! invoices.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;

/// The user's orders, oldest first, each with `items` and `events`.
pub async fn export_for_user(conn: &mut PgConnection, user_id: Uuid) -> Result<Value> {
    let orders = sqlx::query_scalar!(
        r#"SELECT COALESCE(jsonb_agg(
                      to_jsonb(o)
                      || jsonb_build_object(
                          'items', (SELECT COALESCE(jsonb_agg(to_jsonb(i) - 'order_id'
                                                              ORDER BY i.sku), '[]'::jsonb)
                                    FROM order_items i WHERE i.order_id = o.id),
                          'events', (SELECT COALESCE(jsonb_agg(to_jsonb(e) - 'order_id' - 'id'
                                                               ORDER BY e.id), '[]'::jsonb)
                                     FROM order_events e WHERE e.order_id = o.id))
                      ORDER BY o.created_at, o.id),
                  '[]'::jsonb) AS "orders!"
           FROM orders o WHERE o.user_id = $1"#,
        user_id,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(orders)
}

/// The payments of the user's orders, oldest first, as stored but for what only the payment
/// provider and the paying browser may see (`client_secret`) and the provider's own error
/// text (`error`, which may quote our credentials: buyers see a generic reason instead).
pub async fn payments_for_user(conn: &mut PgConnection, user_id: Uuid) -> Result<Value> {
    let payments = sqlx::query_scalar!(
        r#"SELECT COALESCE(jsonb_agg(to_jsonb(p) - 'client_secret' - 'error'
                                     ORDER BY p.created_at, p.id), '[]'::jsonb) AS "payments!"
           FROM payments p JOIN orders o ON o.id = p.order_id
           WHERE o.user_id = $1"#,
        user_id,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(payments)
}

/// The invoices (NF-e) of the user's orders, oldest first, as stored but for the provider's
/// own text about a rejection (`message`), which is for operators.
pub async fn invoices_for_user(conn: &mut PgConnection, user_id: Uuid) -> Result<Value> {
    let invoices = sqlx::query_scalar!(
        r#"SELECT COALESCE(jsonb_agg(to_jsonb(i) - 'message' ORDER BY i.created_at, i.id), '[]'::jsonb)
                  AS "invoices!"
           FROM invoices i JOIN orders o ON o.id = i.order_id
           WHERE o.user_id = $1"#,
        user_id,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(invoices)
}
