//! Order reads, fulfilment and public tracking over HTTP. Orders are written with the core
//! functions so these tests do not depend on checkout.

// Fixture helpers below are not `#[test]` functions, which clippy's test allowance skips.
#![allow(clippy::unwrap_used)]

use cart_core::{
    auth::Role,
    orders::{
        Actor, OrderState, OrderStatus, PaymentStatus, ShippingAddress,
        create::{self, ChosenShipping, NewOrder, NewOrderItem},
        status,
    },
};
use chrono::{Duration, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::TestApp;

fn address() -> ShippingAddress {
    ShippingAddress {
        label: None,
        recipient: "João Souza".into(),
        cep: "20040020".into(),
        street: "Rua da Assembleia".into(),
        number: "10".into(),
        complement: Some("sala 501".into()),
        district: "Centro".into(),
        city: "Rio de Janeiro".into(),
        state: "RJ".into(),
    }
}

/// An account straight in the table: no password hashing, so setup stays fast. Its token
/// (from [`TestApp::token_for`]) is accepted because the account exists.
pub(crate) async fn insert_user(pool: &PgPool, role: Role, cpf: Option<&str>) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO users (id, name, email, cpf, password_hash, role)
         VALUES ($1, 'Cliente Teste', $2, $3, '!', $4)",
    )
    .bind(id)
    .bind(format!("{}@example.com", id.simple()))
    .bind(cpf)
    .bind(role.as_str())
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn place(pool: &PgPool, user_id: Uuid) -> (Uuid, String) {
    let book = crate::checkout::product(pool, "Livro", 4990, 10).await;
    let mut conn = pool.acquire().await.unwrap();
    let created = create::insert(
        &mut conn,
        &NewOrder {
            user_id,
            items: vec![NewOrderItem {
                product_id: book,
                sku: "LIVRO-1".into(),
                name: "Livro".into(),
                unit_price_cents: 4990,
                quantity: 1,
                ncm: Some("49019900".into()),
                weight_grams: Some(300),
            }],
            coupon: None,
            shipping: ChosenShipping {
                carrier: "Correios".into(),
                service: "SEDEX".into(),
                price_cents: 2500,
                days: 2,
                address: address(),
            },
            recipient_cpf: "52998224725".into(),
            expires_at: Utc::now() + Duration::minutes(30),
        },
    )
    .await
    .unwrap();
    (created.id, created.number)
}

pub(crate) async fn mark_paid(pool: &PgPool, order_id: Uuid) {
    let mut conn = pool.acquire().await.unwrap();
    status::transition(
        &mut conn,
        order_id,
        OrderState::new(OrderStatus::Processing, PaymentStatus::Paid),
        Actor::System,
        "paid",
    )
    .await
    .unwrap();
}

struct People {
    owner: Uuid,
    owner_token: String,
    stranger_token: String,
    admin_token: String,
}

async fn people(app: &TestApp) -> People {
    let owner = insert_user(&app.pool, Role::User, None).await;
    let stranger = insert_user(&app.pool, Role::User, None).await;
    let admin = insert_user(&app.pool, Role::Admin, None).await;
    People {
        owner,
        owner_token: app.token_for(owner, Role::User).await,
        stranger_token: app.token_for(stranger, Role::User).await,
        admin_token: app.token_for(admin, Role::Admin).await,
    }
}

fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

#[sqlx::test(migrations = false)]
async fn an_order_is_shown_to_its_owner_in_the_contract_shape(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let p = people(&app).await;
    let (id, number) = place(&pool, p.owner).await;

    let res = app
        .get(&format!("/api/orders/{id}"), Some(&p.owner_token))
        .await;
    res.assert_status(200);
    let order = &res.body;
    assert_eq!(order["id"], id.to_string());
    assert_eq!(order["number"], number);
    assert_eq!(order["status"], "pending_payment");
    assert_eq!(order["payment_status"], "pending_payment");
    assert_eq!(order["subtotal_cents"], 4990);
    assert_eq!(order["discount_cents"], 0);
    assert_eq!(order["shipping_cents"], 2500);
    assert_eq!(order["total_cents"], 7490);
    assert_eq!(order["coupon_code"], Value::Null);
    assert_eq!(order["tracking_number"], Value::Null);
    assert_eq!(order["carrier"], Value::Null);
    assert_eq!(
        order["items"],
        json!([{"product_id": order["items"][0]["product_id"], "sku": "LIVRO-1", "name": "Livro",
                "unit_price_cents": 4990, "quantity": 1, "line_total_cents": 4990}])
    );
    assert_eq!(order["shipping"]["carrier"], "Correios");
    assert_eq!(order["shipping"]["service"], "SEDEX");
    assert_eq!(order["shipping"]["days"], 2);
    assert_eq!(order["shipping"]["address"]["cep"], "20040020");
    assert_eq!(order["shipping"]["address"]["complement"], "sala 501");
    let mut keys: Vec<&str> = order
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "carrier",
            "coupon_code",
            "created_at",
            "discount_cents",
            "id",
            "items",
            "number",
            "payment_status",
            "shipping",
            "shipping_cents",
            "status",
            "subtotal_cents",
            "total_cents",
            "tracking_number",
            "updated_at"
        ]
    );
}

#[sqlx::test(migrations = false)]
async fn another_users_order_is_404_and_admins_see_it(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let p = people(&app).await;
    let (id, _) = place(&pool, p.owner).await;
    let path = format!("/api/orders/{id}");

    app.get(&path, Some(&p.stranger_token))
        .await
        .assert_problem(404);
    app.get(&path, Some(&p.admin_token))
        .await
        .assert_status(200);
    app.get(&path, None).await.assert_problem(401);
    app.get(
        &format!("/api/orders/{}", Uuid::now_v7()),
        Some(&p.owner_token),
    )
    .await
    .assert_problem(404);
    app.get("/api/orders/not-a-uuid", Some(&p.owner_token))
        .await
        .assert_problem(400);
}

#[sqlx::test(migrations = false)]
async fn the_order_list_is_the_callers_newest_first_and_paginated(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let p = people(&app).await;
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(place(&pool, p.owner).await.0.to_string());
    }
    place(&pool, insert_user(&pool, Role::User, None).await).await;

    let res = app.get("/api/orders", Some(&p.owner_token)).await;
    res.assert_status(200);
    assert_eq!(res.body["total"], 3);
    assert_eq!(res.body["limit"], 20);
    assert_eq!(res.body["offset"], 0);
    let newest_first: Vec<String> = mine.iter().rev().cloned().collect();
    assert_eq!(ids(&res.body), newest_first);

    let page = app
        .get("/api/orders?limit=1&offset=1", Some(&p.owner_token))
        .await;
    page.assert_status(200);
    assert_eq!(ids(&page.body), vec![mine[1].clone()]);
    assert_eq!(page.body["total"], 3);

    let clamped = app
        .get("/api/orders?limit=1000", Some(&p.owner_token))
        .await;
    assert_eq!(clamped.body["limit"], 100);
    app.get("/api/orders?limit=0", Some(&p.owner_token))
        .await
        .assert_problem(422);
    app.get("/api/orders?status=lost", Some(&p.owner_token))
        .await
        .assert_problem(400);
    app.get("/api/orders", None).await.assert_problem(401);

    let stranger = app.get("/api/orders", Some(&p.stranger_token)).await;
    assert_eq!(stranger.body["total"], 0);
}

#[sqlx::test(migrations = false)]
async fn only_admins_list_every_order_and_may_filter_by_status(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let p = people(&app).await;
    let (paid, _) = place(&pool, p.owner).await;
    place(&pool, insert_user(&pool, Role::User, None).await).await;
    mark_paid(&pool, paid).await;

    app.get("/api/orders?all=true", Some(&p.owner_token))
        .await
        .assert_problem(403);
    let all = app.get("/api/orders?all=true", Some(&p.admin_token)).await;
    all.assert_status(200);
    assert_eq!(all.body["total"], 2);
    let processing = app
        .get(
            "/api/orders?all=true&status=processing",
            Some(&p.admin_token),
        )
        .await;
    assert_eq!(ids(&processing.body), vec![paid.to_string()]);
    // Without all=true an admin sees their own orders, like anyone.
    let own = app.get("/api/orders", Some(&p.admin_token)).await;
    assert_eq!(own.body["total"], 0);
}

#[sqlx::test(migrations = false)]
async fn public_tracking_shows_no_personal_data(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let p = people(&app).await;
    let (id, number) = place(&pool, p.owner).await;
    mark_paid(&pool, id).await;
    app.patch(
        &format!("/api/orders/{id}/tracking"),
        &json!({"tracking_number": "QB123456789BR", "carrier": "Correios"}),
        Some(&p.admin_token),
    )
    .await
    .assert_status(200);

    let res = app
        .get(&format!("/api/orders/tracking/{number}"), None)
        .await;
    res.assert_status(200);
    let mut keys: Vec<&str> = res
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "carrier",
            "number",
            "status",
            "tracking_number",
            "updated_at"
        ]
    );
    assert_eq!(res.body["status"], "shipped");
    assert_eq!(res.body["tracking_number"], "QB123456789BR");
    assert!(!res.text.contains("João") && !res.text.contains("20040020"));

    app.get("/api/orders/tracking/CART-ZZZZZZZZ", None)
        .await
        .assert_problem(404);
}

#[sqlx::test(migrations = false)]
async fn public_tracking_finds_an_order_by_the_carriers_tracking_code(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let p = people(&app).await;
    let (id, number) = place(&pool, p.owner).await;
    // Not shipped yet: the code the buyer will get finds nothing.
    app.get("/api/orders/tracking/AA123456789BR", None)
        .await
        .assert_problem(404);
    mark_paid(&pool, id).await;
    app.patch(
        &format!("/api/orders/{id}/tracking"),
        &json!({"tracking_number": "AA123456789BR", "carrier": "Correios"}),
        Some(&p.admin_token),
    )
    .await
    .assert_status(200);

    // The code as the shipment e-mail gives it, and as a buyer may type it.
    for code in ["AA123456789BR", "aa123456789br", " AA123456789BR "] {
        let res = app.get(&format!("/api/orders/tracking/{code}"), None).await;
        res.assert_status(200);
        assert_eq!(res.body["number"], number.as_str());
        assert_eq!(res.body["status"], "shipped");
        assert_eq!(res.body["tracking_number"], "AA123456789BR");
        assert_eq!(res.body["carrier"], "Correios");
    }
    // The order number still works; another code does not.
    app.get(&format!("/api/orders/tracking/{number}"), None)
        .await
        .assert_status(200);
    app.get("/api/orders/tracking/AA000000000BR", None)
        .await
        .assert_problem(404);
}

#[sqlx::test(migrations = false)]
async fn admins_ship_and_deliver_paid_orders(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let p = people(&app).await;
    let (id, _) = place(&pool, p.owner).await;
    let ship = format!("/api/orders/{id}/tracking");
    let deliver = format!("/api/orders/{id}/delivered");
    let body = json!({"tracking_number": "QB123456789BR", "carrier": "Correios"});

    app.patch(&ship, &body, None).await.assert_problem(401);
    app.patch(&ship, &body, Some(&p.owner_token))
        .await
        .assert_problem(403);
    app.patch(&deliver, &json!({}), Some(&p.owner_token))
        .await
        .assert_problem(403);
    // Not paid yet.
    app.patch(&ship, &body, Some(&p.admin_token))
        .await
        .assert_problem(409);
    app.patch(
        &format!("/api/orders/{}/tracking", Uuid::now_v7()),
        &body,
        Some(&p.admin_token),
    )
    .await
    .assert_problem(404);

    mark_paid(&pool, id).await;
    app.patch(&deliver, &json!({}), Some(&p.admin_token))
        .await
        .assert_problem(409);
    let invalid = app
        .patch(
            &ship,
            &json!({"tracking_number": "", "carrier": "Correios"}),
            Some(&p.admin_token),
        )
        .await;
    invalid.assert_problem(422);
    assert!(invalid.body["errors"]["tracking_number"].is_array());
    app.patch(&ship, &json!({"carrier": "Correios"}), Some(&p.admin_token))
        .await
        .assert_problem(400);

    let shipped = app.patch(&ship, &body, Some(&p.admin_token)).await;
    shipped.assert_status(200);
    assert_eq!(shipped.body["status"], "shipped");
    assert_eq!(shipped.body["payment_status"], "paid");
    assert_eq!(shipped.body["tracking_number"], "QB123456789BR");
    assert_eq!(shipped.body["carrier"], "Correios");
    app.patch(&ship, &body, Some(&p.admin_token))
        .await
        .assert_problem(409);

    let delivered = app.patch(&deliver, &json!({}), Some(&p.admin_token)).await;
    delivered.assert_status(200);
    assert_eq!(delivered.body["status"], "delivered");
    app.patch(&deliver, &json!({}), Some(&p.admin_token))
        .await
        .assert_problem(409);
}

#[sqlx::test(migrations = false)]
async fn every_order_route_is_in_the_openapi_document(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let doc = app.get("/openapi.json", None).await;
    let paths = doc.body["paths"].as_object().unwrap();
    for path in [
        "/api/orders",
        "/api/orders/{id}",
        "/api/orders/{id}/tracking",
        "/api/orders/{id}/delivered",
        "/api/orders/{id}/cancel",
        "/api/orders/tracking/{number}",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from /openapi.json"
        );
    }
}
