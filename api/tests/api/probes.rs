use reqwest::Method;
use sqlx::PgPool;

use crate::helpers::TestApp;

#[sqlx::test(migrations = false)]
async fn health_answers_ok_with_a_request_id(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let res = app.get("/health", None).await;
    res.assert_status(200);
    assert_eq!(res.body["status"], "ok");
    assert!(res.header("x-request-id").is_some_and(|id| !id.is_empty()));
}

#[sqlx::test(migrations = false)]
async fn a_sane_request_id_is_echoed_and_an_insane_one_replaced(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let res = app
        .client
        .get(app.url("/health"))
        .header("X-Request-ID", "client-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-abc-123");
    let res = app
        .client
        .get(app.url("/health"))
        .header("X-Request-ID", "x".repeat(300))
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "x".repeat(300).as_str());
}

#[sqlx::test(migrations = false)]
async fn ready_pings_the_database(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.get("/ready", None).await.assert_status(200);
}

#[sqlx::test(migrations = false)]
async fn ready_is_503_when_the_database_is_unreachable(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    // Same router, a pool that points nowhere.
    let broken = cart_core::db::DbConfig {
        url: "postgres://postgres@127.0.0.1:1/none".into(),
        min_connections: 0,
        max_connections: 1,
        acquire_timeout: std::time::Duration::from_millis(300),
        statement_timeout: std::time::Duration::from_secs(1),
    }
    .connect_lazy()
    .unwrap();
    let state = cart_api::state::AppState::new(broken, (*app.state.config).clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(cart_api::serve(listener, state));
    let res = TestApp::read(
        app.client
            .get(format!("http://{addr}/ready"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    res.assert_problem(503);
    assert!(res.header("retry-after").is_some());
    let health = app
        .client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[sqlx::test(migrations = false)]
async fn unknown_routes_and_methods_are_problems(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let res = app.get("/api/nope", None).await;
    res.assert_problem(404);
    assert!(res.body["request_id"].is_string());
    app.request(Method::DELETE, "/health", None, None)
        .await
        .assert_problem(405);
}

#[sqlx::test(migrations = false)]
async fn metrics_and_openapi_are_served(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.get("/health", None).await;
    let metrics = app.get("/metrics", None).await;
    metrics.assert_status(200);
    assert!(metrics.text.contains("http_requests_total"));
    assert!(metrics.text.contains("db_pool_connections"));
    let doc = app.get("/openapi.json", None).await;
    doc.assert_status(200);
    assert!(doc.body["paths"]["/health"].is_object());
    let docs = app.get("/docs", None).await;
    docs.assert_status(200);
    assert!(docs.text.contains("/openapi.json"));
}

#[sqlx::test(migrations = false)]
async fn docs_load_only_from_the_api_under_a_strict_policy(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let page = app.get("/docs", None).await;
    page.assert_status(200);
    let policy = page.header("content-security-policy").unwrap_or_default();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    assert!(
        !page.text.contains("<script>"),
        "no inline script: {}",
        page.text
    );

    // Every script and stylesheet the page names is served here, with its type.
    let mut assets = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for piece in page.text.split(attribute).skip(1) {
            let url = piece.split('"').next().unwrap_or_default();
            if url.ends_with(".js") || url.ends_with(".css") {
                assets.push(url.to_owned());
            }
        }
    }
    assert_eq!(assets.len(), 3, "{assets:?}");
    for url in assets {
        assert!(url.starts_with('/'), "same origin: {url}");
        let asset = app.get(&url, None).await;
        asset.assert_status(200);
        let kind = if url.ends_with(".css") {
            "text/css"
        } else {
            "text/javascript"
        };
        assert!(
            asset
                .header("content-type")
                .is_some_and(|t| t.starts_with(kind)),
            "{url}"
        );
        assert!(asset.text.len() > 20, "{url}");
    }
}
