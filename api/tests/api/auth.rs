//! `/api/auth/*`: register, login, forgot and reset password, the admin bootstrap.

use cart_api::config::AdminCredentials;
use cart_core::{
    jobs::{Envelope, send_password_reset::SendPasswordReset},
    mail::EmailMessage,
};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::{TestApp, TestResponse};

fn registration(email: &str) -> Value {
    json!({"name": "Ana Souza", "email": email, "password": "senha-segura-123"})
}

#[sqlx::test(migrations = false)]
async fn registering_returns_the_user_and_a_working_token(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let res = app
        .post(
            "/api/auth/register",
            &json!({
                "name": "  Ana Souza ",
                "email": "  Ana.Souza@Example.COM ",
                "password": "senha-segura-123",
                "cpf": "529.982.247-25",
            }),
            None,
        )
        .await;
    res.assert_status(201);
    let user = &res.body["user"];
    assert_eq!(user["name"], "Ana Souza");
    assert_eq!(user["email"], "ana.souza@example.com");
    assert_eq!(user["cpf"], "52998224725");
    assert_eq!(user["role"], "user");
    assert!(user["created_at"].is_string());
    let mut keys: Vec<&String> = user.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["cpf", "created_at", "email", "id", "name", "role"]);
    assert!(res.body["expires_at"].is_string());
    assert!(!res.text.contains("argon2"), "no hash in the answer");

    let token = res.body["token"].as_str().unwrap();
    let me = app.get("/api/users/me", Some(token)).await;
    me.assert_status(200);
    assert_eq!(me.body["id"], user["id"]);

    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$v=19$"), "{stored}");
}

#[sqlx::test(migrations = false)]
async fn registering_a_taken_email_is_409_whatever_its_case(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.register_user("ana@example.com").await;
    let res = app
        .post(
            "/api/auth/register",
            &registration(" ANA@example.com"),
            None,
        )
        .await;
    res.assert_problem(409);
}

#[sqlx::test(migrations = false)]
async fn invalid_registrations_are_422_naming_each_field(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let cases = [
        (
            json!({"name": "Ana", "email": "ana@example.com", "password": "1234567"}),
            "password",
        ),
        (
            json!({"name": "Ana", "email": "ana@", "password": "senha-segura-123"}),
            "email",
        ),
        (
            json!({"name": "Ana", "email": "ana@example.com", "password": "senha-segura-123", "cpf": "123.456.789-10"}),
            "cpf",
        ),
        (
            json!({"name": "Ana", "email": "ana@example.com", "password": "senha-segura-123", "cpf": "111.111.111-11"}),
            "cpf",
        ),
        (
            json!({"name": "   ", "email": "ana@example.com", "password": "senha-segura-123"}),
            "name",
        ),
    ];
    for (body, field) in cases {
        let res = app.post("/api/auth/register", &body, None).await;
        res.assert_problem(422);
        assert!(
            res.body["errors"][field].is_array(),
            "{field} not named: {}",
            res.text
        );
    }
    // Several problems at once are reported together.
    let res = app
        .post(
            "/api/auth/register",
            &json!({"name": "Ana", "email": "nope", "password": "short", "cpf": "00000000000"}),
            None,
        )
        .await;
    res.assert_problem(422);
    for field in ["email", "password", "cpf"] {
        assert!(
            res.body["errors"][field].is_array(),
            "{field}: {}",
            res.text
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[sqlx::test(migrations = false)]
async fn a_role_in_the_registration_body_is_ignored(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut body = registration("mallory@example.com");
    body["role"] = json!("admin");
    body["id"] = json!("00000000-0000-0000-0000-000000000001");
    body["created_at"] = json!("2000-01-01T00:00:00Z");
    let res = app.post("/api/auth/register", &body, None).await;
    res.assert_status(201);
    assert_eq!(res.body["user"]["role"], "user");
    assert_ne!(
        res.body["user"]["id"],
        "00000000-0000-0000-0000-000000000001"
    );
    assert!(
        !res.body["user"]["created_at"]
            .as_str()
            .unwrap()
            .starts_with("2000")
    );
    let role: String = sqlx::query_scalar("SELECT role FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(role, "user");
    // And the token does not open admin routes.
    let token = res.body["token"].as_str().unwrap();
    app.get("/api/users", Some(token)).await.assert_problem(403);
}

#[sqlx::test(migrations = false)]
async fn passwords_are_not_truncated(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let long = "p".repeat(100);
    app.post(
        "/api/auth/register",
        &json!({"name": "Ana", "email": "ana@example.com", "password": long}),
        None,
    )
    .await
    .assert_status(201);
    let login = |password: String| {
        let app = &app;
        async move {
            app.post(
                "/api/auth/login",
                &json!({"email": "ana@example.com", "password": password}),
                None,
            )
            .await
        }
    };
    login("p".repeat(72)).await.assert_problem(401);
    login("p".repeat(101)).await.assert_problem(401);
    login(long).await.assert_status(200);
}

#[sqlx::test(migrations = false)]
async fn login_returns_a_token_for_the_right_password(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana@example.com").await;
    let res = app
        .post(
            "/api/auth/login",
            &json!({"email": " ANA@Example.com", "password": user.password}),
            None,
        )
        .await;
    res.assert_status(200);
    assert_eq!(res.body["user"]["id"], user.id.to_string());
    assert!(res.body["expires_at"].is_string());
    let token = res.body["token"].as_str().unwrap();
    app.get("/api/users/me", Some(token))
        .await
        .assert_status(200);
}

fn same_problem(a: &TestResponse, b: &TestResponse) {
    for key in ["type", "title", "status", "detail"] {
        assert_eq!(a.body[key], b.body[key], "{key} differs");
    }
    assert_eq!(a.header("www-authenticate"), b.header("www-authenticate"));
}

#[sqlx::test(migrations = false)]
async fn wrong_password_and_unknown_email_get_the_same_401(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.register_user("ana@example.com").await;
    let wrong = app
        .post(
            "/api/auth/login",
            &json!({"email": "ana@example.com", "password": "not-her-password"}),
            None,
        )
        .await;
    wrong.assert_problem(401);
    assert_eq!(wrong.header("www-authenticate"), Some("Bearer"));
    let unknown = app
        .post(
            "/api/auth/login",
            &json!({"email": "nobody@example.com", "password": "not-her-password"}),
            None,
        )
        .await;
    unknown.assert_problem(401);
    same_problem(&wrong, &unknown);
    let malformed = app
        .post(
            "/api/auth/login",
            &json!({"email": "not an email", "password": "x"}),
            None,
        )
        .await;
    malformed.assert_problem(401);
    same_problem(&wrong, &malformed);
}

/// A queued reset e-mail job: it names the request, never the token.
struct QueuedReset {
    reset_id: uuid::Uuid,
    key: Option<String>,
    max_attempts: i32,
}

/// The reset e-mail jobs queued so far, oldest first.
async fn queued_resets(app: &TestApp) -> Vec<QueuedReset> {
    let rows: Vec<(Vec<u8>, Option<String>, i32)> = sqlx::query_as(
        "SELECT job, idempotency_key, max_attempts FROM apalis.jobs
         WHERE job_type = 'send_password_reset' ORDER BY run_at, id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("jobs");
    rows.into_iter()
        .map(|(bytes, key, max_attempts)| {
            let envelope: Envelope<SendPasswordReset> =
                serde_json::from_slice(&bytes).expect("an envelope");
            QueuedReset {
                reset_id: envelope.payload.reset_id,
                key,
                max_attempts,
            }
        })
        .collect()
}

/// The message the worker sends for `reset` (what `send_password_reset` renders).
async fn reset_message(app: &TestApp, reset: &QueuedReset) -> EmailMessage {
    let mut conn = app.pool.acquire().await.expect("a connection");
    cart_core::users::password_reset::reset_email(
        &mut conn,
        app.state.config.jwt.reset_key(),
        &app.state.templates,
        reset.reset_id,
    )
    .await
    .expect("the reset e-mail renders")
    .expect("a message to send")
}

/// The token of the `n`th queued reset, as its e-mail carries it.
async fn reset_token(app: &TestApp, n: usize) -> String {
    let resets = queued_resets(app).await;
    token_in(&reset_message(app, &resets[n]).await)
}

fn token_in(message: &EmailMessage) -> String {
    let text = &message.text;
    let start = text.find("?token=").expect("a token in the link") + "?token=".len();
    text[start..]
        .split_whitespace()
        .next()
        .expect("a token")
        .to_owned()
}

async fn forgot(app: &TestApp, email: &str) -> TestResponse {
    app.post("/api/auth/forgot-password", &json!({"email": email}), None)
        .await
}

#[sqlx::test(migrations = false)]
async fn forgot_password_is_202_for_everyone_and_mails_only_real_accounts(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.register_user("ana@example.com").await;

    let unknown = forgot(&app, "nobody@example.com").await;
    unknown.assert_status(202);
    assert!(queued_resets(&app).await.is_empty());

    let known = forgot(&app, "ANA@example.com").await;
    known.assert_status(202);
    assert_eq!(unknown.text, known.text, "the same answer either way");

    let resets = queued_resets(&app).await;
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].max_attempts, 10);
    assert!(
        resets[0]
            .key
            .as_deref()
            .unwrap()
            .starts_with("password_reset:")
    );
    let message = reset_message(&app, &resets[0]).await;
    assert_eq!(message.to, "ana@example.com");
    assert_eq!(message.tag, "password_reset");
    assert!(
        message
            .html
            .contains("http://localhost:3000/reset-password?token=")
    );
    let token = token_in(&message);
    assert!(
        token.len() >= 43,
        "at least 32 bytes of randomness: {token}"
    );

    // Only a hash of the token is stored.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM password_reset_tokens")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);
    assert!(!String::from_utf8_lossy(&stored).contains(&token));

    forgot(&app, "not-an-email").await.assert_problem(422);
}

#[sqlx::test(migrations = false)]
async fn a_reset_token_changes_the_password_once(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana@example.com").await;
    forgot(&app, &user.email).await.assert_status(202);
    let token = reset_token(&app, 0).await;

    let reset = json!({"token": token, "password": "nova-senha-456"});
    let res = app.post("/api/auth/reset-password", &reset, None).await;
    res.assert_status(204);

    let login = |password: &'static str| {
        let app = &app;
        async move {
            app.post(
                "/api/auth/login",
                &json!({"email": "ana@example.com", "password": password}),
                None,
            )
            .await
        }
    };
    login("nova-senha-456").await.assert_status(200);
    login("senha-segura-123").await.assert_problem(401);

    // Single use.
    let again = app
        .post(
            "/api/auth/reset-password",
            &json!({"token": token, "password": "terceira-senha-789"}),
            None,
        )
        .await;
    again.assert_problem(422);
    assert!(again.body["errors"]["token"].is_array());
    login("nova-senha-456").await.assert_status(200);
}

#[sqlx::test(migrations = false)]
async fn unknown_and_expired_tokens_and_short_passwords_are_422(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana@example.com").await;

    let unknown = app
        .post(
            "/api/auth/reset-password",
            &json!({"token": "made-up-token", "password": "nova-senha-456"}),
            None,
        )
        .await;
    unknown.assert_problem(422);
    assert!(unknown.body["errors"]["token"].is_array());

    forgot(&app, &user.email).await.assert_status(202);
    let token = reset_token(&app, 0).await;

    let short = app
        .post(
            "/api/auth/reset-password",
            &json!({"token": token, "password": "curta"}),
            None,
        )
        .await;
    short.assert_problem(422);
    assert!(short.body["errors"]["password"].is_array());

    sqlx::query("UPDATE password_reset_tokens SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let expired = app
        .post(
            "/api/auth/reset-password",
            &json!({"token": token, "password": "nova-senha-456"}),
            None,
        )
        .await;
    expired.assert_problem(422);
    assert!(expired.body["errors"]["token"].is_array());
}

#[sqlx::test(migrations = false)]
async fn the_reset_link_expires_after_the_configured_ttl(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |c| {
        c.password_reset_ttl = std::time::Duration::from_secs(30 * 60);
    })
    .await;
    let user = app.register_user("ana@example.com").await;
    forgot(&app, &user.email).await.assert_status(202);
    let seconds: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM expires_at - created_at)::float8 FROM password_reset_tokens",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!((seconds - 1800.0).abs() < 5.0, "{seconds}");
    let resets = queued_resets(&app).await;
    let message = reset_message(&app, &resets[0]).await;
    assert!(message.text.contains("30 minutos"), "{}", message.text);
}

#[sqlx::test(migrations = false)]
async fn a_newer_reset_link_replaces_the_older_one(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana@example.com").await;
    forgot(&app, &user.email).await.assert_status(202);
    forgot(&app, &user.email).await.assert_status(202);
    let resets = queued_resets(&app).await;
    assert_eq!(resets.len(), 2);
    // The replaced request's e-mail is no longer sent; its link, had it gone out, is dead.
    let mut conn = app.pool.acquire().await.unwrap();
    let key = app.state.config.jwt.reset_key();
    let templates = &app.state.templates;
    let reset_email = cart_core::users::password_reset::reset_email;
    assert!(
        reset_email(&mut conn, key, templates, resets[0].reset_id)
            .await
            .unwrap()
            .is_none()
    );
    drop(conn);
    let first = key.token_for(resets[0].reset_id);
    let second = reset_token(&app, 1).await;
    assert_ne!(first, second);
    app.post(
        "/api/auth/reset-password",
        &json!({"token": first, "password": "nova-senha-456"}),
        None,
    )
    .await
    .assert_problem(422);
    app.post(
        "/api/auth/reset-password",
        &json!({"token": second, "password": "nova-senha-456"}),
        None,
    )
    .await
    .assert_status(204);
}

#[sqlx::test(migrations = false)]
async fn a_reset_ends_every_session_of_the_account(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana@example.com").await;
    let other_session = app.login(&user.email, &user.password).await;
    forgot(&app, &user.email).await.assert_status(202);
    let token = reset_token(&app, 0).await;
    app.post(
        "/api/auth/reset-password",
        &json!({"token": token, "password": "nova-senha-456"}),
        None,
    )
    .await
    .assert_status(204);
    app.get("/api/users/me", Some(&user.token))
        .await
        .assert_problem(401);
    app.get("/api/users/me", Some(&other_session))
        .await
        .assert_problem(401);
    let fresh = app
        .post(
            "/api/auth/login",
            &json!({"email": "ana@example.com", "password": "nova-senha-456"}),
            None,
        )
        .await;
    let fresh_token = fresh.body["token"].as_str().unwrap();
    app.get("/api/users/me", Some(fresh_token))
        .await
        .assert_status(200);
}

#[sqlx::test(migrations = false)]
async fn the_admin_from_the_environment_is_created_once(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |c| {
        c.admin_bootstrap = Some(AdminCredentials {
            email: "Root@Example.com".into(),
            password: "admin-senha-123".into(),
        });
    })
    .await;
    // A second start (another instance, a restart) changes nothing.
    cart_api::startup(&app.state).await.unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT email, role FROM users")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, [("root@example.com".to_owned(), "admin".to_owned())]);

    let login = app
        .post(
            "/api/auth/login",
            &json!({"email": "root@example.com", "password": "admin-senha-123"}),
            None,
        )
        .await;
    login.assert_status(200);
    assert_eq!(login.body["user"]["role"], "admin");
    let token = login.body["token"].as_str().unwrap();
    app.get("/api/users", Some(token)).await.assert_status(200);
}

#[sqlx::test(migrations = false)]
async fn the_admin_bootstrap_never_promotes_whoever_registered_the_address(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    // Registration verifies no address: anyone may have taken ADMIN_EMAIL first.
    let squatter = app.register_user("chefe@example.com").await;
    let mut config = (*app.state.config).clone();
    config.admin_bootstrap = Some(AdminCredentials {
        email: "chefe@example.com".into(),
        password: "outra-senha-999".into(),
    });
    let state = cart_api::state::AppState::new(app.pool.clone(), config);
    cart_api::startup(&state).await.unwrap();
    // A restart changes nothing either.
    cart_api::startup(&state).await.unwrap();

    let me = app.get("/api/users/me", Some(&squatter.token)).await;
    assert_eq!(me.body["role"], "user");
    app.get("/api/users", Some(&squatter.token))
        .await
        .assert_problem(403);
    // Neither password was changed: the bootstrap's does not log in.
    app.post(
        "/api/auth/login",
        &json!({"email": "chefe@example.com", "password": "outra-senha-999"}),
        None,
    )
    .await
    .assert_problem(401);
    app.login("chefe@example.com", &squatter.password).await;
}

#[sqlx::test(migrations = false)]
async fn an_existing_admin_keeps_its_password_across_restarts(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |c| {
        c.admin_bootstrap = Some(AdminCredentials {
            email: "root@example.com".into(),
            password: "admin-senha-123".into(),
        });
    })
    .await;
    let token = app.login("root@example.com", "admin-senha-123").await;
    // The admin changes its password by a reset; a restart with the old ADMIN_PASSWORD
    // must not put the old one back.
    forgot(&app, "root@example.com").await.assert_status(202);
    let reset = reset_token(&app, 0).await;
    app.post(
        "/api/auth/reset-password",
        &json!({"token": reset, "password": "senha-nova-do-admin"}),
        None,
    )
    .await
    .assert_status(204);
    cart_api::startup(&app.state).await.unwrap();
    app.post(
        "/api/auth/login",
        &json!({"email": "root@example.com", "password": "admin-senha-123"}),
        None,
    )
    .await
    .assert_problem(401);
    let fresh = app.login("root@example.com", "senha-nova-do-admin").await;
    app.get("/api/users", Some(&fresh)).await.assert_status(200);
    app.get("/api/users", Some(&token))
        .await
        .assert_problem(401);
}

#[sqlx::test(migrations = false)]
async fn the_admin_bootstrap_refuses_a_weak_password(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut config = (*app.state.config).clone();
    config.admin_bootstrap = Some(AdminCredentials {
        email: "root@example.com".into(),
        password: "short".into(),
    });
    let state = cart_api::state::AppState::new(app.pool.clone(), config);
    let err = cart_api::startup(&state).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("ADMIN_PASSWORD must be at least 8"),
        "{message}"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[sqlx::test(migrations = false)]
async fn the_admin_bootstrap_waits_for_a_database_that_is_down(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let unreachable = cart_core::db::DbConfig {
        url: "postgres://postgres@127.0.0.1:1/none".into(),
        min_connections: 0,
        max_connections: 1,
        acquire_timeout: std::time::Duration::from_millis(300),
        statement_timeout: std::time::Duration::from_secs(1),
    }
    .connect_lazy()
    .unwrap();
    let mut config = (*app.state.config).clone();
    config.admin_bootstrap = Some(AdminCredentials {
        email: "root@example.com".into(),
        password: "admin-senha-123".into(),
    });
    let state = cart_api::state::AppState::new(unreachable, config);
    // The API starts anyway; the bootstrap keeps trying in the background.
    cart_api::startup(&state).await.unwrap();
}

#[sqlx::test(migrations = false)]
async fn the_promote_command_promotes_known_emails_and_explains_unknown_ones(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana@example.com").await;
    cart_api::admin::promote(&app.pool, " Ana@Example.com")
        .await
        .unwrap();
    let me = app.get("/api/users/me", Some(&user.token)).await;
    assert_eq!(me.body["role"], "admin");

    let err = cart_api::admin::promote(&app.pool, "nobody@example.com")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nobody@example.com"), "{err}");
}

#[sqlx::test(migrations = false)]
async fn a_flood_of_logins_gets_503_with_retry_after_instead_of_queueing(pool: PgPool) {
    use cart_core::auth::password::{Argon2Params, PasswordConfig, PasswordHasher};
    let app = TestApp::spawn_with(pool, |c| {
        // One slot, a hash that takes a while, and almost no patience.
        c.passwords = PasswordHasher::new(&PasswordConfig {
            params: Argon2Params {
                memory_kib: 32 * 1024,
                iterations: 4,
                parallelism: 1,
            },
            concurrency: 1,
            max_wait: std::time::Duration::from_millis(1),
        })
        .unwrap();
    })
    .await;
    let body = json!({"email": "nobody@example.com", "password": "whatever-123"});
    let attempts = (0..8).map(|_| app.post("/api/auth/login", &body, None));
    let answers = futures::future::join_all(attempts).await;
    let busy: Vec<&TestResponse> = answers.iter().filter(|r| r.status == 503).collect();
    assert!(!busy.is_empty(), "some attempts are turned away");
    for res in &busy {
        res.assert_problem(503);
        assert!(res.header("retry-after").is_some());
    }
    assert!(answers.iter().any(|r| r.status == 401), "one got its turn");
    assert!(answers.iter().all(|r| r.status == 401 || r.status == 503));
}

/// The `password_reset` message in an outbox directory, if one was written.
fn reset_mail_in(outbox: &std::path::Path) -> Option<Value> {
    std::fs::read_dir(outbox)
        .ok()?
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .filter_map(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .find(|m| m["tags"] == json!(["password_reset"]))
}

/// Every row of every table holding `needle`, as text or as the hex of its bytes (what a
/// `bytea` column such as `apalis.jobs.job` shows as text), as `schema.table` names.
async fn tables_holding(pool: &PgPool, needle: &str) -> Vec<String> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables
         WHERE table_type = 'BASE TABLE'
           AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(pool)
    .await
    .expect("the tables");
    assert!(tables.iter().any(|(_, t)| t == "jobs"), "{tables:?}");
    let hex: String = needle.bytes().map(|b| format!("{b:02x}")).collect();
    let mut holding = Vec::new();
    for (schema, table) in tables {
        let sql = format!(
            r#"SELECT count(*) FROM "{schema}"."{table}" t
               WHERE strpos(t::text, $1) > 0 OR strpos(t::text, $2) > 0"#
        );
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(needle)
            .bind(&hex)
            .fetch_one(pool)
            .await
            .expect("a count");
        if count > 0 {
            holding.push(format!("{schema}.{table}"));
        }
    }
    holding
}

#[sqlx::test(migrations = false)]
async fn no_table_holds_the_token_that_the_reset_email_carries(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let outbox = std::env::temp_dir().join(format!("cart-reset-{}", uuid::Uuid::now_v7()));
    let worker =
        crate::payments::start_worker(&pool, crate::payments::payment_settings(&[]), &outbox);
    let user = app.register_user("ana@example.com").await;
    forgot(&app, &user.email).await.assert_status(202);

    crate::payments::eventually(
        "the reset e-mail in the outbox",
        std::time::Duration::from_secs(20),
        || async { reset_mail_in(&outbox).is_some() },
    )
    .await;
    worker.shutdown().await;
    let sent = reset_mail_in(&outbox).unwrap();
    assert_eq!(sent["to"], "ana@example.com");
    let text = sent["text"].as_str().unwrap();
    let start = text.find("?token=").unwrap() + "?token=".len();
    let token = text[start..].split_whitespace().next().unwrap().to_owned();
    assert!(token.len() >= 43, "{token}");

    // The queue (done jobs are kept for a day), the reset table and every other table.
    assert_eq!(tables_holding(&pool, &token).await, Vec::<String>::new());

    // The link works, once.
    let reset = json!({"token": token, "password": "nova-senha-456"});
    app.post("/api/auth/reset-password", &reset, None)
        .await
        .assert_status(204);
    app.post("/api/auth/reset-password", &reset, None)
        .await
        .assert_problem(422);
    app.login("ana@example.com", "nova-senha-456").await;
    let _ = std::fs::remove_dir_all(&outbox);
}
