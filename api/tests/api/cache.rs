//! The catalog cache across instances: two API servers on one database, where a write on one
//! is seen by the other on its next read once the notification has arrived (milliseconds).

use std::{
    future::Future,
    time::{Duration, Instant},
};

use serde_json::json;
use sqlx::PgPool;

use crate::{
    catalog::{admin, create_category, create_product, id_of, product_body},
    helpers::TestApp,
};

/// Polls `check` every 10 ms for up to 5 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn listening(app: &TestApp) {
    eventually("the cache listener", || async {
        app.state.cache.is_active()
    })
    .await;
}

async fn two_instances(pool: PgPool) -> (TestApp, TestApp) {
    let a = TestApp::spawn(pool.clone()).await;
    let b = TestApp::spawn(pool).await;
    listening(&a).await;
    listening(&b).await;
    (a, b)
}

/// Changes a price behind the caches' back: with triggers off (replica mode) no notification
/// is sent, so only a cached copy can still show the old price.
async fn change_price_silently(pool: &PgPool, id: &str, price_cents: i64) {
    let mut tx = pool.begin().await.expect("a transaction");
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .expect("replica mode");
    sqlx::query("UPDATE products SET price_cents = $2 WHERE id = $1::uuid")
        .bind(id)
        .bind(price_cents)
        .execute(&mut *tx)
        .await
        .expect("the update");
    tx.commit().await.expect("the commit");
}

/// Creates a product through `writer` and waits until `reader` has applied the notification,
/// so that what `reader` caches next cannot be invalidated by it.
async fn create_settled(writer: &TestApp, reader: &TestApp, price_cents: i64) -> String {
    let before = reader.state.cache.changes_applied();
    let product = create_product(
        writer,
        &admin(writer).await,
        product_body("C-1", "Café", price_cents),
    )
    .await;
    eventually("the creation to be announced", || async {
        reader.state.cache.changes_applied() > before
    })
    .await;
    id_of(&product)
}

async fn price_of(app: &TestApp, id: &str) -> i64 {
    let res = app.get(&format!("/api/products/{id}"), None).await;
    res.assert_status(200);
    res.body["price_cents"].as_i64().expect("a price")
}

async fn first_listed_price(app: &TestApp) -> i64 {
    app.get("/api/products", None).await.body["items"][0]["price_cents"]
        .as_i64()
        .expect("a listed price")
}

#[sqlx::test(migrations = false)]
async fn a_product_write_on_one_instance_is_seen_on_the_other_at_its_next_read(pool: PgPool) {
    let (a, b) = two_instances(pool.clone()).await;
    let token = admin(&a).await;
    let id = create_settled(&a, &b, 1000).await;
    assert_eq!(price_of(&b, &id).await, 1000);
    assert_eq!(first_listed_price(&b).await, 1000);

    // B now answers from its cache.
    change_price_silently(&pool, &id, 1111).await;
    assert_eq!(price_of(&b, &id).await, 1000);
    assert_eq!(first_listed_price(&b).await, 1000);

    // A write through A: A sees it at once, B as soon as the notification lands.
    let mut body = product_body("C-1", "Café", 2000);
    body.as_object_mut().unwrap().remove("stock");
    a.put(&format!("/api/products/{id}"), &body, Some(&token))
        .await
        .assert_status(200);
    assert_eq!(price_of(&a, &id).await, 2000);
    eventually("B to see the new price", || async {
        price_of(&b, &id).await == 2000
    })
    .await;
    assert_eq!(first_listed_price(&b).await, 2000);

    // Stock moves and deletion travel the same way.
    a.patch(
        &format!("/api/products/{id}/stock"),
        &json!({"stock": 7}),
        Some(&token),
    )
    .await
    .assert_status(200);
    eventually("B to see the new stock", || async {
        b.get(&format!("/api/products/{id}"), None).await.body["stock"] == 7
    })
    .await;
    a.delete(&format!("/api/products/{id}"), Some(&token))
        .await
        .assert_status(204);
    eventually("B to forget the deleted product", || async {
        b.get(&format!("/api/products/{id}"), None).await.status == 404
    })
    .await;
    assert_eq!(b.get("/api/products", None).await.body["total"], 0);
}

#[sqlx::test(migrations = false)]
async fn a_category_write_on_one_instance_is_seen_on_the_other(pool: PgPool) {
    let (a, b) = two_instances(pool).await;
    let token = admin(&a).await;
    let cafes = create_category(&a, &token, "Cafés", None).await;
    let path = format!("/api/categories/{}", id_of(&cafes));
    assert_eq!(b.get(&path, None).await.body["name"], "Cafés");
    assert_eq!(b.get("/api/categories", None).await.body["total"], 1);

    a.put(&path, &json!({"name": "Cafés Especiais"}), Some(&token))
        .await
        .assert_status(200);
    create_category(&a, &token, "Chás", None).await;
    eventually("B to see the renamed category", || async {
        b.get(&path, None).await.body["name"] == "Cafés Especiais"
    })
    .await;
    assert_eq!(b.get("/api/categories", None).await.body["total"], 2);
}

#[sqlx::test(migrations = false)]
async fn writes_made_outside_the_api_reach_every_cache(pool: PgPool) {
    let (a, b) = two_instances(pool.clone()).await;
    let product = create_product(&a, &admin(&a).await, product_body("C-1", "Café", 1000)).await;
    let id = id_of(&product);
    assert_eq!(
        b.get(&format!("/api/products/{id}"), None).await.body["stock"],
        10
    );
    // What checkout does: a plain conditional update in its own transaction.
    let mut tx = pool.begin().await.unwrap();
    let taken = cart_core::catalog::stock::take(&mut tx, uuid::Uuid::parse_str(&id).unwrap(), 4)
        .await
        .unwrap();
    assert!(taken);
    tx.commit().await.unwrap();
    for app in [&a, &b] {
        eventually("the stock change to arrive", || async {
            app.get(&format!("/api/products/{id}"), None).await.body["stock"] == 6
        })
        .await;
    }
}

#[sqlx::test(migrations = false)]
async fn a_listener_that_reconnects_flushes_its_cache(pool: PgPool) {
    let (a, b) = two_instances(pool.clone()).await;
    let id = create_settled(&a, &b, 1000).await;
    assert_eq!(price_of(&b, &id).await, 1000);
    change_price_silently(&pool, &id, 1500).await;
    assert_eq!(price_of(&b, &id).await, 1000);

    // Cut both instances' listening connections: whatever they might have missed must not
    // be served.
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = $1
         ) AS t",
    )
    .bind(cart_core::listen::APPLICATION_NAME)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(killed, 2);
    eventually("B to drop what it cached", || async {
        price_of(&b, &id).await == 1500
    })
    .await;
    listening(&a).await;
    listening(&b).await;
    // And after reconnecting, notifications flow again.
    let mut body = product_body("C-1", "Café", 1700);
    body.as_object_mut().unwrap().remove("stock");
    assert_eq!(price_of(&b, &id).await, 1500);
    a.put(
        &format!("/api/products/{id}"),
        &body,
        Some(&admin(&a).await),
    )
    .await
    .assert_status(200);
    eventually("B to see the write after reconnecting", || async {
        price_of(&b, &id).await == 1700
    })
    .await;
}

#[sqlx::test(migrations = false)]
async fn with_the_cache_disabled_every_read_goes_to_the_database(pool: PgPool) {
    let app = TestApp::spawn_with(pool.clone(), |config| config.cache.enabled = false).await;
    let product = create_product(&app, &admin(&app).await, product_body("C-1", "Café", 1000)).await;
    let id = id_of(&product);
    assert_eq!(price_of(&app, &id).await, 1000);
    change_price_silently(&pool, &id, 1234).await;
    assert_eq!(price_of(&app, &id).await, 1234);
    assert!(!app.state.cache.is_active());
}

async fn first_found_price(app: &TestApp, query: &str) -> i64 {
    let res = app
        .get(&format!("/api/products/search?q={query}"), None)
        .await;
    res.assert_status(200);
    res.body["items"][0]["price_cents"].as_i64().unwrap_or(-1)
}

#[sqlx::test(migrations = false)]
async fn search_pages_are_cached_and_a_write_on_either_instance_refreshes_them(pool: PgPool) {
    let (a, b) = two_instances(pool.clone()).await;
    let token = admin(&a).await;
    let id = create_settled(&a, &b, 1000).await;
    assert_eq!(first_found_price(&b, "cafe").await, 1000);

    // B answers from its cache, whatever the case of the query.
    change_price_silently(&pool, &id, 1111).await;
    assert_eq!(first_found_price(&b, "cafe").await, 1000);
    assert_eq!(first_found_price(&b, "  CAFE ").await, 1000);

    let mut body = product_body("C-1", "Café", 2000);
    body.as_object_mut().unwrap().remove("stock");
    a.put(&format!("/api/products/{id}"), &body, Some(&token))
        .await
        .assert_status(200);
    assert_eq!(first_found_price(&a, "cafe").await, 2000);
    eventually("B's search to show the new price", || async {
        first_found_price(&b, "cafe").await == 2000
    })
    .await;
    // An invalid query is refused every time, never cached as an answer.
    for _ in 0..2 {
        b.get("/api/products/search?q=%20", None)
            .await
            .assert_problem(422);
    }
}
