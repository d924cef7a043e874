//! `/api/users/*`: profile, admin reads, LGPD export and anonymisation.

use serde_json::json;
use sqlx::PgPool;

use crate::helpers::TestApp;

fn address() -> serde_json::Value {
    json!({
        "label": "Casa", "recipient": "Ana Souza", "cep": "01310-100",
        "street": "Avenida Paulista", "number": "1000", "complement": "ap 12",
        "district": "Bela Vista", "city": "São Paulo", "state": "sp"
    })
}

#[sqlx::test(migrations = false)]
async fn me_answers_the_callers_profile(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana@example.com").await;
    let res = app.get("/api/users/me", Some(&user.token)).await;
    res.assert_status(200);
    assert_eq!(res.body["id"], user.id.to_string());
    assert_eq!(res.body["email"], "ana@example.com");
    assert_eq!(res.body["cpf"], serde_json::Value::Null);
    assert_eq!(res.body["role"], "user");
    assert!(res.body.get("password_hash").is_none());
    app.get("/api/users/me", None).await.assert_problem(401);
}

#[sqlx::test(migrations = false)]
async fn the_profile_update_changes_only_the_given_fields(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana@example.com").await;
    let res = app
        .put(
            "/api/users/me",
            &json!({"cpf": "529.982.247-25"}),
            Some(&user.token),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["cpf"], "52998224725");
    assert_eq!(res.body["name"], "Cliente Teste");

    let res = app
        .put(
            "/api/users/me",
            &json!({"name": " Ana Maria ", "email": "Ana.Maria@Example.com",
                    "current_password": user.password}),
            Some(&user.token),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["name"], "Ana Maria");
    assert_eq!(res.body["email"], "ana.maria@example.com");
    assert_eq!(res.body["cpf"], "52998224725");

    // The new e-mail logs in.
    app.post(
        "/api/auth/login",
        &json!({"email": "ana.maria@example.com", "password": user.password}),
        None,
    )
    .await
    .assert_status(200);
}

#[sqlx::test(migrations = false)]
async fn the_profile_update_validates_and_refuses_taken_emails(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana@example.com").await;
    app.register_user("bia@example.com").await;

    let res = app
        .put(
            "/api/users/me",
            &json!({"cpf": "123.456.789-10"}),
            Some(&user.token),
        )
        .await;
    res.assert_problem(422);
    assert!(res.body["errors"]["cpf"].is_array());

    let res = app
        .put(
            "/api/users/me",
            &json!({"cpf": "22222222222", "email": "nope", "name": ""}),
            Some(&user.token),
        )
        .await;
    res.assert_problem(422);
    for field in ["cpf", "email", "name"] {
        assert!(
            res.body["errors"][field].is_array(),
            "{field}: {}",
            res.text
        );
    }

    app.put(
        "/api/users/me",
        &json!({"email": "BIA@example.com", "current_password": user.password}),
        Some(&user.token),
    )
    .await
    .assert_problem(409);

    let me = app.get("/api/users/me", Some(&user.token)).await;
    assert_eq!(me.body["email"], "ana@example.com");
    assert_eq!(me.body["cpf"], serde_json::Value::Null);
}

#[sqlx::test(migrations = false)]
async fn a_client_cannot_make_itself_admin_through_the_profile(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana@example.com").await;
    let res = app
        .put(
            "/api/users/me",
            &json!({"name": "Ana", "role": "admin", "id": "00000000-0000-0000-0000-000000000001",
                    "created_at": "2000-01-01T00:00:00Z", "deleted_at": "2000-01-01T00:00:00Z"}),
            Some(&user.token),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["role"], "user");
    assert_eq!(res.body["id"], user.id.to_string());
    let (role, deleted): (String, bool) =
        sqlx::query_as("SELECT role, deleted_at IS NOT NULL FROM users WHERE id = $1")
            .bind(user.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((role.as_str(), deleted), ("user", false));
    app.get("/api/users", Some(&user.token))
        .await
        .assert_problem(403);
}

#[sqlx::test(migrations = false)]
async fn admins_read_any_user_and_users_get_403(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.user().await;
    let admin = app.admin().await;

    let path = format!("/api/users/{}", user.id);
    app.get(&path, Some(&user.token)).await.assert_problem(403);
    let res = app.get(&path, Some(&admin.token)).await;
    res.assert_status(200);
    assert_eq!(res.body["email"], user.email);

    let unknown = format!("/api/users/{}", uuid::Uuid::now_v7());
    app.get(&unknown, Some(&admin.token))
        .await
        .assert_problem(404);
    app.get("/api/users/not-a-uuid", Some(&admin.token))
        .await
        .assert_problem(400);

    let list = app.get("/api/users?limit=1", Some(&admin.token)).await;
    list.assert_status(200);
    assert_eq!(list.body["total"], 2);
    assert_eq!(list.body["limit"], 1);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    app.get("/api/users?limit=abc", Some(&admin.token))
        .await
        .assert_problem(400);
}

#[sqlx::test(migrations = false)]
async fn a_demoted_admin_loses_admin_routes_at_once(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let admin = app.admin().await;
    app.get("/api/users", Some(&admin.token))
        .await
        .assert_status(200);
    sqlx::query("UPDATE users SET role = 'user' WHERE id = $1")
        .bind(admin.id)
        .execute(&app.pool)
        .await
        .unwrap();
    app.get("/api/users", Some(&admin.token))
        .await
        .assert_problem(403);
}

#[sqlx::test(migrations = false)]
async fn the_export_holds_everything_stored_about_the_caller(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana@example.com").await;
    let other = app.user().await;
    app.put(
        "/api/users/me",
        &json!({"cpf": "52998224725"}),
        Some(&user.token),
    )
    .await
    .assert_status(200);
    app.post("/api/users/me/addresses", &address(), Some(&user.token))
        .await
        .assert_status(201);
    app.post("/api/users/me/addresses", &address(), Some(&other.token))
        .await
        .assert_status(201);
    app.post(
        "/api/auth/forgot-password",
        &json!({"email": "ana@example.com"}),
        None,
    )
    .await
    .assert_status(202);
    let product = crate::checkout::product(&app.pool, "Caderno", 1990, 5).await;
    app.post(
        "/api/cart/items",
        &json!({"product_id": product, "quantity": 2}),
        Some(&user.token),
    )
    .await
    .assert_status(200);

    let res = app.get("/api/users/me/export", Some(&user.token)).await;
    res.assert_status(200);
    let doc = &res.body;
    assert_eq!(doc["profile"]["id"], user.id.to_string());
    assert_eq!(doc["profile"]["email"], "ana@example.com");
    assert_eq!(doc["profile"]["cpf"], "52998224725");
    assert!(doc["profile"]["updated_at"].is_string());
    let addresses = doc["addresses"].as_array().unwrap();
    assert_eq!(addresses.len(), 1, "only the caller's addresses");
    assert_eq!(addresses[0]["cep"], "01310100");
    assert!(addresses[0]["created_at"].is_string());
    assert_eq!(doc["password_reset_requests"].as_array().unwrap().len(), 1);
    assert_eq!(doc["carts"].as_array().unwrap().len(), 1);
    assert_eq!(doc["cart_items"][0]["product_id"], product.to_string());
    assert_eq!(doc["cart_items"][0]["quantity"], 2);
    assert_eq!(doc["orders"], json!([]));
    for secret in ["argon2", "password_hash", "token_hash"] {
        assert!(!res.text.contains(secret), "{secret} leaked: {}", res.text);
    }

    // The access is recorded, and shows in the next export.
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM lgpd_requests WHERE user_id = $1")
            .bind(user.id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(kinds, ["access"]);
    let again = app.get("/api/users/me/export", Some(&user.token)).await;
    assert_eq!(again.body["privacy_requests"][0]["kind"], "access");
}

#[sqlx::test(migrations = false)]
async fn deleting_the_account_anonymises_it_and_ends_every_session(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana@example.com").await;
    let other = app.user().await;
    app.put(
        "/api/users/me",
        &json!({"cpf": "52998224725", "name": "Ana Souza"}),
        Some(&user.token),
    )
    .await
    .assert_status(200);
    app.post("/api/users/me/addresses", &address(), Some(&user.token))
        .await
        .assert_status(201);
    app.post("/api/users/me/addresses", &address(), Some(&other.token))
        .await
        .assert_status(201);
    app.post(
        "/api/auth/forgot-password",
        &json!({"email": "ana@example.com"}),
        None,
    )
    .await
    .assert_status(202);
    app.post(
        "/api/auth/forgot-password",
        &json!({"email": other.email}),
        None,
    )
    .await
    .assert_status(202);

    let product = crate::checkout::product(&app.pool, "Caderno", 1990, 5).await;
    app.post(
        "/api/cart/items",
        &json!({"product_id": product, "quantity": 1}),
        Some(&user.token),
    )
    .await
    .assert_status(200);

    for to in ["ana@example.com", other.email.as_str()] {
        crate::lgpd::queue_email(&app.pool, to).await;
    }

    app.delete("/api/users/me", Some(&user.token))
        .await
        .assert_status(204);

    // The old token is refused everywhere, and logging in is impossible.
    app.get("/api/users/me", Some(&user.token))
        .await
        .assert_problem(401);
    app.get("/api/users/me/addresses", Some(&user.token))
        .await
        .assert_problem(401);
    app.post(
        "/api/auth/login",
        &json!({"email": "ana@example.com", "password": user.password}),
        None,
    )
    .await
    .assert_problem(401);
    // The e-mail address is free again.
    app.register_user("ana@example.com").await;

    // The row stays, scrubbed.
    let (name, email, cpf, hash, deleted): (String, String, Option<String>, String, bool) =
        sqlx::query_as(
            "SELECT name, email, cpf, password_hash, deleted_at IS NOT NULL FROM users WHERE id = $1",
        )
        .bind(user.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_ne!(name, "Ana Souza");
    assert!(
        email.starts_with("deleted-") && email.ends_with("@anonymized.invalid"),
        "{email}"
    );
    assert_eq!(cpf, None);
    assert!(!hash.starts_with("$argon2"));
    assert!(deleted);

    let count = |sql: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(user.id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        count("SELECT count(*) FROM addresses WHERE user_id = $1").await,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM password_reset_tokens WHERE user_id = $1").await,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM carts WHERE user_id = $1").await,
        0
    );
    // Her queued e-mail is gone; the other customer's stays.
    let queued: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT job FROM apalis.jobs WHERE job_type = 'send_email'")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(queued.len(), 1);
    assert!(String::from_utf8_lossy(&queued[0]).contains(&other.email));
    assert!(!String::from_utf8_lossy(&queued[0]).contains("ana@example.com"));
    // Nobody else lost anything.
    let others: i64 = sqlx::query_scalar("SELECT count(*) FROM addresses WHERE user_id = $1")
        .bind(other.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(others, 1);

    let details: serde_json::Value = sqlx::query_scalar(
        "SELECT details FROM lgpd_requests WHERE user_id = $1 AND kind = 'anonymisation'",
    )
    .bind(user.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(details["deleted"]["addresses"], 1);
    assert_eq!(details["deleted"]["carts"], 1);
    assert!(
        details["kept"]
            .as_array()
            .is_some_and(|kept| !kept.is_empty())
    );
    assert!(details["kept"][0]["reason"].is_string());
}

#[sqlx::test(migrations = false)]
async fn anonymised_accounts_are_invisible_to_admins(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.user().await;
    let admin = app.admin().await;
    app.delete("/api/users/me", Some(&user.token))
        .await
        .assert_status(204);
    app.get(&format!("/api/users/{}", user.id), Some(&admin.token))
        .await
        .assert_problem(404);
    app.get(
        &format!("/api/users/{}/addresses", user.id),
        Some(&admin.token),
    )
    .await
    .assert_problem(404);
    let list = app.get("/api/users", Some(&admin.token)).await;
    assert_eq!(list.body["total"], 1);
}
