//! `POST /api/orders` and `PATCH /api/orders/{id}/cancel` over HTTP, including the
//! concurrency guarantees: stock never oversold, coupon limits held, one order per cart.

// Fixture helpers below are not `#[test]` functions, which clippy's test allowance skips.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use cart_core::{
    auth::Role,
    http_client::ProviderError,
    shipping::{QuoteRequest, ShippingOption, ShippingProvider},
};
use serde_json::{Value, json};
use sqlx::{PgPool, postgres::PgPoolOptions};
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::{helpers::TestApp, orders::insert_user};

pub(crate) const CPF: &str = "52998224725";

/// A carrier that offers PAC and SEDEX at fixed prices; it can be made to fail or to be slow.
#[derive(Default)]
pub(crate) struct StubCarrier {
    pub fail: AtomicBool,
    pub delay: Duration,
}

#[async_trait]
impl ShippingProvider for StubCarrier {
    async fn quote(&self, _request: &QuoteRequest) -> Result<Vec<ShippingOption>, ProviderError> {
        tokio::time::sleep(self.delay).await;
        if self.fail.load(Ordering::SeqCst) {
            return Err(ProviderError::Unavailable("carrier down".into()));
        }
        Ok(vec![
            ShippingOption {
                carrier: "Correios".into(),
                service: "PAC".into(),
                price_cents: 1850,
                days: 7,
            },
            ShippingOption {
                carrier: "Correios".into(),
                service: "SEDEX".into(),
                price_cents: 3200,
                days: 2,
            },
        ])
    }
}

/// A server whose shipping quotes come from `carrier`.
pub(crate) async fn spawn_with_carrier(pool: PgPool, carrier: Arc<StubCarrier>) -> TestApp {
    TestApp::spawn_with_state(pool, |_| {}, move |state| state.with_shipping(carrier)).await
}

pub(crate) async fn product(pool: &PgPool, name: &str, price_cents: i64, stock: i32) -> Uuid {
    let id = Uuid::now_v7();
    let tag = id.simple().to_string();
    sqlx::query(
        "INSERT INTO products (id, sku, name, slug, price_cents, stock, weight_grams,
                               height_cm, width_cm, length_cm, ncm)
         VALUES ($1, $2, $3, $4, $5, $6, 300, 5, 12, 18, '09012100')",
    )
    .bind(id)
    .bind(format!("SKU-{}", &tag[20..]))
    .bind(name)
    .bind(format!("p-{tag}"))
    .bind(price_cents)
    .bind(stock)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// A shopper: an account (with or without CPF), one address, and a token.
pub(crate) struct Shopper {
    pub id: Uuid,
    pub address_id: Uuid,
    pub token: String,
}

pub(crate) async fn shopper(app: &TestApp, with_cpf: bool) -> Shopper {
    let id = insert_user(&app.pool, Role::User, with_cpf.then_some(CPF)).await;
    let address_id = address_of(&app.pool, id).await;
    Shopper {
        id,
        address_id,
        token: app.token_for(id, Role::User).await,
    }
}

/// A default address in São Paulo for `user`.
pub(crate) async fn address_of(pool: &PgPool, user: Uuid) -> Uuid {
    let address_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO addresses (id, user_id, label, recipient, cep, street, number, district,
                                city, state, is_default)
         VALUES ($1, $2, 'Casa', 'Maria Silva', '01310100', 'Avenida Paulista', '1000',
                 'Bela Vista', 'São Paulo', 'SP', true)",
    )
    .bind(address_id)
    .bind(user)
    .execute(pool)
    .await
    .unwrap();
    address_id
}

pub(crate) async fn add_to_cart(pool: &PgPool, user: Uuid, product: Uuid, quantity: i32) {
    sqlx::query("INSERT INTO carts (user_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(user)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO cart_items (user_id, product_id, quantity) VALUES ($1, $2, $3)")
        .bind(user)
        .bind(product)
        .bind(quantity)
        .execute(pool)
        .await
        .unwrap();
}

/// A 10 % coupon with at most `max_uses` uses, attached to each of `users`' carts.
pub(crate) async fn coupon_for(pool: &PgPool, max_uses: Option<i32>, users: &[Uuid]) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO coupons (id, code, kind, value, max_uses) VALUES ($1, $2, 'percent', 10, $3)",
    )
    .bind(id)
    .bind(format!("DEZ{}", &id.simple().to_string()[20..28]).to_uppercase())
    .bind(max_uses)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("UPDATE carts SET coupon_id = $1 WHERE user_id = ANY($2)")
        .bind(id)
        .bind(users)
        .execute(pool)
        .await
        .unwrap();
    id
}

pub(crate) async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap()
}

pub(crate) async fn stock_of(pool: &PgPool, product: Uuid) -> i32 {
    sqlx::query_scalar("SELECT stock FROM products WHERE id = $1")
        .bind(product)
        .fetch_one(pool)
        .await
        .unwrap()
}

pub(crate) fn checkout_body(shopper: &Shopper) -> Value {
    json!({"address_id": shopper.address_id, "shipping_service": "PAC"})
}

/// A pool larger than `#[sqlx::test]`'s five connections, for the concurrency tests.
async fn wide_pool(pool: &PgPool, connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(60))
        .connect_with(pool.connect_options().as_ref().clone())
        .await
        .unwrap()
}

/// Sends the same kind of request from many clients at once (released by one barrier) and
/// returns the statuses.
async fn all_at_once(app: &TestApp, requests: Vec<(String, Value)>) -> Vec<u16> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let mut tasks = Vec::new();
    for (token, body) in requests {
        let (client, url, barrier) = (app.client.clone(), app.url("/api/orders"), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let request = client.post(url).bearer_auth(token).json(&body);
            barrier.wait().await;
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            assert!(
                !text.contains("deadlock"),
                "a deadlock leaked into an answer: {text}"
            );
            status
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[sqlx::test(migrations = false)]
async fn checkout_answers_the_new_order_and_empties_the_cart(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let coffee = product(&pool, "Café Especial", 2590, 5).await;
    let buyer = shopper(&app, true).await;
    add_to_cart(&pool, buyer.id, coffee, 2).await;

    let res = app
        .post("/api/orders", &checkout_body(&buyer), Some(&buyer.token))
        .await;
    res.assert_status(201);
    let order = &res.body;
    assert_eq!(order["status"], "pending_payment");
    assert_eq!(order["payment_status"], "pending_payment");
    assert!(order["number"].as_str().unwrap().starts_with("CART-"));
    assert_eq!(order["subtotal_cents"], 5180);
    assert_eq!(order["discount_cents"], 0);
    assert_eq!(order["coupon_code"], Value::Null);
    // Priced on the server by the configured provider (the default rate table).
    let shipping = order["shipping_cents"].as_i64().unwrap();
    assert!(shipping > 0);
    assert_eq!(order["total_cents"], 5180 + shipping);
    assert_eq!(order["shipping"]["service"], "PAC");
    assert_eq!(order["shipping"]["carrier"], "Correios");
    assert_eq!(order["shipping"]["address"]["street"], "Avenida Paulista");
    assert_eq!(
        order["items"],
        json!([{"product_id": coffee, "sku": order["items"][0]["sku"], "name": "Café Especial",
                "unit_price_cents": 2590, "quantity": 2, "line_total_cents": 5180}])
    );
    assert_eq!(stock_of(&pool, coffee).await, 3);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM cart_items").await, 0);

    let id = order["id"].as_str().unwrap();
    let listed = app.get("/api/orders", Some(&buyer.token)).await;
    assert_eq!(listed.body["items"][0]["id"], id);
    let mail: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = 'send_email' AND idempotency_key = $1",
    )
    .bind(format!("order_placed:{id}"))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(mail, 1);
}

#[sqlx::test(migrations = false)]
async fn checkout_refusals_are_problems_and_change_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let coffee = product(&pool, "Café Raro", 2590, 1).await;
    let buyer = shopper(&app, true).await;
    let body = checkout_body(&buyer);

    app.post("/api/orders", &body, None)
        .await
        .assert_problem(401);
    app.post(
        "/api/orders",
        &json!({"shipping_service": "PAC"}),
        Some(&buyer.token),
    )
    .await
    .assert_problem(400);
    let empty = app.post("/api/orders", &body, Some(&buyer.token)).await;
    empty.assert_problem(422);
    assert!(empty.body["errors"]["cart"].is_array());

    let no_cpf = shopper(&app, false).await;
    add_to_cart(&pool, no_cpf.id, coffee, 1).await;
    let res = app
        .post("/api/orders", &checkout_body(&no_cpf), Some(&no_cpf.token))
        .await;
    res.assert_problem(422);
    assert!(res.body["errors"]["cpf"].is_array());

    add_to_cart(&pool, buyer.id, coffee, 2).await;
    let someone_elses = json!({"address_id": no_cpf.address_id, "shipping_service": "PAC"});
    let res = app
        .post("/api/orders", &someone_elses, Some(&buyer.token))
        .await;
    res.assert_problem(422);
    assert!(res.body["errors"]["address_id"].is_array());

    let res = app
        .post(
            "/api/orders",
            &json!({"address_id": buyer.address_id, "shipping_service": "TELEPORTE"}),
            Some(&buyer.token),
        )
        .await;
    res.assert_problem(422);
    assert!(res.body["errors"]["shipping_service"].is_array());

    let short = app.post("/api/orders", &body, Some(&buyer.token)).await;
    short.assert_problem(409);
    assert!(
        short.body["detail"].as_str().unwrap().contains("Café Raro"),
        "{}",
        short.text
    );

    assert_eq!(stock_of(&pool, coffee).await, 1);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM orders").await, 0);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM cart_items").await, 2);
}

#[sqlx::test(migrations = false)]
async fn a_shipping_provider_failure_is_503_and_writes_nothing(pool: PgPool) {
    let carrier = Arc::new(StubCarrier::default());
    carrier.fail.store(true, Ordering::SeqCst);
    let app = spawn_with_carrier(pool.clone(), carrier).await;
    let coffee = product(&pool, "Café", 2590, 5).await;
    let buyer = shopper(&app, true).await;
    add_to_cart(&pool, buyer.id, coffee, 1).await;

    let res = app
        .post("/api/orders", &checkout_body(&buyer), Some(&buyer.token))
        .await;
    res.assert_problem(503);
    assert!(res.header("retry-after").is_some());
    assert!(!res.text.contains("carrier down"), "upstream detail leaked");
    assert_eq!(stock_of(&pool, coffee).await, 5);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM orders").await, 0);
}

#[sqlx::test(migrations = false)]
async fn two_hundred_concurrent_checkouts_sell_exactly_the_stock(pool: PgPool) {
    let wide = wide_pool(&pool, 20).await;
    let app = TestApp::spawn(wide.clone()).await;
    let coffee = product(&wide, "Café Limitado", 2590, 10).await;
    let mut requests = Vec::new();
    for _ in 0..200 {
        let buyer = shopper(&app, true).await;
        add_to_cart(&wide, buyer.id, coffee, 1).await;
        requests.push((buyer.token.clone(), checkout_body(&buyer)));
    }

    let statuses = all_at_once(&app, requests).await;

    assert_eq!(count(&statuses, 201), 10, "{statuses:?}");
    assert_eq!(count(&statuses, 409), 190, "{statuses:?}");
    assert_eq!(stock_of(&wide, coffee).await, 0);
    assert_eq!(scalar(&wide, "SELECT count(*) FROM orders").await, 10);
    assert_eq!(
        scalar(&wide, "SELECT COALESCE(sum(quantity), 0) FROM order_items").await,
        10
    );
    // The losers keep their carts.
    assert_eq!(scalar(&wide, "SELECT count(*) FROM cart_items").await, 190);
}

#[sqlx::test(migrations = false)]
async fn fifty_concurrent_checkouts_with_a_single_use_coupon_discount_once(pool: PgPool) {
    let wide = wide_pool(&pool, 20).await;
    let app = TestApp::spawn(wide.clone()).await;
    let coffee = product(&wide, "Café", 2590, 100).await;
    let mut requests = Vec::new();
    let mut users = Vec::new();
    for _ in 0..50 {
        let buyer = shopper(&app, true).await;
        add_to_cart(&wide, buyer.id, coffee, 1).await;
        users.push(buyer.id);
        requests.push((buyer.token.clone(), checkout_body(&buyer)));
    }
    let once = coupon_for(&wide, Some(1), &users).await;

    let statuses = all_at_once(&app, requests).await;

    assert_eq!(count(&statuses, 201), 1, "{statuses:?}");
    assert_eq!(count(&statuses, 422), 49, "{statuses:?}");
    assert_eq!(
        scalar(
            &wide,
            "SELECT count(*) FROM orders WHERE discount_cents > 0"
        )
        .await,
        1
    );
    assert_eq!(scalar(&wide, "SELECT count(*) FROM orders").await, 1);
    let uses: i32 = sqlx::query_scalar("SELECT uses FROM coupons WHERE id = $1")
        .bind(once)
        .fetch_one(&wide)
        .await
        .unwrap();
    assert_eq!(uses, 1);
    assert_eq!(stock_of(&wide, coffee).await, 99);
}

#[sqlx::test(migrations = false)]
async fn the_same_cart_checked_out_twice_at_once_makes_one_order(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let coffee = product(&pool, "Café", 2590, 10).await;
    let buyer = shopper(&app, true).await;
    add_to_cart(&pool, buyer.id, coffee, 2).await;
    let twice = vec![
        (buyer.token.clone(), checkout_body(&buyer)),
        (buyer.token.clone(), checkout_body(&buyer)),
    ];

    let mut statuses = all_at_once(&app, twice).await;
    statuses.sort_unstable();

    // The second one finds the cart already emptied by the first.
    assert_eq!(statuses, vec![201, 422]);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM orders").await, 1);
    assert_eq!(stock_of(&pool, coffee).await, 8);
}

#[sqlx::test(migrations = false)]
async fn cancelling_over_http_restores_stock_and_guards_ownership(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let coffee = product(&pool, "Café", 2590, 5).await;
    let buyer = shopper(&app, true).await;
    let stranger = shopper(&app, true).await;
    add_to_cart(&pool, buyer.id, coffee, 2).await;
    let placed = app
        .post("/api/orders", &checkout_body(&buyer), Some(&buyer.token))
        .await;
    placed.assert_status(201);
    let path = format!("/api/orders/{}/cancel", placed.body["id"].as_str().unwrap());

    app.patch(&path, &json!({}), None).await.assert_problem(401);
    app.patch(&path, &json!({}), Some(&stranger.token))
        .await
        .assert_problem(404);
    app.patch("/api/orders/nope/cancel", &json!({}), Some(&buyer.token))
        .await
        .assert_problem(400);
    app.patch(
        &format!("/api/orders/{}/cancel", Uuid::now_v7()),
        &json!({}),
        Some(&buyer.token),
    )
    .await
    .assert_problem(404);
    assert_eq!(stock_of(&pool, coffee).await, 3);

    let cancelled = app.patch(&path, &json!({}), Some(&buyer.token)).await;
    cancelled.assert_status(200);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(cancelled.body["payment_status"], "expired");
    assert_eq!(stock_of(&pool, coffee).await, 5);
    app.patch(&path, &json!({}), Some(&buyer.token))
        .await
        .assert_problem(409);
    assert_eq!(stock_of(&pool, coffee).await, 5);
}

#[sqlx::test(migrations = false)]
async fn a_shipped_order_cannot_be_cancelled_and_a_paid_one_is_refunded(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let admin = insert_user(&pool, Role::Admin, None).await;
    let admin_token = app.token_for(admin, Role::Admin).await;
    let coffee = product(&pool, "Café", 2590, 5).await;
    let buyer = shopper(&app, true).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        add_to_cart(&pool, buyer.id, coffee, 1).await;
        let res = app
            .post("/api/orders", &checkout_body(&buyer), Some(&buyer.token))
            .await;
        res.assert_status(201);
        let id: Uuid = res.body["id"].as_str().unwrap().parse().unwrap();
        crate::orders::mark_paid(&pool, id).await;
        ids.push(id);
    }
    app.patch(
        &format!("/api/orders/{}/tracking", ids[0]),
        &json!({"tracking_number": "QB1BR", "carrier": "Correios"}),
        Some(&admin_token),
    )
    .await
    .assert_status(200);

    app.patch(
        &format!("/api/orders/{}/cancel", ids[0]),
        &json!({}),
        Some(&buyer.token),
    )
    .await
    .assert_problem(409);
    let refunded = app
        .patch(
            &format!("/api/orders/{}/cancel", ids[1]),
            &json!({}),
            Some(&buyer.token),
        )
        .await;
    refunded.assert_status(200);
    assert_eq!(refunded.body["status"], "cancelled");
    assert_eq!(refunded.body["payment_status"], "refund_pending");
    let refund_jobs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM apalis.jobs WHERE job_type = 'refund_payment' AND idempotency_key = $1",
    )
    .bind(format!("refund:{}", ids[1]))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(refund_jobs, 1);
    assert_eq!(stock_of(&pool, coffee).await, 4);
}

/// Places one order of one `product` for `buyer` (the cart refilled first); the status.
async fn order_once(app: &TestApp, buyer: &Shopper, product: Uuid) -> crate::helpers::TestResponse {
    add_to_cart(&app.pool, buyer.id, product, 1).await;
    app.post("/api/orders", &checkout_body(buyer), Some(&buyer.token))
        .await
}

async fn unpaid_orders_of(pool: &PgPool, user: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE user_id = $1 AND status = 'pending_payment'",
    )
    .bind(user)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn a_fourth_unpaid_order_is_409_and_changes_nothing(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let coffee = product(&pool, "Café", 2590, 10).await;
    let buyer = shopper(&app, true).await;
    let mut placed = Vec::new();
    for _ in 0..3 {
        let res = order_once(&app, &buyer, coffee).await;
        res.assert_status(201);
        placed.push(res.body["id"].as_str().unwrap().to_owned());
    }

    let res = order_once(&app, &buyer, coffee).await;
    res.assert_problem(409);
    let detail = res.body["detail"].as_str().unwrap();
    assert!(detail.contains("3 unpaid orders"), "{detail}");
    assert!(detail.contains("pay or cancel"), "{detail}");
    // Nothing written: no order, the stock of three orders taken, the cart as it was.
    assert_eq!(unpaid_orders_of(&pool, buyer.id).await, 3);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM orders").await, 3);
    assert_eq!(stock_of(&pool, coffee).await, 7);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM cart_items").await, 1);

    // Another buyer is not affected, and cancelling one order frees a place.
    let other = shopper(&app, true).await;
    order_once(&app, &other, coffee).await.assert_status(201);
    app.patch(
        &format!("/api/orders/{}/cancel", placed[0]),
        &json!({}),
        Some(&buyer.token),
    )
    .await
    .assert_status(200);
    app.post("/api/orders", &checkout_body(&buyer), Some(&buyer.token))
        .await
        .assert_status(201);
    assert_eq!(unpaid_orders_of(&pool, buyer.id).await, 3);
}

#[sqlx::test(migrations = false)]
async fn max_unpaid_orders_zero_is_no_cap(pool: PgPool) {
    let app = TestApp::spawn_with(pool.clone(), |c| c.orders.max_unpaid = 0).await;
    let coffee = product(&pool, "Café", 2590, 10).await;
    let buyer = shopper(&app, true).await;
    for _ in 0..5 {
        order_once(&app, &buyer, coffee).await.assert_status(201);
    }
    assert_eq!(unpaid_orders_of(&pool, buyer.id).await, 5);
}

#[sqlx::test(migrations = false)]
async fn concurrent_checkouts_at_the_cap_let_exactly_one_through(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let coffee = product(&pool, "Café", 2590, 50).await;
    let buyer = shopper(&app, true).await;
    for _ in 0..2 {
        order_once(&app, &buyer, coffee).await.assert_status(201);
    }
    add_to_cart(&pool, buyer.id, coffee, 1).await;
    let requests = (0..4)
        .map(|_| (buyer.token.clone(), checkout_body(&buyer)))
        .collect();

    let statuses = all_at_once(&app, requests).await;

    assert_eq!(count(&statuses, 201), 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [201, 409, 422].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(unpaid_orders_of(&pool, buyer.id).await, 3);
    assert_eq!(stock_of(&pool, coffee).await, 47);
    // At the cap now, whatever the cart holds.
    order_once(&app, &buyer, coffee).await.assert_problem(409);
}
