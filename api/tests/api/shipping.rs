use serde_json::json;
use sqlx::PgPool;

use crate::helpers::TestApp;

async fn product(pool: &PgPool, sku: &str, weight_grams: i32) -> uuid::Uuid {
    sqlx::query_scalar(
        "INSERT INTO products (id, sku, name, slug, description, price_cents, stock,
                               weight_grams, height_cm, width_cm, length_cm, ncm)
         VALUES ($1, $2, $2, lower($2), '', 5000, 10, $3, 10, 15, 20, '09012100')
         RETURNING id",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(sku)
    .bind(weight_grams)
    .fetch_one(pool)
    .await
    .expect("product is inserted")
}

#[sqlx::test(migrations = false)]
async fn quotes_pac_and_sedex_from_the_products_own_package(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let light = product(&app.pool, "CAFE-250", 250).await;
    let heavy = product(&app.pool, "MOEDOR-1", 4000).await;

    let res = app
        .post(
            "/api/shipping/calculate",
            &json!({"cep_destino": "20040-002", "items": [{"product_id": light, "quantity": 1}]}),
            None,
        )
        .await;
    res.assert_status(200);
    let options = res.body["options"].as_array().unwrap();
    let services: Vec<&str> = options
        .iter()
        .map(|o| o["service"].as_str().unwrap())
        .collect();
    assert!(
        services.contains(&"PAC") && services.contains(&"SEDEX"),
        "{services:?}"
    );
    let prices: Vec<i64> = options
        .iter()
        .map(|o| o["price_cents"].as_i64().unwrap())
        .collect();
    assert!(
        prices.windows(2).all(|w| w[0] <= w[1]),
        "cheapest first: {prices:?}"
    );

    let heavier = app
        .post(
            "/api/shipping/calculate",
            &json!({"cep_destino": "20040002", "items": [
                {"product_id": light, "quantity": 1}, {"product_id": heavy, "quantity": 2}]}),
            None,
        )
        .await;
    heavier.assert_status(200);
    assert!(
        heavier.body["options"][0]["price_cents"].as_i64().unwrap() > prices[0],
        "a heavier package costs more: {}",
        heavier.text
    );
}

#[sqlx::test(migrations = false)]
async fn bad_cep_unknown_product_and_bad_quantity_are_422_naming_the_field(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let id = product(&app.pool, "CAFE-500", 500).await;
    let res = app
        .post(
            "/api/shipping/calculate",
            &json!({"cep_destino": "123", "items": [{"product_id": id, "quantity": 1}]}),
            None,
        )
        .await;
    res.assert_problem(422);
    assert!(res.body["errors"]["cep_destino"].is_array());

    let res = app
        .post(
            "/api/shipping/calculate",
            &json!({"cep_destino": "01310100", "items": [{"product_id": uuid::Uuid::now_v7(), "quantity": 1}]}),
            None,
        )
        .await;
    res.assert_problem(422);
    assert!(
        res.body["errors"]["items[0].product_id"].is_array(),
        "{}",
        res.text
    );

    let res = app
        .post(
            "/api/shipping/calculate",
            &json!({"cep_destino": "01310100", "items": [{"product_id": id, "quantity": 0}]}),
            None,
        )
        .await;
    res.assert_problem(422);

    let res = app
        .post(
            "/api/shipping/calculate",
            &json!({"cep_destino": "01310100", "items": []}),
            None,
        )
        .await;
    res.assert_problem(422);

    app.post("/api/shipping/calculate", &json!({"cep_destino": 1}), None)
        .await
        .assert_problem(400);
}

#[sqlx::test(migrations = false)]
async fn a_deleted_product_cannot_be_quoted(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let id = product(&app.pool, "CAFE-OLD", 500).await;
    sqlx::query("UPDATE products SET deleted_at = now() WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    app.post(
        "/api/shipping/calculate",
        &json!({"cep_destino": "01310100", "items": [{"product_id": id, "quantity": 1}]}),
        None,
    )
    .await
    .assert_problem(422);
}
