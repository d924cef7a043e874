//! Payment webhooks over HTTP: signatures, deduplication, and what reconciliation makes of
//! the stored events (driven directly here, as the worker's job would).

#![allow(clippy::unwrap_used)]

use cart_core::{
    mail::templates::{Branding, Templates},
    payments::{
        flow::{self, PaymentMethod},
        reconcile::{self, Outcome},
        signature::sign_stripe,
    },
};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::payments::{
    ORDER_TOTAL, World, buyer, jobs_with_key, order_state, payment_settings, place_order,
    post_webhook, propay_paid, stripe_event,
};

fn templates() -> Templates {
    Templates::new(Branding::new("Loja Teste", "http://localhost:3000")).unwrap()
}

/// An order with a pending sandbox PIX payment (initiated directly); its id and txid.
async fn pending_pix(world: &World) -> (Uuid, Uuid, String) {
    let app = &world.app;
    let buyer = buyer(app).await;
    let order_id = place_order(&app.pool, buyer.id).await;
    let settings = &app.state.config.payments;
    let mut conn = app.pool.acquire().await.unwrap();
    let started = flow::start(&mut conn, settings, buyer.id, order_id, PaymentMethod::Pix)
        .await
        .unwrap();
    let payment_id = started.payment().id;
    flow::initiate(&app.pool, settings, payment_id)
        .await
        .unwrap();
    let txid = flow::get(&mut conn, payment_id)
        .await
        .unwrap()
        .txid
        .unwrap();
    (order_id, payment_id, txid)
}

async fn event_ids(pool: &PgPool) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT id FROM webhook_events ORDER BY received_at")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn reconcile_all(pool: &PgPool) -> Vec<Outcome> {
    let mut outcomes = vec![];
    for id in event_ids(pool).await {
        let mut conn = pool.acquire().await.unwrap();
        outcomes.push(
            reconcile::reconcile_webhook_event(&mut conn, &templates(), id)
                .await
                .unwrap(),
        );
    }
    outcomes
}

#[sqlx::test(migrations = false)]
async fn a_bad_or_missing_signature_is_401_and_stores_nothing(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let app = &world.app;
    let (body, _) = propay_paid("ev-x", "tx", 100);
    for headers in [
        vec![("x-propay-signature", "00".repeat(32))],
        vec![("x-propay-signature", "not hex".into())],
        vec![],
    ] {
        let refused = post_webhook(app, "/api/webhooks/payment", &headers, &body).await;
        refused.assert_problem(401);
    }
    let (stripe_body, _) = stripe_event("payment_intent.succeeded", "evt", "x", Uuid::now_v7());
    post_webhook(
        app,
        "/api/webhooks/stripe",
        &[(
            "stripe-signature",
            sign_stripe("whsec_other", chrono::Utc::now().timestamp(), &stripe_body),
        )],
        &stripe_body,
    )
    .await
    .assert_problem(401);
    post_webhook(
        app,
        "/api/webhooks/openpix",
        &[("x-webhook-signature", "AAAA".into())],
        &body,
    )
    .await
    .assert_problem(401);
    assert!(event_ids(&app.pool).await.is_empty());
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_stale_stripe_timestamp_is_401(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let app = &world.app;
    let (body, _) = stripe_event("payment_intent.succeeded", "evt_old", "x", Uuid::now_v7());
    let stale = chrono::Utc::now().timestamp() - 301;
    let header = sign_stripe(cart_core::payments::flow::TEST_STRIPE_SECRET, stale, &body);
    post_webhook(
        app,
        "/api/webhooks/stripe",
        &[("stripe-signature", header)],
        &body,
    )
    .await
    .assert_problem(401);
    // Any of several v1 values may match (secret rotation).
    let now = chrono::Utc::now().timestamp();
    let good = sign_stripe(cart_core::payments::flow::TEST_STRIPE_SECRET, now, &body);
    let rotated = format!(
        "t={now},v1={},{}",
        "ab".repeat(32),
        good.split(',').nth(1).unwrap()
    );
    post_webhook(
        app,
        "/api/webhooks/stripe",
        &[("stripe-signature", rotated)],
        &body,
    )
    .await
    .assert_status(200);
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn malformed_json_with_a_valid_signature_is_400(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let app = &world.app;
    let body = b"{\"event_id\": \"e1\", \"event\": ".to_vec();
    let signature = cart_core::payments::signature::sign_propay(
        cart_core::payments::flow::TEST_PROPAY_SECRET.as_bytes(),
        &body,
    );
    post_webhook(
        app,
        "/api/webhooks/payment",
        &[("x-propay-signature", signature)],
        &body,
    )
    .await
    .assert_problem(400);
    assert!(event_ids(&app.pool).await.is_empty());
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_hundred_concurrent_replays_change_the_order_once(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let app = &world.app;
    let (order_id, _payment_id, txid) = pending_pix(&world).await;
    let (body, signature) = propay_paid("replayed-1", &txid, ORDER_TOTAL);

    let replays = (0..100).map(|_| {
        let headers = [("x-propay-signature", signature.clone())];
        let body = &body;
        async move { post_webhook(app, "/api/webhooks/payment", &headers, body).await }
    });
    let answers = futures::future::join_all(replays).await;
    assert!(answers.iter().all(|a| a.status == 200));
    let fresh = answers
        .iter()
        .filter(|a| a.body["duplicate"] == false)
        .count();
    assert_eq!(fresh, 1);
    let events = event_ids(&app.pool).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        jobs_with_key(&app.pool, &format!("reconcile:{}", events[0])).await,
        1
    );

    // The same event reconciled by 100 concurrent runs (a job re-delivered after a crash),
    // plus 20 redeliveries under new event ids: one state change, one e-mail, one NF-e.
    let more = (0..20).map(|i| {
        let (body, signature) = propay_paid(&format!("redelivery-{i}"), &txid, ORDER_TOTAL);
        async move {
            post_webhook(
                app,
                "/api/webhooks/payment",
                &[("x-propay-signature", signature)],
                &body,
            )
            .await
        }
    });
    futures::future::join_all(more).await;
    let all_events = event_ids(&app.pool).await;
    assert_eq!(all_events.len(), 21);
    let runs = (0..100).map(|i| {
        let pool = app.pool.clone();
        let id = all_events[i % all_events.len()];
        async move {
            let mut conn = pool.acquire().await.unwrap();
            reconcile::reconcile_webhook_event(&mut conn, &templates(), id)
                .await
                .unwrap()
        }
    });
    let outcomes = futures::future::join_all(runs).await;
    assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Paid).count(), 1);

    assert_eq!(
        order_state(&app.pool, order_id).await,
        ("processing".into(), "paid".into())
    );
    let paid_events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM order_events WHERE order_id = $1 AND to_payment_status = 'paid'",
    )
    .bind(order_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(paid_events, 1);
    assert_eq!(
        jobs_with_key(&app.pool, &format!("payment_confirmed:{order_id}")).await,
        1
    );
    assert_eq!(
        jobs_with_key(&app.pool, &format!("nfe:{order_id}")).await,
        1
    );
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_wrong_amount_is_flagged_and_the_order_stays_unpaid(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let app = &world.app;
    let (order_id, payment_id, txid) = pending_pix(&world).await;
    let (body, signature) = propay_paid("short-1", &txid, ORDER_TOTAL - 1);
    post_webhook(
        app,
        "/api/webhooks/payment",
        &[("x-propay-signature", signature)],
        &body,
    )
    .await
    .assert_status(200);
    assert_eq!(
        reconcile_all(&app.pool).await,
        vec![Outcome::AmountMismatch]
    );
    assert_eq!(
        order_state(&app.pool, order_id).await,
        ("pending_payment".into(), "pending_payment".into())
    );
    let (status, paid): (String, Option<i64>) =
        sqlx::query_as("SELECT status, paid_amount_cents FROM payments WHERE id = $1")
            .bind(payment_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(status, "amount_mismatch");
    assert_eq!(paid, Some(ORDER_TOTAL - 1));
    assert_eq!(
        jobs_with_key(&app.pool, &format!("nfe:{order_id}")).await,
        0
    );
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_payment_after_expiry_is_recorded_and_refunded(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let app = &world.app;
    let (order_id, payment_id, txid) = pending_pix(&world).await;
    // The expiry ticker got there first.
    sqlx::query("UPDATE orders SET status = 'cancelled', payment_status = 'expired' WHERE id = $1")
        .bind(order_id)
        .execute(&app.pool)
        .await
        .unwrap();
    let (body, signature) = propay_paid("late-1", &txid, ORDER_TOTAL);
    post_webhook(
        app,
        "/api/webhooks/payment",
        &[("x-propay-signature", signature)],
        &body,
    )
    .await
    .assert_status(200);
    assert_eq!(
        reconcile_all(&app.pool).await,
        vec![Outcome::PaidAfterCancel]
    );
    assert_eq!(
        order_state(&app.pool, order_id).await,
        ("cancelled".into(), "refund_pending".into())
    );
    let status: String = sqlx::query_scalar("SELECT status FROM payments WHERE id = $1")
        .bind(payment_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "paid_after_cancel");
    assert_eq!(
        jobs_with_key(&app.pool, &format!("refund:{order_id}")).await,
        1
    );
    assert_eq!(
        jobs_with_key(&app.pool, &format!("nfe:{order_id}")).await,
        0
    );

    // The refund job gives the money back (sandbox) and closes the order.
    cart_core::payments::flow_refund::refund_order(&app.pool, &app.state.config.payments, order_id)
        .await
        .unwrap();
    assert_eq!(
        order_state(&app.pool, order_id).await,
        ("cancelled".into(), "refunded".into())
    );
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn an_event_we_do_not_act_on_is_acknowledged(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let app = &world.app;
    let body = serde_json::to_vec(
        &json!({"id": "evt_c", "type": "charge.refunded", "data": {"object": {}}}),
    )
    .unwrap();
    let header = sign_stripe(
        cart_core::payments::flow::TEST_STRIPE_SECRET,
        chrono::Utc::now().timestamp(),
        &body,
    );
    let ack = post_webhook(
        app,
        "/api/webhooks/stripe",
        &[("stripe-signature", header)],
        &body,
    )
    .await;
    ack.assert_status(200);
    assert_eq!(ack.body["received"], true);
    let jobs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE job_type = 'reconcile_payment'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(jobs, 0);
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn the_webhook_and_payment_routes_are_in_the_openapi_document(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let doc = world.app.get("/openapi.json", None).await;
    for route in [
        "/api/webhooks/payment",
        "/api/webhooks/openpix",
        "/api/webhooks/stripe",
        "/api/orders/{id}/pay",
        "/api/orders/{id}/payment",
        "/api/orders/{id}/invoice",
        "/api/sandbox/payments/{payment_id}/confirm",
    ] {
        assert!(doc.body["paths"].get(route).is_some(), "{route} missing");
    }
    world.stop().await;
}
