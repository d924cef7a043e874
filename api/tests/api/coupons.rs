//! Coupons: admin CRUD, validation, and the rules a cart applies (window, minimum, global and
//! per-user limits, case-insensitive codes, fixed coupons never below zero).

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    catalog::{admin, create_product, customer, id_of, product_body, with},
    helpers::TestApp,
};

fn coupon_body(code: &str, kind: &str, value: i64) -> Value {
    json!({"code": code, "kind": kind, "value": value})
}

async fn create_coupon(app: &TestApp, body: Value) -> Value {
    let res = app
        .post("/api/coupons", &body, Some(&admin(app).await))
        .await;
    res.assert_status(201);
    res.body
}

/// A customer with `quantity` units of a product at `price_cents` in their cart.
async fn customer_with_cart(app: &TestApp, price_cents: i64, quantity: i64) -> (String, String) {
    let sku = format!("P-{}", Uuid::now_v7().simple());
    let body = with(
        product_body(&sku, "Produto", price_cents),
        json!({"stock": 100}),
    );
    let product = id_of(&create_product(app, &admin(app).await, body).await);
    let user = customer(app).await;
    app.post(
        "/api/cart/items",
        &json!({"product_id": product, "quantity": quantity}),
        Some(&user),
    )
    .await
    .assert_status(200);
    (user, product)
}

async fn apply(app: &TestApp, user: &str, code: &str) -> crate::helpers::TestResponse {
    app.post("/api/cart/coupon", &json!({"code": code}), Some(user))
        .await
}

#[sqlx::test(migrations = false)]
async fn admins_manage_coupons(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    let created = create_coupon(
        &app,
        json!({"code": "bemvindo10", "kind": "percent", "value": 10, "min_subtotal_cents": 5000,
               "max_uses": 100, "max_uses_per_user": 1,
               "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2030-01-01T00:00:00-03:00"}),
    )
    .await;
    assert_eq!(created["code"], "BEMVINDO10");
    assert_eq!(created["kind"], "percent");
    assert_eq!(created["active"], true);
    assert_eq!(created["uses"], 0);
    assert_eq!(created["ends_at"], "2030-01-01T03:00:00Z");
    create_coupon(&app, coupon_body("FRETE15", "fixed", 1500)).await;

    let list = app.get("/api/coupons", Some(&token)).await;
    list.assert_status(200);
    assert_eq!(list.body["total"], 2);
    assert_eq!(list.body["items"][0]["code"], "FRETE15");
    let page = app.get("/api/coupons?limit=1&offset=1", Some(&token)).await;
    assert_eq!(page.body["items"][0]["code"], "BEMVINDO10");

    let path = format!("/api/coupons/{}", id_of(&created));
    let updated = app
        .put(
            &path,
            &json!({"code": "BEMVINDO15", "kind": "percent", "value": 15, "active": false}),
            Some(&token),
        )
        .await;
    updated.assert_status(200);
    assert_eq!(updated.body["value"], 15);
    assert_eq!(updated.body["active"], false);
    assert!(updated.body["max_uses"].is_null());
    assert_eq!(app.get(&path, Some(&token)).await.body, updated.body);

    app.delete(&path, Some(&token)).await.assert_status(204);
    app.get(&path, Some(&token)).await.assert_problem(404);
    app.delete(&path, Some(&token)).await.assert_problem(404);
    app.put(&path, &coupon_body("X1", "fixed", 1), Some(&token))
        .await
        .assert_problem(404);
    assert_eq!(app.get("/api/coupons", Some(&token)).await.body["total"], 1);
}

#[sqlx::test(migrations = false)]
async fn coupon_routes_are_for_admins(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let created = create_coupon(&app, coupon_body("ADM1", "fixed", 100)).await;
    let path = format!("/api/coupons/{}", id_of(&created));
    let body = coupon_body("ADM2", "fixed", 100);
    let user = customer(&app).await;
    for (method, path, body) in [
        (Method::GET, "/api/coupons", None),
        (Method::POST, "/api/coupons", Some(&body)),
        (Method::GET, path.as_str(), None),
        (Method::PUT, path.as_str(), Some(&body)),
        (Method::DELETE, path.as_str(), None),
    ] {
        app.request(method.clone(), path, body, None)
            .await
            .assert_problem(401);
        app.request(method, path, body, Some(&user))
            .await
            .assert_problem(403);
    }
}

#[sqlx::test(migrations = false)]
async fn invalid_coupons_are_422_and_codes_are_unique_case_insensitively(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    for (body, field) in [
        (coupon_body("P0", "percent", 0), "value"),
        (coupon_body("P101", "percent", 101), "value"),
        (coupon_body("F0", "fixed", 0), "value"),
        (coupon_body("K1", "half", 10), "kind"),
        (coupon_body("x", "fixed", 10), "code"),
        (coupon_body("COM ESPAÇO", "fixed", 10), "code"),
        (
            with(
                coupon_body("M1", "fixed", 10),
                json!({"min_subtotal_cents": -1}),
            ),
            "min_subtotal_cents",
        ),
        (
            with(coupon_body("U1", "fixed", 10), json!({"max_uses": 0})),
            "max_uses",
        ),
        (
            with(
                coupon_body("U2", "fixed", 10),
                json!({"max_uses_per_user": -2}),
            ),
            "max_uses_per_user",
        ),
        (
            with(
                coupon_body("W1", "fixed", 10),
                json!({"starts_at": "2026-02-01T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z"}),
            ),
            "ends_at",
        ),
    ] {
        let res = app.post("/api/coupons", &body, Some(&token)).await;
        res.assert_problem(422);
        assert!(
            res.body["errors"][field].is_array(),
            "{field}: {}",
            res.text
        );
    }
    app.post(
        "/api/coupons",
        &with(
            coupon_body("D1", "fixed", 10),
            json!({"starts_at": "amanhã"}),
        ),
        Some(&token),
    )
    .await
    .assert_problem(400);

    create_coupon(&app, coupon_body("Natal", "percent", 5)).await;
    app.post(
        "/api/coupons",
        &coupon_body("NATAL", "fixed", 500),
        Some(&token),
    )
    .await
    .assert_problem(409);
    let other = create_coupon(&app, coupon_body("PASCOA", "percent", 5)).await;
    app.put(
        &format!("/api/coupons/{}", id_of(&other)),
        &coupon_body("natal", "percent", 5),
        Some(&token),
    )
    .await
    .assert_problem(409);
}

#[sqlx::test(migrations = false)]
async fn a_percent_coupon_applies_with_any_case_and_can_be_removed(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    create_coupon(&app, coupon_body("BEMVINDO10", "percent", 10)).await;
    let (user, _) = customer_with_cart(&app, 4590, 3).await;
    let res = apply(&app, &user, "  bemVindo10 ").await;
    res.assert_status(200);
    assert_eq!(res.body["subtotal_cents"], 13770);
    assert_eq!(res.body["discount_cents"], 1377);
    assert_eq!(res.body["total_cents"], 12393);
    assert_eq!(
        res.body["coupon"],
        json!({"code": "BEMVINDO10", "kind": "percent", "value": 10, "applicable": true})
    );
    assert_eq!(app.get("/api/cart", Some(&user)).await.body, res.body);

    let res = app.delete("/api/cart/coupon", Some(&user)).await;
    res.assert_status(200);
    assert!(res.body["coupon"].is_null());
    assert_eq!(res.body["total_cents"], 13770);
    app.delete("/api/cart/coupon", Some(&user))
        .await
        .assert_status(200);
}

#[sqlx::test(migrations = false)]
async fn a_fixed_coupon_never_takes_the_total_below_zero(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    create_coupon(&app, coupon_body("FRETE15", "fixed", 1500)).await;
    create_coupon(&app, coupon_body("MEGA", "fixed", 50_000)).await;
    let (user, _) = customer_with_cart(&app, 1990, 1).await;
    let res = apply(&app, &user, "FRETE15").await;
    assert_eq!(res.body["discount_cents"], 1500);
    assert_eq!(res.body["total_cents"], 490);
    let res = apply(&app, &user, "mega").await;
    res.assert_status(200);
    assert_eq!(res.body["discount_cents"], 1990);
    assert_eq!(res.body["total_cents"], 0);
    assert_eq!(res.body["coupon"]["code"], "MEGA");
}

#[sqlx::test(migrations = false)]
async fn unknown_inactive_and_out_of_window_coupons_are_422(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let now = Utc::now();
    create_coupon(
        &app,
        with(
            coupon_body("DESLIGADO", "percent", 10),
            json!({"active": false}),
        ),
    )
    .await;
    create_coupon(
        &app,
        with(
            coupon_body("FUTURO", "percent", 10),
            json!({"starts_at": now + Duration::days(1)}),
        ),
    )
    .await;
    create_coupon(
        &app,
        with(
            coupon_body("VENCIDO", "percent", 10),
            json!({"starts_at": now - Duration::days(10), "ends_at": now - Duration::seconds(1)}),
        ),
    )
    .await;
    create_coupon(
        &app,
        with(
            coupon_body("VALENDO", "percent", 10),
            json!({"starts_at": now - Duration::days(1), "ends_at": now + Duration::days(1)}),
        ),
    )
    .await;
    let deleted = create_coupon(&app, coupon_body("APAGADO", "percent", 10)).await;
    app.delete(
        &format!("/api/coupons/{}", id_of(&deleted)),
        Some(&admin(&app).await),
    )
    .await
    .assert_status(204);

    let (user, _) = customer_with_cart(&app, 10_000, 1).await;
    for (code, message) in [
        ("NAOEXISTE", "unknown"),
        ("APAGADO", "unknown"),
        ("DESLIGADO", "not active"),
        ("FUTURO", "not valid yet"),
        ("VENCIDO", "expired"),
    ] {
        let res = apply(&app, &user, code).await;
        res.assert_problem(422);
        let errors = res.body["errors"]["code"][0].as_str().unwrap_or_default();
        assert!(errors.contains(message), "{code}: {}", res.text);
    }
    app.post("/api/cart/coupon", &json!({"code": ""}), Some(&user))
        .await
        .assert_problem(422);
    app.post("/api/cart/coupon", &json!({}), Some(&user))
        .await
        .assert_problem(400);
    assert!(app.get("/api/cart", Some(&user)).await.body["coupon"].is_null());
    apply(&app, &user, "valendo").await.assert_status(200);
}

#[sqlx::test(migrations = false)]
async fn the_minimum_subtotal_is_enforced_and_rechecked_as_the_cart_changes(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    create_coupon(
        &app,
        with(
            coupon_body("MIN100", "fixed", 1500),
            json!({"min_subtotal_cents": 10_000}),
        ),
    )
    .await;
    let (user, product) = customer_with_cart(&app, 4000, 2).await;
    let res = apply(&app, &user, "MIN100").await;
    res.assert_problem(422);
    assert!(
        res.body["errors"]["code"][0]
            .as_str()
            .unwrap()
            .contains("R$ 100,00")
    );

    app.put(
        &format!("/api/cart/items/{product}"),
        &json!({"quantity": 3}),
        Some(&user),
    )
    .await
    .assert_status(200);
    let res = apply(&app, &user, "MIN100").await;
    res.assert_status(200);
    assert_eq!(res.body["total_cents"], 10_500);

    // Dropping below the minimum keeps the coupon attached but gives no discount.
    let res = app
        .put(
            &format!("/api/cart/items/{product}"),
            &json!({"quantity": 2}),
            Some(&user),
        )
        .await;
    assert_eq!(res.body["discount_cents"], 0);
    assert_eq!(res.body["total_cents"], 8000);
    assert_eq!(res.body["coupon"]["applicable"], false);
    assert!(
        res.body["coupon"]["reason"]
            .as_str()
            .unwrap()
            .contains("at least")
    );
    let res = app
        .put(
            &format!("/api/cart/items/{product}"),
            &json!({"quantity": 3}),
            Some(&user),
        )
        .await;
    assert_eq!(res.body["discount_cents"], 1500);
    assert_eq!(res.body["coupon"]["applicable"], true);
}

#[sqlx::test(migrations = false)]
async fn global_and_per_user_limits_are_enforced(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let once_each = create_coupon(
        &app,
        with(
            coupon_body("UMAVEZ", "percent", 10),
            json!({"max_uses_per_user": 1}),
        ),
    )
    .await;
    let single = create_coupon(
        &app,
        with(coupon_body("SOUMA", "percent", 10), json!({"max_uses": 1})),
    )
    .await;
    let (first, _) = customer_with_cart(&app, 5000, 1).await;
    let (second, _) = customer_with_cart(&app, 5000, 1).await;
    let first_id = app.state.config.jwt.verify(&first).unwrap().sub;

    // The first customer checks out with both coupons (checkout counts a use per coupon).
    let mut conn = app.pool.acquire().await.unwrap();
    for coupon in [&once_each, &single] {
        let id = Uuid::parse_str(&id_of(coupon)).unwrap();
        cart_core::coupons::redeem(&mut conn, id, first_id, Uuid::now_v7())
            .await
            .unwrap();
    }
    let res = apply(&app, &first, "umavez").await;
    res.assert_problem(422);
    assert!(
        res.body["errors"]["code"][0]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    apply(&app, &second, "umavez").await.assert_status(200);

    let res = apply(&app, &second, "SOUMA").await;
    res.assert_problem(422);
    assert!(
        res.body["errors"]["code"][0]
            .as_str()
            .unwrap()
            .contains("used up")
    );
    // The coupon's use count shows to admins.
    let shown = app
        .get(
            &format!("/api/coupons/{}", id_of(&single)),
            Some(&admin(&app).await),
        )
        .await;
    assert_eq!(shown.body["uses"], 1);
}

#[sqlx::test(migrations = false)]
async fn deleting_a_coupon_detaches_it_from_carts(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let coupon = create_coupon(&app, coupon_body("TCHAU", "percent", 20)).await;
    let (user, _) = customer_with_cart(&app, 1000, 1).await;
    assert_eq!(apply(&app, &user, "TCHAU").await.body["total_cents"], 800);
    app.delete(
        &format!("/api/coupons/{}", id_of(&coupon)),
        Some(&admin(&app).await),
    )
    .await
    .assert_status(204);
    let cart = app.get("/api/cart", Some(&user)).await.body;
    assert!(cart["coupon"].is_null());
    assert_eq!(cart["total_cents"], 1000);
}
