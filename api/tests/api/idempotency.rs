//! `Idempotency-Key` on `POST /api/orders`: replays, key reuse, concurrent duplicates, and
//! keys given back after failures on our side.

// Fixture helpers below are not `#[test]` functions, which clippy's test allowance skips.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::{
    checkout::{
        Shopper, StubCarrier, add_to_cart, checkout_body, product, scalar, shopper,
        spawn_with_carrier, stock_of,
    },
    helpers::{TestApp, TestResponse},
};

async fn post_with_key(app: &TestApp, key: &str, body: &Value, buyer: &Shopper) -> TestResponse {
    let response = app
        .client
        .post(app.url("/api/orders"))
        .bearer_auth(&buyer.token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    TestApp::read(response).await
}

#[sqlx::test(migrations = false)]
async fn a_repeat_with_the_same_key_and_body_replays_the_first_answer(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let coffee = product(&pool, "Café", 2590, 10).await;
    let buyer = shopper(&app, true).await;
    add_to_cart(&pool, buyer.id, coffee, 1).await;
    let body = checkout_body(&buyer);

    let first = post_with_key(&app, "checkout-1", &body, &buyer).await;
    first.assert_status(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    // The cart is back with an item: a real second checkout would succeed, a replay must not.
    add_to_cart(&pool, buyer.id, coffee, 1).await;
    let again = post_with_key(&app, "checkout-1", &body, &buyer).await;
    again.assert_status(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("content-type"), Some("application/json"));
    assert_eq!(again.body, first.body);

    assert_eq!(scalar(&pool, "SELECT count(*) FROM orders").await, 1);
    assert_eq!(stock_of(&pool, coffee).await, 9);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM cart_items").await, 1);

    // Another key is another request.
    post_with_key(&app, "checkout-2", &body, &buyer)
        .await
        .assert_status(201);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM orders").await, 2);
}

#[sqlx::test(migrations = false)]
async fn reusing_a_key_with_another_body_is_409(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let coffee = product(&pool, "Café", 2590, 10).await;
    let buyer = shopper(&app, true).await;
    add_to_cart(&pool, buyer.id, coffee, 1).await;
    post_with_key(&app, "k", &checkout_body(&buyer), &buyer)
        .await
        .assert_status(201);

    add_to_cart(&pool, buyer.id, coffee, 1).await;
    let other = json!({"address_id": buyer.address_id, "shipping_service": "SEDEX"});
    let res = post_with_key(&app, "k", &other, &buyer).await;
    res.assert_problem(409);
    assert!(res.body["detail"].as_str().unwrap().contains("different"));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM orders").await, 1);

    // Keys belong to their user: someone else's identical key is unrelated.
    let other_buyer = shopper(&app, true).await;
    add_to_cart(&pool, other_buyer.id, coffee, 1).await;
    post_with_key(&app, "k", &checkout_body(&other_buyer), &other_buyer)
        .await
        .assert_status(201);
}

#[sqlx::test(migrations = false)]
async fn a_duplicate_sent_while_the_first_runs_is_409_and_one_order_is_made(pool: PgPool) {
    let carrier = Arc::new(StubCarrier {
        delay: Duration::from_millis(700),
        ..StubCarrier::default()
    });
    let app = spawn_with_carrier(pool.clone(), carrier).await;
    let coffee = product(&pool, "Café", 2590, 10).await;
    let buyer = shopper(&app, true).await;
    add_to_cart(&pool, buyer.id, coffee, 1).await;
    let body = checkout_body(&buyer);

    let (a, b) = tokio::join!(
        post_with_key(&app, "dup", &body, &buyer),
        post_with_key(&app, "dup", &body, &buyer)
    );
    let mut statuses = vec![a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 409]);
    let conflict = if a.status.as_u16() == 409 { &a } else { &b };
    assert!(
        conflict.body["detail"]
            .as_str()
            .unwrap()
            .contains("still being processed")
    );
    assert_eq!(scalar(&pool, "SELECT count(*) FROM orders").await, 1);

    // Once the first finished, the key replays it.
    let later = post_with_key(&app, "dup", &body, &buyer).await;
    later.assert_status(201);
    assert_eq!(later.header("idempotent-replayed"), Some("true"));
}

#[sqlx::test(migrations = false)]
async fn a_failure_on_our_side_gives_the_key_back_and_client_errors_are_replayed(pool: PgPool) {
    let carrier = Arc::new(StubCarrier::default());
    carrier.fail.store(true, Ordering::SeqCst);
    let app = spawn_with_carrier(pool.clone(), carrier.clone()).await;
    let coffee = product(&pool, "Café", 2590, 10).await;
    let buyer = shopper(&app, true).await;
    let body = checkout_body(&buyer);

    // A 4xx is an answer: stored and replayed.
    let empty = post_with_key(&app, "empty-cart", &body, &buyer).await;
    empty.assert_problem(422);
    add_to_cart(&pool, buyer.id, coffee, 1).await;
    let replayed = post_with_key(&app, "empty-cart", &body, &buyer).await;
    replayed.assert_problem(422);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));

    // A 5xx is not: the retry runs for real once the carrier is back.
    post_with_key(&app, "retry-me", &body, &buyer)
        .await
        .assert_problem(503);
    carrier.fail.store(false, Ordering::SeqCst);
    let retried = post_with_key(&app, "retry-me", &body, &buyer).await;
    retried.assert_status(201);
    assert_eq!(retried.header("idempotent-replayed"), None);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM orders").await, 1);
}

#[sqlx::test(migrations = false)]
async fn a_malformed_key_is_400(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let buyer = shopper(&app, true).await;
    let body = checkout_body(&buyer);
    post_with_key(&app, &"k".repeat(256), &body, &buyer)
        .await
        .assert_problem(400);
    post_with_key(&app, "  ", &body, &buyer)
        .await
        .assert_problem(400);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM idempotency_keys").await,
        0
    );
}

#[sqlx::test(migrations = false)]
async fn a_client_that_hangs_up_gets_the_finished_answer_on_retry(pool: PgPool) {
    let carrier = Arc::new(StubCarrier {
        delay: Duration::from_millis(600),
        ..StubCarrier::default()
    });
    let app = spawn_with_carrier(pool.clone(), carrier).await;
    let coffee = product(&pool, "Café", 2590, 10).await;
    let buyer = shopper(&app, true).await;
    add_to_cart(&pool, buyer.id, coffee, 1).await;
    let body = checkout_body(&buyer);

    // The client gives up long before the checkout is done.
    let gave_up = app
        .client
        .post(app.url("/api/orders"))
        .bearer_auth(&buyer.token)
        .header("Idempotency-Key", "impatient")
        .timeout(Duration::from_millis(150))
        .json(&body)
        .send()
        .await;
    assert!(gave_up.is_err(), "the request was expected to time out");

    // The server finishes anyway; the retry (once it is done) gets that order, not a second.
    let mut retry = post_with_key(&app, "impatient", &body, &buyer).await;
    for _ in 0..40 {
        if retry.status.as_u16() != 409 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        retry = post_with_key(&app, "impatient", &body, &buyer).await;
    }
    retry.assert_status(201);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM orders").await, 1);
    assert_eq!(stock_of(&pool, coffee).await, 9);
}
