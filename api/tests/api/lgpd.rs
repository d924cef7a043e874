//! LGPD: the export holds the payments and invoices too, and an erasure reaches what echoes
//! the person outside `users`: webhook bodies, e-mail jobs to every address the account had,
//! and the outbox copies of the mail sent to them.

// Fixture helpers below are not `#[test]` functions, which clippy's test allowance skips.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use cart_core::{
    jobs::{Envelope, scrub_outbox::ScrubOutbox, send_email::SendEmail},
    mail::{EmailMessage, Mailer, outbox::OutboxMailer},
};
use cart_queue::{Handler, Run};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::TestApp;

/// Queues an `order_placed`-like e-mail to `to`.
pub(crate) async fn queue_email(pool: &PgPool, to: &str) {
    let mut conn = pool.acquire().await.unwrap();
    cart_core::jobs::enqueue(
        &mut conn,
        &SendEmail {
            message: message(to),
            key: None,
            order_id: None,
        },
    )
    .await
    .unwrap();
}

fn message(to: &str) -> EmailMessage {
    EmailMessage {
        to: to.into(),
        subject: "Recebemos o seu pedido".into(),
        text: "Pedido recebido.".into(),
        html: "<p>Pedido recebido.</p>".into(),
        tag: "order_placed".into(),
    }
}

/// A payment of `order_id` with a card secret, and the order's authorised invoice.
async fn pay_and_invoice(pool: &PgPool, order_id: Uuid, txid: &str) -> Uuid {
    let payment_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO payments (id, order_id, method, provider, amount_cents, status, txid,
                               client_secret, paid_amount_cents, paid_at, error)
         VALUES ($1, $2, 'pix', 'sandbox_pix', 7490, 'paid', $3, 'pi_secret_do_not_export',
                 7490, now(), 'Invalid API Key provided: sk_live_do_not_export')",
    )
    .bind(payment_id)
    .bind(order_id)
    .bind(txid)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO invoices (id, order_id, status, number, series, access_key, pdf_url, xml_url)
         VALUES ($1, $2, 'authorized', 42, 1, '35261211222333000181550010000000421000000427',
                 'https://nfe.example/42.pdf', 'https://nfe.example/42.xml')",
    )
    .bind(Uuid::now_v7())
    .bind(order_id)
    .execute(pool)
    .await
    .unwrap();
    payment_id
}

async fn store_webhook(pool: &PgPool, event_id: &str, body: &Value) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO webhook_events (id, provider, event_id, event_type, body, processed_at, outcome)
         VALUES ($1, 'propay', $2, 'pix.paid', $3, now(), 'paid')",
    )
    .bind(id)
    .bind(event_id)
    .bind(serde_json::to_vec(body).unwrap())
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn webhook_body(pool: &PgPool, id: Uuid) -> Value {
    let body: Vec<u8> = sqlx::query_scalar("SELECT body FROM webhook_events WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[sqlx::test(migrations = false)]
async fn the_export_holds_payments_and_invoices_without_provider_secrets(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.user().await;
    let order_id = crate::payments::place_order(&app.pool, user.id).await;
    let payment_id = pay_and_invoice(&app.pool, order_id, "TXEXPORT0001").await;
    let stranger = app.user().await;
    let other_order = crate::payments::place_order(&app.pool, stranger.id).await;
    pay_and_invoice(&app.pool, other_order, "TXEXPORT0002").await;

    let res = app.get("/api/users/me/export", Some(&user.token)).await;
    res.assert_status(200);
    let payments = res.body["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1, "only the caller's: {}", res.text);
    assert_eq!(payments[0]["id"], payment_id.to_string());
    assert_eq!(payments[0]["order_id"], order_id.to_string());
    assert_eq!(payments[0]["amount_cents"], 7490);
    assert!(payments[0].get("client_secret").is_none());
    assert!(!res.text.contains("pi_secret_do_not_export"));
    // The provider's own text (here quoting a key) is for admins, never for the buyer.
    assert!(!res.text.contains("sk_live_do_not_export"), "{}", res.text);
    let invoices = res.body["invoices"].as_array().unwrap();
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0]["order_id"], order_id.to_string());
    assert_eq!(
        invoices[0]["access_key"],
        "35261211222333000181550010000000421000000427"
    );
    assert_eq!(res.body["sessions"].as_array().unwrap().len(), 1);
}

#[sqlx::test(migrations = false)]
async fn an_erasure_scrubs_webhook_bodies_mail_jobs_and_the_outbox_for_every_address(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana.antiga@example.com").await;
    app.put(
        "/api/users/me",
        &json!({"name": "Ana Pereira Souza", "cpf": "529.982.247-25",
                "email": "ana.nova@example.com", "current_password": user.password}),
        Some(&user.token),
    )
    .await
    .assert_status(200);
    let stranger = app.user().await;
    queue_email(&app.pool, "ana.nova@example.com").await;
    queue_email(&app.pool, &stranger.email).await;

    let outbox_dir = std::env::temp_dir().join(format!("cart-lgpd-{}", Uuid::now_v7()));
    let outbox = OutboxMailer::new(&outbox_dir).unwrap();
    for (to, key) in [
        ("ana.antiga@example.com", "job-old"),
        ("ana.nova@example.com", "job-new"),
        (stranger.email.as_str(), "job-stranger"),
    ] {
        outbox.send(&message(to), key).await.unwrap();
    }

    let order_id = crate::payments::place_order(&app.pool, user.id).await;
    pay_and_invoice(&app.pool, order_id, "TXLGPD000000000000000001").await;
    let hers = store_webhook(
        &app.pool,
        "evt-hers",
        &json!({
            "event_id": "evt-hers", "event": "pix.paid", "txid": "TXLGPD000000000000000001",
            "amount_cents": 7490, "paid_at": "2026-12-01T10:00:00Z",
            "payer": {"name": "Ana Pereira Souza", "email": "ana.nova@example.com",
                      "taxID": "52998224725", "phone": "+5511988887777"},
        }),
    )
    .await;
    let strangers_body = json!({
        "event_id": "evt-other", "event": "pix.paid", "txid": "TXOTHER",
        "amount_cents": 100, "payer": {"name": "Bia", "email": stranger.email},
    });
    let theirs = store_webhook(&app.pool, "evt-other", &strangers_body).await;

    app.delete("/api/users/me", Some(&user.token))
        .await
        .assert_status(204);

    // The webhook keeps what the payment record needs, and nothing about her.
    let body = webhook_body(&app.pool, hers).await;
    let text = body.to_string();
    for gone in ["Ana", "ana.nova", "52998224725", "98888"] {
        assert!(!text.contains(gone), "{gone} left in {text}");
    }
    assert_eq!(body["txid"], "TXLGPD000000000000000001");
    assert_eq!(body["amount_cents"], 7490);
    assert_eq!(body["paid_at"], "2026-12-01T10:00:00Z");
    assert_eq!(body["event_id"], "evt-hers");
    assert_eq!(webhook_body(&app.pool, theirs).await, strangers_body);

    // No e-mail job to either of her addresses is left (the change notice to the old one
    // included); the stranger's stays.
    let jobs: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT job FROM apalis.jobs WHERE job_type = 'send_email'")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let jobs: Vec<String> = jobs
        .iter()
        .map(|j| String::from_utf8_lossy(j).into_owned())
        .collect();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert!(jobs[0].contains(&stranger.email));
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM email_changes")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(history, 0);

    // The outbox scrub is queued without her addresses in clear, and deletes her copies.
    let (payload, run_at_later): (Vec<u8>, bool) = sqlx::query_as(
        "SELECT job, run_at > now() FROM apalis.jobs WHERE job_type = 'scrub_outbox'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(run_at_later, "after any e-mail still being sent");
    let payload_text = String::from_utf8_lossy(&payload).into_owned();
    assert!(!payload_text.contains("ana."), "{payload_text}");
    let scrub: Envelope<ScrubOutbox> = serde_json::from_slice(&payload).unwrap();
    let deps = cart_worker::Deps {
        mailer: Arc::new(outbox),
        ..crate::payments::worker_deps(&app.pool)
    };
    let run = Run {
        job_id: "scrub".into(),
        attempt: 1,
        max_attempts: 10,
        request_id: "test".into(),
    };
    scrub.payload.run(&deps, &run).await.unwrap();
    let mut left: Vec<String> = std::fs::read_dir(&outbox_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["job-stranger.json"]);
    let _ = std::fs::remove_dir_all(&outbox_dir);

    let details: Value = sqlx::query_scalar(
        "SELECT details FROM lgpd_requests WHERE user_id = $1 AND kind = 'anonymisation'",
    )
    .bind(user.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(details["redacted"]["webhook_bodies"], 1);
    assert_eq!(details["deleted"]["earlier_emails"], 1);
}
