//! The API's one error type and its one mapping to `application/problem+json` (RFC 9457).
//!
//! Handlers return [`ApiResult`]. Domain errors arrive as `cart_core::Error`; extractor
//! rejections are converted in `extract.rs`. 5xx causes are logged with the request id and
//! never sent to the client.

use std::time::Duration;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use cart_core::error::FieldErrors;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Core(#[from] cart_core::Error),
    /// A request the server cannot parse (bad JSON, bad query, bad path id).
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("not found")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("too many requests")]
    TooManyRequests { retry_after: Duration },
    #[error("request timed out")]
    Timeout,
    #[error("internal error")]
    Panic,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Core(e.into())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Core(e.into())
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub errors: Option<FieldErrors>,
}

/// Marker put into the response's extensions so the logging middleware can record the cause
/// of a 5xx without the client seeing it.
#[derive(Clone, Debug)]
pub struct LoggedCause(pub String);

/// Marker put into the extensions of an answer that is not final: the same request may get
/// another answer when repeated (a 5xx, or a 409 that means "try again"). Such an answer is
/// never stored for an `Idempotency-Key`.
#[derive(Clone, Copy, Debug)]
pub struct Transient;

struct Parts {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    errors: Option<FieldErrors>,
    retry_after: Option<Duration>,
    cause: Option<String>,
    www_authenticate: bool,
    transient: bool,
}

impl Parts {
    fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: String) -> Self {
        Self {
            status,
            slug,
            title,
            detail,
            errors: None,
            retry_after: None,
            cause: None,
            www_authenticate: false,
            transient: status.is_server_error(),
        }
    }
}

impl ApiError {
    fn parts(self) -> Parts {
        use cart_core::Error as E;
        match self {
            ApiError::Core(core) => match core {
                E::NotFound => Parts::new(
                    StatusCode::NOT_FOUND,
                    "not-found",
                    "Not Found",
                    "the resource does not exist".into(),
                ),
                E::Unauthorized(reason) => {
                    let mut p = Parts::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "Unauthorized",
                        "missing, invalid or expired credentials".into(),
                    );
                    p.www_authenticate = true;
                    p.cause = Some(reason);
                    p
                }
                E::Forbidden => Parts::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "Forbidden",
                    "you are not allowed to do this".into(),
                ),
                E::Conflict(detail) => {
                    Parts::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
                }
                E::TryAgain(detail) => {
                    let mut p = Parts::new(StatusCode::CONFLICT, "conflict", "Conflict", detail);
                    p.retry_after = Some(Duration::from_secs(1));
                    p.transient = true;
                    p
                }
                E::Invalid(errors) => {
                    let mut p = Parts::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "validation",
                        "Unprocessable Entity",
                        "one or more fields are invalid".into(),
                    );
                    p.errors = Some(errors);
                    p
                }
                E::BadRequest(detail) => Parts::new(
                    StatusCode::BAD_REQUEST,
                    "bad-request",
                    "Bad Request",
                    detail,
                ),
                E::Unavailable {
                    reason,
                    retry_after,
                } => {
                    let mut p = Parts::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "Service Unavailable",
                        "a dependency is unavailable; try again later".into(),
                    );
                    p.retry_after = retry_after.or(Some(Duration::from_secs(5)));
                    p.cause = Some(reason);
                    p
                }
                E::Upstream(reason) => {
                    let mut p = Parts::new(
                        StatusCode::BAD_GATEWAY,
                        "upstream",
                        "Bad Gateway",
                        "an upstream provider failed".into(),
                    );
                    p.cause = Some(reason);
                    p
                }
                E::Db(err) => {
                    let unavailable = database_unavailable(&err);
                    // 22021: text PostgreSQL cannot store (a NUL), e.g. in a query parameter;
                    // the statement failed, so nothing was written.
                    let unstorable_text = err
                        .as_database_error()
                        .and_then(|db| db.code())
                        .is_some_and(|code| code == "22021");
                    let mut p = if unstorable_text {
                        Parts::new(
                            StatusCode::BAD_REQUEST,
                            "bad-request",
                            "Bad Request",
                            "text must not contain NUL characters".into(),
                        )
                    } else if unavailable {
                        let mut p = Parts::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "unavailable",
                            "Service Unavailable",
                            "the database is busy or unavailable; try again later".into(),
                        );
                        p.retry_after = Some(Duration::from_secs(2));
                        p
                    } else {
                        internal()
                    };
                    p.cause = Some(format!("database: {err}"));
                    p
                }
                E::Internal(err) => {
                    let mut p = internal();
                    p.cause = Some(format!("{err:#}"));
                    p
                }
            },
            ApiError::BadRequest(detail) => Parts::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                "Bad Request",
                detail,
            ),
            ApiError::UnsupportedMediaType(detail) => Parts::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported Media Type",
                detail,
            ),
            ApiError::PayloadTooLarge => Parts::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Payload Too Large",
                "the request body is larger than allowed".into(),
            ),
            ApiError::RouteNotFound => Parts::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not Found",
                "no such route".into(),
            ),
            ApiError::MethodNotAllowed => Parts::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method Not Allowed",
                "this route does not accept that method".into(),
            ),
            ApiError::TooManyRequests { retry_after } => {
                let mut p = Parts::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate-limited",
                    "Too Many Requests",
                    "too many requests; slow down".into(),
                );
                p.retry_after = Some(retry_after);
                p
            }
            ApiError::Timeout => Parts::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "Service Unavailable",
                "the request took too long".into(),
            ),
            ApiError::Panic => {
                let mut p = internal();
                p.cause = Some("handler panicked".into());
                p
            }
        }
    }
}

fn internal() -> Parts {
    Parts::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal Server Error",
        "something went wrong on our side".into(),
    )
}

/// Builds a problem+json response. Everything below the request-id middleware runs inside
/// its scope, so the id is known here.
pub fn problem_response(err: ApiError) -> Response {
    let parts = err.parts();
    let body = Problem {
        kind: format!("https://cart.dev/problems/{}", parts.slug),
        title: parts.title.into(),
        status: parts.status.as_u16(),
        detail: parts.detail,
        request_id: cart_core::request_id::current(),
        errors: parts.errors,
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = (parts.status, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(after) = parts.retry_after {
        let secs = after.as_secs().max(1);
        if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
            headers.insert(header::RETRY_AFTER, value);
        }
    }
    if parts.www_authenticate {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Some(cause) = parts.cause {
        response.extensions_mut().insert(LoggedCause(cause));
    }
    if parts.transient {
        response.extensions_mut().insert(Transient);
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem_response(self)
    }
}

/// Errors that say the database is away for now (pool exhausted, connection lost, server
/// restarting or refusing connections), not that this request is wrong: a retry will do.
fn database_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 53: insufficient resources (too many connections);
            // 57P01–57P03: admin or crash shutdown, server not accepting connections yet.
            code.starts_with("08") || code.starts_with("53") || code.starts_with("57P")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::database_unavailable;

    #[test]
    fn a_lost_connection_or_a_full_pool_is_unavailability_not_a_bug() {
        assert!(database_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(database_unavailable(&sqlx::Error::Io(
            std::io::Error::other("broken pipe")
        )));
        assert!(!database_unavailable(&sqlx::Error::RowNotFound));
        assert!(!database_unavailable(&sqlx::Error::ColumnNotFound(
            "x".into()
        )));
    }
}
