//! Timelines of orders built through the real flows: checkout, a sandbox PIX payment confirmed
//! by a signed webhook and reconciled, the NF-e emitted by the sandbox provider; and the ways
//! they go wrong.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{Level, Source, Timeline, TimelineEntry, timeline};
use crate::{
    invoices::{
        EmitOutcome, FiscalConfig, PollSettings,
        emit::{self, EmitRun, Emitter},
        sandbox::SandboxNfe,
    },
    mail::templates::{Branding, Templates},
    orders::{
        Order, OrderStatus, PaymentStatus, cancel,
        checkout::{CheckoutContext, CheckoutRequest, place_order},
        read::Viewer,
    },
    payments::{
        flow::{self, Initiated, PaymentMethod, PaymentSettings, Started},
        flow_refund,
        reconcile::{self, Outcome},
        signature::sign_propay,
        webhooks::{self, Ingested, PROPAY_PIX_PAID, SignatureHeaders, WebhookSource},
    },
    shipping::table::TableProvider,
    test_support::{insert_user, product},
    testing::TEST_PROPAY_SECRET,
};

fn templates() -> Templates {
    Templates::new(Branding::new("Loja", "https://loja.example")).unwrap()
}

/// A buyer with a CPF and an address, who put a coffee in the cart and checked out.
async fn placed_order(conn: &mut PgConnection) -> (Order, Uuid) {
    let user = insert_user(conn, Some("52998224725")).await;
    let address = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO addresses (id, user_id, label, recipient, cep, street, number, district,
                                city, state, is_default)
         VALUES ($1, $2, 'Casa', 'Maria Silva', '30130174', 'Rua Sergipe', '1014', 'Savassi',
                 'Belo Horizonte', 'MG', true)",
    )
    .bind(address)
    .bind(user)
    .execute(&mut *conn)
    .await
    .unwrap();
    let coffee = product(conn, 2590, 10).await;
    sqlx::query("INSERT INTO carts (user_id) VALUES ($1)")
        .bind(user)
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO cart_items (user_id, product_id, quantity) VALUES ($1, $2, 2)")
        .bind(user)
        .bind(coffee)
        .execute(&mut *conn)
        .await
        .unwrap();
    let templates = templates();
    let shipping = TableProvider::new();
    let ctx = CheckoutContext {
        shipping: &shipping,
        sender_cep: "01310100",
        payment_ttl: Duration::from_secs(30 * 60),
        templates: &templates,
        max_unpaid_orders: 0,
    };
    let request = CheckoutRequest {
        address_id: address,
        shipping_service: "PAC".into(),
    };
    let order = place_order(conn, &ctx, user, &request).await.unwrap();
    (order, user)
}

/// A PIX payment for the order, its charge created by the sandbox provider.
async fn pending_pix(pool: &PgPool, settings: &PaymentSettings, order: &Order, user: Uuid) -> Uuid {
    let mut conn = pool.acquire().await.unwrap();
    let Started::New(payment) =
        flow::start(&mut conn, settings, user, order.id, PaymentMethod::Pix)
            .await
            .unwrap()
    else {
        panic!("a new payment");
    };
    let initiated = flow::initiate(pool, settings, payment.id).await.unwrap();
    assert!(matches!(initiated, Initiated::Pending(_)), "{initiated:?}");
    payment.id
}

/// What the provider (here, the sandbox confirmation) sends when the payer paid `amount_cents`.
async fn pix_paid_webhook(conn: &mut PgConnection, payment_id: Uuid, amount_cents: i64) -> Uuid {
    let settings = PaymentSettings::for_tests();
    let txid = crate::payments::sandbox::txid_for(payment_id);
    let body = serde_json::to_vec(&serde_json::json!({
        "event_id": format!("ev-{payment_id}"),
        "event": PROPAY_PIX_PAID,
        "txid": txid,
        "amount_cents": amount_cents,
        "paid_at": chrono::Utc::now(),
    }))
    .unwrap();
    let signature = sign_propay(TEST_PROPAY_SECRET.as_bytes(), &body);
    let headers = SignatureHeaders {
        propay: Some(&signature),
        ..Default::default()
    };
    let ingested = webhooks::ingest(
        conn,
        &settings.verifiers,
        WebhookSource::ProPay,
        &headers,
        &body,
    )
    .await
    .unwrap();
    let Ingested::Stored { webhook_event_id } = ingested else {
        panic!("a new event");
    };
    webhook_event_id
}

async fn reconcile(conn: &mut PgConnection, webhook_event_id: Uuid) -> Outcome {
    let settings = PaymentSettings::for_tests();
    reconcile::reconcile_webhook_event(conn, &templates(), &settings.providers, webhook_event_id)
        .await
        .unwrap()
}

async fn emit_invoice(pool: &PgPool, order_id: Uuid) -> EmitRun {
    let fiscal = FiscalConfig::default();
    let provider = SandboxNfe::new(fiscal.clone(), "https://loja.example");
    let templates = templates();
    let emitter = Emitter {
        provider: &provider,
        fiscal: &fiscal,
        poll: &PollSettings::default(),
        templates: &templates,
    };
    emit::emit_for_order(pool, &emitter, order_id)
        .await
        .unwrap()
}

/// A checked-out order paid in full by PIX and reconciled; returns it with its buyer.
async fn paid_order(pool: &PgPool) -> (Order, Uuid, Uuid) {
    let mut conn = pool.acquire().await.unwrap();
    let (order, user) = placed_order(&mut conn).await;
    let settings = PaymentSettings::for_tests();
    let payment = pending_pix(pool, &settings, &order, user).await;
    let event = pix_paid_webhook(&mut conn, payment, order.total_cents).await;
    assert_eq!(reconcile(&mut conn, event).await, Outcome::Paid);
    (order, user, payment)
}

async fn timeline_of(pool: &PgPool, order_id: Uuid) -> Timeline {
    timeline(pool, order_id).await.unwrap().expect("the order")
}

/// The entries kept in the store's own tables (the queue's are asserted on their own).
fn records(timeline: &Timeline) -> Vec<(Source, &str)> {
    timeline
        .entries
        .iter()
        .filter(|e| !matches!(e.source, Source::Job | Source::Email))
        .map(|e| (e.source, e.summary.as_str()))
        .collect()
}

fn find<'a>(timeline: &'a Timeline, source: Source, text: &str) -> &'a TimelineEntry {
    timeline
        .entries
        .iter()
        .find(|e| e.source == source && e.summary.contains(text))
        .unwrap_or_else(|| panic!("no {source} entry with {text:?} in {:#?}", timeline.entries))
}

#[sqlx::test(migrations = false)]
async fn a_paid_and_invoiced_order_tells_its_story_in_order(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let (order, user) = placed_order(&mut conn).await;
    let settings = PaymentSettings::for_tests();
    let payment = pending_pix(&pool, &settings, &order, user).await;
    let total = crate::money::format_brl(order.total_cents);

    let event = pix_paid_webhook(&mut conn, payment, order.total_cents).await;
    // Before reconciliation the event shows already: a reconciliation that keeps failing is
    // what an operator looks for.
    let waiting = timeline_of(&pool, order.id).await;
    assert_eq!(
        records(&waiting),
        vec![
            (
                Source::Order,
                "placed: pending_payment, pending_payment (by buyer)"
            ),
            (
                Source::Payment,
                format!("PIX payment of {total} started with sandbox_pix (now pending)").as_str()
            ),
            (Source::Payment, "charge created; waiting for the payer"),
            (
                Source::Webhook,
                "propay pix.paid received; not reconciled yet"
            ),
        ]
    );

    assert_eq!(reconcile(&mut conn, event).await, Outcome::Paid);
    let named: Option<Uuid> =
        sqlx::query_scalar("SELECT payment_id FROM webhook_events WHERE id = $1")
            .bind(event)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(named, Some(payment), "reconciliation records the payment");
    let EmitRun::Authorized(invoice) = emit_invoice(&pool, order.id).await else {
        panic!("the sandbox authorises");
    };

    let story = timeline_of(&pool, order.id).await;
    assert_eq!(story.order.id, order.id);
    assert_eq!(story.order.number, order.number);
    assert_eq!(story.order.status, OrderStatus::Processing);
    assert_eq!(story.order.payment_status, PaymentStatus::Paid);
    assert_eq!(story.order.total_cents, order.total_cents);
    assert!(!story.order.buyer_anonymised);
    assert_eq!(
        story.order.buyer_email,
        Some(format!("{}@example.com", user.simple()))
    );
    let authorised = format!(
        "NF-e authorised: number {}, series {}",
        invoice.number.unwrap(),
        invoice.series.unwrap()
    );
    assert_eq!(
        records(&story),
        vec![
            (
                Source::Order,
                "placed: pending_payment, pending_payment (by buyer)"
            ),
            (
                Source::Payment,
                format!("PIX payment of {total} started with sandbox_pix (now paid)").as_str()
            ),
            (Source::Payment, format!("paid {total}").as_str()),
            (Source::Webhook, "propay pix.paid received"),
            // The event's outcome before the status change it caused (one transaction).
            (Source::Webhook, "propay pix.paid reconciled: paid"),
            (
                Source::Order,
                "payment confirmed: pending_payment, pending_payment → processing, paid (by system)"
            ),
            (Source::Invoice, "NF-e emission started"),
            (Source::Invoice, authorised.as_str()),
        ]
    );
    assert!(
        story.entries.windows(2).all(|w| w[0].at <= w[1].at),
        "oldest first"
    );
    assert!(story.entries.iter().all(|e| e.level == Level::Info));

    let reconciled = find(&story, Source::Webhook, "reconciled");
    assert_eq!(reconciled.details["payment_id"], payment.to_string());
    assert_eq!(reconciled.details["webhook_event_id"], event.to_string());
    assert_eq!(reconciled.details["outcome"], "paid");
    let paid = find(&story, Source::Payment, "paid R$");
    assert_eq!(paid.details["status"], "paid");
    assert_eq!(paid.details["paid_amount_cents"], order.total_cents);
    assert!(paid.details.get("client_secret").is_none());
    let placed = find(&story, Source::Order, "placed");
    assert_eq!(placed.details["actor"], user.to_string());

    // The jobs and e-mails (none has run: no worker here), each after what enqueued it.
    let mut queued: Vec<(&str, &str)> = story
        .entries
        .iter()
        .filter(|e| matches!(e.source, Source::Job | Source::Email))
        .map(|e| (e.source.as_str(), e.summary.split(':').next().unwrap()))
        .collect();
    queued.sort();
    let masked = format!("{}***@example.com", &user.simple().to_string()[..1]);
    let email = |tag: &str| format!("{tag} e-mail to {masked}");
    let emails = [
        email("invoice_issued"),
        email("order_placed"),
        email("payment_confirmed"),
    ];
    let mut expected: Vec<(&str, &str)> = emails.iter().map(|e| ("email", e.as_str())).collect();
    expected.extend([
        ("job", "emit_invoice"),
        ("job", "expire_order"),
        ("job", "initiate_payment"),
        ("job", "reconcile_payment"),
    ]);
    assert_eq!(queued, expected);
    let position = |source: Source, text: &str| {
        story
            .entries
            .iter()
            .position(|e| e.source == source && e.summary.starts_with(text))
            .unwrap_or_else(|| panic!("no {source} {text:?}"))
    };
    for (cause, effect) in [
        (
            (Source::Order, "placed"),
            (Source::Email, emails[1].as_str()),
        ),
        (
            (Source::Order, "placed"),
            (Source::Job, "expire_order: scheduled for"),
        ),
        (
            (Source::Payment, "PIX payment"),
            (Source::Job, "initiate_payment: pending"),
        ),
        (
            (Source::Webhook, "propay pix.paid received"),
            (Source::Job, "reconcile_payment"),
        ),
        (
            (Source::Order, "payment confirmed"),
            (Source::Job, "emit_invoice: pending"),
        ),
        (
            (Source::Order, "payment confirmed"),
            (Source::Email, emails[2].as_str()),
        ),
        (
            (Source::Invoice, "NF-e authorised"),
            (Source::Email, emails[0].as_str()),
        ),
    ] {
        assert!(
            position(cause.0, cause.1) < position(effect.0, effect.1),
            "{cause:?} before {effect:?}: {:#?}",
            story.entries
        );
    }
    let confirmation = find(&story, Source::Email, "payment_confirmed");
    assert_eq!(confirmation.details["to"], masked.as_str());
    assert_eq!(confirmation.details["tag"], "payment_confirmed");
    assert_eq!(confirmation.details["state"], "pending");
    assert!(
        confirmation.details["subject"]
            .as_str()
            .unwrap()
            .contains(&order.number)
    );
    let emission = find(&story, Source::Job, "emit_invoice");
    assert_eq!(emission.details["kind"], "emit_invoice");
    assert_eq!(emission.details["order_id"], order.id.to_string());
    assert!(!story.jobs_truncated);

    // The JSON the CLI prints and the board renders.
    let json = serde_json::to_value(&story).unwrap();
    assert_eq!(json["order"]["number"], order.number.as_str());
    assert_eq!(json["order"]["status"], "processing");
    assert_eq!(json["jobs_truncated"], false);
    let first = &json["entries"][0];
    assert_eq!(first["source"], "order");
    assert_eq!(first["level"], "info");
    assert!(first["at"].is_string() && first["summary"].is_string());
    assert!(first["details"].is_object());
}

#[sqlx::test(migrations = false)]
async fn money_that_does_not_match_and_a_rejected_nfe_stand_out(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let (order, user) = placed_order(&mut conn).await;
    let settings = PaymentSettings::for_tests();
    let payment = pending_pix(&pool, &settings, &order, user).await;
    let event = pix_paid_webhook(&mut conn, payment, 100).await;
    assert_eq!(reconcile(&mut conn, event).await, Outcome::AmountMismatch);
    emit::start(&mut conn, order.id).await.unwrap();
    emit::record(
        &mut conn,
        order.id,
        &EmitOutcome::Rejected {
            message: "Rejeição 539: duplicidade de NF-e".into(),
        },
    )
    .await
    .unwrap();

    let story = timeline_of(&pool, order.id).await;
    let held = find(&story, Source::Payment, "received R$ 1,00");
    assert_eq!(held.level, Level::Error);
    assert!(
        held.summary.contains("held for an operator"),
        "{}",
        held.summary
    );
    let reconciled = find(&story, Source::Webhook, "reconciled: amount_mismatch");
    assert_eq!(reconciled.level, Level::Error);
    assert_eq!(reconciled.details["payment_id"], payment.to_string());
    let rejected = find(&story, Source::Invoice, "NF-e rejected");
    assert_eq!(rejected.level, Level::Error);
    assert!(rejected.summary.contains("Rejeição 539"));
    // The order itself never moved.
    assert_eq!(story.order.status, OrderStatus::PendingPayment);
    assert!(
        !story
            .entries
            .iter()
            .any(|e| e.source == Source::Order && e.summary.contains("payment confirmed"))
    );
}

#[sqlx::test(migrations = false)]
async fn a_refunded_order_of_an_erased_account_shows_no_personal_data(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    let (order, user, payment) = paid_order(&pool).await;
    let admin = insert_user(&mut pool.acquire().await.unwrap(), None).await;
    let mut conn = pool.acquire().await.unwrap();
    cancel::cancel(
        &mut conn,
        order.id,
        Viewer {
            user_id: admin,
            is_admin: true,
        },
    )
    .await
    .unwrap();
    let settings = PaymentSettings::for_tests();
    let refunded = flow_refund::refund_order(&pool, &settings, order.id)
        .await
        .unwrap();
    assert_eq!(refunded.payments, vec![payment]);
    let email = format!("{}@example.com", user.simple());
    crate::users::privacy::anonymise(&mut conn, user)
        .await
        .unwrap();

    let story = timeline_of(&pool, order.id).await;
    assert_eq!(story.order.status, OrderStatus::Cancelled);
    assert_eq!(story.order.payment_status, PaymentStatus::Refunded);
    assert!(story.order.buyer_anonymised);
    assert_eq!(story.order.buyer_email, None);
    let total = crate::money::format_brl(order.total_cents);
    let cancelled = find(&story, Source::Order, "→ cancelled, refund_pending");
    assert!(
        cancelled.summary.ends_with(&format!("(by user {admin})")),
        "{}",
        cancelled.summary
    );
    let refund = find(&story, Source::Refund, "refunded");
    assert_eq!(
        refund.summary,
        format!("refunded {total} (sandbox_refund_{})", payment.simple())
    );
    let finished = find(&story, Source::Order, "→ cancelled, refunded");
    assert!(
        refund.at <= finished.at,
        "the money went back, then the order was done"
    );
    let json = serde_json::to_string(&story).unwrap();
    assert!(!json.contains(&email), "{json}");
    assert!(!json.contains("anonymized.invalid"), "{json}");
}

#[sqlx::test(migrations = false)]
async fn an_unknown_order_has_no_timeline(pool: PgPool) {
    crate::db::migrate(&pool).await.unwrap();
    assert_eq!(timeline(&pool, Uuid::now_v7()).await.unwrap(), None);
}

/// Events reconciled before `webhook_events.payment_id` existed are tied to their payments by
/// the migration that adds it, with the rules reconciliation uses.
#[sqlx::test(migrations = false)]
async fn events_reconciled_before_the_upgrade_are_found(pool: PgPool) {
    const ADDED: i64 = 20261208100000;
    cart_queue::schema::setup(&pool).await.unwrap();
    let before = sqlx::migrate::Migrator::with_migrations(
        crate::MIGRATOR
            .iter()
            .filter(|m| m.version < ADDED)
            .cloned()
            .collect(),
    );
    before.run(&pool).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let (order, user) = placed_order(&mut conn).await;
    let settings = PaymentSettings::for_tests();
    let pix = pending_pix(&pool, &settings, &order, user).await;
    let card = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO payments (id, order_id, method, provider, amount_cents, status,
                               provider_reference, error)
         VALUES ($1, $2, 'credit_card', 'sandbox_card', $3, 'failed', $4, 'card declined')",
    )
    .bind(card)
    .bind(order.id)
    .bind(order.total_cents)
    .bind(format!("pi_{}", card.simple()))
    .execute(&mut *conn)
    .await
    .unwrap();
    let events = [
        // (provider, event id, type, body, outcome)
        (
            "propay",
            "ev-1",
            "pix.paid",
            serde_json::json!({"event_id": "ev-1", "event": "pix.paid",
                "txid": crate::payments::sandbox::txid_for(pix), "amount_cents": 1}),
            "amount_mismatch",
        ),
        (
            "stripe",
            "evt_1",
            "payment_intent.payment_failed",
            serde_json::json!({"id": "evt_1", "type": "payment_intent.payment_failed",
                "data": {"object": {"id": format!("pi_{}", card.simple()), "metadata": {}}}}),
            "failed",
        ),
        (
            "stripe",
            "evt_2",
            "payment_intent.succeeded",
            serde_json::json!({"id": "evt_2", "type": "payment_intent.succeeded",
                "data": {"object": {"id": "pi_other", "amount_received": 5,
                    "metadata": {"payment_id": card.to_string()}}}}),
            "already_applied",
        ),
        (
            "propay",
            "ev-2",
            "pix.paid",
            serde_json::json!({"event_id": "ev-2", "event": "pix.paid", "txid": "nobody"}),
            "unknown_payment",
        ),
    ];
    for (provider, event_id, kind, body, outcome) in &events {
        sqlx::query(
            "INSERT INTO webhook_events (id, provider, event_id, event_type, body, processed_at,
                                         outcome)
             VALUES ($1, $2, $3, $4, $5, now(), $6)",
        )
        .bind(Uuid::now_v7())
        .bind(provider)
        .bind(event_id)
        .bind(kind)
        .bind(serde_json::to_vec(body).unwrap())
        .bind(outcome)
        .execute(&mut *conn)
        .await
        .unwrap();
    }
    // Not JSON PostgreSQL reads (a NUL): left alone rather than failing the upgrade.
    sqlx::query(
        "INSERT INTO webhook_events (id, provider, event_id, event_type, body, processed_at,
                                     outcome)
         VALUES ($1, 'propay', 'ev-nul', 'pix.paid', $2, now(), 'paid')",
    )
    .bind(Uuid::now_v7())
    .bind(br#"{"event":"pix.paid","txid":"x","note":"\u0000"}"#.as_slice())
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);

    crate::db::migrate(&pool).await.unwrap();
    let linked: Vec<(String, Option<Uuid>)> =
        sqlx::query_as("SELECT event_id, payment_id FROM webhook_events ORDER BY event_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        linked,
        vec![
            ("ev-1".to_owned(), Some(pix)),
            ("ev-2".to_owned(), None),
            ("ev-nul".to_owned(), None),
            ("evt_1".to_owned(), Some(card)),
            ("evt_2".to_owned(), Some(card)),
        ]
    );
    let story = timeline_of(&pool, order.id).await;
    for outcome in ["amount_mismatch", "failed", "already_applied"] {
        find(&story, Source::Webhook, &format!("reconciled: {outcome}"));
    }
    let declined = find(&story, Source::Payment, "payment failed");
    assert_eq!(declined.summary, "payment failed: card declined");
    assert_eq!(declined.level, Level::Warning);
}
