//! `/api/auth/*`: register, login, forgot and reset password, the admin bootstrap.

use cart_api::config::AdminCredentials;
use cart_core::jobs::{Envelope, send_email::SendEmail};
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

/// The reset e-mails queued so far, oldest first.
async fn queued_reset_emails(app: &TestApp) -> Vec<(SendEmail, i32)> {
    let rows: Vec<(Vec<u8>, i32)> = sqlx::query_as(
        "SELECT job, max_attempts FROM apalis.jobs WHERE job_type = 'send_email' ORDER BY run_at, id",
    )
    .fetch_all(&app.pool)
    .await
    .expect("jobs");
    rows.into_iter()
        .map(|(bytes, max)| {
            let envelope: Envelope<SendEmail> =
                serde_json::from_slice(&bytes).expect("an envelope");
            (envelope.payload, max)
        })
        .collect()
}

fn token_in(email: &SendEmail) -> String {
    let text = &email.message.text;
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
    assert!(queued_reset_emails(&app).await.is_empty());

    let known = forgot(&app, "ANA@example.com").await;
    known.assert_status(202);
    assert_eq!(unknown.text, known.text, "the same answer either way");

    let emails = queued_reset_emails(&app).await;
    assert_eq!(emails.len(), 1);
    let (email, max_attempts) = &emails[0];
    assert_eq!(*max_attempts, 10);
    assert_eq!(email.message.to, "ana@example.com");
    assert_eq!(email.message.tag, "password_reset");
    assert!(email.key.as_deref().unwrap().starts_with("password_reset:"));
    assert!(
        email
            .message
            .html
            .contains("http://localhost:3000/reset-password?token=")
    );
    let token = token_in(email);
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
    let token = token_in(&queued_reset_emails(&app).await[0].0);

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
    let token = token_in(&queued_reset_emails(&app).await[0].0);

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
    assert!(
        queued_reset_emails(&app).await[0]
            .0
            .message
            .text
            .contains("30 minutos")
    );
}

#[sqlx::test(migrations = false)]
async fn a_newer_reset_link_replaces_the_older_one(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana@example.com").await;
    forgot(&app, &user.email).await.assert_status(202);
    forgot(&app, &user.email).await.assert_status(202);
    let emails = queued_reset_emails(&app).await;
    assert_eq!(emails.len(), 2);
    let (first, second) = (token_in(&emails[0].0), token_in(&emails[1].0));
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
async fn a_reset_ends_sessions_issued_before_it(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("ana@example.com").await;
    forgot(&app, &user.email).await.assert_status(202);
    let token = token_in(&queued_reset_emails(&app).await[0].0);
    // Tokens carry whole seconds: make the old one clearly older than the reset.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
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
async fn the_admin_bootstrap_promotes_an_existing_account_keeping_its_password(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let user = app.register_user("chefe@example.com").await;
    let mut config = (*app.state.config).clone();
    config.admin_bootstrap = Some(AdminCredentials {
        email: "chefe@example.com".into(),
        password: "outra-senha-999".into(),
    });
    let state = cart_api::state::AppState::new(app.pool.clone(), config);
    cart_api::startup(&state).await.unwrap();

    let me = app.get("/api/users/me", Some(&user.token)).await;
    assert_eq!(me.body["role"], "admin");
    app.post(
        "/api/auth/login",
        &json!({"email": "chefe@example.com", "password": user.password}),
        None,
    )
    .await
    .assert_status(200);
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
