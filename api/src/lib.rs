//! The HTTP API: thin handlers over `cart-core`.

pub mod admin;
pub mod cache;
pub mod config;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod rate_limit;
pub mod routes;
pub mod seed;
pub mod state;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderValue, Method, StatusCode, header},
};
use tower::util::MapRequestLayer;
use tower_http::{catch_panic::CatchPanicLayer, cors::CorsLayer, timeout::TimeoutLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::{error::ApiError, state::AppState};

/// The routes the rate limits meter, those they leave alone, and the OpenAPI document of
/// both, before state and middleware.
fn documented_routes() -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (metered, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api", routes::api())
        .split_for_parts();
    let (unmetered, unmetered_doc) = routes::unmetered().split_for_parts();
    doc.merge(unmetered_doc);
    openapi::describe_every_response(&mut doc);
    (metered, unmetered, doc)
}

/// The OpenAPI document, e.g. for tests and tooling.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().2
}

/// The complete application: routes, state and every middleware.
pub fn router(state: AppState) -> Router {
    let (metered, unmetered, openapi) = documented_routes();
    let config = state.config.clone();
    rate_limit::apply(metered, &config.rate_limits, &state.db)
        .merge(unmetered)
        .merge(routes::probes::docs_router(openapi))
        .route_layer(MapRequestLayer::new(middleware::record_route))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // A bare 503, made problem+json by `ObserveLayer`.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(DefaultBodyLimit::max(config.body_limit_bytes))
        // Outside the limits, so a refused request still carries CORS headers and its id.
        .layer(cors(&config.allowed_origins))
        .layer(middleware::ObserveLayer)
        .with_state(state)
}

fn cors(origins: &[String]) -> CorsLayer {
    use tower_http::cors::{AllowOrigin, Any};
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            header::LOCATION,
        ]);
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any)
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

/// Start-up work before serving: the catalog cache's subscription to its changes, and the admin
/// bootstrap from `ADMIN_EMAIL`/`ADMIN_PASSWORD` (creates that admin, or promotes the
/// existing account; idempotent). Invalid values stop the start; a database that does not
/// answer yet does not: the bootstrap then keeps trying in the background, as the API itself
/// starts and reports through `/ready`.
pub async fn startup(state: &AppState) -> anyhow::Result<()> {
    use anyhow::Context;

    state.cache.spawn_listener(&state.listen_hub);
    let Some(admin) = state.config.admin_bootstrap.clone() else {
        return Ok(());
    };
    match bootstrap_admin(state, &admin).await {
        Ok(()) => Ok(()),
        Err(cart_core::Error::Invalid(errors)) => {
            let problems: Vec<String> = errors
                .0
                .iter()
                .map(|(name, messages)| format!("{name} {}", messages.join(", ")))
                .collect();
            anyhow::bail!("admin bootstrap: {}", problems.join("; "))
        }
        Err(cart_core::Error::Db(e)) if database_unreachable(&e) => {
            tracing::warn!(error = %e, "admin bootstrap postponed: the database does not answer");
            let state = state.clone();
            tokio::spawn(async move {
                let mut pause = std::time::Duration::from_secs(1);
                loop {
                    tokio::time::sleep(pause).await;
                    match bootstrap_admin(&state, &admin).await {
                        Ok(()) => break,
                        Err(e) => tracing::warn!(error = %e, "admin bootstrap failed; retrying"),
                    }
                    pause = (pause * 2).min(std::time::Duration::from_secs(30));
                }
            });
            Ok(())
        }
        Err(e) => Err(e).context("admin bootstrap from ADMIN_EMAIL/ADMIN_PASSWORD"),
    }
}

fn database_unreachable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
    )
}

async fn bootstrap_admin(
    state: &AppState,
    admin: &config::AdminCredentials,
) -> Result<(), cart_core::Error> {
    use cart_core::users::credentials::{AdminBootstrap, ensure_admin};
    use secrecy::ExposeSecret;

    let outcome = ensure_admin(
        &state.db,
        &state.config.passwords,
        &admin.email,
        admin.password.expose_secret(),
    )
    .await?;
    match outcome {
        AdminBootstrap::Created(user) => {
            tracing::info!(user_id = %user.id, "admin account created");
        }
        AdminBootstrap::TakenByCustomer(user) => {
            tracing::warn!(
                user_id = %user.id,
                "ADMIN_EMAIL belongs to a customer account, which was not promoted (registration \
                 does not verify addresses); to make it an admin deliberately, run \
                 `cart-api users promote <email>`"
            );
        }
        AdminBootstrap::AlreadyAdmin(user) => {
            tracing::debug!(user_id = %user.id, "admin account present");
        }
    }
    Ok(())
}

/// Serves until SIGINT/SIGTERM, then drains in-flight requests for at most
/// `shutdown_timeout`.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    let grace = state.config.shutdown_timeout;
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        cart_core::shutdown::signal().await;
        tracing::info!(?grace, "draining in-flight requests");
        let _ = signalled_tx.send(());
    });
    let server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = server => result,
        () = async {
            let _ = signalled_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(?grace, "in-flight requests did not finish in time; exiting");
            Ok(())
        }
    }
}
