//! Cross-cutting request handling: request id, access log, metrics and problem+json for
//! framework errors, outermost; the route label, innermost. `lib.rs` layers them with CORS,
//! body limit, panic catching, timeout and rate limits.

use std::{
    convert::Infallible,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request},
    http::{HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use cart_core::telemetry::traces;
use futures::future::BoxFuture;
use tower::{Layer, Service};
use tracing::Instrument;
use uuid::Uuid;

use crate::error::{ApiError, LoggedCause};

pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// What is learned about a request on its way in: the caller (filled by the auth extractor,
/// and recorded on the request's span so every later log line of the request names it) and
/// the route template (`/api/products/{id}`, filled by [`record_route`] once the router has
/// matched), for metrics.
#[derive(Clone)]
pub struct RequestSlot(Arc<Facts>);

struct Facts {
    span: tracing::Span,
    route: OnceLock<MatchedPath>,
}

impl RequestSlot {
    fn new(span: tracing::Span) -> Self {
        Self(Arc::new(Facts {
            span,
            route: OnceLock::new(),
        }))
    }

    pub fn set(&self, id: Uuid) {
        self.0.span.record("user_id", tracing::field::display(id));
    }
}

/// Request id, access log, metrics and problem+json for framework errors in one place, so
/// every log line of the request, including the access line, carries the same id.
///
/// A hand-written layer rather than `axum::middleware::from_fn`: `from_fn` clones the whole
/// stack beneath it on every request (CORS configuration included), and it is the outermost
/// layer, so that is every request the API serves.
#[derive(Debug, Clone, Copy, Default)]
pub struct ObserveLayer;

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe { inner }
    }
}

/// See [`ObserveLayer`].
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
}

impl<S> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let request_id = req
            .headers()
            .get(&REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| cart_core::request_id::is_sane(v))
            .map(str::to_owned)
            .unwrap_or_else(|| Uuid::now_v7().to_string());
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let span = tracing::info_span!(
            "request",
            otel.kind = "server",
            request_id = %request_id,
            user_id = tracing::field::Empty,
        );
        // A caller that traces (a gateway, a front end) gets its trace continued.
        if traces::exporting()
            && let Some(parent) = req.headers().get("traceparent")
            && let Ok(parent) = parent.to_str()
        {
            traces::continue_trace(&span, parent);
        }
        let slot = RequestSlot::new(span.clone());
        req.extensions_mut().insert(slot.clone());
        let started = Instant::now();
        let inner = self.inner.call(req);
        Box::pin(async move {
            let Ok(response) = cart_core::request_id::scope(request_id.clone(), inner)
                .instrument(span.clone())
                .await;
            let latency = started.elapsed();
            let mut response = problem_for_bare_error(response);
            let status = response.status();

            let route = slot.0.route.get().map_or("unmatched", MatchedPath::as_str);
            crate::metrics::record_request(&method, route, status, latency);
            traces::describe_request(&span, method.as_str(), route, status.as_u16());

            let cause = response
                .extensions()
                .get::<LoggedCause>()
                .map(|c| c.0.clone());
            let _entered = span.enter();
            let latency_ms = latency.as_secs_f64() * 1000.0;
            if status.is_server_error() {
                tracing::error!(%method, %path, status = status.as_u16(), latency_ms, cause, "request failed");
            } else {
                tracing::info!(%method, %path, status = status.as_u16(), latency_ms, cause, "request");
            }
            drop(_entered);

            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response
                    .headers_mut()
                    .insert(REQUEST_ID_HEADER.clone(), value);
            }
            Ok(response)
        })
    }
}

/// Added with `route_layer` (as a plain request map: no clone of the route per request),
/// where the matched route is known, to label metrics by template.
pub fn record_route(req: Request) -> Request {
    if let (Some(slot), Some(matched)) = (
        req.extensions().get::<RequestSlot>(),
        req.extensions().get::<MatchedPath>(),
    ) {
        let _ = slot.0.route.set(matched.clone());
    }
    req
}

/// Framework-generated errors (e.g. a 413 from the body limit layer, the timeout's 503)
/// become problem+json too.
fn problem_for_bare_error(response: Response) -> Response {
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
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => ApiError::Timeout,
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
