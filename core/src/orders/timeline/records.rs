//! The entries kept in the store's own tables: the order's status changes, its payments and
//! refunds, the webhooks about those payments, and its NF-e.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Level, OrderHeader, Source, TimelineEntry};
use crate::{
    Result,
    invoices::emit::InvoiceStatus,
    money::format_brl,
    orders::{OrderStatus, PaymentStatus},
    payments::flow::{PaymentMethod, PaymentState},
};

/// The order's header and what the entries need to know about it.
pub(super) struct Order {
    pub header: OrderHeader,
    /// The buyer, to tell their own actions from an admin's.
    pub user_id: Uuid,
}

pub(super) async fn header(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Order>> {
    let row = sqlx::query!(
        r#"SELECT o.id, o.number, o.status AS "status: OrderStatus",
                  o.payment_status AS "payment_status: PaymentStatus", o.total_cents,
                  o.created_at, o.user_id, u.email, u.deleted_at IS NOT NULL AS "anonymised!"
           FROM orders o JOIN users u ON u.id = o.user_id
           WHERE o.id = $1"#,
        order_id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|row| Order {
        header: OrderHeader {
            id: row.id,
            number: row.number,
            status: row.status,
            payment_status: row.payment_status,
            total_cents: row.total_cents,
            created_at: row.created_at,
            // An anonymised account holds a placeholder address: nobody's, and nothing to show.
            buyer_email: (!row.anonymised).then_some(row.email),
            buyer_anonymised: row.anonymised,
        },
        user_id: row.user_id,
    }))
}

/// One entry per `order_events` row.
pub(super) async fn order_events(
    conn: &mut PgConnection,
    order: &Order,
) -> Result<Vec<TimelineEntry>> {
    let rows = sqlx::query!(
        r#"SELECT id, from_status, to_status, from_payment_status, to_payment_status, actor,
                  reason, request_id, created_at
           FROM order_events WHERE order_id = $1 ORDER BY id"#,
        order.header.id,
    )
    .fetch_all(&mut *conn)
    .await?;
    let buyer = order.user_id.to_string();
    Ok(rows
        .into_iter()
        .map(|row| {
            let by = match row.actor.as_str() {
                "system" => "system".to_owned(),
                actor if actor == buyer => "buyer".to_owned(),
                actor => format!("user {actor}"),
            };
            let to = format!("{}, {}", row.to_status, row.to_payment_status);
            let change = match (&row.from_status, &row.from_payment_status) {
                (Some(status), Some(payment)) => format!("{status}, {payment} → {to}"),
                _ => format!("placed: {to}"),
            };
            let summary = match row.reason.as_deref() {
                Some(reason) if row.from_status.is_some() => {
                    format!("{reason}: {change} (by {by})")
                }
                _ => format!("{change} (by {by})"),
            };
            TimelineEntry::new(
                row.created_at,
                Source::Order,
                summary,
                json!({
                    "event_id": row.id,
                    "from_status": row.from_status,
                    "to_status": row.to_status,
                    "from_payment_status": row.from_payment_status,
                    "to_payment_status": row.to_payment_status,
                    "actor": row.actor,
                    "reason": row.reason,
                    "request_id": row.request_id,
                }),
            )
        })
        .collect())
}

struct PaymentRow {
    id: Uuid,
    method: PaymentMethod,
    provider: String,
    amount_cents: i64,
    status: PaymentState,
    txid: Option<String>,
    provider_reference: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    error: Option<String>,
    paid_amount_cents: Option<i64>,
    paid_at: Option<DateTime<Utc>>,
    refund_reference: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// For each payment: when it started, then what became of it (charged, paid, failed,
/// expired), and its refund.
pub(super) async fn payments(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Vec<TimelineEntry>> {
    // What the browser needs to pay (client secret, QR code, BR Code) is left out.
    let rows = sqlx::query_as!(
        PaymentRow,
        r#"SELECT id, method AS "method: PaymentMethod", provider, amount_cents,
                  status AS "status: PaymentState", txid, provider_reference, expires_at, error,
                  paid_amount_cents, paid_at, refund_reference, created_at, updated_at
           FROM payments WHERE order_id = $1 ORDER BY created_at, id"#,
        order_id,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut entries = Vec::with_capacity(rows.len() * 2);
    for row in rows {
        entries.extend(payment_entries(&row));
    }
    Ok(entries)
}

fn payment_entries(p: &PaymentRow) -> Vec<TimelineEntry> {
    let details = json!({
        "payment_id": p.id,
        "method": p.method,
        "provider": p.provider,
        "status": p.status,
        "amount_cents": p.amount_cents,
        "paid_amount_cents": p.paid_amount_cents,
        "paid_at": p.paid_at,
        "expires_at": p.expires_at,
        "txid": p.txid,
        "provider_reference": p.provider_reference,
        "refund_reference": p.refund_reference,
        "error": p.error,
    });
    let method = match p.method {
        PaymentMethod::Pix => "PIX",
        PaymentMethod::CreditCard => "card",
    };
    let status = details["status"].as_str().unwrap_or_default();
    let at = |when: DateTime<Utc>, summary: String| {
        TimelineEntry::new(when, Source::Payment, summary, details.clone())
    };
    let error = p.error.as_deref().unwrap_or("no reason recorded");
    let mut entries = vec![at(
        p.created_at,
        format!(
            "{method} payment of {} started with {} (now {status})",
            format_brl(p.amount_cents),
            p.provider
        ),
    )];
    let received = p.paid_amount_cents.unwrap_or(p.amount_cents);
    match (p.status, p.paid_at) {
        (PaymentState::Pending, _) => entries.push(at(
            p.updated_at,
            "charge created; waiting for the payer".to_owned(),
        )),
        (PaymentState::Failed, _) => {
            entries.push(at(p.updated_at, format!("payment failed: {error}")).level(Level::Warning))
        }
        (PaymentState::Expired, _) => {
            entries.push(at(p.updated_at, "payment expired unpaid".to_owned()))
        }
        (PaymentState::AmountMismatch, paid_at) => entries.push(
            at(
                paid_at.unwrap_or(p.updated_at),
                format!(
                    "received {} for a payment of {}: held for an operator",
                    format_brl(received),
                    format_brl(p.amount_cents)
                ),
            )
            .level(Level::Error),
        ),
        (PaymentState::PaidAfterCancel, paid_at) => entries.push(
            at(
                paid_at.unwrap_or(p.updated_at),
                format!(
                    "paid {} after the order closed: {error}",
                    format_brl(received)
                ),
            )
            .level(Level::Warning),
        ),
        (PaymentState::Paid | PaymentState::RefundPending | PaymentState::Refunded, Some(paid)) => {
            entries.push(at(paid, format!("paid {}", format_brl(received))))
        }
        (PaymentState::Initiating, _)
        | (PaymentState::Paid | PaymentState::RefundPending | PaymentState::Refunded, None) => {}
    }
    if let Some(refund) = refund_entry(p, received, &details) {
        entries.push(refund);
    }
    entries
}

fn refund_entry(p: &PaymentRow, amount: i64, details: &serde_json::Value) -> Option<TimelineEntry> {
    let (summary, level) = match p.status {
        PaymentState::Refunded => (
            format!(
                "refunded {} ({})",
                format_brl(amount),
                p.refund_reference.as_deref().unwrap_or("no reference")
            ),
            Level::Info,
        ),
        // The note is why the money is going back, or why the refund job stopped (then its
        // failed job is on the timeline too).
        PaymentState::RefundPending => match p.error.as_deref() {
            Some(note) => (
                format!("refund of {} pending: {note}", format_brl(amount)),
                Level::Warning,
            ),
            None => (
                format!("refund of {} pending", format_brl(amount)),
                Level::Info,
            ),
        },
        _ => return None,
    };
    Some(TimelineEntry::new(p.updated_at, Source::Refund, summary, details.clone()).level(level))
}

/// Each webhook about the order's payments: when it came, and what reconciliation made of it.
pub(super) async fn webhooks(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Vec<TimelineEntry>> {
    // Events record the payment they name when they are stored, or at the latest when they
    // are reconciled (or, from before that, by the migration that added the column).
    let rows = sqlx::query!(
        r#"SELECT w.id, w.provider, w.event_id, w.event_type, w.received_at, w.processed_at,
                  w.outcome, p.id AS payment_id
           FROM payments p JOIN webhook_events w ON w.payment_id = p.id
           WHERE p.order_id = $1
           ORDER BY w.received_at, w.id"#,
        order_id,
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut entries = Vec::with_capacity(rows.len() * 2);
    for row in rows {
        let details = json!({
            "webhook_event_id": row.id,
            "payment_id": row.payment_id,
            "provider": row.provider,
            "event_id": row.event_id,
            "event_type": row.event_type,
            "received_at": row.received_at,
            "processed_at": row.processed_at,
            "outcome": row.outcome,
        });
        let received = format!("{} {} received", row.provider, row.event_type);
        let Some(processed_at) = row.processed_at else {
            entries.push(TimelineEntry::new(
                row.received_at,
                Source::Webhook,
                format!("{received}; not reconciled yet"),
                details,
            ));
            continue;
        };
        let outcome = row.outcome.as_deref().unwrap_or("unknown");
        entries.push(TimelineEntry::new(
            row.received_at,
            Source::Webhook,
            received,
            details.clone(),
        ));
        entries.push(
            TimelineEntry::new(
                processed_at,
                Source::Webhook,
                format!("{} {} reconciled: {outcome}", row.provider, row.event_type),
                details,
            )
            .level(outcome_level(outcome)),
        );
    }
    Ok(entries)
}

/// The outcomes of `payments::reconcile::Outcome`, by how much they need an operator.
fn outcome_level(outcome: &str) -> Level {
    match outcome {
        "amount_mismatch" => Level::Error,
        "paid_after_cancel" | "provider_mismatch" | "unconfirmed" | "unknown_payment" => {
            Level::Warning
        }
        _ => Level::Info,
    }
}

/// The NF-e: when its emission started, and how it ended.
pub(super) async fn invoice(conn: &mut PgConnection, order_id: Uuid) -> Result<Vec<TimelineEntry>> {
    let Some(invoice) = crate::invoices::emit::find(conn, order_id).await? else {
        return Ok(Vec::new());
    };
    let details = json!({
        "invoice_id": invoice.id,
        "status": invoice.status,
        "number": invoice.number,
        "series": invoice.series,
        "access_key": invoice.access_key,
        "pdf_url": invoice.pdf_url,
        "xml_url": invoice.xml_url,
        "message": invoice.message,
    });
    let mut entries = vec![TimelineEntry::new(
        invoice.created_at,
        Source::Invoice,
        "NF-e emission started",
        details.clone(),
    )];
    let ended = |summary: String, level: Level| {
        TimelineEntry::new(
            invoice.updated_at,
            Source::Invoice,
            summary,
            details.clone(),
        )
        .level(level)
    };
    match invoice.status {
        InvoiceStatus::Pending => {}
        InvoiceStatus::Authorized => entries.push(ended(
            format!(
                "NF-e authorised: number {}, series {}",
                invoice.number.map(|n| n.to_string()).unwrap_or_default(),
                invoice.series.map(|s| s.to_string()).unwrap_or_default()
            ),
            Level::Info,
        )),
        InvoiceStatus::Rejected => entries.push(ended(
            format!(
                "NF-e rejected: {}",
                invoice.message.as_deref().unwrap_or("no reason given")
            ),
            Level::Error,
        )),
        InvoiceStatus::Cancelled => entries.push(ended("NF-e cancelled".to_owned(), Level::Info)),
    }
    Ok(entries)
}
