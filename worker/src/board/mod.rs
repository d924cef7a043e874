//! The operator board: the queue and the orders it serves, as web pages, served by the worker
//! at `/board` on `WORKER_PORT` when `BOARD_TOKEN` is set.
//!
//! Server-rendered HTML (minijinja templates embedded in the binary, charts as inline SVG),
//! no script at all, so the Content-Security-Policy allows nothing but the board's own
//! stylesheet and forms. Sign-in, sessions and CSRF: [`auth`]. Every change is made through
//! `cart_queue::admin` and audited in `operator_audit` with the actor `board`, in the same
//! transaction ([`actions`]). Payloads and errors are shown redacted ([`redact`]).

mod actions;
mod auth;
mod chart;
mod failed;
mod job;
mod overview;
mod pages;
pub mod redact;
mod search;
mod templates;

use std::sync::Arc;

use axum::{
    Router,
    http::{HeaderValue, header},
    middleware,
    response::Response,
    routing::{get, post},
};
use sqlx::PgPool;

/// The actor the board's actions are audited as.
pub const ACTOR: &str = "board";

/// The shortest `BOARD_TOKEN` accepted: long enough that guessing it over HTTP is hopeless.
pub const MIN_TOKEN_CHARS: usize = 32;

/// The board's settings: its token, from `BOARD_TOKEN`.
#[derive(Clone)]
pub struct BoardConfig {
    token: String,
}

impl std::fmt::Debug for BoardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoardConfig(..)")
    }
}

impl BoardConfig {
    /// A board signed in to with `token` (at least [`MIN_TOKEN_CHARS`] characters).
    pub fn new(token: &str) -> anyhow::Result<Self> {
        let token = token.trim();
        if token.chars().count() < MIN_TOKEN_CHARS {
            anyhow::bail!(
                "invalid value for environment variable BOARD_TOKEN: at least {MIN_TOKEN_CHARS} \
                 characters (e.g. `openssl rand -hex 32`)"
            );
        }
        Ok(Self {
            token: token.to_owned(),
        })
    }

    /// `BOARD_TOKEN`; unset or empty, the board is off.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        match cart_core::config::var("BOARD_TOKEN") {
            Some(token) if !token.trim().is_empty() => Self::new(&token).map(Some),
            _ => Ok(None),
        }
    }
}

/// What every board handler gets.
#[derive(Clone)]
pub struct BoardState {
    pool: PgPool,
    keys: Arc<auth::Keys>,
    templates: Arc<templates::Templates>,
}

/// The board's routes, to be nested at `/board`.
pub fn router(pool: PgPool, config: &BoardConfig) -> anyhow::Result<Router> {
    let state = BoardState {
        pool,
        keys: Arc::new(auth::Keys::new(&config.token)),
        templates: Arc::new(templates::Templates::new()?),
    };
    Ok(Router::new()
        .route("/", get(overview::page))
        .route("/login", get(pages::sign_in).post(pages::sign_in_submit))
        .route("/logout", post(pages::sign_out))
        .route("/failed", get(failed::page))
        .route("/confirm", get(failed::confirm))
        .route("/search", get(search::page))
        .route("/jobs/{id}", get(job::page))
        .route("/jobs/retry", post(actions::retry))
        .route("/jobs/discard", post(actions::discard))
        .route("/static/board.css", get(stylesheet))
        .with_state(state)
        .layer(middleware::map_response(security_headers)))
}

/// Nothing but the board's stylesheet and forms; no script, no frame, no other origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // Pages show live data and are nobody else's to keep; the stylesheet may be cached.
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn stylesheet() -> Response {
    axum::response::IntoResponse::into_response((
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("static/board.css"),
    ))
}
