//! `/docs`: the OpenAPI reference rendered by Swagger UI, served from the binary itself (see
//! `api/assets/swagger-ui/README.md`), so it works offline and under a strict
//! Content-Security-Policy.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::IntoResponse,
    routing::get,
};

use crate::state::AppState;

/// The vendored `swagger-ui-dist` version; part of the assets' paths, so browsers may cache
/// them for good.
pub const SWAGGER_UI_VERSION: &str = "5.36.0";

const PAGE: &str = include_str!("../../assets/docs/index.html");
const INIT_JS: &str = include_str!("../../assets/docs/init.js");
const BUNDLE_JS: &str = include_str!("../../assets/swagger-ui/swagger-ui-bundle.js");
const CSS: &str = include_str!("../../assets/swagger-ui/swagger-ui.css");

/// Only this origin: no inline script or style, no other host. Swagger UI's "try it out"
/// calls the API with `fetch`, hence `connect-src 'self'`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

pub fn router() -> Router<AppState> {
    let page = PAGE.replace("SWAGGER_UI_VERSION", SWAGGER_UI_VERSION);
    let assets = format!("/docs/swagger-ui-{SWAGGER_UI_VERSION}");
    Router::new()
        .route(
            "/docs",
            get(move || {
                let page = page.clone();
                async move { asset("text/html; charset=utf-8", REVALIDATE, page) }
            }),
        )
        .route(
            "/docs/init.js",
            get(|| async { asset("text/javascript; charset=utf-8", REVALIDATE, INIT_JS) }),
        )
        .route(
            &format!("{assets}/swagger-ui-bundle.js"),
            get(|| async { asset("text/javascript; charset=utf-8", IMMUTABLE, BUNDLE_JS) }),
        )
        .route(
            &format!("{assets}/swagger-ui.css"),
            get(|| async { asset("text/css; charset=utf-8", IMMUTABLE, CSS) }),
        )
}

fn asset(
    content_type: &'static str,
    cache: &'static str,
    body: impl IntoResponse,
) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        body,
    )
}
