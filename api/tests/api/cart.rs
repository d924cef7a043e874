//! The cart: lines, quantities against stock, totals from current prices, unavailable lines.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    catalog::{admin, create_product, customer, id_of, product_body, with},
    helpers::TestApp,
};

async fn product(app: &TestApp, sku: &str, price_cents: i64, stock: i64) -> String {
    let body = with(
        product_body(sku, &format!("Produto {sku}"), price_cents),
        json!({"stock": stock}),
    );
    id_of(&create_product(app, &admin(app).await, body).await)
}

async fn add(app: &TestApp, token: &str, product_id: &str, quantity: i64) -> Value {
    let res = app
        .post(
            "/api/cart/items",
            &json!({"product_id": product_id, "quantity": quantity}),
            Some(token),
        )
        .await;
    res.assert_status(200);
    res.body
}

#[sqlx::test(migrations = false)]
async fn every_cart_route_needs_a_token(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let item = format!("/api/cart/items/{}", Uuid::now_v7());
    let body = json!({"quantity": 1});
    for (method, path, body) in [
        (Method::GET, "/api/cart", None),
        (Method::DELETE, "/api/cart", None),
        (Method::POST, "/api/cart/items", Some(&body)),
        (Method::PUT, item.as_str(), Some(&body)),
        (Method::DELETE, item.as_str(), None),
        (Method::POST, "/api/cart/coupon", Some(&body)),
        (Method::DELETE, "/api/cart/coupon", None),
    ] {
        let res = app.request(method, path, body, None).await;
        res.assert_problem(401);
        assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    }
}

#[sqlx::test(migrations = false)]
async fn a_new_customer_has_an_empty_cart(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let res = app.get("/api/cart", Some(&customer(&app).await)).await;
    res.assert_status(200);
    assert_eq!(
        res.body,
        json!({"items": [], "subtotal_cents": 0, "discount_cents": 0, "total_cents": 0, "coupon": null})
    );
}

#[sqlx::test(migrations = false)]
async fn adding_items_accumulates_lines_and_totals(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = customer(&app).await;
    let caneca = product(&app, "CAN-1", 3990, 5).await;
    let cafe = product(&app, "CAF-1", 4590, 10).await;
    add(&app, &user, &caneca, 1).await;
    add(&app, &user, &cafe, 2).await;
    let cart = add(&app, &user, &caneca, 2).await;
    assert_eq!(
        cart["items"],
        json!([
            {"product_id": caneca, "name": "Produto CAN-1", "unit_price_cents": 3990,
             "quantity": 3, "line_total_cents": 11970, "available": true},
            {"product_id": cafe, "name": "Produto CAF-1", "unit_price_cents": 4590,
             "quantity": 2, "line_total_cents": 9180, "available": true},
        ])
    );
    assert_eq!(cart["subtotal_cents"], 21150);
    assert_eq!(cart["discount_cents"], 0);
    assert_eq!(cart["total_cents"], 21150);
    assert_eq!(app.get("/api/cart", Some(&user)).await.body, cart);
    // Another customer's cart is separate.
    assert_eq!(
        app.get("/api/cart", Some(&customer(&app).await)).await.body["items"],
        json!([])
    );
}

/// JSON Schema, and so the OpenAPI document, counts `2.0` as the integer 2; a client whose
/// JSON library writes integers that way is not refused. A fraction still is.
#[sqlx::test(migrations = false)]
async fn a_whole_number_written_with_a_fraction_is_an_integer(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = customer(&app).await;
    let item = product(&app, "WH-1", 1000, 10).await;
    for (body, quantity) in [
        (format!(r#"{{"product_id": "{item}", "quantity": 2.0}}"#), 2),
        (format!(r#"{{"product_id": "{item}", "quantity": 1e0}}"#), 3),
    ] {
        let res = TestApp::read(
            app.client
                .post(app.url("/api/cart/items"))
                .bearer_auth(&user)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        res.assert_status(200);
        assert_eq!(res.body["items"][0]["quantity"], quantity);
    }
    let res = TestApp::read(
        app.client
            .post(app.url("/api/cart/items"))
            .bearer_auth(&user)
            .header("content-type", "application/json")
            .body(format!(r#"{{"product_id": "{item}", "quantity": 1.5}}"#))
            .send()
            .await
            .unwrap(),
    )
    .await;
    res.assert_problem(400);
    assert!(res.body["detail"].as_str().unwrap().contains("quantity"));
}

#[sqlx::test(migrations = false)]
async fn adding_is_checked_against_stock_quantity_and_the_product(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = customer(&app).await;
    let item = product(&app, "ST-1", 1000, 3).await;
    add(&app, &user, &item, 2).await;
    // 2 in the cart + 2 more > 3 in stock.
    let res = app
        .post(
            "/api/cart/items",
            &json!({"product_id": item, "quantity": 2}),
            Some(&user),
        )
        .await;
    res.assert_problem(409);
    for quantity in [0, -1] {
        let res = app
            .post(
                "/api/cart/items",
                &json!({"product_id": item, "quantity": quantity}),
                Some(&user),
            )
            .await;
        res.assert_problem(422);
        assert!(res.body["errors"]["quantity"].is_array());
    }
    app.post(
        "/api/cart/items",
        &json!({"product_id": Uuid::now_v7(), "quantity": 1}),
        Some(&user),
    )
    .await
    .assert_problem(404);
    app.post(
        "/api/cart/items",
        &json!({"product_id": "not-a-uuid", "quantity": 1}),
        Some(&user),
    )
    .await
    .assert_problem(400);
    app.post("/api/cart/items", &json!({"product_id": item}), Some(&user))
        .await
        .assert_problem(400);
    // Nothing above changed the cart.
    assert_eq!(
        app.get("/api/cart", Some(&user)).await.body["items"][0]["quantity"],
        2
    );
}

#[sqlx::test(migrations = false)]
async fn put_sets_a_quantity_and_zero_removes_the_line(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = customer(&app).await;
    let a = product(&app, "A-1", 1000, 5).await;
    let b = product(&app, "B-1", 500, 5).await;
    add(&app, &user, &a, 1).await;
    let path = format!("/api/cart/items/{a}");
    let res = app.put(&path, &json!({"quantity": 5}), Some(&user)).await;
    res.assert_status(200);
    assert_eq!(res.body["items"][0]["quantity"], 5);
    assert_eq!(res.body["total_cents"], 5000);
    app.put(&path, &json!({"quantity": 6}), Some(&user))
        .await
        .assert_problem(409);
    app.put(&path, &json!({"quantity": -1}), Some(&user))
        .await
        .assert_problem(422);
    app.put(&path, &json!({"quantity": "três"}), Some(&user))
        .await
        .assert_problem(400);
    app.put(
        &format!("/api/cart/items/{}", Uuid::now_v7()),
        &json!({"quantity": 1}),
        Some(&user),
    )
    .await
    .assert_problem(404);
    // PUT also creates a line.
    let res = app
        .put(
            &format!("/api/cart/items/{b}"),
            &json!({"quantity": 2}),
            Some(&user),
        )
        .await;
    assert_eq!(res.body["items"].as_array().unwrap().len(), 2);
    let res = app.put(&path, &json!({"quantity": 0}), Some(&user)).await;
    res.assert_status(200);
    assert_eq!(res.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(res.body["items"][0]["product_id"], b.as_str());
    assert_eq!(res.body["total_cents"], 1000);
}

#[sqlx::test(migrations = false)]
async fn lines_are_removed_one_by_one_or_all_at_once(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = customer(&app).await;
    let a = product(&app, "A-1", 1000, 5).await;
    let b = product(&app, "B-1", 500, 5).await;
    add(&app, &user, &a, 1).await;
    add(&app, &user, &b, 1).await;
    let res = app
        .delete(&format!("/api/cart/items/{a}"), Some(&user))
        .await;
    res.assert_status(200);
    assert_eq!(res.body["items"].as_array().unwrap().len(), 1);
    app.delete(&format!("/api/cart/items/{a}"), Some(&user))
        .await
        .assert_problem(404);
    app.delete("/api/cart/items/xyz", Some(&user))
        .await
        .assert_problem(400);
    let res = app.delete("/api/cart", Some(&user)).await;
    res.assert_status(200);
    assert_eq!(res.body["items"], json!([]));
    assert_eq!(res.body["total_cents"], 0);
    // Emptying an empty cart is fine too.
    app.delete("/api/cart", Some(&user))
        .await
        .assert_status(200);
}

#[sqlx::test(migrations = false)]
async fn totals_follow_current_prices_and_short_lines_are_flagged_not_dropped(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    let user = customer(&app).await;
    let item = product(&app, "P-1", 1000, 5).await;
    add(&app, &user, &item, 3).await;
    let mut body = product_body("P-1", "Produto P-1", 1250);
    body.as_object_mut().unwrap().remove("stock");
    app.put(&format!("/api/products/{item}"), &body, Some(&token))
        .await
        .assert_status(200);
    let cart = app.get("/api/cart", Some(&user)).await.body;
    assert_eq!(cart["items"][0]["unit_price_cents"], 1250);
    assert_eq!(cart["total_cents"], 3750);
    assert_eq!(cart["items"][0]["available"], true);

    // Stock falls below the line's quantity: the line stays, flagged, still in the totals.
    app.patch(
        &format!("/api/products/{item}/stock"),
        &json!({"stock": 2}),
        Some(&token),
    )
    .await
    .assert_status(200);
    let cart = app.get("/api/cart", Some(&user)).await.body;
    assert_eq!(cart["items"][0]["available"], false);
    assert_eq!(cart["items"][0]["quantity"], 3);
    assert_eq!(cart["total_cents"], 3750);
    // Lowering the quantity to what is left makes it available again.
    let cart = app
        .put(
            &format!("/api/cart/items/{item}"),
            &json!({"quantity": 2}),
            Some(&user),
        )
        .await
        .body;
    assert_eq!(cart["items"][0]["available"], true);
    assert_eq!(cart["total_cents"], 2500);
}
