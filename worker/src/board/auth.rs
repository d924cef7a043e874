//! Who may use the board: whoever signs in with `BOARD_TOKEN`.
//!
//! - Signing in compares SHA-256 digests of the typed and the configured token in constant
//!   time, so neither the token's content nor its length leaks through timing.
//! - The session cookie holds no server-side state: it is `v1.<issued>.<mac>`, the MAC an
//!   HMAC-SHA256 under the token of the issue time. Any worker process with the same token
//!   accepts it (sessions survive restarts and load balancers), it expires after
//!   [`SESSION_LIFETIME`], and changing `BOARD_TOKEN` ends every session at once. Signing
//!   out clears the browser's cookie; a copy taken before stays valid until it expires.
//! - Every state-changing form carries a CSRF token, an HMAC under the token of the session
//!   cookie; [`Protected`] refuses a form without the right one before its handler runs, so
//!   no action can forget the check. The cookie is also `SameSite=Strict`.

use std::time::Duration;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{BoardState, pages};

/// The cookie's name; it is sent to `/board` only.
pub const COOKIE: &str = "cart_board";
/// How long a sign-in lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// A cookie issued up to this far in the future is still believed (clocks of two workers).
const CLOCK_SKEW_SECS: i64 = 60;

type HmacSha256 = Hmac<Sha256>;

/// The secrets derived from `BOARD_TOKEN`.
pub struct Keys {
    token_digest: [u8; 32],
    mac_key: Vec<u8>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    pub fn new(token: &str) -> Self {
        Self {
            token_digest: Sha256::digest(token.as_bytes()).into(),
            mac_key: token.as_bytes().to_vec(),
        }
    }

    /// Whether `typed` is the board's token.
    pub fn is_token(&self, typed: &str) -> bool {
        let typed: [u8; 32] = Sha256::digest(typed.as_bytes()).into();
        typed[..].ct_eq(&self.token_digest[..]).into()
    }

    /// A fresh session cookie value.
    pub fn new_session(&self) -> String {
        let issued = Utc::now().timestamp();
        format!(
            "v1.{issued}.{}",
            self.mac_hex(&format!("session v1 {issued}"))
        )
    }

    /// Whether `value` is a session cookie this token issued that has not expired.
    pub fn is_session(&self, value: &str) -> bool {
        let mut parts = value.splitn(3, '.');
        let (Some("v1"), Some(issued), Some(mac)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(issued_at) = issued.parse::<i64>() else {
            return false;
        };
        let expected = self.mac_hex(&format!("session v1 {issued_at}"));
        let genuine: bool = expected.as_bytes().ct_eq(mac.as_bytes()).into();
        let age = Utc::now().timestamp() - issued_at;
        let lifetime = i64::try_from(SESSION_LIFETIME.as_secs()).unwrap_or(i64::MAX);
        genuine && (-CLOCK_SKEW_SECS..lifetime).contains(&age)
    }

    /// The CSRF token of the forms shown in the session whose cookie is `session`.
    pub fn csrf_for(&self, session: &str) -> String {
        self.mac_hex(&format!("csrf v1 {session}"))
    }

    fn mac_hex(&self, message: &str) -> String {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.mac_key)
            .unwrap_or_else(|_| unreachable!());
        mac.update(message.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The `Set-Cookie` value that starts a session.
pub fn session_cookie(value: &str) -> String {
    format!(
        "{COOKIE}={value}; Path=/board; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
        SESSION_LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that ends it in this browser.
pub fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/board; Max-Age=0; Secure; HttpOnly; SameSite=Strict")
}

/// The cookie's value in a request, if any.
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// A signed-in operator. As an extractor it refuses the request (401, with the sign-in form
/// for a page) when there is no valid session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The CSRF token for the forms of this page.
    pub csrf: String,
}

impl FromRequestParts<BoardState> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &BoardState,
    ) -> Result<Self, Self::Rejection> {
        match cookie_value(&parts.headers) {
            Some(value) if state.keys.is_session(value) => Ok(Self {
                csrf: state.keys.csrf_for(value),
            }),
            _ => Err(signed_out(parts, state)),
        }
    }
}

/// The answer to a request without a valid session: a page asks to sign in and comes back
/// afterwards; anything else is just refused.
fn signed_out(parts: &Parts, state: &BoardState) -> Response {
    let back = (parts.method == axum::http::Method::GET)
        .then(|| parts.uri.path_and_query().map(|pq| pq.as_str().to_owned()))
        .flatten();
    pages::sign_in_page(state, StatusCode::UNAUTHORIZED, back.as_deref(), None)
}

/// A form posted from a board page: the session is valid and the form's `csrf` field is the
/// session's token, checked before the form is decoded into `T`.
#[derive(Debug)]
pub struct Protected<T>(pub T);

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<BoardState> for Protected<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &BoardState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let field: CsrfField = serde_urlencoded::from_bytes(&body).map_err(|_| forged(state))?;
        let expected = session.csrf.as_bytes();
        if !bool::from(field.csrf.as_bytes().ct_eq(expected)) {
            return Err(forged(state));
        }
        serde_urlencoded::from_bytes(&body)
            .map(Protected)
            .map_err(|e| {
                pages::message_page(
                    state,
                    StatusCode::BAD_REQUEST,
                    "Bad form",
                    &format!("The form could not be read: {e}."),
                )
            })
    }
}

fn forged(state: &BoardState) -> Response {
    pages::message_page(
        state,
        StatusCode::FORBIDDEN,
        "Form refused",
        "This form did not come from a board page of your session (its CSRF token is missing \
         or wrong). Nothing was changed. Reload the page and try again.",
    )
}

/// Where to go after signing in: a board page, never another site.
pub fn safe_return(next: Option<&str>) -> String {
    match next {
        Some(path)
            if (path == "/board" || path.starts_with("/board/") || path.starts_with("/board?"))
                && !path.contains("//")
                && !path.contains('\\')
                && !path.starts_with("/board/login") =>
        {
            path.to_owned()
        }
        _ => "/board".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn only_the_token_signs_in() {
        let keys = Keys::new(TOKEN);
        assert!(keys.is_token(TOKEN));
        assert!(!keys.is_token(""));
        assert!(!keys.is_token(&TOKEN[1..]));
        assert!(!keys.is_token(&format!("{TOKEN} ")));
    }

    #[test]
    fn a_session_is_accepted_by_any_process_with_the_same_token_only() {
        let session = Keys::new(TOKEN).new_session();
        assert!(Keys::new(TOKEN).is_session(&session));
        assert!(!Keys::new("another token, just as long as it..").is_session(&session));
        let mut tampered = session.clone();
        tampered.pop();
        tampered.push('x');
        assert!(!Keys::new(TOKEN).is_session(&tampered));
        assert!(!Keys::new(TOKEN).is_session(""));
        assert!(!Keys::new(TOKEN).is_session("v1.1.abc"));
    }

    #[test]
    fn a_session_expires_and_cannot_be_moved_in_time() {
        let keys = Keys::new(TOKEN);
        let lifetime = i64::try_from(SESSION_LIFETIME.as_secs()).unwrap();
        let issued = |at: i64| format!("v1.{at}.{}", keys.mac_hex(&format!("session v1 {at}")));
        let now = Utc::now().timestamp();
        assert!(keys.is_session(&issued(now - lifetime + 60)));
        assert!(!keys.is_session(&issued(now - lifetime - 1)));
        assert!(!keys.is_session(&issued(now + 3600)));
        // The MAC covers the time: an old cookie with a new time is refused.
        let old = issued(now - lifetime - 1);
        let moved = old.replacen(&(now - lifetime - 1).to_string(), &now.to_string(), 1);
        assert!(!keys.is_session(&moved));
    }

    #[test]
    fn the_csrf_token_belongs_to_one_session() {
        let keys = Keys::new(TOKEN);
        let one = keys.new_session();
        let other = format!("v1.1.{}", "0".repeat(64));
        assert_eq!(keys.csrf_for(&one), keys.csrf_for(&one));
        assert_ne!(keys.csrf_for(&one), keys.csrf_for(&other));
        assert_ne!(
            keys.csrf_for(&one),
            Keys::new("another token, just as long as it..").csrf_for(&one)
        );
    }

    #[test]
    fn the_cookie_is_secure_httponly_and_strict() {
        let cookie = session_cookie("v1.1.ab");
        for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/board"] {
            assert!(cookie.contains(attribute), "{cookie}");
        }
        assert!(cleared_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn after_signing_in_only_board_pages_are_returned_to() {
        assert_eq!(
            safe_return(Some("/board/failed?kind=x")),
            "/board/failed?kind=x"
        );
        assert_eq!(safe_return(Some("/board")), "/board");
        for elsewhere in [
            "https://evil.example/",
            "//evil.example",
            "/board//evil.example",
            "/boardroom",
            "/board/login",
            "/board\\..\\x",
        ] {
            assert_eq!(safe_return(Some(elsewhere)), "/board", "{elsewhere}");
        }
        assert_eq!(safe_return(None), "/board");
    }
}
