//! Emitting the NF-e of a paid order and keeping its `invoices` row.
//!
//! The order id is the provider-side reference and `invoices.order_id` is unique, so however
//! often the `emit_invoice` job runs (retries, a crash after the provider answered, an
//! operator's `jobs retry`) one order gets one NF-e. The issue time written into the
//! invoice is the row's `created_at`, so every retry sends the provider the same request.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    EmitOutcome, FiscalConfig, InvoiceItem, InvoiceRequest, InvoiceTotals, NfeProvider,
    PaymentMeans, PollSettings, Recipient, RecipientAddress, emit_and_wait,
};
use crate::{Result, http_client::ProviderError};

/// The paid order as the NF-e needs it: snapshots taken at checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSnapshot {
    pub order_id: Uuid,
    pub order_number: String,
    pub recipient_name: String,
    /// 11 digits.
    pub recipient_cpf: String,
    pub recipient_email: Option<String>,
    pub address: RecipientAddress,
    pub items: Vec<SnapshotItem>,
    pub shipping_cents: i64,
    pub discount_cents: i64,
    pub total_cents: i64,
    /// How it was paid.
    #[serde(default)]
    pub payment: Option<PaymentMeans>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotItem {
    pub sku: String,
    pub name: String,
    /// The product's NCM at checkout; an item without one cannot be invoiced.
    pub ncm: Option<String>,
    pub unit_price_cents: i64,
    pub quantity: i64,
}

/// Builds the provider request for `order`, issued at `issued_at`. A snapshot that cannot
/// make a valid NF-e (no NCM, totals that do not add up) is a permanent rejection.
pub fn invoice_request(
    order: &OrderSnapshot,
    fiscal: &FiscalConfig,
    issued_at: DateTime<Utc>,
) -> Result<InvoiceRequest, ProviderError> {
    let cfop = fiscal.cfop_for(&order.address.uf);
    let mut items = Vec::with_capacity(order.items.len());
    for item in &order.items {
        let ncm: String = item
            .ncm
            .as_deref()
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if ncm.len() != 8 {
            return Err(ProviderError::Rejected {
                status: 422,
                message: format!("item {} has no 8-digit NCM", item.sku),
            });
        }
        items.push(InvoiceItem {
            code: item.sku.clone(),
            description: item.name.clone(),
            ncm,
            cfop,
            quantity: item.quantity,
            unit_price_cents: item.unit_price_cents,
            total_cents: item.unit_price_cents.saturating_mul(item.quantity),
        });
    }
    let products_cents = items.iter().map(|i| i.total_cents).sum();
    let request = InvoiceRequest {
        reference: order.order_id.to_string(),
        issued_at,
        recipient: Recipient {
            name: order.recipient_name.clone(),
            cpf: order.recipient_cpf.clone(),
            email: order.recipient_email.clone(),
            address: order.address.clone(),
        },
        items,
        totals: InvoiceTotals {
            products_cents,
            shipping_cents: order.shipping_cents,
            discount_cents: order.discount_cents,
            total_cents: order.total_cents,
        },
        payment: order.payment,
    };
    request.check()?;
    Ok(request)
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum InvoiceStatus {
    Pending,
    Authorized,
    Rejected,
    Cancelled,
}

/// An order's `invoices` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: Uuid,
    pub order_id: Uuid,
    pub status: InvoiceStatus,
    pub number: Option<i64>,
    pub series: Option<i32>,
    pub access_key: Option<String>,
    pub pdf_url: Option<String>,
    pub xml_url: Option<String>,
    /// Why it was rejected.
    pub message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The invoice of `order_id`, if one was started.
pub async fn find(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Invoice>> {
    Ok(sqlx::query_as!(
        Invoice,
        r#"SELECT id, order_id, status AS "status: InvoiceStatus", number, series, access_key,
                  pdf_url, xml_url, message, created_at, updated_at
           FROM invoices WHERE order_id = $1"#,
        order_id,
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// The invoice of an order its owner (or an admin) may see; `NotFound` for someone else's
/// order and before emission started.
pub async fn visible(
    conn: &mut PgConnection,
    order_id: Uuid,
    viewer: crate::orders::Viewer,
) -> Result<Invoice> {
    let owner = sqlx::query_scalar!("SELECT user_id FROM orders WHERE id = $1", order_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(crate::Error::NotFound)?;
    if !viewer.may_see(owner) {
        return Err(crate::Error::NotFound);
    }
    find(conn, order_id).await?.ok_or(crate::Error::NotFound)
}

/// The order's invoice row, created `pending` on the first call.
pub async fn start(conn: &mut PgConnection, order_id: Uuid) -> Result<Invoice> {
    sqlx::query!(
        "INSERT INTO invoices (id, order_id) VALUES ($1, $2) ON CONFLICT (order_id) DO NOTHING",
        Uuid::now_v7(),
        order_id,
    )
    .execute(&mut *conn)
    .await?;
    find(conn, order_id).await?.ok_or(crate::Error::NotFound)
}

/// What recording an outcome changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub invoice: Invoice,
    /// True only for the call that moved the invoice to `authorized`: the one that sends
    /// the "invoice issued" e-mail.
    pub newly_authorized: bool,
}

/// Writes a final outcome (authorised or rejected) into the row. `Processing` changes
/// nothing. An authorised invoice is never overwritten.
pub async fn record(
    conn: &mut PgConnection,
    order_id: Uuid,
    outcome: &EmitOutcome,
) -> Result<Recorded> {
    let changed = match outcome {
        EmitOutcome::Authorized {
            number,
            series,
            access_key,
            pdf_url,
            xml_url,
        } => sqlx::query!(
            r#"UPDATE invoices SET status = 'authorized', number = $2, series = $3,
                      access_key = $4, pdf_url = $5, xml_url = $6, message = NULL,
                      updated_at = now()
               WHERE order_id = $1 AND status <> 'authorized'"#,
            order_id,
            number,
            series,
            access_key,
            pdf_url,
            xml_url,
        )
        .execute(&mut *conn)
        .await?
        .rows_affected(),
        EmitOutcome::Rejected { message } => sqlx::query!(
            r#"UPDATE invoices SET status = 'rejected', message = $2, updated_at = now()
               WHERE order_id = $1 AND status = 'pending'"#,
            order_id,
            message,
        )
        .execute(&mut *conn)
        .await?
        .rows_affected(),
        EmitOutcome::Processing => 0,
    };
    let invoice = find(conn, order_id).await?.ok_or(crate::Error::NotFound)?;
    Ok(Recorded {
        newly_authorized: changed > 0 && invoice.status == InvoiceStatus::Authorized,
        invoice,
    })
}

/// Emits the NF-e of `order` through `provider` and polls it (bounded by `poll`).
/// The caller records the answer with [`record`]; `Processing` means "run again later".
/// A snapshot that cannot be invoiced comes back as `Rejected` with the reason.
pub async fn emit(
    provider: &dyn NfeProvider,
    fiscal: &FiscalConfig,
    poll: &PollSettings,
    order: &OrderSnapshot,
    issued_at: DateTime<Utc>,
) -> Result<EmitOutcome, ProviderError> {
    let request = match invoice_request(order, fiscal, issued_at) {
        Ok(request) => request,
        Err(ProviderError::Rejected { message, .. }) => {
            return Ok(EmitOutcome::Rejected { message });
        }
        Err(err) => return Err(err),
    };
    emit_and_wait(provider, &request, poll).await
}

/// Loads the paid order's snapshot: items with their NCM, the recipient's CPF and address
/// as taken at checkout, the buyer's name and e-mail.
pub async fn snapshot(conn: &mut PgConnection, order_id: Uuid) -> Result<OrderSnapshot> {
    let order = sqlx::query!(
        r#"SELECT o.number, o.recipient_cpf, o.shipping_cents, o.discount_cents, o.total_cents,
                  o.shipping_address AS "address: sqlx::types::Json<crate::orders::ShippingAddress>",
                  u.name, u.email,
                  (SELECT p.method FROM payments p
                   WHERE p.order_id = o.id
                   ORDER BY p.paid_at IS NOT NULL DESC, p.created_at DESC
                   LIMIT 1) AS "payment_method?"
           FROM orders o JOIN users u ON u.id = o.user_id
           WHERE o.id = $1"#,
        order_id,
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(crate::Error::NotFound)?;
    let items = sqlx::query!(
        r#"SELECT sku, name, ncm, unit_price_cents, quantity
           FROM order_items WHERE order_id = $1 ORDER BY sku, product_id"#,
        order_id,
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|i| SnapshotItem {
        sku: i.sku,
        name: i.name,
        ncm: i.ncm,
        unit_price_cents: i.unit_price_cents,
        quantity: i64::from(i.quantity),
    })
    .collect();
    let address = order.address.0;
    Ok(OrderSnapshot {
        order_id,
        order_number: order.number,
        recipient_name: order.name,
        recipient_cpf: order.recipient_cpf,
        recipient_email: Some(order.email),
        address: RecipientAddress {
            street: address.street,
            number: address.number,
            complement: address.complement,
            district: address.district,
            city: address.city,
            uf: address.state,
            cep: address.cep,
        },
        items,
        shipping_cents: order.shipping_cents,
        discount_cents: order.discount_cents,
        total_cents: order.total_cents,
        payment: order
            .payment_method
            .as_deref()
            .and_then(PaymentMeans::from_method),
    })
}

/// What one run of the `emit_invoice` job achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitRun {
    /// Authorised now; the "invoice issued" e-mail was enqueued.
    Authorized(Invoice),
    /// Authorised by an earlier run: nothing done.
    AlreadyAuthorized(Invoice),
    /// The provider is still working on it: run again later.
    Processing,
    /// Refused; the row holds the provider's message.
    Rejected(Invoice),
}

#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Core(#[from] crate::Error),
}

/// Everything the `emit_invoice` job needs.
pub struct Emitter<'a> {
    pub provider: &'a dyn NfeProvider,
    pub fiscal: &'a FiscalConfig,
    pub poll: &'a PollSettings,
    pub templates: &'a crate::mail::templates::Templates,
}

/// The `emit_invoice` job: emits (or finds) the order's NF-e, records the outcome and, the
/// first time it is authorised, enqueues the "invoice issued" e-mail in the same
/// transaction (key `invoice_issued:<order id>`).
pub async fn emit_for_order(
    pool: &sqlx::PgPool,
    emitter: &Emitter<'_>,
    order_id: Uuid,
) -> Result<EmitRun, EmitError> {
    use sqlx::Connection;

    let (invoice, order) = {
        let mut conn = pool.acquire().await.map_err(crate::Error::from)?;
        let invoice = start(&mut conn, order_id).await?;
        if invoice.status == InvoiceStatus::Authorized {
            return Ok(EmitRun::AlreadyAuthorized(invoice));
        }
        (invoice, snapshot(&mut conn, order_id).await?)
    };
    let outcome = emit(
        emitter.provider,
        emitter.fiscal,
        emitter.poll,
        &order,
        invoice.created_at,
    )
    .await?;
    if outcome == EmitOutcome::Processing {
        return Ok(EmitRun::Processing);
    }
    let mut conn = pool.acquire().await.map_err(crate::Error::from)?;
    let mut tx = conn.begin().await.map_err(crate::Error::from)?;
    let recorded = record(&mut tx, order_id, &outcome).await?;
    let run = match recorded.invoice.status {
        InvoiceStatus::Authorized if recorded.newly_authorized => {
            enqueue_issued_email(&mut tx, emitter.templates, &order, &recorded.invoice).await?;
            EmitRun::Authorized(recorded.invoice)
        }
        InvoiceStatus::Authorized => EmitRun::AlreadyAuthorized(recorded.invoice),
        _ => EmitRun::Rejected(recorded.invoice),
    };
    tx.commit().await.map_err(crate::Error::from)?;
    match &run {
        EmitRun::Authorized(invoice) => crate::business_events::invoice_authorized(invoice),
        EmitRun::Rejected(invoice) => crate::business_events::invoice_rejected(invoice),
        EmitRun::AlreadyAuthorized(_) | EmitRun::Processing => {}
    }
    Ok(run)
}

async fn enqueue_issued_email(
    conn: &mut PgConnection,
    templates: &crate::mail::templates::Templates,
    order: &OrderSnapshot,
    invoice: &Invoice,
) -> Result<()> {
    let Some(to) = order.recipient_email.as_deref() else {
        return Ok(());
    };
    let message = templates.invoice_issued(
        to,
        &crate::mail::templates::InvoiceIssued {
            customer_name: order.recipient_name.clone(),
            order_id: order.order_id,
            order_number: order.order_number.clone(),
            invoice_number: invoice.number.map(|n| n.to_string()).unwrap_or_default(),
            series: invoice.series.map(|s| s.to_string()).unwrap_or_default(),
            access_key: invoice.access_key.clone().unwrap_or_default(),
            pdf_url: invoice.pdf_url.clone(),
        },
    )?;
    crate::jobs::enqueue(
        conn,
        &crate::jobs::send_email::SendEmail {
            message,
            key: Some(format!("invoice_issued:{}", order.order_id)),
            order_id: Some(order.order_id),
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::PgPool;

    use super::*;
    use crate::invoices::sandbox::SandboxNfe;

    fn snapshot(uf: &str) -> OrderSnapshot {
        OrderSnapshot {
            order_id: Uuid::now_v7(),
            order_number: "CART-ABCDEFGH".into(),
            recipient_name: "Maria Silva".into(),
            recipient_cpf: "52998224725".into(),
            recipient_email: Some("maria@example.com".into()),
            address: RecipientAddress {
                street: "Rua A".into(),
                number: "10".into(),
                complement: None,
                district: "Centro".into(),
                city: "Rio de Janeiro".into(),
                uf: uf.into(),
                cep: "20040002".into(),
            },
            items: vec![
                SnapshotItem {
                    sku: "CAM-1".into(),
                    name: "Camiseta".into(),
                    ncm: Some("6109.10.00".into()),
                    unit_price_cents: 5000,
                    quantity: 2,
                },
                SnapshotItem {
                    sku: "CAN-1".into(),
                    name: "Caneca".into(),
                    ncm: Some("69120000".into()),
                    unit_price_cents: 2500,
                    quantity: 1,
                },
            ],
            shipping_cents: 1500,
            discount_cents: 1000,
            total_cents: 13000,
            payment: Some(PaymentMeans::CreditCard),
        }
    }

    /// A real order row (the invoice's foreign key) for a snapshot.
    async fn placed(conn: &mut PgConnection, order: &mut OrderSnapshot) {
        use crate::orders::{
            ShippingAddress,
            create::{self, ChosenShipping, NewOrder, NewOrderItem},
        };
        let user_id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO users (id, name, email, password_hash) VALUES ($1, 'Maria', $2, '!')",
        )
        .bind(user_id)
        .bind(format!("{}@example.com", user_id.simple()))
        .execute(&mut *conn)
        .await
        .unwrap();
        // Order lines refer to real products.
        let mut products = Vec::new();
        for item in &order.items {
            let id = Uuid::now_v7();
            let tag = id.simple().to_string();
            sqlx::query(
                "INSERT INTO products (id, sku, name, slug, price_cents, stock, weight_grams,
                                       height_cm, width_cm, length_cm, ncm)
                 VALUES ($1, $2, $3, $4, $5, 10, 300, 5, 12, 18, '09012100')",
            )
            .bind(id)
            .bind(format!("SKU-{}", &tag[..12]))
            .bind(&item.name)
            .bind(format!("p-{tag}"))
            .bind(item.unit_price_cents)
            .execute(&mut *conn)
            .await
            .unwrap();
            products.push(id);
        }
        let created = create::insert(
            conn,
            &NewOrder {
                user_id,
                items: products
                    .iter()
                    .zip(&order.items)
                    .map(|(product_id, i)| NewOrderItem {
                        product_id: *product_id,
                        sku: i.sku.clone(),
                        name: i.name.clone(),
                        unit_price_cents: i.unit_price_cents,
                        quantity: i32::try_from(i.quantity).unwrap(),
                        ncm: i.ncm.clone(),
                        weight_grams: None,
                    })
                    .collect(),
                coupon: None,
                shipping: ChosenShipping {
                    carrier: "Correios".into(),
                    service: "PAC".into(),
                    price_cents: order.shipping_cents,
                    days: 5,
                    address: ShippingAddress {
                        label: None,
                        recipient: "Maria".into(),
                        cep: order.address.cep.clone(),
                        street: order.address.street.clone(),
                        number: order.address.number.clone(),
                        complement: None,
                        district: order.address.district.clone(),
                        city: order.address.city.clone(),
                        state: order.address.uf.clone(),
                    },
                },
                recipient_cpf: order.recipient_cpf.clone(),
                expires_at: Utc::now() + chrono::Duration::minutes(30),
            },
        )
        .await
        .unwrap();
        order.order_id = created.id;
    }

    /// A migrated database holding `order` as a real order; a connection to it.
    async fn placed_in(
        pool: &PgPool,
        mut order: OrderSnapshot,
    ) -> (sqlx::pool::PoolConnection<sqlx::Postgres>, OrderSnapshot) {
        crate::db::migrate(pool).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        placed(&mut conn, &mut order).await;
        (conn, order)
    }

    fn quick_poll() -> PollSettings {
        PollSettings {
            timeout: Duration::from_millis(200),
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        }
    }

    #[test]
    fn the_request_uses_the_interstate_cfop_and_the_order_totals() {
        let order = snapshot("RJ");
        let request = invoice_request(&order, &FiscalConfig::default(), Utc::now()).unwrap();
        assert_eq!(request.reference, order.order_id.to_string());
        assert!(request.items.iter().all(|i| i.cfop == 6102));
        assert_eq!(request.items[0].ncm, "61091000");
        assert_eq!(request.totals.products_cents, 12500);
        assert_eq!(request.totals.total_cents, 13000);

        let local = invoice_request(&snapshot("SP"), &FiscalConfig::default(), Utc::now()).unwrap();
        assert!(local.items.iter().all(|i| i.cfop == 5102));
    }

    #[test]
    fn an_item_without_ncm_or_totals_that_do_not_add_up_are_permanent_rejections() {
        let mut order = snapshot("SP");
        order.items[1].ncm = None;
        let err = invoice_request(&order, &FiscalConfig::default(), Utc::now()).unwrap_err();
        assert!(
            err.is_permanent() && err.to_string().contains("CAN-1"),
            "{err}"
        );

        let mut order = snapshot("SP");
        order.total_cents += 1;
        assert!(
            invoice_request(&order, &FiscalConfig::default(), Utc::now())
                .unwrap_err()
                .is_permanent()
        );
    }

    #[sqlx::test(migrations = false)]
    async fn the_snapshot_says_how_the_order_was_paid(pool: PgPool) {
        let (mut conn, order) = placed_in(&pool, snapshot("SP")).await;
        assert_eq!(
            super::snapshot(&mut conn, order.order_id)
                .await
                .unwrap()
                .payment,
            None,
            "no payment yet"
        );
        // A PIX charge that expired, then a card payment that went through: the paid one.
        for (method, paid) in [("pix", false), ("credit_card", true)] {
            sqlx::query(
                "INSERT INTO payments (id, order_id, method, provider, amount_cents, status, paid_at)
                 VALUES ($1, $2, $3, 'sandbox', 13000, $4, CASE WHEN $5 THEN now() END)",
            )
            .bind(Uuid::now_v7())
            .bind(order.order_id)
            .bind(method)
            .bind(if paid { "paid" } else { "expired" })
            .bind(paid)
            .execute(&mut *conn)
            .await
            .unwrap();
        }
        let read = super::snapshot(&mut conn, order.order_id).await.unwrap();
        assert_eq!(read.payment, Some(PaymentMeans::CreditCard));
        let request = invoice_request(&read, &FiscalConfig::default(), Utc::now()).unwrap();
        assert_eq!(request.payment.map(PaymentMeans::nfe_code), Some("03"));
    }

    #[sqlx::test(migrations = false)]
    async fn an_authorised_invoice_is_recorded_once_and_never_overwritten(pool: PgPool) {
        let (mut conn, order) = placed_in(&pool, snapshot("SP")).await;
        let fiscal = FiscalConfig::default();
        let provider = SandboxNfe::new(fiscal.clone(), "http://localhost:3000");

        let started = start(&mut conn, order.order_id).await.unwrap();
        assert_eq!(started.status, InvoiceStatus::Pending);
        let outcome = emit(
            &provider,
            &fiscal,
            &quick_poll(),
            &order,
            started.created_at,
        )
        .await
        .unwrap();
        let first = record(&mut conn, order.order_id, &outcome).await.unwrap();
        assert!(first.newly_authorized);
        assert_eq!(first.invoice.status, InvoiceStatus::Authorized);
        assert_eq!(first.invoice.access_key.as_ref().map(String::len), Some(44));

        // A retry: same row, same key, no second "issued".
        let again = start(&mut conn, order.order_id).await.unwrap();
        assert_eq!(again.id, started.id);
        let outcome = emit(&provider, &fiscal, &quick_poll(), &order, again.created_at)
            .await
            .unwrap();
        let second = record(&mut conn, order.order_id, &outcome).await.unwrap();
        assert!(!second.newly_authorized);
        assert_eq!(second.invoice.access_key, first.invoice.access_key);

        let rejected = record(
            &mut conn,
            order.order_id,
            &EmitOutcome::Rejected {
                message: "late".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(rejected.invoice.status, InvoiceStatus::Authorized);
    }

    #[sqlx::test(migrations = false)]
    async fn a_snapshot_without_ncm_ends_rejected_with_the_reason(pool: PgPool) {
        let mut order = snapshot("SP");
        order.items[0].ncm = None;
        let (mut conn, order) = placed_in(&pool, order).await;
        let fiscal = FiscalConfig::default();
        let provider = SandboxNfe::new(fiscal.clone(), "http://localhost:3000");
        let started = start(&mut conn, order.order_id).await.unwrap();
        let outcome = emit(
            &provider,
            &fiscal,
            &quick_poll(),
            &order,
            started.created_at,
        )
        .await
        .unwrap();
        let recorded = record(&mut conn, order.order_id, &outcome).await.unwrap();
        assert_eq!(recorded.invoice.status, InvoiceStatus::Rejected);
        assert!(
            recorded
                .invoice
                .message
                .as_deref()
                .unwrap()
                .contains("CAM-1")
        );
        assert!(!recorded.newly_authorized);
    }
}
