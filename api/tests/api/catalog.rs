//! Products: admin writes, public reads, sorting, pagination, search, stock and soft delete.
//! The fixtures at the top are shared by the other catalog, cart, coupon and cache tests.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{TestApp, TestResponse};

/// A token of a fresh admin account.
pub async fn admin(app: &TestApp) -> String {
    app.admin().await.token
}

/// A token of a fresh customer account.
pub async fn customer(app: &TestApp) -> String {
    app.user().await.token
}

/// A valid product body; tests override fields with [`with`].
pub fn product_body(sku: &str, name: &str, price_cents: i64) -> Value {
    json!({
        "sku": sku,
        "name": name,
        "description": "",
        "price_cents": price_cents,
        "stock": 10,
        "weight_grams": 500,
        "height_cm": 20,
        "width_cm": 10,
        "length_cm": 8,
        "ncm": "09012100",
        "images": ["https://cdn.example.com/a.jpg"],
    })
}

pub fn with(mut body: Value, changes: Value) -> Value {
    if let (Some(target), Some(changes)) = (body.as_object_mut(), changes.as_object()) {
        for (k, v) in changes {
            target.insert(k.clone(), v.clone());
        }
    }
    body
}

/// Creates a product through the API and returns its JSON.
pub async fn create_product(app: &TestApp, token: &str, body: Value) -> Value {
    let res = app.post("/api/products", &body, Some(token)).await;
    res.assert_status(201);
    res.body
}

pub async fn create_category(
    app: &TestApp,
    token: &str,
    name: &str,
    parent: Option<&str>,
) -> Value {
    let res = app
        .post(
            "/api/categories",
            &json!({"name": name, "parent_id": parent}),
            Some(token),
        )
        .await;
    res.assert_status(201);
    res.body
}

pub fn id_of(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

fn names(res: &TestResponse) -> Vec<String> {
    res.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[sqlx::test(migrations = false)]
async fn an_admin_creates_a_product_with_a_slug_from_its_name(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    let body = with(
        product_body("CAF-500", "  Café Especial Torrado 500g ", 4590),
        json!({"ncm": "0901.21.00", "featured": true}),
    );
    let product = create_product(&app, &token, body).await;
    assert_eq!(product["name"], "Café Especial Torrado 500g");
    assert_eq!(product["slug"], "cafe-especial-torrado-500g");
    assert_eq!(product["ncm"], "09012100");
    assert_eq!(product["price_cents"], 4590);
    assert_eq!(product["stock"], 10);
    assert_eq!(product["featured"], true);
    assert_eq!(product["images"], json!(["https://cdn.example.com/a.jpg"]));
    assert!(product["category_id"].is_null());
    for field in ["weight_grams", "height_cm", "width_cm", "length_cm"] {
        assert!(product[field].is_i64(), "{field}");
    }
    assert!(product["created_at"].as_str().unwrap().ends_with('Z'));

    let fetched = app
        .get(&format!("/api/products/{}", id_of(&product)), None)
        .await;
    fetched.assert_status(200);
    assert_eq!(fetched.body, product);
}

#[sqlx::test(migrations = false)]
async fn product_writes_need_an_admin_token(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = customer(&app).await;
    let product = create_product(
        &app,
        &admin(&app).await,
        product_body("P-1", "Caneca", 1000),
    )
    .await;
    let path = format!("/api/products/{}", id_of(&product));
    let stock_path = format!("{path}/stock");
    let body = product_body("P-2", "Outra", 1000);
    let cases = [
        (Method::POST, "/api/products".to_owned(), Some(body.clone())),
        (Method::PUT, path.clone(), Some(body)),
        (Method::DELETE, path.clone(), None),
        (Method::PATCH, stock_path, Some(json!({"delta": 1}))),
    ];
    for (method, path, body) in cases {
        let anonymous = app
            .request(method.clone(), &path, body.as_ref(), None)
            .await;
        anonymous.assert_problem(401);
        assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
        app.request(method.clone(), &path, body.as_ref(), Some("not-a-jwt"))
            .await
            .assert_problem(401);
        app.request(method, &path, body.as_ref(), Some(&user))
            .await
            .assert_problem(403);
    }
}

#[sqlx::test(migrations = false)]
async fn invalid_product_values_are_422_with_field_errors(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    let body = with(
        product_body("OK-1", "", -10),
        json!({"ncm": "1234", "height_cm": -1, "width_cm": 0, "weight_grams": -5,
               "stock": -1, "images": ["not a url"]}),
    );
    let res = app.post("/api/products", &body, Some(&token)).await;
    res.assert_problem(422);
    for field in [
        "name",
        "price_cents",
        "ncm",
        "height_cm",
        "width_cm",
        "weight_grams",
        "stock",
        "images",
    ] {
        assert!(
            res.body["errors"][field].is_array(),
            "{field} missing: {}",
            res.text
        );
    }
    let res = app
        .post(
            "/api/products",
            &with(product_body("bad sku!", "Nome", 100), json!({})),
            Some(&token),
        )
        .await;
    res.assert_problem(422);
    assert!(res.body["errors"]["sku"].is_array());
    let res = app
        .post(
            "/api/products",
            &with(
                product_body("CAT-1", "Nome", 100),
                json!({"category_id": Uuid::now_v7()}),
            ),
            Some(&token),
        )
        .await;
    res.assert_problem(422);
    assert!(res.body["errors"]["category_id"].is_array());
}

#[sqlx::test(migrations = false)]
async fn malformed_requests_are_400_and_non_json_is_415(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    // Wrong type and a missing field.
    app.post(
        "/api/products",
        &with(
            product_body("T-1", "Nome", 100),
            json!({"price_cents": "cem"}),
        ),
        Some(&token),
    )
    .await
    .assert_problem(400);
    app.post("/api/products", &json!({"sku": "T-2"}), Some(&token))
        .await
        .assert_problem(400);
    let broken = app
        .client
        .post(app.url("/api/products"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    TestApp::read(broken).await.assert_problem(400);
    let text = app
        .client
        .post(app.url("/api/products"))
        .bearer_auth(&token)
        .body("sku=x")
        .send()
        .await
        .unwrap();
    TestApp::read(text).await.assert_problem(415);
    app.get("/api/products/not-a-uuid", None)
        .await
        .assert_problem(400);
    app.get("/api/products?limit=lots", None)
        .await
        .assert_problem(400);
    app.get("/api/products?sort=cheapest", None)
        .await
        .assert_problem(400);
}

#[sqlx::test(migrations = false)]
async fn unknown_products_are_404(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    let path = format!("/api/products/{}", Uuid::now_v7());
    app.get(&path, None).await.assert_problem(404);
    app.put(&path, &product_body("X-1", "Nome", 100), Some(&token))
        .await
        .assert_problem(404);
    app.delete(&path, Some(&token)).await.assert_problem(404);
    app.patch(&format!("{path}/stock"), &json!({"stock": 1}), Some(&token))
        .await
        .assert_problem(404);
}

#[sqlx::test(migrations = false)]
async fn a_duplicate_sku_is_409_but_a_deleted_products_sku_can_be_reused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    let first = create_product(&app, &token, product_body("SKU-1", "Caneca", 1000)).await;
    let res = app
        .post(
            "/api/products",
            &product_body("sku-1", "Outra Caneca", 1000),
            Some(&token),
        )
        .await;
    res.assert_problem(409);
    // Updating another product onto the SKU is refused as well.
    let second = create_product(&app, &token, product_body("SKU-2", "Copo", 1000)).await;
    app.put(
        &format!("/api/products/{}", id_of(&second)),
        &product_body("SKU-1", "Copo", 1000),
        Some(&token),
    )
    .await
    .assert_problem(409);

    app.delete(&format!("/api/products/{}", id_of(&first)), Some(&token))
        .await
        .assert_status(204);
    let again = create_product(&app, &token, product_body("SKU-1", "Caneca", 1200)).await;
    // The deleted product's slug is free again too.
    assert_eq!(again["slug"], "caneca");
}

#[sqlx::test(migrations = false)]
async fn slugs_are_made_unique_with_a_suffix(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    let a = create_product(
        &app,
        &token,
        product_body("A-1", "Caneca de Cerâmica", 1000),
    )
    .await;
    let b = create_product(
        &app,
        &token,
        product_body("A-2", "Caneca de Ceramica", 1000),
    )
    .await;
    let c = create_product(
        &app,
        &token,
        product_body("A-3", "caneca de cerâmica!", 1000),
    )
    .await;
    assert_eq!(a["slug"], "caneca-de-ceramica");
    assert_eq!(b["slug"], "caneca-de-ceramica-2");
    assert_eq!(c["slug"], "caneca-de-ceramica-3");
    // Renaming moves the slug; keeping the name keeps it.
    let renamed = app
        .put(
            &format!("/api/products/{}", id_of(&a)),
            &product_body("A-1", "Xícara Grande", 1000),
            Some(&token),
        )
        .await;
    renamed.assert_status(200);
    assert_eq!(renamed.body["slug"], "xicara-grande");
    let same = app
        .put(
            &format!("/api/products/{}", id_of(&b)),
            &product_body("A-2", "Caneca de Ceramica", 1500),
            Some(&token),
        )
        .await;
    assert_eq!(same.body["slug"], "caneca-de-ceramica-2");
}

#[sqlx::test(migrations = false)]
async fn a_full_update_replaces_fields_and_keeps_stock_unless_given(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    let product = create_product(&app, &token, product_body("U-1", "Caneca", 1000)).await;
    let path = format!("/api/products/{}", id_of(&product));
    let mut body = product_body("U-1", "Caneca Azul", 1500);
    body.as_object_mut().unwrap().remove("stock");
    let res = app
        .put(
            &path,
            &with(body, json!({"description": "Nova", "images": []})),
            Some(&token),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["name"], "Caneca Azul");
    assert_eq!(res.body["price_cents"], 1500);
    assert_eq!(res.body["description"], "Nova");
    assert_eq!(res.body["images"], json!([]));
    assert_eq!(res.body["stock"], 10);
    assert_eq!(res.body["created_at"], product["created_at"]);
    let res = app
        .put(
            &path,
            &with(
                product_body("U-1", "Caneca Azul", 1500),
                json!({"stock": 3}),
            ),
            Some(&token),
        )
        .await;
    assert_eq!(res.body["stock"], 3);
    app.put(&path, &product_body("U-1", "", 1500), Some(&token))
        .await
        .assert_problem(422);
}

#[sqlx::test(migrations = false)]
async fn a_deleted_product_disappears_from_every_public_read_and_from_carts(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    let category = create_category(&app, &token, "Cafés", None).await;
    let body = with(
        product_body("DEL-1", "Café Sumido", 1000),
        json!({"featured": true, "category_id": id_of(&category)}),
    );
    let product = create_product(&app, &token, body).await;
    let id = id_of(&product);
    let user = customer(&app).await;
    app.post(
        "/api/cart/items",
        &json!({"product_id": id, "quantity": 2}),
        Some(&user),
    )
    .await
    .assert_status(200);
    // Warm every cached read first: the delete must invalidate them.
    let lists = [
        "/api/products".to_owned(),
        "/api/products/featured".to_owned(),
        format!("/api/products/category/{}", id_of(&category)),
        "/api/products/search?q=sumido".to_owned(),
    ];
    for list in &lists {
        assert_eq!(app.get(list, None).await.body["total"], 1, "{list}");
    }
    app.get(&format!("/api/products/{id}"), None)
        .await
        .assert_status(200);

    app.delete(&format!("/api/products/{id}"), Some(&token))
        .await
        .assert_status(204);

    app.get(&format!("/api/products/{id}"), None)
        .await
        .assert_problem(404);
    for list in &lists {
        let res = app.get(list, None).await;
        assert_eq!(res.body["total"], 0, "{list}");
        assert_eq!(res.body["items"], json!([]), "{list}");
    }
    let cart = app.get("/api/cart", Some(&user)).await;
    assert_eq!(cart.body["items"], json!([]));
    assert_eq!(cart.body["total_cents"], 0);
    app.post(
        "/api/cart/items",
        &json!({"product_id": id, "quantity": 1}),
        Some(&user),
    )
    .await
    .assert_problem(404);
    // A second delete finds nothing; the row itself stays for old orders.
    app.delete(&format!("/api/products/{id}"), Some(&token))
        .await
        .assert_problem(404);
    let kept: i64 =
        sqlx::query_scalar("SELECT count(*) FROM products WHERE deleted_at IS NOT NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(kept, 1);
}

#[sqlx::test(migrations = false)]
async fn lists_are_paginated_with_a_clamped_limit_and_a_total(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    for i in 0..5 {
        create_product(
            &app,
            &token,
            product_body(&format!("PG-{i}"), &format!("Produto {i}"), 100 + i),
        )
        .await;
    }
    let res = app.get("/api/products", None).await;
    res.assert_status(200);
    assert_eq!(res.body["total"], 5);
    assert_eq!(res.body["limit"], 20);
    assert_eq!(res.body["offset"], 0);

    let res = app.get("/api/products?limit=2&offset=1", None).await;
    assert_eq!(res.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(res.body["total"], 5);
    assert_eq!(res.body["offset"], 1);

    let res = app.get("/api/products?limit=100000", None).await;
    assert_eq!(res.body["limit"], 100);
    assert_eq!(res.body["items"].as_array().unwrap().len(), 5);

    let res = app.get("/api/products?offset=50", None).await;
    res.assert_status(200);
    assert_eq!(res.body["items"], json!([]));
    assert_eq!(res.body["total"], 5);

    for bad in ["limit=0", "limit=-3", "offset=-1"] {
        app.get(&format!("/api/products?{bad}"), None)
            .await
            .assert_problem(422);
    }

    // Pages walk the whole list without overlap.
    let mut seen = Vec::new();
    for offset in 0..5 {
        let res = app
            .get(
                &format!("/api/products?limit=1&offset={offset}&sort=name"),
                None,
            )
            .await;
        seen.extend(names(&res));
    }
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (5, 5));
}

#[sqlx::test(migrations = false)]
async fn every_sort_order_is_honoured_with_ties_broken_by_id(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    let mut ids = Vec::new();
    for (sku, name, price) in [
        ("S-1", "Bule", 3000),
        ("S-2", "Água Mineral", 500),
        ("S-3", "Caneca", 3000),
        ("S-4", "açúcar", 800),
        ("S-5", "Xícara", 1200),
    ] {
        ids.push(id_of(
            &create_product(&app, &token, product_body(sku, name, price)).await,
        ));
    }
    let order = |sort: &str| {
        let app = &app;
        let sort = sort.to_owned();
        async move { names(&app.get(&format!("/api/products?sort={sort}"), None).await) }
    };
    assert_eq!(
        order("newest").await,
        ["Xícara", "açúcar", "Caneca", "Água Mineral", "Bule"]
    );
    // Default is newest.
    assert_eq!(
        names(&app.get("/api/products", None).await),
        order("newest").await
    );
    // Equal prices (Bule, Caneca) fall back to id order, which is creation order here.
    assert_eq!(
        order("price_asc").await,
        ["Água Mineral", "açúcar", "Xícara", "Bule", "Caneca"]
    );
    assert_eq!(
        order("price_desc").await,
        ["Bule", "Caneca", "Xícara", "açúcar", "Água Mineral"]
    );
    // Accents and case do not push names to the end.
    assert_eq!(
        order("name").await,
        ["açúcar", "Água Mineral", "Bule", "Caneca", "Xícara"]
    );
}

#[sqlx::test(migrations = false)]
async fn search_ignores_accents_stems_portuguese_and_tolerates_typos(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    create_product(
        &app,
        &token,
        product_body("CAF-1", "Café Especial Torrado 500g", 4590),
    )
    .await;
    create_product(
        &app,
        &token,
        product_body("CAN-1", "Caneca de Cerâmica", 3990),
    )
    .await;
    create_product(
        &app,
        &token,
        with(
            product_body("FIL-1", "Filtro de Papel", 990),
            json!({"description": "Ideal para café coado"}),
        ),
    )
    .await;
    create_product(&app, &token, product_body("CHA-1", "Chá Verde", 2290)).await;

    let search = |q: &str| {
        let app = &app;
        let url = format!("/api/products/search?q={}", urlencode(q));
        async move {
            let res = app.get(&url, None).await;
            res.assert_status(200);
            names(&res)
        }
    };
    // Accents: "cafe" finds "Café"; the name match (weight A) outranks the description (B).
    assert_eq!(
        search("cafe").await,
        ["Café Especial Torrado 500g", "Filtro de Papel"]
    );
    assert_eq!(search("CAFÉ").await, search("cafe").await);
    // Stemming: plural and another gender.
    assert_eq!(search("torrados").await, ["Café Especial Torrado 500g"]);
    assert_eq!(search("canecas ceramicas").await, ["Caneca de Cerâmica"]);
    // Typos in a name.
    assert_eq!(search("caffe").await, ["Café Especial Torrado 500g"]);
    assert_eq!(search("cerammica").await, ["Caneca de Cerâmica"]);
    // The SKU.
    assert_eq!(search("CHA-1").await, ["Chá Verde"]);
    assert!(search("bicicleta").await.is_empty());

    let res = app.get("/api/products/search?q=cafe&limit=1", None).await;
    assert_eq!(res.body["total"], 2);
    assert_eq!(res.body["items"].as_array().unwrap().len(), 1);

    for empty in [
        "/api/products/search?q=",
        "/api/products/search?q=%20%20",
        "/api/products/search",
    ] {
        let res = app.get(empty, None).await;
        res.assert_problem(422);
        assert!(res.body["errors"]["q"].is_array());
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[sqlx::test(migrations = false)]
async fn featured_and_category_lists_filter_and_include_subcategories(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    let cafes = create_category(&app, &token, "Cafés", None).await;
    let graos = create_category(&app, &token, "Cafés em Grãos", Some(&id_of(&cafes))).await;
    let acessorios = create_category(&app, &token, "Acessórios", None).await;
    create_product(
        &app,
        &token,
        with(
            product_body("F-1", "Café A", 100),
            json!({"category_id": id_of(&cafes), "featured": true}),
        ),
    )
    .await;
    create_product(
        &app,
        &token,
        with(
            product_body("F-2", "Café B", 100),
            json!({"category_id": id_of(&graos)}),
        ),
    )
    .await;
    create_product(
        &app,
        &token,
        with(
            product_body("F-3", "Caneca", 100),
            json!({"category_id": id_of(&acessorios), "featured": true}),
        ),
    )
    .await;

    let featured = app.get("/api/products/featured?sort=name", None).await;
    assert_eq!(names(&featured), ["Café A", "Caneca"]);
    assert_eq!(featured.body["total"], 2);
    let subtree = app
        .get(
            &format!("/api/products/category/{}?sort=name", id_of(&cafes)),
            None,
        )
        .await;
    assert_eq!(names(&subtree), ["Café A", "Café B"]);
    let leaf = app
        .get(&format!("/api/products/category/{}", id_of(&graos)), None)
        .await;
    assert_eq!(names(&leaf), ["Café B"]);
    app.get(&format!("/api/products/category/{}", Uuid::now_v7()), None)
        .await
        .assert_problem(404);
    app.get("/api/products/category/nope", None)
        .await
        .assert_problem(400);
}

#[sqlx::test(migrations = false)]
async fn stock_is_set_or_moved_and_never_goes_below_zero(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    let product = create_product(&app, &token, product_body("ST-1", "Caneca", 1000)).await;
    let path = format!("/api/products/{}/stock", id_of(&product));
    let res = app.patch(&path, &json!({"stock": 4}), Some(&token)).await;
    res.assert_status(200);
    assert_eq!(res.body["stock"], 4);
    let res = app.patch(&path, &json!({"delta": 3}), Some(&token)).await;
    assert_eq!(res.body["stock"], 7);
    let res = app.patch(&path, &json!({"delta": -7}), Some(&token)).await;
    assert_eq!(res.body["stock"], 0);
    app.patch(&path, &json!({"delta": -1}), Some(&token))
        .await
        .assert_problem(409);
    app.patch(&path, &json!({"delta": 2147483647}), Some(&token))
        .await
        .assert_status(200);
    app.patch(&path, &json!({"delta": 1}), Some(&token))
        .await
        .assert_problem(409);
    for bad in [
        json!({"stock": -1}),
        json!({}),
        json!({"stock": 1, "delta": 1}),
        json!({"delta": -3000000000_i64}),
    ] {
        app.patch(&path, &bad, Some(&token))
            .await
            .assert_problem(422);
    }
    // The public read shows the last successful value.
    let shown = app
        .get(&format!("/api/products/{}", id_of(&product)), None)
        .await;
    assert_eq!(shown.body["stock"], 2147483647);
}

#[sqlx::test(migrations = false)]
async fn twenty_concurrent_decrements_of_a_stock_of_ten_let_exactly_ten_through(pool: PgPool) {
    let app = Arc::new(TestApp::spawn(pool).await);
    let token = admin(&app).await;
    let product = create_product(
        &app,
        &token,
        with(product_body("RACE-1", "Caneca", 1000), json!({"stock": 10})),
    )
    .await;
    let path = format!("/api/products/{}/stock", id_of(&product));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            let (path, token) = (path.clone(), token.clone());
            tokio::spawn(async move {
                app.patch(&path, &json!({"delta": -1}), Some(&token))
                    .await
                    .status
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 10);
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 10);
    let stock: i32 = sqlx::query_scalar("SELECT stock FROM products WHERE sku = 'RACE-1'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stock, 0);
}

#[sqlx::test(migrations = false)]
async fn the_seed_loads_a_demo_catalog_once(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let first = cart_api::seed::load(&app.pool).await.unwrap();
    assert_eq!(
        first,
        cart_api::seed::SeedOutcome::Loaded {
            categories: 10,
            products: 30,
            coupons: 2
        }
    );
    assert_eq!(
        cart_api::seed::load(&app.pool).await.unwrap(),
        cart_api::seed::SeedOutcome::CatalogNotEmpty
    );
    let all = app.get("/api/products?limit=100", None).await;
    assert_eq!(all.body["total"], 30);
    let featured = app.get("/api/products/featured", None).await;
    assert!(featured.body["total"].as_i64().unwrap() >= 3);
    let search = app.get("/api/products/search?q=cafe", None).await;
    assert!(names(&search).contains(&"Café Especial Torrado 500g".to_owned()));
    let categories = app.get("/api/categories?limit=100", None).await;
    let with_parent = categories.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["parent_id"].is_null())
        .count();
    assert!(with_parent >= 3);
    let user = customer(&app).await;
    let product = &all.body["items"][0];
    app.post(
        "/api/cart/items",
        &json!({"product_id": product["id"], "quantity": 1}),
        Some(&user),
    )
    .await
    .assert_status(200);
    app.post(
        "/api/cart/coupon",
        &json!({"code": "bemvindo10"}),
        Some(&user),
    )
    .await
    .assert_status(200);
}

#[sqlx::test(migrations = false)]
async fn the_openapi_document_lists_every_catalog_cart_and_coupon_route(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let doc = app.get("/openapi.json", None).await.body;
    for (path, methods) in [
        ("/api/products", &["get", "post"][..]),
        ("/api/products/search", &["get"]),
        ("/api/products/featured", &["get"]),
        ("/api/products/category/{id}", &["get"]),
        ("/api/products/{id}", &["get", "put", "delete"]),
        ("/api/products/{id}/stock", &["patch"]),
        ("/api/categories", &["get", "post"]),
        ("/api/categories/{id}", &["get", "put", "delete"]),
        ("/api/cart", &["get", "delete"]),
        ("/api/cart/items", &["post"]),
        ("/api/cart/items/{product_id}", &["put", "delete"]),
        ("/api/cart/coupon", &["post", "delete"]),
        ("/api/coupons", &["get", "post"]),
        ("/api/coupons/{id}", &["get", "put", "delete"]),
    ] {
        for method in methods {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing from /openapi.json"
            );
        }
    }
    for schema in ["Product", "Category", "Cart", "Coupon", "ProductInput"] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}
