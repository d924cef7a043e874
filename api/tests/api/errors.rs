//! The error table of the contract, exercised on the auth and users routes.

use cart_core::auth::{Role, jwt::Claims};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{JWT_SECRET, TestApp};

fn sign(claims: &Claims, alg: Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret))
        .expect("signed")
}

fn claims_for(id: uuid::Uuid, sid: uuid::Uuid, exp_offset: i64) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        sub: id,
        role: Role::Admin,
        sid,
        iat: now,
        exp: now + exp_offset,
    }
}

#[sqlx::test(migrations = false)]
async fn malformed_and_mistyped_json_is_400(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let res = TestApp::read(
        app.client
            .post(app.url("/api/auth/register"))
            .header("content-type", "application/json")
            .body(r#"{"name": "Ana", "email": "#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    res.assert_problem(400);
    assert!(res.body["request_id"].is_string());
    app.post(
        "/api/auth/register",
        &json!({"name": 42, "email": "ana@example.com", "password": "senha-segura-123"}),
        None,
    )
    .await
    .assert_problem(400);
    app.post(
        "/api/auth/login",
        &json!({"email": "ana@example.com"}),
        None,
    )
    .await
    .assert_problem(400);
}

#[sqlx::test(migrations = false)]
async fn a_body_that_is_not_json_is_415(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let res = TestApp::read(
        app.client
            .post(app.url("/api/auth/login"))
            .header("content-type", "text/plain")
            .body(r#"{"email": "ana@example.com", "password": "x"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    res.assert_problem(415);
    let res = TestApp::read(
        app.client
            .post(app.url("/api/auth/register"))
            .body("name=Ana")
            .send()
            .await
            .unwrap(),
    )
    .await;
    res.assert_problem(415);
}

#[sqlx::test(migrations = false)]
async fn a_body_over_the_limit_is_413(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |c| c.body_limit_bytes = 1024).await;
    let body = json!({"name": "a".repeat(4096), "email": "ana@example.com", "password": "senha-segura-123"});
    let res = app.post("/api/auth/register", &body, None).await;
    res.assert_problem(413);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[sqlx::test(migrations = false)]
async fn bad_tokens_are_401_with_a_bearer_challenge(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.admin().await;
    let sid = app.state.config.jwt.verify(&user.token).unwrap().sid;
    let b64 = |raw: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    };
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(serde_json::to_string(&claims_for(user.id, sid, 600))
            .unwrap()
            .as_bytes())
    );
    let other_secret = sign(
        &claims_for(user.id, sid, 600),
        Algorithm::HS256,
        b"another-secret-another-secret-another!",
    );
    let expired = sign(&claims_for(user.id, sid, -60), Algorithm::HS256, JWT_SECRET);
    let hs512 = sign(&claims_for(user.id, sid, 600), Algorithm::HS512, JWT_SECRET);
    let unknown_user = sign(
        &claims_for(uuid::Uuid::now_v7(), sid, 600),
        Algorithm::HS256,
        JWT_SECRET,
    );
    let no_such_session = sign(
        &claims_for(user.id, uuid::Uuid::now_v7(), 600),
        Algorithm::HS256,
        JWT_SECRET,
    );
    let now = chrono::Utc::now().timestamp();
    let without_session = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": user.id, "role": "admin", "iat": now, "exp": now + 600}),
        &EncodingKey::from_secret(JWT_SECRET),
    )
    .expect("signed");
    let valid = sign(&claims_for(user.id, sid, 600), Algorithm::HS256, JWT_SECRET);

    let missing = app.get("/api/users/me", None).await;
    missing.assert_problem(401);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));

    for (what, token) in [
        ("alg none", alg_none.as_str()),
        ("another secret", other_secret.as_str()),
        ("expired", expired.as_str()),
        ("HS512", hs512.as_str()),
        ("no such user", unknown_user.as_str()),
        ("no such session", no_such_session.as_str()),
        ("no sid claim", without_session.as_str()),
        ("garbage", "not.a.jwt"),
    ] {
        let res = app.get("/api/users/me", Some(token)).await;
        assert_eq!(res.status.as_u16(), 401, "{what}: {}", res.text);
        res.assert_problem(401);
        assert_eq!(res.header("www-authenticate"), Some("Bearer"), "{what}");
    }
    // A scheme other than Bearer.
    let res = TestApp::read(
        app.client
            .get(app.url("/api/users/me"))
            .header("authorization", format!("Basic {valid}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    res.assert_problem(401);
    // The control: the same claims, properly signed, pass.
    app.get("/api/users/me", Some(&valid))
        .await
        .assert_status(200);
}

#[sqlx::test(migrations = false)]
async fn a_token_claiming_admin_does_not_make_a_user_admin(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.user().await;
    // Signed with the right key but claiming a role the account does not have.
    let forged_role = app.token_for(user.id, Role::Admin).await;
    app.get("/api/users", Some(&forged_role))
        .await
        .assert_problem(403);
}

#[sqlx::test(migrations = false)]
async fn unknown_routes_and_methods_under_users_are_problems(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.user().await;
    app.get("/api/users/me/nothing-here", Some(&user.token))
        .await
        .assert_problem(404);
    app.post("/api/users/me", &json!({}), Some(&user.token))
        .await
        .assert_problem(405);
    app.get("/api/auth/login", None).await.assert_problem(405);
}

#[sqlx::test(migrations = false)]
async fn every_users_route_is_in_the_openapi_document(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let doc = app.get("/openapi.json", None).await;
    doc.assert_status(200);
    let paths = &doc.body["paths"];
    for (path, method) in [
        ("/api/auth/register", "post"),
        ("/api/auth/login", "post"),
        ("/api/auth/logout", "post"),
        ("/api/auth/forgot-password", "post"),
        ("/api/auth/reset-password", "post"),
        ("/api/users/me", "get"),
        ("/api/users/me", "put"),
        ("/api/users/me", "delete"),
        ("/api/users/me/export", "get"),
        ("/api/users", "get"),
        ("/api/users/{id}", "get"),
        ("/api/users/{id}/addresses", "get"),
        ("/api/users/{id}/addresses", "post"),
        ("/api/users/{id}/addresses/{aid}", "put"),
        ("/api/users/{id}/addresses/{aid}", "delete"),
        ("/api/users/{id}/addresses/{aid}/default", "patch"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} missing");
    }
    let logout = &paths["/api/auth/logout"]["post"];
    assert_eq!(logout["parameters"][0]["name"], "all");
    assert_eq!(logout["parameters"][0]["in"], "query");
    assert!(logout["responses"]["204"].is_object());
    assert!(paths["/api/users/me"]["put"]["responses"]["403"].is_object());
}

/// PostgreSQL text cannot hold NUL: such a body is a 422 naming the field, and nothing is
/// written (found by the contract fuzzer as a 500).
#[sqlx::test(migrations = false)]
async fn a_nul_character_in_a_text_field_is_422_naming_it(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.user().await;
    let address = json!({
        "label": "Casa", "recipient": "Ana", "cep": "01310-100",
        "street": "Avenida\u{0}Paulista", "number": "1000", "complement": "",
        "district": "Bela Vista", "city": "São Paulo", "state": "SP"
    });
    let res = app
        .post("/api/users/me/addresses", &address, Some(&user.token))
        .await;
    res.assert_problem(422);
    assert!(res.text.contains("street"), "{}", res.text);
    let book = app.get("/api/users/me/addresses", Some(&user.token)).await;
    assert_eq!(book.body["items"], json!([]));
    assert_eq!(book.body["total"], 0);
    // The text `\u0000` itself (an escaped backslash) is ordinary text.
    let mut fine = address.clone();
    fine["street"] = json!("Avenida \\u0000 Paulista");
    app.post("/api/users/me/addresses", &fine, Some(&user.token))
        .await
        .assert_status(201);
}

#[sqlx::test(migrations = false)]
async fn a_nul_character_in_a_query_parameter_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.get("/api/products/search?q=caf%00e", None)
        .await
        .assert_problem(422);
}
