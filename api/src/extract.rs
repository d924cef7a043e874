//! Extractors whose rejections become problem+json: `Json`, `Path`, `Query`, pagination and
//! the authenticated caller.

use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use cart_core::auth::{Role, jwt::Claims};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::{error::ApiError, state::AppState};

/// `axum::Json` with our error mapping: wrong content type → 415, bad syntax → 400,
/// wrong types or missing fields → 400, too large → 413.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "expected Content-Type: application/json".into(),
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::BadRequest(rejection.body_text())
                }
            })?;
        // PostgreSQL text cannot hold NUL: refuse it here, naming the field, instead of
        // failing in the database.
        if let Some(field) = nul_field(&bytes) {
            return Err(cart_core::Error::invalid(field, "must not contain NUL characters").into());
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(JsonRejection::JsonDataError(_)) if let Some(whole) = whole_numbers(&bytes) => {
                axum::Json::<T>::from_bytes(&whole)
                    .map(|axum::Json(value)| Json(value))
                    .map_err(json_rejection)
            }
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// The body again with every number that is a whole number written as one (`2.0`, `1e2`,
/// `-0.0` become `2`, `100`, `0`), or `None` when it has no such number. JSON Schema counts
/// `2.0` as the integer 2, and so does this API: a client may send what its own JSON library
/// writes for an integer held as a float. Only a body that failed to deserialize pays for it.
fn whole_numbers(body: &[u8]) -> Option<Vec<u8>> {
    fn rewrite(value: &mut serde_json::Value) -> bool {
        use serde_json::Value as V;
        match value {
            V::Number(n) if n.is_f64() => {
                // Beyond 2^53 a float no longer names one integer.
                const EXACT: f64 = 9_007_199_254_740_992.0;
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() <= EXACT => {
                        #[allow(clippy::cast_possible_truncation)]
                        let whole = f as i64;
                        *value = V::from(whole);
                        true
                    }
                    _ => false,
                }
            }
            // Every element is visited: `any` would stop at the first rewrite.
            V::Array(items) => items.iter_mut().map(rewrite).filter(|&done| done).count() > 0,
            V::Object(map) => map.values_mut().map(rewrite).filter(|&done| done).count() > 0,
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if rewrite(&mut value) {
        serde_json::to_vec(&value).ok()
    } else {
        None
    }
}

/// `application/json` or any `application/*+json`, as axum accepts.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The path of the first string (or key) holding a NUL character, if the body has one. NUL
/// can only appear escaped (`\u0000`), so bodies without that text are not parsed twice.
fn nul_field(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    if !text.contains("u0000") {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    find_nul(&value, String::new())
}

fn find_nul(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value as V;
    let here = || {
        if path.is_empty() {
            "body".to_owned()
        } else {
            path.clone()
        }
    };
    match value {
        V::String(s) if s.contains('\0') => Some(here()),
        V::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| find_nul(item, format!("{}[{i}]", here()))),
        V::Object(map) => map.iter().find_map(|(key, item)| {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if key.contains('\0') {
                Some(child.replace('\0', "\\u0000"))
            } else {
                find_nul(item, child)
            }
        }),
        _ => None,
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
        }
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge
        }
        other => ApiError::BadRequest(other.body_text()),
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Path` whose rejection (e.g. an id that is not a UUID) is a 400.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|r| ApiError::BadRequest(r.body_text()))
    }
}

/// `axum::extract::Query` whose rejection is a 400.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|r| ApiError::BadRequest(r.body_text()))
    }
}

/// `?limit=&offset=`; the limit is clamped to `PAGINATION_MAX_LIMIT`.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::IntoParams)]
pub struct PageParams {
    /// Items per page, default 20. More than `PAGINATION_MAX_LIMIT` (default 100) is clamped
    /// to it, not refused, so the schema states no maximum.
    #[param(minimum = 1, nullable = false)]
    pub limit: Option<i64>,
    /// Items to skip, default 0.
    #[param(minimum = 0, nullable = false)]
    pub offset: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl PageParams {
    pub fn clamp(self, max_limit: i64) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(20);
        let offset = self.offset.unwrap_or(0);
        if limit < 1 {
            return Err(cart_core::Error::invalid("limit", "must be at least 1").into());
        }
        if offset < 0 {
            return Err(cart_core::Error::invalid("offset", "must not be negative").into());
        }
        Ok(Page {
            limit: limit.min(max_limit),
            offset,
        })
    }
}

/// The contract's list envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Paginated<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

impl<T> Paginated<T> {
    pub fn new(items: Vec<T>, total: i64, page: Page) -> Self {
        Self {
            items,
            total,
            limit: page.limit,
            offset: page.offset,
        }
    }
}

/// An authenticated caller, from a valid `Authorization: Bearer` token whose session is
/// still open, of an account that is still active.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    pub id: Uuid,
    pub role: Role,
    /// The session the token names (`sid`): what logout ends.
    pub session_id: Uuid,
}

impl AuthUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The user id resolved by [`AuthUser`], left in request extensions for the access log.
#[derive(Debug, Clone, Copy)]
pub struct LoggedUser(pub Uuid);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(*user);
        }
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| cart_core::Error::Unauthorized("missing Authorization".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| cart_core::Error::Unauthorized("not a Bearer token".into()))?;
        let Claims { sub, sid, .. } = state.config.jwt.verify(token.trim())?;
        // A signature is not enough: the session must still be open (no logout, password
        // reset or e-mail change ended it) and the account active. One lookup joining the
        // session and the user, on every instance alike; the role comes from the database,
        // so a demotion takes effect at once.
        let mut conn = state.db.acquire().await?;
        let role = cart_core::users::sessions::role_if_active(&mut conn, sub, sid).await?;
        drop(conn);
        let Some(role) = role else {
            return Err(
                cart_core::Error::Unauthorized("session ended or account inactive".into()).into(),
            );
        };
        let user = AuthUser {
            id: sub,
            role,
            session_id: sid,
        };
        parts.extensions.insert(user);
        if let Some(slot) = parts.extensions.get::<crate::middleware::RequestSlot>() {
            slot.set(sub);
        }
        Ok(user)
    }
}

/// An authenticated admin; a valid non-admin token gets 403.
#[derive(Debug, Clone, Copy)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if user.is_admin() {
            Ok(AdminUser(user))
        } else {
            Err(cart_core::Error::Forbidden.into())
        }
    }
}

/// Answers 201 Created with a JSON body.
pub struct Created<T>(pub T);

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        (StatusCode::CREATED, axum::Json(self.0)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_are_rewritten_as_integers_and_nothing_else_is() {
        let rewritten = whole_numbers(br#"{"a": 2.0, "b": [1e2, -0.0, 1.5], "c": {"d": 3}}"#)
            .expect("a rewrite");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&rewritten).unwrap(),
            serde_json::json!({"a": 2, "b": [100, 0, 1.5], "c": {"d": 3}})
        );
        assert_eq!(whole_numbers(br#"{"a": 2, "b": 1.5, "c": "2.0"}"#), None);
        // Past 2^53 a float names no single integer.
        assert_eq!(whole_numbers(b"[1e300]"), None);
        assert_eq!(whole_numbers(b"not json"), None);
    }

    #[test]
    fn limits_are_clamped_and_validated() {
        let page = PageParams {
            limit: Some(1000),
            offset: None,
        }
        .clamp(100)
        .unwrap();
        assert_eq!(
            page,
            Page {
                limit: 100,
                offset: 0
            }
        );
        assert!(
            PageParams {
                limit: Some(0),
                offset: None
            }
            .clamp(100)
            .is_err()
        );
        assert!(
            PageParams {
                limit: None,
                offset: Some(-1)
            }
            .clamp(100)
            .is_err()
        );
    }
}
