//! `TestApp::spawn(pool)`: migrates the fresh test database, serves the real router on
//! 127.0.0.1:0 and offers a reqwest client with JSON helpers.

#![allow(dead_code)]

use std::{net::SocketAddr, time::Duration};

use cart_api::{
    config::{ApiConfig, RateLimits},
    state::AppState,
};
use cart_core::{
    auth::{
        jwt::JwtKeys,
        password::{PasswordConfig, PasswordHasher},
    },
    db::DbConfig,
    payments::flow::PaymentSettings,
};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;

/// The `JWT_SECRET` of [`test_config`].
pub const JWT_SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

/// Settings for tests: a fixed secret, no rate limits, cheap password hashing, everything
/// else at its default.
pub fn test_config() -> ApiConfig {
    ApiConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        // The test's pool is handed to the state directly; nothing connects with this.
        db: DbConfig {
            url: "postgres://unused".into(),
            min_connections: 0,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(15),
        },
        jwt: JwtKeys::new(JWT_SECRET, Duration::from_secs(3600))
            .expect("the test secret is long enough"),
        allowed_origins: vec![],
        body_limit_bytes: 1024 * 1024,
        request_timeout: Duration::from_secs(30),
        shutdown_timeout: Duration::from_secs(5),
        pagination_max_limit: 100,
        rate_limits: RateLimits {
            enabled: false,
            global_per_window: 300,
            global_window: Duration::from_secs(60),
            login_per_window: 5,
            login_window: Duration::from_secs(20),
            register_per_window: 3,
            register_window: Duration::from_secs(3600),
            forgot_per_window: 5,
            forgot_window: Duration::from_secs(3600),
            failed_logins_per_window: 10,
            failed_logins_window: Duration::from_secs(15 * 60),
            trusted_proxies: vec![],
        },
        store_name: "Loja Teste".into(),
        frontend_url: "http://localhost:3000".into(),
        passwords: PasswordHasher::new(&PasswordConfig::for_tests())
            .expect("the test hashing parameters are valid"),
        password_reset_ttl: Duration::from_secs(3600),
        admin_bootstrap: None,
        cache: cart_api::cache::CacheConfig::default(),
        orders: cart_core::orders::OrdersConfig::default(),
        shipping_sender_cep: "01310100".into(),
        payments: PaymentSettings::for_tests(),
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub state: AppState,
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestResponse {
    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn assert_status(&self, expected: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            expected,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 9457 problem with this status.
    #[track_caller]
    pub fn assert_problem(&self, expected: u16) -> &Self {
        self.assert_status(expected);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "not problem+json: {}",
            self.text
        );
        assert_eq!(self.body["status"], expected);
        assert!(self.body["title"].is_string());
        self
    }
}

impl TestApp {
    pub async fn spawn(pool: PgPool) -> Self {
        Self::spawn_with(pool, |_| {}).await
    }

    /// Like `spawn`, with a chance to adjust the configuration first.
    pub async fn spawn_with(pool: PgPool, adjust: impl FnOnce(&mut ApiConfig)) -> Self {
        Self::spawn_with_state(pool, adjust, |state| state).await
    }

    /// Like `spawn_with`, and then a chance to adjust the state (e.g. a stub provider).
    pub async fn spawn_with_state(
        pool: PgPool,
        adjust: impl FnOnce(&mut ApiConfig),
        build: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        cart_core::db::migrate(&pool)
            .await
            .expect("migrations apply");
        let mut config = test_config();
        adjust(&mut config);
        let state = build(AppState::new(pool.clone(), config));
        cart_api::startup(&state).await.expect("start-up");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a random port");
        let addr = listener.local_addr().expect("local addr");
        let serve_state = state.clone();
        tokio::spawn(async move {
            let _ = cart_api::serve(listener, serve_state).await;
        });
        Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            pool,
            state,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with an optional JSON body and bearer token.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> TestResponse {
        let mut req = self.client.request(method, self.url(path));
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        Self::read(req.send().await.expect("request is sent")).await
    }

    pub async fn read(response: reqwest::Response) -> TestResponse {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        TestResponse {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.request(Method::GET, path, None, token).await
    }

    pub async fn post(&self, path: &str, body: &Value, token: Option<&str>) -> TestResponse {
        self.request(Method::POST, path, Some(body), token).await
    }

    pub async fn put(&self, path: &str, body: &Value, token: Option<&str>) -> TestResponse {
        self.request(Method::PUT, path, Some(body), token).await
    }

    pub async fn patch(&self, path: &str, body: &Value, token: Option<&str>) -> TestResponse {
        self.request(Method::PATCH, path, Some(body), token).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.request(Method::DELETE, path, None, token).await
    }

    /// A correctly signed token for `id`, with a session opened for it when the account
    /// exists. `AuthUser` also checks that the account is active and takes the role from the
    /// database, so a `role` other than the account's has no effect.
    pub async fn token_for(&self, id: uuid::Uuid, role: cart_core::auth::Role) -> String {
        let sid = uuid::Uuid::now_v7();
        let (token, expires_at) = self
            .state
            .config
            .jwt
            .issue(id, role, sid)
            .expect("token is issued");
        sqlx::query(
            "INSERT INTO sessions (id, user_id, expires_at)
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2)",
        )
        .bind(sid)
        .bind(id)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .expect("a session");
        token
    }

    /// Logs `email` in and answers the new session's token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let res = self
            .post(
                "/api/auth/login",
                &serde_json::json!({"email": email, "password": password}),
                None,
            )
            .await;
        res.assert_status(200);
        res.body["token"].as_str().expect("a token").to_owned()
    }
}

/// An account created through the API, with its credentials and a working token.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: uuid::Uuid,
    pub email: String,
    pub password: String,
    pub token: String,
}

impl TestApp {
    /// Registers `email` with the password `senha-segura-123`.
    pub async fn register_user(&self, email: &str) -> TestUser {
        let password = "senha-segura-123";
        let res = self
            .post(
                "/api/auth/register",
                &serde_json::json!({"name": "Cliente Teste", "email": email, "password": password}),
                None,
            )
            .await;
        res.assert_status(201);
        TestUser {
            id: res.body["user"]["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .expect("a user id"),
            email: email.to_owned(),
            password: password.to_owned(),
            token: res.body["token"].as_str().expect("a token").to_owned(),
        }
    }

    /// A fresh customer account.
    pub async fn user(&self) -> TestUser {
        let email = format!("cliente-{}@example.com", uuid::Uuid::new_v4().simple());
        self.register_user(&email).await
    }

    /// A fresh admin account (registered, then promoted; its token carries the new role at
    /// once because the role is read from the database).
    pub async fn admin(&self) -> TestUser {
        let user = self.user().await;
        let mut conn = self.pool.acquire().await.expect("a connection");
        cart_core::users::promote(&mut conn, &user.email)
            .await
            .expect("promoted");
        user
    }
}
