//! Cross-cutting request handling, outermost first: request id, access log and metrics,
//! timeout, panic catching. CORS, body limit and rate limits are layered in `lib.rs`.

use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use uuid::Uuid;

use crate::error::{ApiError, LoggedCause};

pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Filled by the auth extractor so the access log can name the user.
#[derive(Clone, Default)]
pub struct UserSlot(Arc<OnceLock<Uuid>>);

impl UserSlot {
    pub fn set(&self, id: Uuid) {
        let _ = self.0.set(id);
    }
}

/// The route template (`/api/products/{id}`), carried out on the response for metrics.
#[derive(Clone)]
struct RouteTemplate(MatchedPath);

/// Request id, access log and metrics in one place, so every log line of the request,
/// including the access line, carries the same id.
pub async fn observe(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| cart_core::request_id::is_sane(v))
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::now_v7().to_string());

    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let slot = UserSlot::default();
    let mut req = req;
    req.extensions_mut().insert(slot.clone());

    let span = tracing::info_span!("request", request_id = %request_id);
    let started = Instant::now();
    let mut response = {
        use tracing::Instrument;
        cart_core::request_id::scope(request_id.clone(), next.run(req))
            .instrument(span.clone())
            .await
    };
    let latency = started.elapsed();
    let status = response.status();

    let route = response
        .extensions()
        .get::<RouteTemplate>()
        .map_or("unmatched", |r| r.0.as_str());
    crate::metrics::record_request(&method, route, status, latency);

    let user_id = slot.0.get().map(ToString::to_string);
    let cause = response
        .extensions()
        .get::<LoggedCause>()
        .map(|c| c.0.clone());
    let _entered = span.enter();
    let latency_ms = latency.as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::error!(%method, %path, status = status.as_u16(), latency_ms, user_id, cause, "request failed");
    } else {
        tracing::info!(%method, %path, status = status.as_u16(), latency_ms, user_id, cause, "request");
    }
    drop(_entered);

    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER.clone(), value);
    }
    response
}

/// Added with `route_layer`, where the matched route is known, to label metrics by template.
pub async fn record_route(matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    if let Some(template) = matched {
        response.extensions_mut().insert(RouteTemplate(template));
    }
    response
}

/// Bounds every request to `limit`; a handler that takes too long gets a problem+json 503.
pub async fn bounded(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// Framework-generated errors (e.g. a 413 from the body limit layer) become problem+json too.
pub async fn problem_for_bare_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !status.is_client_error() && !status.is_server_error() || is_problem {
        return response;
    }
    let err = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::NOT_FOUND => ApiError::RouteNotFound,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("unsupported content type".into())
        }
        StatusCode::REQUEST_TIMEOUT => ApiError::Timeout,
        s if s.is_server_error() => ApiError::Panic,
        _ => ApiError::BadRequest(status.canonical_reason().unwrap_or("bad request").into()),
    };
    let mut fixed = err.into_response();
    // Keep headers such as Allow and Retry-After that the framework set.
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    *fixed.status_mut() = status;
    fixed
}

/// `CatchPanicLayer` handler: a panic is a 500 problem+json and the process lives on.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::Panic.into_response()
}
