//! Payment webhooks over HTTP: signatures, deduplication, and what reconciliation makes of
//! the stored events (driven directly here, as the worker's job would).

#![allow(clippy::unwrap_used)]

use cart_core::{
    mail::templates::{Branding, Templates},
    payments::{
        flow::{self, PaymentMethod, PaymentSettings},
        reconcile::{self, Outcome},
        signature::{sign_openpix_hmac, sign_stripe},
    },
};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path},
};

use crate::payments::{
    OPENPIX_HMAC_SECRET, ORDER_TOTAL, OpenPixCharge, World, buyer, jobs_with_key, order_state,
    payment_settings, place_order, post_webhook, propay_paid, stripe_event,
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

/// Reconciles every stored event, as the worker's job would; answers their outcomes.
async fn reconcile_all(world: &World) -> Vec<Outcome> {
    let app = &world.app;
    let mut outcomes = vec![];
    for id in event_ids(&app.pool).await {
        let mut conn = app.pool.acquire().await.unwrap();
        outcomes.push(
            reconcile::reconcile_webhook_event(
                &mut conn,
                &templates(),
                &app.state.config.payments.providers,
                id,
            )
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
    assert!(event_ids(&app.pool).await.is_empty());
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_stale_stripe_timestamp_is_401(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let app = &world.app;
    let (body, _) = stripe_event("payment_intent.succeeded", "evt_old", "x", Uuid::now_v7());
    let stale = chrono::Utc::now().timestamp() - 301;
    let header = sign_stripe(cart_core::testing::TEST_STRIPE_SECRET, stale, &body);
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
    let good = sign_stripe(cart_core::testing::TEST_STRIPE_SECRET, now, &body);
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
        cart_core::testing::TEST_PROPAY_SECRET.as_bytes(),
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
        let providers = app.state.config.payments.providers.clone();
        let id = all_events[i % all_events.len()];
        async move {
            let mut conn = pool.acquire().await.unwrap();
            reconcile::reconcile_webhook_event(&mut conn, &templates(), &providers, id)
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
    assert_eq!(reconcile_all(&world).await, vec![Outcome::AmountMismatch]);
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
    assert_eq!(reconcile_all(&world).await, vec![Outcome::PaidAfterCancel]);
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
        cart_core::testing::TEST_STRIPE_SECRET,
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

// ---- Each route serves only its own providers -----------------------------------------

const OPENPIX_APP_ID: &str = "our-woovi-app-id";

fn openpix_settings(server: &MockServer) -> PaymentSettings {
    payment_settings(&[
        ("PIX_PROVIDER", "openpix"),
        ("OPENPIX_URL", &server.uri()),
        ("OPENPIX_APP_ID", OPENPIX_APP_ID),
    ])
}

/// A Woovi that creates the charges we ask for.
async fn woovi() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/charge"))
        .respond_with(OpenPixCharge)
        .mount(&server)
        .await;
    server
}

/// Woovi's answer to `GET /api/v1/charge/{payment_id}` asked with our AppID.
async fn woovi_charge(server: &MockServer, payment_id: Uuid, response: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/charge/{payment_id}")))
        .and(header("authorization", OPENPIX_APP_ID))
        .respond_with(response)
        .mount(server)
        .await;
}

/// The body of Woovi's charge GET (integrations.md §3a).
fn woovi_charge_body(payment_id: Uuid, status: &str, value: i64) -> Value {
    woovi_charge_paid(payment_id, status, value, value)
}

/// Woovi's charge GET where the Pix method paid `paid` of the charge's `value`.
fn woovi_charge_paid(payment_id: Uuid, status: &str, value: i64, paid: i64) -> Value {
    json!({"charge": {
        "status": status, "value": value, "correlationID": payment_id.to_string(),
        "globalID": "Q2hhcmdlOjYwM2U3NDlhNDI1NjAyYmJiZjRlN2JlZA==",
        "transactionID": "9134e2866f71427abf00241681624586",
        "paymentMethods": {"pix": {"value": paid, "status": status,
            "txId": "9134e2866f71427abf00241681624586"}}
    }})
}

/// A signed `OPENPIX:CHARGE_COMPLETED` for `payment_id`: the charge asked `asked`, the Pix
/// transaction paid `paid`.
fn openpix_paid(payment_id: Uuid, asked: i64, paid: i64) -> (Vec<u8>, String) {
    openpix_paid_by(
        payment_id,
        asked,
        paid,
        &format!("E{}", payment_id.simple()),
    )
}

/// Like [`openpix_paid`], naming the Pix transaction `end_to_end`.
fn openpix_paid_by(payment_id: Uuid, asked: i64, paid: i64, end_to_end: &str) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(&json!({
        "event": "OPENPIX:CHARGE_COMPLETED",
        "charge": {"correlationID": payment_id.to_string(), "value": asked, "status": "COMPLETED"},
        "pix": {"value": paid, "time": "2026-11-25T12:05:00Z", "endToEndId": end_to_end},
        "company": {"id": "another-woovi-account"}
    }))
    .unwrap();
    let signature = sign_openpix_hmac(OPENPIX_HMAC_SECRET, &body);
    (body, signature)
}

async fn post_openpix(world: &World, (body, signature): (Vec<u8>, String)) {
    post_webhook(
        &world.app,
        "/api/webhooks/openpix",
        &[("x-openpix-signature", signature)],
        &body,
    )
    .await
    .assert_status(200);
}

/// An order with a `pending` payment of `method` through the world's providers.
async fn started_payment(world: &World, method: PaymentMethod) -> (Uuid, Uuid) {
    let app = &world.app;
    let buyer = buyer(app).await;
    let order_id = place_order(&app.pool, buyer.id).await;
    let settings = &app.state.config.payments;
    let mut conn = app.pool.acquire().await.unwrap();
    let started = flow::start(&mut conn, settings, buyer.id, order_id, method)
        .await
        .unwrap();
    let payment_id = started.payment().id;
    flow::initiate(&app.pool, settings, payment_id)
        .await
        .unwrap();
    (order_id, payment_id)
}

async fn outcomes(pool: &PgPool) -> Vec<Option<String>> {
    sqlx::query_scalar("SELECT outcome FROM webhook_events ORDER BY received_at")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn the_openpix_route_is_404_unless_openpix_is_the_pix_provider(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let app = &world.app;
    let (body, signature) = openpix_paid(Uuid::now_v7(), ORDER_TOTAL, ORDER_TOTAL);
    let refused = post_webhook(
        app,
        "/api/webhooks/openpix",
        &[("x-openpix-signature", signature)],
        &body,
    )
    .await;
    refused.assert_problem(404);
    assert_eq!(refused.body["detail"], "no such route");
    assert!(event_ids(&app.pool).await.is_empty());
    // The sandbox's own routes are there (a missing signature: 401).
    for route in ["/api/webhooks/payment", "/api/webhooks/stripe"] {
        post_webhook(app, route, &[], b"{}")
            .await
            .assert_problem(401);
    }
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn the_payment_route_is_404_when_openpix_is_the_pix_provider(pool: PgPool) {
    let server = woovi().await;
    let world = World::start(pool, openpix_settings(&server), false).await;
    let app = &world.app;
    let (body, signature) = propay_paid("ev-404", "tx-404", ORDER_TOTAL);
    post_webhook(
        app,
        "/api/webhooks/payment",
        &[("x-propay-signature", signature)],
        &body,
    )
    .await
    .assert_problem(404);
    // Its own route checks signatures as before.
    post_webhook(
        app,
        "/api/webhooks/openpix",
        &[("x-webhook-signature", "AAAA".into())],
        &body,
    )
    .await
    .assert_problem(401);
    assert!(event_ids(&app.pool).await.is_empty());
    // The sandbox card keeps the Stripe route.
    post_webhook(app, "/api/webhooks/stripe", &[], b"{}")
        .await
        .assert_problem(401);
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_forged_openpix_event_that_our_account_does_not_confirm_changes_nothing(pool: PgPool) {
    let server = woovi().await;
    let world = World::start(pool, openpix_settings(&server), false).await;
    let app = &world.app;
    // Someone else's Woovi account made and paid a charge carrying our payment id; ours
    // has no such charge, or let it expire unpaid, or has it for another value.
    let (not_ours, not_ours_payment) = started_payment(&world, PaymentMethod::Pix).await;
    woovi_charge(
        &server,
        not_ours_payment,
        ResponseTemplate::new(404).set_body_json(json!({"error": "Cobrança não encontrada"})),
    )
    .await;
    let (unpaid, unpaid_payment) = started_payment(&world, PaymentMethod::Pix).await;
    woovi_charge(
        &server,
        unpaid_payment,
        ResponseTemplate::new(200).set_body_json(woovi_charge_body(
            unpaid_payment,
            "EXPIRED",
            ORDER_TOTAL,
        )),
    )
    .await;
    let (other_value, other_value_payment) = started_payment(&world, PaymentMethod::Pix).await;
    woovi_charge(
        &server,
        other_value_payment,
        ResponseTemplate::new(200).set_body_json(woovi_charge_body(
            other_value_payment,
            "COMPLETED",
            100,
        )),
    )
    .await;
    for payment_id in [not_ours_payment, unpaid_payment, other_value_payment] {
        post_openpix(&world, openpix_paid(payment_id, ORDER_TOTAL, ORDER_TOTAL)).await;
    }

    assert_eq!(reconcile_all(&world).await, vec![Outcome::Unconfirmed; 3]);
    assert_eq!(
        outcomes(&app.pool).await,
        vec![Some("unconfirmed".to_owned()); 3]
    );
    for order_id in [not_ours, unpaid, other_value] {
        assert_eq!(
            order_state(&app.pool, order_id).await,
            ("pending_payment".into(), "pending_payment".into())
        );
        assert_eq!(
            jobs_with_key(&app.pool, &format!("nfe:{order_id}")).await,
            0
        );
    }
    let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM payments")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(statuses, vec!["pending"; 3]);
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn an_openpix_event_our_account_confirms_pays_and_an_outage_is_retried(pool: PgPool) {
    let server = woovi().await;
    let world = World::start(pool, openpix_settings(&server), false).await;
    let app = &world.app;
    let (order_id, payment_id) = started_payment(&world, PaymentMethod::Pix).await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/charge/{payment_id}")))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    woovi_charge(
        &server,
        payment_id,
        ResponseTemplate::new(200).set_body_json(woovi_charge_body(
            payment_id,
            "COMPLETED",
            ORDER_TOTAL,
        )),
    )
    .await;
    post_openpix(&world, openpix_paid(payment_id, ORDER_TOTAL, ORDER_TOTAL)).await;
    let event = event_ids(&app.pool).await[0];
    let providers = &app.state.config.payments.providers;

    // Woovi is down: the job fails (and is retried), the event is not used up.
    let mut conn = app.pool.acquire().await.unwrap();
    let err = reconcile::reconcile_webhook_event(&mut conn, &templates(), providers, event)
        .await
        .unwrap_err();
    assert!(
        matches!(err, cart_core::Error::Unavailable { .. }),
        "{err:?}"
    );
    assert_eq!(outcomes(&app.pool).await, vec![None]);
    assert_eq!(
        order_state(&app.pool, order_id).await,
        ("pending_payment".into(), "pending_payment".into())
    );

    let outcome = reconcile::reconcile_webhook_event(&mut conn, &templates(), providers, event)
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Paid);
    assert_eq!(
        order_state(&app.pool, order_id).await,
        ("processing".into(), "paid".into())
    );
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_forged_event_before_the_payment_neither_pays_nor_shadows_the_genuine_one(pool: PgPool) {
    let server = woovi().await;
    let world = World::start(pool, openpix_settings(&server), false).await;
    let app = &world.app;
    let (order_id, payment_id) = started_payment(&world, PaymentMethod::Pix).await;
    woovi_charge(
        &server,
        payment_id,
        ResponseTemplate::new(200).set_body_json(woovi_charge_body(
            payment_id,
            "ACTIVE",
            ORDER_TOTAL,
        )),
    )
    .await;
    // Another Woovi account's signed event names our charge before the buyer has paid.
    post_openpix(
        &world,
        openpix_paid_by(payment_id, ORDER_TOTAL, 1, "E-forged"),
    )
    .await;
    let forged = event_ids(&app.pool).await[0];
    let providers = &app.state.config.payments.providers;
    let mut conn = app.pool.acquire().await.unwrap();
    let err = reconcile::reconcile_webhook_event(&mut conn, &templates(), providers, forged)
        .await
        .unwrap_err();
    assert!(matches!(err, cart_core::Error::TryAgain(_)), "{err:?}");
    assert_eq!(outcomes(&app.pool).await, vec![None]);
    assert_eq!(
        order_state(&app.pool, order_id).await,
        ("pending_payment".into(), "pending_payment".into())
    );

    // The buyer pays: Woovi's genuine event is stored beside it, not dropped as a duplicate.
    server.reset().await;
    woovi_charge(
        &server,
        payment_id,
        ResponseTemplate::new(200).set_body_json(woovi_charge_body(
            payment_id,
            "COMPLETED",
            ORDER_TOTAL,
        )),
    )
    .await;
    post_openpix(
        &world,
        openpix_paid_by(payment_id, ORDER_TOTAL, ORDER_TOTAL, "E-genuine"),
    )
    .await;
    assert_eq!(event_ids(&app.pool).await.len(), 2);
    // The forged event's retry now finds the charge paid in our account and records what our
    // account says was paid, not its own 1 centavo; the genuine one then changes nothing.
    assert_eq!(
        reconcile_all(&world).await,
        vec![Outcome::Paid, Outcome::AlreadyApplied]
    );
    assert_eq!(
        order_state(&app.pool, order_id).await,
        ("processing".into(), "paid".into())
    );
    assert_eq!(paid_amount(&app.pool, payment_id).await, Some(ORDER_TOTAL));
    world.stop().await;
}

async fn paid_amount(pool: &PgPool, payment_id: Uuid) -> Option<i64> {
    sqlx::query_scalar("SELECT paid_amount_cents FROM payments WHERE id = $1")
        .bind(payment_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn openpix_records_what_our_account_shows_paid_not_what_the_body_says(pool: PgPool) {
    let server = woovi().await;
    let world = World::start(pool, openpix_settings(&server), false).await;
    let app = &world.app;
    // Paid in full in our account; the event's body claims less.
    let (full_order, full_payment) = started_payment(&world, PaymentMethod::Pix).await;
    woovi_charge(
        &server,
        full_payment,
        ResponseTemplate::new(200).set_body_json(woovi_charge_body(
            full_payment,
            "COMPLETED",
            ORDER_TOTAL,
        )),
    )
    .await;
    post_openpix(
        &world,
        openpix_paid(full_payment, ORDER_TOTAL, ORDER_TOTAL - 1000),
    )
    .await;
    // Our account's Pix method paid less than the charge; the event's body claims the total.
    let (short_order, short_payment) = started_payment(&world, PaymentMethod::Pix).await;
    woovi_charge(
        &server,
        short_payment,
        ResponseTemplate::new(200).set_body_json(woovi_charge_paid(
            short_payment,
            "COMPLETED",
            ORDER_TOTAL,
            ORDER_TOTAL - 1000,
        )),
    )
    .await;
    post_openpix(
        &world,
        openpix_paid(short_payment, ORDER_TOTAL, ORDER_TOTAL),
    )
    .await;

    assert_eq!(
        reconcile_all(&world).await,
        vec![Outcome::Paid, Outcome::AmountMismatch]
    );
    assert_eq!(
        order_state(&app.pool, full_order).await,
        ("processing".into(), "paid".into())
    );
    assert_eq!(
        paid_amount(&app.pool, full_payment).await,
        Some(ORDER_TOTAL)
    );
    assert_eq!(
        order_state(&app.pool, short_order).await,
        ("pending_payment".into(), "pending_payment".into())
    );
    assert_eq!(
        paid_amount(&app.pool, short_payment).await,
        Some(ORDER_TOTAL - 1000)
    );
    world.stop().await;
}

/// A payment recorded while another provider was configured (the store has switched since).
async fn recorded_payment(
    pool: &PgPool,
    order_id: Uuid,
    method: &str,
    provider: &str,
    txid: &str,
) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO payments (id, order_id, method, provider, amount_cents, status, txid)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6)",
    )
    .bind(id)
    .bind(order_id)
    .bind(method)
    .bind(provider)
    .bind(ORDER_TOTAL)
    .bind(txid)
    .execute(pool)
    .await
    .unwrap();
    id
}

#[sqlx::test(migrations = false)]
async fn a_signed_event_naming_another_providers_payment_changes_nothing(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let app = &world.app;
    let buyer = buyer(app).await;
    let openpix_order = place_order(&app.pool, buyer.id).await;
    recorded_payment(&app.pool, openpix_order, "pix", "openpix", "wooviTx0001").await;
    let stripe_order = place_order(&app.pool, buyer.id).await;
    recorded_payment(
        &app.pool,
        stripe_order,
        "credit_card",
        "stripe",
        "stripeTx0001",
    )
    .await;
    // Signed for the payment route (ProPay and the sandbox PIX), naming them by txid.
    for (i, txid) in ["wooviTx0001", "stripeTx0001"].into_iter().enumerate() {
        let (body, signature) = propay_paid(&format!("cross-{i}"), txid, ORDER_TOTAL);
        post_webhook(
            app,
            "/api/webhooks/payment",
            &[("x-propay-signature", signature)],
            &body,
        )
        .await
        .assert_status(200);
    }
    // Signed for the Stripe route (Stripe and the sandbox card), naming a sandbox PIX payment.
    let (pix_order, pix_payment, _) = pending_pix(&world).await;
    let (body, header) = stripe_event(
        "payment_intent.succeeded",
        "evt_cross",
        &pix_payment.to_string(),
        pix_order,
    );
    post_webhook(
        app,
        "/api/webhooks/stripe",
        &[("stripe-signature", header)],
        &body,
    )
    .await
    .assert_status(200);

    assert_eq!(
        reconcile_all(&world).await,
        vec![Outcome::ProviderMismatch; 3]
    );
    assert_eq!(
        outcomes(&app.pool).await,
        vec![Some("provider_mismatch".to_owned()); 3]
    );
    for order_id in [openpix_order, stripe_order, pix_order] {
        assert_eq!(
            order_state(&app.pool, order_id).await,
            ("pending_payment".into(), "pending_payment".into())
        );
    }
    let paid: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payments WHERE paid_amount_cents IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(paid, 0);
    world.stop().await;
}

fn stripe_succeeded(
    event_id: &str,
    payment_id: Uuid,
    order_id: Uuid,
    amount_received: Option<i64>,
) -> (Vec<u8>, String) {
    let mut intent = json!({"id": "pi_test_1", "object": "payment_intent", "amount": ORDER_TOTAL,
        "metadata": {"order_id": order_id.to_string(), "payment_id": payment_id.to_string()}});
    if let Some(received) = amount_received {
        intent["amount_received"] = received.into();
    }
    let body = serde_json::to_vec(&json!({
        "id": event_id, "object": "event", "type": "payment_intent.succeeded",
        "data": {"object": intent}
    }))
    .unwrap();
    let header = sign_stripe(
        cart_core::testing::TEST_STRIPE_SECRET,
        chrono::Utc::now().timestamp(),
        &body,
    );
    (body, header)
}

#[sqlx::test(migrations = false)]
async fn stripe_pays_what_was_received_not_what_was_asked(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let app = &world.app;
    let (order_id, payment_id) = started_payment(&world, PaymentMethod::CreditCard).await;
    // Without `amount_received` nothing says what was paid: refused, nothing stored.
    let (body, header) = stripe_succeeded("evt_asked", payment_id, order_id, None);
    post_webhook(
        app,
        "/api/webhooks/stripe",
        &[("stripe-signature", header)],
        &body,
    )
    .await
    .assert_problem(400);
    assert!(event_ids(&app.pool).await.is_empty());

    let (body, header) =
        stripe_succeeded("evt_short", payment_id, order_id, Some(ORDER_TOTAL - 500));
    post_webhook(
        app,
        "/api/webhooks/stripe",
        &[("stripe-signature", header)],
        &body,
    )
    .await
    .assert_status(200);
    assert_eq!(reconcile_all(&world).await, vec![Outcome::AmountMismatch]);
    assert_eq!(
        order_state(&app.pool, order_id).await,
        ("pending_payment".into(), "pending_payment".into())
    );
    world.stop().await;
}
