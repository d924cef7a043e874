//! Sessions: logout (one or all, on every instance at once) and the e-mail change, which
//! needs the current password and ends the account's other sessions.

// Fixture helpers below are not `#[test]` functions, which clippy's test allowance skips.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use sqlx::PgPool;

use crate::helpers::TestApp;

#[sqlx::test(migrations = false)]
async fn logout_ends_this_session_and_no_other(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.user().await;
    let other = app.login(&user.email, &user.password).await;

    app.request(
        reqwest::Method::POST,
        "/api/auth/logout",
        None,
        Some(&user.token),
    )
    .await
    .assert_status(204);
    app.get("/api/users/me", Some(&user.token))
        .await
        .assert_problem(401);
    app.request(
        reqwest::Method::POST,
        "/api/auth/logout",
        None,
        Some(&user.token),
    )
    .await
    .assert_problem(401);
    app.get("/api/users/me", Some(&other))
        .await
        .assert_status(200);
}

#[sqlx::test(migrations = false)]
async fn logout_all_ends_every_session_of_the_account(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.user().await;
    let other = app.login(&user.email, &user.password).await;
    let stranger = app.user().await;

    app.request(
        reqwest::Method::POST,
        "/api/auth/logout?all=true",
        None,
        Some(&other),
    )
    .await
    .assert_status(204);
    for token in [&user.token, &other] {
        app.get("/api/users/me", Some(token))
            .await
            .assert_problem(401);
    }
    app.get("/api/users/me", Some(&stranger.token))
        .await
        .assert_status(200);
    let fresh = app.login(&user.email, &user.password).await;
    app.get("/api/users/me", Some(&fresh))
        .await
        .assert_status(200);
    app.request(
        reqwest::Method::POST,
        "/api/auth/logout?all=maybe",
        None,
        Some(&fresh),
    )
    .await
    .assert_problem(400);
}

#[sqlx::test(migrations = false)]
async fn another_instance_refuses_a_logged_out_token_at_once(pool: PgPool) {
    let here = TestApp::spawn(pool.clone()).await;
    let there = TestApp::spawn(pool).await;
    let user = here.user().await;
    there
        .get("/api/users/me", Some(&user.token))
        .await
        .assert_status(200);

    here.request(
        reqwest::Method::POST,
        "/api/auth/logout",
        None,
        Some(&user.token),
    )
    .await
    .assert_status(204);
    there
        .get("/api/users/me", Some(&user.token))
        .await
        .assert_problem(401);
}

async fn email_of(app: &TestApp, token: &str) -> String {
    let me = app.get("/api/users/me", Some(token)).await;
    me.assert_status(200);
    me.body["email"].as_str().unwrap().to_owned()
}

/// The `email_changed` messages queued, as (to, text).
async fn change_notices(app: &TestApp) -> Vec<(String, String)> {
    let jobs: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT job FROM apalis.jobs WHERE job_type = 'send_email'")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    jobs.iter()
        .map(|bytes| serde_json::from_slice::<serde_json::Value>(bytes).unwrap())
        .filter(|job| job["payload"]["message"]["tag"] == "email_changed")
        .map(|job| {
            let message = &job["payload"]["message"];
            (
                message["to"].as_str().unwrap().to_owned(),
                message["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[sqlx::test(migrations = false)]
async fn changing_the_email_needs_the_current_password(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana@example.com").await;
    for body in [
        json!({"email": "nova@example.com"}),
        json!({"email": "nova@example.com", "name": "Outra", "current_password": "senha-errada-1"}),
        json!({"email": "nova@example.com", "current_password": null}),
    ] {
        app.put("/api/users/me", &body, Some(&user.token))
            .await
            .assert_problem(403);
    }
    let me = app.get("/api/users/me", Some(&user.token)).await;
    assert_eq!(me.body["email"], "ana@example.com");
    assert_eq!(me.body["name"], "Cliente Teste");
    assert!(change_notices(&app).await.is_empty());
    // Other fields, and the same address again, need no password.
    app.put(
        "/api/users/me",
        &json!({"name": "Ana", "email": "ANA@example.com"}),
        Some(&user.token),
    )
    .await
    .assert_status(200);
}

#[sqlx::test(migrations = false)]
async fn an_email_change_notifies_the_old_address_and_ends_other_sessions_and_links(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana@example.com").await;
    let stolen = app.login(&user.email, &user.password).await;
    app.post(
        "/api/auth/forgot-password",
        &json!({"email": "ana@example.com"}),
        None,
    )
    .await
    .assert_status(202);
    let reset_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM password_reset_tokens")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let old_link = app.state.config.jwt.reset_key().token_for(reset_id);

    let res = app
        .put(
            "/api/users/me",
            &json!({"email": "Nova@Example.com", "current_password": user.password}),
            Some(&user.token),
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["email"], "nova@example.com");

    // The caller's session goes on; the other one ends.
    assert_eq!(email_of(&app, &user.token).await, "nova@example.com");
    app.get("/api/users/me", Some(&stolen))
        .await
        .assert_problem(401);
    // The old address is told, and shown the new one only masked.
    let notices = change_notices(&app).await;
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0].0, "ana@example.com");
    assert!(
        notices[0].1.contains("n***@example.com"),
        "{}",
        notices[0].1
    );
    // The link mailed to the old address no longer works.
    app.post(
        "/api/auth/reset-password",
        &json!({"token": old_link, "password": "tomada-de-conta-1"}),
        None,
    )
    .await
    .assert_problem(422);
    app.login("nova@example.com", &user.password).await;
    let history: Vec<String> =
        sqlx::query_scalar("SELECT old_email FROM email_changes WHERE user_id = $1")
            .bind(user.id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(history, ["ana@example.com"]);
}
