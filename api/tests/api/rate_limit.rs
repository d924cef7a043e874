//! Per-client rate limits (disabled in the other tests; enabled here).

use cart_api::config::parse_trusted_proxies;
use serde_json::json;
use sqlx::PgPool;

use crate::helpers::{TestApp, TestResponse};

async fn limited_app(pool: PgPool, trusted: &[&str]) -> TestApp {
    let trusted = parse_trusted_proxies(&trusted.join(",")).expect("valid proxies");
    TestApp::spawn_with(pool, move |c| {
        c.rate_limits.enabled = true;
        c.rate_limits.trusted_proxies = trusted;
    })
    .await
}

async fn login_from(app: &TestApp, forwarded_for: Option<&str>) -> TestResponse {
    login_as(app, "ana@example.com", "wrong-password", forwarded_for).await
}

async fn login_as(
    app: &TestApp,
    email: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> TestResponse {
    let mut req = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"email": email, "password": password}));
    if let Some(ip) = forwarded_for {
        req = req.header("x-forwarded-for", ip);
    }
    TestApp::read(req.send().await.expect("sent")).await
}

#[track_caller]
fn assert_rate_limited(res: &TestResponse) {
    res.assert_problem(429);
    let retry_after: u64 = res
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a numeric Retry-After");
    assert!(retry_after >= 1, "{retry_after}");
    assert!(res.header("x-request-id").is_some());
}

#[sqlx::test(migrations = false)]
async fn the_sixth_login_within_twenty_seconds_is_429(pool: PgPool) {
    let app = limited_app(pool, &[]).await;
    for _ in 0..5 {
        login_from(&app, None).await.assert_problem(401);
    }
    let res = login_from(&app, None).await;
    assert_rate_limited(&res);
    let retry_after: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!(
        retry_after <= 4,
        "one login comes back every 4 s: {retry_after}"
    );
    // Other routes are not affected by the login budget.
    app.get("/health", None).await.assert_status(200);
}

#[sqlx::test(migrations = false)]
async fn the_fourth_registration_within_an_hour_is_429(pool: PgPool) {
    let app = limited_app(pool, &[]).await;
    for n in 0..3 {
        app.register_user(&format!("cliente{n}@example.com")).await;
    }
    let res = app
        .post(
            "/api/auth/register",
            &json!({"name": "Ana", "email": "cliente9@example.com", "password": "senha-segura-123"}),
            None,
        )
        .await;
    assert_rate_limited(&res);
    let retry_after: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!(
        retry_after > 60,
        "an hour's budget refills slowly: {retry_after}"
    );
}

#[sqlx::test(migrations = false)]
async fn the_sixth_reset_request_within_an_hour_is_429(pool: PgPool) {
    let app = limited_app(pool, &[]).await;
    for _ in 0..5 {
        app.post(
            "/api/auth/forgot-password",
            &json!({"email": "ana@example.com"}),
            None,
        )
        .await
        .assert_status(202);
    }
    let res = app
        .post(
            "/api/auth/forgot-password",
            &json!({"email": "ana@example.com"}),
            None,
        )
        .await;
    assert_rate_limited(&res);
}

#[sqlx::test(migrations = false)]
async fn the_global_budget_covers_every_client_route_but_not_webhooks_or_probes(pool: PgPool) {
    let app = TestApp::spawn_with(pool, |c| {
        c.rate_limits.enabled = true;
        c.rate_limits.global_per_window = 3;
    })
    .await;
    for _ in 0..3 {
        app.get("/api/categories", None).await.assert_status(200);
    }
    assert_rate_limited(&app.get("/api/categories", None).await);
    assert_rate_limited(&app.get("/api/users/me", None).await);
    // A gateway retrying a burst of events, and the orchestrator's probes, are never refused
    // (an unsigned webhook is still refused for its signature, not for the rate).
    for _ in 0..10 {
        app.get("/health", None).await.assert_status(200);
        app.get("/ready", None).await.assert_status(200);
        app.post("/api/webhooks/payment", &json!({}), None)
            .await
            .assert_problem(401);
    }
}

#[sqlx::test(migrations = false)]
async fn forwarded_for_from_an_untrusted_peer_does_not_buy_more_attempts(pool: PgPool) {
    let app = limited_app(pool, &[]).await;
    for n in 0..5 {
        login_from(&app, Some(&format!("198.51.100.{n}")))
            .await
            .assert_problem(401);
    }
    assert_rate_limited(&login_from(&app, Some("198.51.100.77")).await);
}

#[sqlx::test(migrations = false)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(pool: PgPool) {
    let app = limited_app(pool, &["127.0.0.1"]).await;
    for _ in 0..5 {
        login_from(&app, Some("198.51.100.1"))
            .await
            .assert_problem(401);
    }
    assert_rate_limited(&login_from(&app, Some("198.51.100.1")).await);
    // A forged entry left of the real client changes nothing.
    assert_rate_limited(&login_from(&app, Some("203.0.113.5, 198.51.100.1")).await);
    login_from(&app, Some("198.51.100.2"))
        .await
        .assert_problem(401);
}

#[sqlx::test(migrations = false)]
async fn two_instances_spend_from_one_login_budget(pool: PgPool) {
    let first = limited_app(pool.clone(), &[]).await;
    let second = limited_app(pool, &[]).await;
    // Five attempts in all, alternating between the instances, spend the budget of five...
    for n in 0..5 {
        let app = if n % 2 == 0 { &first } else { &second };
        login_from(app, None).await.assert_problem(401);
    }
    // ...on both of them.
    assert_rate_limited(&login_from(&second, None).await);
    assert_rate_limited(&login_from(&first, None).await);
}

/// Behind a proxy range (Fly, Railway), each attempt from another client address.
async fn app_behind_proxy_range(pool: PgPool) -> TestApp {
    limited_app(pool, &["127.0.0.0/8", "::1/128"]).await
}

#[sqlx::test(migrations = false)]
async fn the_eleventh_failed_login_to_one_account_is_429_from_any_address(pool: PgPool) {
    let app = app_behind_proxy_range(pool).await;
    let ana = app.register_user("ana@example.com").await;
    for n in 0..10 {
        login_as(
            &app,
            "ana@example.com",
            "wrong-password",
            Some(&format!("198.51.100.{n}")),
        )
        .await
        .assert_problem(401);
    }
    // A new address and the right password change nothing: the account's budget is spent.
    let res = login_as(
        &app,
        " ANA@example.com",
        &ana.password,
        Some("203.0.113.50"),
    )
    .await;
    assert_rate_limited(&res);
    let retry_after: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!(
        retry_after <= 90,
        "one attempt comes back every 90 s: {retry_after}"
    );
    // Another account is not affected.
    let bia = app.register_user("bia@example.com").await;
    login_as(&app, &bia.email, &bia.password, Some("203.0.113.50"))
        .await
        .assert_status(200);
}

#[sqlx::test(migrations = false)]
async fn an_unknown_email_is_limited_exactly_like_an_account(pool: PgPool) {
    let app = app_behind_proxy_range(pool).await;
    app.register_user("ana@example.com").await;
    let mut refusals = Vec::new();
    for (m, email) in ["ana@example.com", "ninguem@example.com"]
        .iter()
        .enumerate()
    {
        for n in 0..10 {
            login_as(
                &app,
                email,
                "wrong-password",
                Some(&format!("198.51.{m}.{n}")),
            )
            .await
            .assert_problem(401);
        }
        let res = login_as(&app, email, "wrong-password", Some("203.0.113.51")).await;
        assert_rate_limited(&res);
        refusals.push(res);
    }
    // Nothing in the refusal tells an account from an e-mail nobody registered.
    let (known, unknown) = (&refusals[0], &refusals[1]);
    assert_eq!(known.body["title"], unknown.body["title"]);
    assert_eq!(known.body["detail"], unknown.body["detail"]);
    assert_eq!(known.body["type"], unknown.body["type"]);
}

#[sqlx::test(migrations = false)]
async fn successful_logins_do_not_spend_the_account_budget(pool: PgPool) {
    let app = app_behind_proxy_range(pool).await;
    let ana = app.register_user("ana@example.com").await;
    for n in 0..12 {
        login_as(
            &app,
            &ana.email,
            &ana.password,
            Some(&format!("198.51.100.{n}")),
        )
        .await
        .assert_status(200);
    }
    for n in 0..10 {
        login_as(
            &app,
            &ana.email,
            "wrong-password",
            Some(&format!("198.51.101.{n}")),
        )
        .await
        .assert_problem(401);
    }
    assert_rate_limited(&login_as(&app, &ana.email, &ana.password, Some("198.51.102.1")).await);
}

#[sqlx::test(migrations = false)]
async fn a_stolen_token_cannot_guess_the_password_through_an_email_change(pool: PgPool) {
    let app = app_behind_proxy_range(pool).await;
    let ana = app.register_user("ana@example.com").await;
    // With the token alone, each guess at `current_password` spends the account's budget.
    for n in 0..10 {
        app.put(
            "/api/users/me",
            &json!({"email": format!("thief{n}@example.com"), "current_password": "guess"}),
            Some(&ana.token),
        )
        .await
        .assert_problem(403);
    }
    // The right password is refused now, here and at login alike; nothing changed.
    let res = app
        .put(
            "/api/users/me",
            &json!({"email": "thief@example.com", "current_password": ana.password}),
            Some(&ana.token),
        )
        .await;
    assert_rate_limited(&res);
    assert_rate_limited(&login_as(&app, &ana.email, &ana.password, Some("203.0.113.9")).await);
    let email: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(ana.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(email, "ana@example.com");
}
