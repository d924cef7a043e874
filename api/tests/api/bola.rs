//! Broken object-level authorisation (BOLA/IDOR): for every route with an id in its path,
//! another user's token gets the same answer as for an id that does not exist (404, or 403 on
//! admin-only routes), no byte of the owner's data, and changes nothing.
//!
//! The matrix is checked against `/openapi.json`: a new route with a path parameter fails
//! [`every_route_with_an_id_is_in_the_matrix`] until it gets a row in [`matrix`] (or, when
//! its ids belong to no user, a line in [`NOT_USER_OWNED`]).

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{TestApp, TestResponse, TestUser};

/// Routes whose path ids name nothing a user owns (public catalog reads, admin-managed
/// records), with why. Their authorisation is tested where they are built.
const NOT_USER_OWNED: &[(&str, &str, &str)] = &[
    (
        "GET",
        "/api/orders/tracking/{number}",
        "public by design (an unguessable number); checked below to carry no personal data",
    ),
    ("GET", "/api/products/{id}", "the public catalog"),
    ("GET", "/api/products/category/{id}", "the public catalog"),
    ("GET", "/api/categories/{id}", "the public catalog"),
    (
        "PUT",
        "/api/cart/items/{product_id}",
        "the id names a product in the caller's own cart; checked below never to reach another's",
    ),
];

/// Strings only the victim's records contain: none may appear in an answer to the attacker.
const SECRETS: &[&str] = &[
    "Vítima Sigilosa",
    "Rua do Segredo",
    "529.982.247-25",
    "52998224725",
];

/// What the victim owns, created through the API (orders through the core functions, so the
/// matrix does not depend on checkout).
struct Victim {
    user: TestUser,
    address_id: String,
    order_id: Uuid,
    order_number: String,
    /// A product in the victim's cart, and a coupon (admin-made) to aim at.
    product_id: String,
    coupon_id: String,
    category_id: String,
}

/// One request of the attacker against the victim's resource.
struct Row {
    /// The OpenAPI path (with `/api`) and method this row covers.
    method: Method,
    template: &'static str,
    /// The concrete path with the victim's ids, and the same path with ids that exist nowhere.
    path: String,
    ghost: String,
    body: Option<Value>,
    /// 404 for owned resources; 403 where the route is for admins only.
    expected: u16,
}

fn address_body() -> Value {
    json!({
        "label": "Intrusa", "recipient": "Atacante", "cep": "01310-100",
        "street": "Avenida Paulista", "number": "1", "complement": "",
        "district": "Bela Vista", "city": "São Paulo", "state": "SP"
    })
}

fn row(
    method: Method,
    template: &'static str,
    path: String,
    ghost: String,
    body: Option<Value>,
) -> Row {
    Row {
        method,
        template,
        path,
        ghost,
        body,
        expected: 404,
    }
}

/// Every attack, by route. Owned resources are reached both under the victim's user id and
/// under the attacker's own `me`.
fn matrix(victim: &Victim) -> Vec<Row> {
    let uid = victim.user.id;
    let aid = &victim.address_id;
    let nobody = Uuid::now_v7();
    let no_address = Uuid::now_v7();
    let mut rows = Vec::new();

    rows.push(Row {
        expected: 403,
        ..row(
            Method::GET,
            "/api/users/{id}",
            format!("/api/users/{uid}"),
            format!("/api/users/{nobody}"),
            None,
        )
    });
    for (method, body) in [(Method::GET, None), (Method::POST, Some(address_body()))] {
        rows.push(row(
            method,
            "/api/users/{id}/addresses",
            format!("/api/users/{uid}/addresses"),
            format!("/api/users/{nobody}/addresses"),
            body,
        ));
    }
    for owner in [uid.to_string(), "me".to_owned()] {
        let ghost_owner = if owner == "me" {
            "me".to_owned()
        } else {
            nobody.to_string()
        };
        for (method, body) in [(Method::PUT, Some(address_body())), (Method::DELETE, None)] {
            rows.push(row(
                method,
                "/api/users/{id}/addresses/{aid}",
                format!("/api/users/{owner}/addresses/{aid}"),
                format!("/api/users/{ghost_owner}/addresses/{no_address}"),
                body,
            ));
        }
        rows.push(row(
            Method::PATCH,
            "/api/users/{id}/addresses/{aid}/default",
            format!("/api/users/{owner}/addresses/{aid}/default"),
            format!("/api/users/{ghost_owner}/addresses/{no_address}/default"),
            Some(json!({})),
        ));
    }

    let order = victim.order_id;
    let no_order = Uuid::now_v7();
    rows.push(row(
        Method::GET,
        "/api/orders/{id}",
        format!("/api/orders/{order}"),
        format!("/api/orders/{no_order}"),
        None,
    ));
    rows.push(row(
        Method::PATCH,
        "/api/orders/{id}/cancel",
        format!("/api/orders/{order}/cancel"),
        format!("/api/orders/{no_order}/cancel"),
        Some(json!({})),
    ));
    // Payment and invoice of someone else's order: as if the order did not exist, and no
    // charge is started.
    for (method, template, suffix, body) in [
        (
            Method::POST,
            "/api/orders/{id}/pay",
            "pay",
            Some(json!({"method": "pix"})),
        ),
        (Method::GET, "/api/orders/{id}/payment", "payment", None),
        (Method::GET, "/api/orders/{id}/invoice", "invoice", None),
    ] {
        rows.push(row(
            method,
            template,
            format!("/api/orders/{order}/{suffix}"),
            format!("/api/orders/{no_order}/{suffix}"),
            body,
        ));
    }
    // Confirming a sandbox payment is an operator's tool: refused before any lookup.
    let payment = Uuid::now_v7();
    rows.push(Row {
        expected: 403,
        ..row(
            Method::POST,
            "/api/sandbox/payments/{payment_id}/confirm",
            format!("/api/sandbox/payments/{payment}/confirm"),
            format!("/api/sandbox/payments/{}/confirm", Uuid::now_v7()),
            Some(json!({})),
        )
    });
    for (template, suffix, body) in [
        (
            "/api/orders/{id}/tracking",
            "tracking",
            Some(json!({"tracking_number": "BR123456789BR", "carrier": "Correios"})),
        ),
        ("/api/orders/{id}/delivered", "delivered", Some(json!({}))),
    ] {
        rows.push(Row {
            expected: 403,
            ..row(
                Method::PATCH,
                template,
                format!("/api/orders/{order}/{suffix}"),
                format!("/api/orders/{no_order}/{suffix}"),
                body,
            )
        });
    }

    // The cart is the caller's: a product in someone else's cart is no line of the attacker's.
    let product = &victim.product_id;
    rows.push(row(
        Method::DELETE,
        "/api/cart/items/{product_id}",
        format!("/api/cart/items/{product}"),
        format!("/api/cart/items/{}", Uuid::now_v7()),
        None,
    ));

    // Admin-only records: a customer is refused before anything is looked up.
    let admin_only: [(Method, &'static str, &str, &str, Option<Value>); 8] = [
        (
            Method::GET,
            "/api/coupons/{id}",
            "coupons",
            &victim.coupon_id,
            None,
        ),
        (
            Method::PUT,
            "/api/coupons/{id}",
            "coupons",
            &victim.coupon_id,
            Some(json!({})),
        ),
        (
            Method::DELETE,
            "/api/coupons/{id}",
            "coupons",
            &victim.coupon_id,
            None,
        ),
        (
            Method::PUT,
            "/api/products/{id}",
            "products",
            product,
            Some(json!({})),
        ),
        (
            Method::DELETE,
            "/api/products/{id}",
            "products",
            product,
            None,
        ),
        (
            Method::PUT,
            "/api/categories/{id}",
            "categories",
            &victim.category_id,
            Some(json!({})),
        ),
        (
            Method::DELETE,
            "/api/categories/{id}",
            "categories",
            &victim.category_id,
            None,
        ),
        (
            Method::PATCH,
            "/api/products/{id}/stock",
            "products",
            product,
            Some(json!({"stock": 0})),
        ),
    ];
    for (method, template, area, id, body) in admin_only {
        let suffix = if template.ends_with("/stock") {
            "/stock"
        } else {
            ""
        };
        rows.push(Row {
            expected: 403,
            ..row(
                method,
                template,
                format!("/api/{area}/{id}{suffix}"),
                format!("/api/{area}/{}{suffix}", Uuid::now_v7()),
                body,
            )
        });
    }
    rows
}

/// A category, a product in it and a coupon, made by an admin through the API.
async fn catalog(app: &TestApp) -> (String, String, String) {
    let admin = app.admin().await;
    let category = app
        .post(
            "/api/categories",
            &json!({"name": "Papelaria"}),
            Some(&admin.token),
        )
        .await;
    category.assert_status(201);
    let category_id = category.body["id"].as_str().expect("an id").to_owned();
    let product = app
        .post(
            "/api/products",
            &json!({
                "sku": "DIARIO-1", "name": "Diário", "description": "", "price_cents": 4990,
                "stock": 10, "weight_grams": 300, "height_cm": 2, "width_cm": 15,
                "length_cm": 21, "ncm": "48201000", "images": [], "category_id": category_id,
            }),
            Some(&admin.token),
        )
        .await;
    product.assert_status(201);
    let coupon = app
        .post(
            "/api/coupons",
            &json!({"code": "SEGREDO10", "kind": "percent", "value": 10}),
            Some(&admin.token),
        )
        .await;
    coupon.assert_status(201);
    (
        product.body["id"].as_str().expect("an id").to_owned(),
        coupon.body["id"].as_str().expect("an id").to_owned(),
        category_id,
    )
}

async fn place_order(app: &TestApp, user_id: Uuid) -> (Uuid, String) {
    use cart_core::orders::{
        ShippingAddress,
        create::{self, ChosenShipping, NewOrder, NewOrderItem},
    };
    // Order lines refer to real products.
    let product_id = crate::checkout::product(&app.pool, "Diário", 4990, 10).await;
    let mut conn = app.pool.acquire().await.expect("a connection");
    let created = create::insert(
        &mut conn,
        &NewOrder {
            user_id,
            items: vec![NewOrderItem {
                product_id,
                sku: "DIARIO-1".into(),
                name: "Diário".into(),
                unit_price_cents: 4990,
                quantity: 1,
                ncm: Some("48201000".into()),
                weight_grams: Some(300),
            }],
            coupon: None,
            shipping: ChosenShipping {
                carrier: "Correios".into(),
                service: "SEDEX".into(),
                price_cents: 2500,
                days: 2,
                address: ShippingAddress {
                    label: Some("Casa".into()),
                    recipient: "Vítima Sigilosa".into(),
                    cep: "04538133".into(),
                    street: "Rua do Segredo".into(),
                    number: "42".into(),
                    complement: Some("fundos".into()),
                    district: "Itaim Bibi".into(),
                    city: "São Paulo".into(),
                    state: "SP".into(),
                },
            },
            recipient_cpf: "52998224725".into(),
            expires_at: chrono::Utc::now() + chrono::Duration::minutes(30),
        },
    )
    .await
    .expect("an order");
    (created.id, created.number)
}

async fn victim(app: &TestApp) -> Victim {
    let user = app.user().await;
    app.put(
        "/api/users/me",
        &json!({"name": "Vítima Sigilosa", "cpf": "529.982.247-25"}),
        Some(&user.token),
    )
    .await
    .assert_status(200);
    let address = app
        .post(
            "/api/users/me/addresses",
            &json!({
                "label": "Casa", "recipient": "Vítima Sigilosa", "cep": "04538-133",
                "street": "Rua do Segredo", "number": "42", "complement": "fundos",
                "district": "Itaim Bibi", "city": "São Paulo", "state": "SP"
            }),
            Some(&user.token),
        )
        .await;
    address.assert_status(201);
    let (order_id, order_number) = place_order(app, user.id).await;
    // A payment on the order, so the payment rows aim at something that exists.
    {
        let mut conn = app.pool.acquire().await.expect("a connection");
        cart_core::payments::flow::start(
            &mut conn,
            &app.state.config.payments,
            user.id,
            order_id,
            cart_core::payments::flow::PaymentMethod::Pix,
        )
        .await
        .expect("a payment");
    }
    let (product_id, coupon_id, category_id) = catalog(app).await;
    app.post(
        "/api/cart/items",
        &json!({"product_id": product_id, "quantity": 2}),
        Some(&user.token),
    )
    .await
    .assert_status(200);
    Victim {
        address_id: address.body["id"].as_str().expect("an id").to_owned(),
        user,
        order_id,
        order_number,
        product_id,
        coupon_id,
        category_id,
    }
}

/// The victim's export (without the parts that change on every call) and cart.
async fn stored_state(app: &TestApp, user: &TestUser) -> Value {
    let res = app.get("/api/users/me/export", Some(&user.token)).await;
    res.assert_status(200);
    let mut doc = res.body.clone();
    let object = doc.as_object_mut().expect("an object");
    object.remove("generated_at");
    object.remove("privacy_requests");
    let cart = app.get("/api/cart", Some(&user.token)).await;
    cart.assert_status(200);
    object.insert("cart".into(), cart.body.clone());
    doc
}

/// The parts of a problem that could tell an existing resource from a missing one.
fn shape(res: &TestResponse) -> (u16, Value, Value, Value) {
    (
        res.status.as_u16(),
        res.body["type"].clone(),
        res.body["title"].clone(),
        res.body["detail"].clone(),
    )
}

#[sqlx::test(migrations = false)]
async fn another_users_token_gets_404_and_nothing_on_every_route_with_an_id(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let victim = victim(&app).await;
    let attacker = app.user().await;
    let before = stored_state(&app, &victim.user).await;

    for row in matrix(&victim) {
        let what = format!("{} {}", row.method, row.path);
        let res = app
            .request(
                row.method.clone(),
                &row.path,
                row.body.as_ref(),
                Some(&attacker.token),
            )
            .await;
        assert_eq!(res.status.as_u16(), row.expected, "{what}: {}", res.text);
        res.assert_problem(row.expected);
        for secret in SECRETS {
            assert!(
                !res.text.contains(secret),
                "{what} leaked {secret}: {}",
                res.text
            );
        }
        let ghost = app
            .request(
                row.method.clone(),
                &row.ghost,
                row.body.as_ref(),
                Some(&attacker.token),
            )
            .await;
        assert_eq!(
            shape(&res),
            shape(&ghost),
            "{what} answers differently from {} {}: the resource's existence leaks",
            row.method,
            row.ghost
        );
    }

    assert_eq!(
        stored_state(&app, &victim.user).await,
        before,
        "the attacks changed the victim's data"
    );
    // Setting a quantity for a product in the victim's cart only ever touches the caller's.
    let own = app
        .put(
            &format!("/api/cart/items/{}", victim.product_id),
            &json!({"quantity": 1}),
            Some(&attacker.token),
        )
        .await;
    own.assert_status(200);
    assert_eq!(own.body["items"][0]["quantity"], 1, "{}", own.text);
    app.put(
        &format!("/api/cart/items/{}", victim.product_id),
        &json!({"quantity": 0}),
        Some(&attacker.token),
    )
    .await
    .assert_status(200);

    // Lists are scoped to the caller, whatever the query asks for.
    for list in ["/api/orders", "/api/orders?all=true"] {
        let res = app.get(list, Some(&attacker.token)).await;
        assert!(
            !res.text.contains(&victim.order_id.to_string()),
            "{list} shows the victim's order: {}",
            res.text
        );
    }
    // Public tracking knows the order but nothing personal.
    let tracking = app
        .get(
            &format!("/api/orders/tracking/{}", victim.order_number),
            None,
        )
        .await;
    tracking.assert_status(200);
    for secret in SECRETS {
        assert!(
            !tracking.text.contains(secret),
            "tracking leaked {secret}: {}",
            tracking.text
        );
    }

    let book = app
        .get("/api/users/me/addresses", Some(&attacker.token))
        .await;
    book.assert_status(200);
    assert_eq!(
        book.body["items"],
        json!([]),
        "nothing was created in the attacker's book"
    );
}

#[sqlx::test(migrations = false)]
async fn every_route_with_an_id_is_in_the_matrix(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let victim = victim(&app).await;
    let covered: BTreeSet<(String, String)> = matrix(&victim)
        .iter()
        .map(|row| (row.method.to_string(), row.template.to_owned()))
        .chain(
            NOT_USER_OWNED
                .iter()
                .map(|(method, path, _why)| ((*method).to_owned(), (*path).to_owned())),
        )
        .collect();

    let doc = serde_json::to_value(cart_api::openapi()).expect("the OpenAPI document");
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.contains('{') {
            continue;
        }
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let key = (method.to_uppercase(), path.clone());
            if !covered.contains(&key) {
                missing.push(format!("{} {}", key.0, key.1));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "routes with an id and no BOLA row in api/tests/api/bola.rs: {missing:?}"
    );
}
