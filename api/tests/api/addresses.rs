//! `/api/users/{id}/addresses`: the address book, its one default, and who may touch it.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, TestUser};

fn address(label: &str) -> Value {
    json!({
        "label": label, "recipient": "Ana Souza", "cep": "01310-100",
        "street": "Avenida Paulista", "number": "1000", "complement": "ap 12",
        "district": "Bela Vista", "city": "São Paulo", "state": "sp"
    })
}

async fn add(app: &TestApp, user: &TestUser, body: &Value) -> Value {
    let res = app
        .post("/api/users/me/addresses", body, Some(&user.token))
        .await;
    res.assert_status(201);
    res.body.clone()
}

async fn book(app: &TestApp, user: &TestUser) -> Vec<Value> {
    let res = app.get("/api/users/me/addresses", Some(&user.token)).await;
    res.assert_status(200);
    res.body["items"].as_array().expect("a list").clone()
}

fn defaults(book: &[Value]) -> Vec<String> {
    book.iter()
        .filter(|a| a["is_default"] == true)
        .map(|a| a["label"].as_str().expect("a label").to_owned())
        .collect()
}

#[sqlx::test(migrations = false)]
async fn the_first_address_is_the_default_and_fields_are_normalised(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.user().await;
    let created = add(&app, &user, &address("Casa")).await;
    assert_eq!(created["is_default"], true);
    assert_eq!(created["cep"], "01310100");
    assert_eq!(created["state"], "SP");
    assert_eq!(created["label"], "Casa");
    let mut keys: Vec<&String> = created.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "cep",
            "city",
            "complement",
            "district",
            "id",
            "is_default",
            "label",
            "number",
            "recipient",
            "state",
            "street"
        ]
    );

    let second = add(&app, &user, &address("Trabalho")).await;
    assert_eq!(second["is_default"], false);
    let listed = book(&app, &user).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["label"], "Casa", "default first");
    assert_eq!(defaults(&listed), ["Casa"]);

    // The caller's own id works like `me`.
    let by_id = app
        .get(
            &format!("/api/users/{}/addresses", user.id),
            Some(&user.token),
        )
        .await;
    by_id.assert_status(200);
    assert_eq!(by_id.body["items"].as_array().unwrap().len(), 2);
}

#[sqlx::test(migrations = false)]
async fn there_is_always_exactly_one_default(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.user().await;
    let casa = add(&app, &user, &address("Casa")).await;
    let mut trabalho = address("Trabalho");
    trabalho["is_default"] = json!(true);
    let trabalho = add(&app, &user, &trabalho).await;
    assert_eq!(trabalho["is_default"], true);
    assert_eq!(defaults(&book(&app, &user).await), ["Trabalho"]);

    // PATCH …/default moves it.
    let res = app
        .patch(
            &format!(
                "/api/users/me/addresses/{}/default",
                casa["id"].as_str().unwrap()
            ),
            &json!({}),
            Some(&user.token),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["is_default"], true);
    assert_eq!(defaults(&book(&app, &user).await), ["Casa"]);

    // Unsetting the default without choosing another is refused.
    let mut unset = address("Casa");
    unset["is_default"] = json!(false);
    let res = app
        .put(
            &format!("/api/users/me/addresses/{}", casa["id"].as_str().unwrap()),
            &unset,
            Some(&user.token),
        )
        .await;
    res.assert_problem(422);
    assert!(res.body["errors"]["is_default"].is_array());

    // PUT with is_default: true moves it too.
    let mut promote = address("Trabalho");
    promote["is_default"] = json!(true);
    app.put(
        &format!(
            "/api/users/me/addresses/{}",
            trabalho["id"].as_str().unwrap()
        ),
        &promote,
        Some(&user.token),
    )
    .await
    .assert_status(200);
    assert_eq!(defaults(&book(&app, &user).await), ["Trabalho"]);

    // Deleting the default hands it to the newest remaining address.
    add(&app, &user, &address("Praia")).await;
    app.delete(
        &format!(
            "/api/users/me/addresses/{}",
            trabalho["id"].as_str().unwrap()
        ),
        Some(&user.token),
    )
    .await
    .assert_status(204);
    assert_eq!(defaults(&book(&app, &user).await), ["Praia"]);

    // The database enforces at most one, whatever the application does.
    let err = sqlx::query("UPDATE addresses SET is_default = true WHERE user_id = $1")
        .bind(user.id)
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("addresses_one_default_per_user"),
        "{err}"
    );
}

#[sqlx::test(migrations = false)]
async fn an_address_is_updated_in_full(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.user().await;
    let casa = add(&app, &user, &address("Casa")).await;
    let res = app
        .put(
            &format!("/api/users/me/addresses/{}", casa["id"].as_str().unwrap()),
            &json!({
                "recipient": "Bia Lima", "cep": "20040020", "street": "Rua da Assembleia",
                "number": "S/N", "district": "Centro", "city": "Rio de Janeiro", "state": "RJ"
            }),
            Some(&user.token),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["id"], casa["id"]);
    assert_eq!(res.body["recipient"], "Bia Lima");
    assert_eq!(res.body["cep"], "20040020");
    assert_eq!(res.body["state"], "RJ");
    assert_eq!(res.body["label"], Value::Null);
    assert_eq!(res.body["complement"], Value::Null);
    assert_eq!(res.body["is_default"], true, "still the default");
}

#[sqlx::test(migrations = false)]
async fn invalid_addresses_are_422_naming_the_field(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.user().await;
    for (field, value) in [
        ("cep", json!("0131-0100")),
        ("cep", json!("1234567")),
        ("state", json!("XX")),
        ("street", json!("  ")),
        ("recipient", json!("")),
        ("number", json!("")),
    ] {
        let mut body = address("Casa");
        body[field] = value;
        let res = app
            .post("/api/users/me/addresses", &body, Some(&user.token))
            .await;
        res.assert_problem(422);
        assert!(
            res.body["errors"][field].is_array(),
            "{field}: {}",
            res.text
        );
    }
    // A missing required field is a malformed body.
    let mut body = address("Casa");
    body.as_object_mut().unwrap().remove("city");
    app.post("/api/users/me/addresses", &body, Some(&user.token))
        .await
        .assert_problem(400);
    assert!(book(&app, &user).await.is_empty());
}

#[sqlx::test(migrations = false)]
async fn another_users_address_book_is_404(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let ana = app.user().await;
    let bia = app.user().await;
    let bias = add(&app, &bia, &address("Casa")).await;
    let bias_id = bias["id"].as_str().unwrap();

    let theirs = format!("/api/users/{}/addresses", bia.id);
    app.get(&theirs, Some(&ana.token)).await.assert_problem(404);
    app.post(&theirs, &address("Intrusa"), Some(&ana.token))
        .await
        .assert_problem(404);
    let one = format!("{theirs}/{bias_id}");
    app.put(&one, &address("Intrusa"), Some(&ana.token))
        .await
        .assert_problem(404);
    app.delete(&one, Some(&ana.token)).await.assert_problem(404);
    app.patch(&format!("{one}/default"), &json!({}), Some(&ana.token))
        .await
        .assert_problem(404);

    // Her address id under my own book is just as unknown.
    let mine = format!("/api/users/me/addresses/{bias_id}");
    app.put(&mine, &address("Intrusa"), Some(&ana.token))
        .await
        .assert_problem(404);
    app.delete(&mine, Some(&ana.token))
        .await
        .assert_problem(404);
    app.patch(&format!("{mine}/default"), &json!({}), Some(&ana.token))
        .await
        .assert_problem(404);

    // A user id that does not exist looks the same.
    app.get(
        &format!("/api/users/{}/addresses", uuid::Uuid::now_v7()),
        Some(&ana.token),
    )
    .await
    .assert_problem(404);

    let untouched = book(&app, &bia).await;
    assert_eq!(untouched.len(), 1);
    assert_eq!(untouched[0]["label"], "Casa");
}

#[sqlx::test(migrations = false)]
async fn admins_manage_any_address_book(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.admin().await;
    let bia = app.user().await;
    let theirs = format!("/api/users/{}/addresses", bia.id);

    let res = app
        .post(&theirs, &address("Casa"), Some(&admin.token))
        .await;
    res.assert_status(201);
    let id = res.body["id"].as_str().unwrap().to_owned();
    let listed = app.get(&theirs, Some(&admin.token)).await;
    listed.assert_status(200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(book(&app, &bia).await.len(), 1, "it is in her book");
    assert!(book(&app, &admin).await.is_empty(), "not in the admin's");

    app.put(
        &format!("{theirs}/{id}"),
        &address("Casa nova"),
        Some(&admin.token),
    )
    .await
    .assert_status(200);
    app.delete(&format!("{theirs}/{id}"), Some(&admin.token))
        .await
        .assert_status(204);
    assert!(book(&app, &bia).await.is_empty());

    app.get(
        &format!("/api/users/{}/addresses", uuid::Uuid::now_v7()),
        Some(&admin.token),
    )
    .await
    .assert_problem(404);
}

#[sqlx::test(migrations = false)]
async fn ids_that_are_not_uuids_are_400(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.user().await;
    app.get("/api/users/not-me/addresses", Some(&user.token))
        .await
        .assert_problem(400);
    app.put(
        "/api/users/me/addresses/not-a-uuid",
        &address("Casa"),
        Some(&user.token),
    )
    .await
    .assert_problem(400);
    app.delete("/api/users/me/addresses/123", Some(&user.token))
        .await
        .assert_problem(400);
}

#[sqlx::test(migrations = false)]
async fn address_routes_need_a_token(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let res = app.get("/api/users/me/addresses", None).await;
    res.assert_problem(401);
    assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    app.post("/api/users/me/addresses", &address("Casa"), None)
        .await
        .assert_problem(401);
}

#[sqlx::test(migrations = false)]
async fn the_address_book_is_a_paginated_list(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.user().await;
    for label in ["Casa", "Trabalho", "Praia"] {
        add(&app, &user, &address(label)).await;
    }

    let res = app.get("/api/users/me/addresses", Some(&user.token)).await;
    res.assert_status(200);
    assert_eq!(res.body["total"], 3);
    assert_eq!(res.body["limit"], 20);
    assert_eq!(res.body["offset"], 0);
    let labels = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["label"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(labels(&res.body), ["Casa", "Trabalho", "Praia"]);

    let page = app
        .get(
            "/api/users/me/addresses?limit=2&offset=1",
            Some(&user.token),
        )
        .await;
    page.assert_status(200);
    assert_eq!(page.body["total"], 3);
    assert_eq!(page.body["limit"], 2);
    assert_eq!(page.body["offset"], 1);
    assert_eq!(labels(&page.body), ["Trabalho", "Praia"]);

    let past_the_end = app
        .get("/api/users/me/addresses?offset=10", Some(&user.token))
        .await;
    assert_eq!(past_the_end.body["items"], json!([]));
    assert_eq!(past_the_end.body["total"], 3);
    // Clamped like every list; nonsense is refused like every list.
    let clamped = app
        .get("/api/users/me/addresses?limit=100000", Some(&user.token))
        .await;
    assert_eq!(clamped.body["limit"], 100);
    app.get("/api/users/me/addresses?limit=0", Some(&user.token))
        .await
        .assert_problem(422);
    app.get("/api/users/me/addresses?offset=-1", Some(&user.token))
        .await
        .assert_problem(422);
    app.get("/api/users/me/addresses?limit=many", Some(&user.token))
        .await
        .assert_problem(400);
}
