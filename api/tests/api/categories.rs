//! Categories: the tree, its validation, deletion rules and access.

use reqwest::Method;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    catalog::{admin, create_category, create_product, customer, id_of, product_body, with},
    helpers::TestApp,
};

#[sqlx::test(migrations = false)]
async fn categories_form_a_tree_and_are_listed_by_name(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    let cafes = create_category(&app, &token, "Cafés Especiais", None).await;
    assert_eq!(cafes["slug"], "cafes-especiais");
    assert_eq!(cafes["description"], "");
    assert!(cafes["parent_id"].is_null());
    let graos = create_category(&app, &token, "Em Grãos", Some(&id_of(&cafes))).await;
    assert_eq!(graos["parent_id"], cafes["id"]);
    create_category(&app, &token, "Acessórios", None).await;

    let list = app.get("/api/categories", None).await;
    list.assert_status(200);
    assert_eq!(list.body["total"], 3);
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Acessórios", "Cafés Especiais", "Em Grãos"]);
    let keys: Vec<&String> = list.body["items"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 5, "exactly the contract's fields: {keys:?}");

    let page = app.get("/api/categories?limit=1&offset=1", None).await;
    assert_eq!(page.body["items"][0]["name"], "Cafés Especiais");
    assert_eq!(page.body["total"], 3);
    let past = app.get("/api/categories?offset=10", None).await;
    assert_eq!(past.body["items"], json!([]));
    assert_eq!(
        app.get("/api/categories?limit=500", None).await.body["limit"],
        100
    );
    app.get("/api/categories?limit=0", None)
        .await
        .assert_problem(422);

    let one = app
        .get(&format!("/api/categories/{}", id_of(&graos)), None)
        .await;
    one.assert_status(200);
    assert_eq!(one.body, graos);
    app.get(&format!("/api/categories/{}", Uuid::now_v7()), None)
        .await
        .assert_problem(404);
    app.get("/api/categories/123", None)
        .await
        .assert_problem(400);
}

#[sqlx::test(migrations = false)]
async fn category_writes_need_an_admin(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let category = create_category(&app, &admin(&app).await, "Chás", None).await;
    let path = format!("/api/categories/{}", id_of(&category));
    let body = json!({"name": "Outra"});
    let user = customer(&app).await;
    for (method, path, body) in [
        (Method::POST, "/api/categories".to_owned(), Some(&body)),
        (Method::PUT, path.clone(), Some(&body)),
        (Method::DELETE, path.clone(), None),
    ] {
        app.request(method.clone(), &path, body, None)
            .await
            .assert_problem(401);
        app.request(method, &path, body, Some(&user))
            .await
            .assert_problem(403);
    }
}

#[sqlx::test(migrations = false)]
async fn invalid_categories_are_422(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    let res = app
        .post("/api/categories", &json!({"name": "   "}), Some(&token))
        .await;
    res.assert_problem(422);
    assert!(res.body["errors"]["name"].is_array());
    let res = app
        .post(
            "/api/categories",
            &json!({"name": "Órfã", "parent_id": Uuid::now_v7()}),
            Some(&token),
        )
        .await;
    res.assert_problem(422);
    assert!(res.body["errors"]["parent_id"].is_array());
    app.post(
        "/api/categories",
        &json!({"description": "sem nome"}),
        Some(&token),
    )
    .await
    .assert_problem(400);
}

#[sqlx::test(migrations = false)]
async fn a_category_cannot_be_moved_under_itself_or_its_descendants(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    let a = create_category(&app, &token, "A", None).await;
    let b = create_category(&app, &token, "B", Some(&id_of(&a))).await;
    let c = create_category(&app, &token, "C", Some(&id_of(&b))).await;
    let path_a = format!("/api/categories/{}", id_of(&a));
    for parent in [id_of(&a), id_of(&b), id_of(&c)] {
        let res = app
            .put(
                &path_a,
                &json!({"name": "A", "parent_id": parent}),
                Some(&token),
            )
            .await;
        res.assert_problem(422);
        assert!(res.body["errors"]["parent_id"].is_array(), "{}", res.text);
    }
    // Moving a leaf elsewhere is fine, and renaming moves the slug.
    let d = create_category(&app, &token, "D", None).await;
    let moved = app
        .put(
            &format!("/api/categories/{}", id_of(&c)),
            &json!({"name": "C Movida", "parent_id": id_of(&d), "description": "x"}),
            Some(&token),
        )
        .await;
    moved.assert_status(200);
    assert_eq!(moved.body["parent_id"], d["id"]);
    assert_eq!(moved.body["slug"], "c-movida");
    assert_eq!(moved.body["description"], "x");
    app.put(
        &format!("/api/categories/{}", Uuid::now_v7()),
        &json!({"name": "X"}),
        Some(&token),
    )
    .await
    .assert_problem(404);
}

#[sqlx::test(migrations = false)]
async fn deleting_a_category_with_products_or_subcategories_is_409(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let token = admin(&app).await;
    let parent = create_category(&app, &token, "Cafés", None).await;
    let child = create_category(&app, &token, "Moídos", Some(&id_of(&parent))).await;
    let product = create_product(
        &app,
        &token,
        with(
            product_body("C-1", "Café", 100),
            json!({"category_id": id_of(&child)}),
        ),
    )
    .await;
    let child_path = format!("/api/categories/{}", id_of(&child));
    let parent_path = format!("/api/categories/{}", id_of(&parent));

    app.delete(&child_path, Some(&token))
        .await
        .assert_problem(409);
    app.delete(&parent_path, Some(&token))
        .await
        .assert_problem(409);

    // Once its only product is deleted, the category can go (the old row loses it).
    app.delete(&format!("/api/products/{}", id_of(&product)), Some(&token))
        .await
        .assert_status(204);
    app.delete(&child_path, Some(&token))
        .await
        .assert_status(204);
    app.get(&child_path, None).await.assert_problem(404);
    app.delete(&child_path, Some(&token))
        .await
        .assert_problem(404);
    app.delete(&parent_path, Some(&token))
        .await
        .assert_status(204);
    assert_eq!(app.get("/api/categories", None).await.body["total"], 0);
}
