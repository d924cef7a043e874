//! What every page shares: rendering, the sign-in and sign-out forms, errors, and how times
//! and states are shown.

use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
};
use chrono::{DateTime, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{
    BoardState,
    auth::{self, Protected, Session},
};

/// A page rendered with `status`, or a plain 500 when the template fails.
pub fn render<S: Serialize>(
    state: &BoardState,
    status: StatusCode,
    template: &str,
    context: S,
) -> Response {
    match state.templates.render(template, context) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), template, "board page did not render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the board could not render this page; see the worker's logs",
            )
                .into_response()
        }
    }
}

/// A page that says one thing: a refusal, a missing job, an error.
pub fn message_page(state: &BoardState, status: StatusCode, title: &str, text: &str) -> Response {
    render(
        state,
        status,
        "message.html",
        context! { title => title, text => text },
    )
}

/// Why a board page could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Core(#[from] cart_core::Error),
    #[error("no job {0}")]
    NoSuchJob(String),
    #[error("{0}")]
    Invalid(String),
}

impl PageError {
    pub fn into_page(self, state: &BoardState) -> Response {
        match self {
            Self::Core(err) => {
                tracing::error!(error = %err, "board lookup failed");
                message_page(
                    state,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Lookup failed",
                    "The lookup did not complete; nothing was changed. Try again in a moment; \
                     the worker's logs say more.",
                )
            }
            Self::Db(err) => {
                tracing::error!(error = %err, "board query failed");
                message_page(
                    state,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Database error",
                    "The database did not answer; nothing was changed. Try again in a moment; \
                     the worker's logs say more.",
                )
            }
            Self::NoSuchJob(id) => message_page(
                state,
                StatusCode::NOT_FOUND,
                "No such job",
                &format!("There is no job {id}: it may have been discarded or pruned."),
            ),
            Self::Invalid(why) => message_page(state, StatusCode::BAD_REQUEST, "Bad request", &why),
        }
    }
}

/// The sign-in page, with `status` (401 when a page was asked for without a session).
pub fn sign_in_page(
    state: &BoardState,
    status: StatusCode,
    next: Option<&str>,
    error: Option<&str>,
) -> Response {
    render(
        state,
        status,
        "sign_in.html",
        context! { next => next, error => error, title => "Sign in" },
    )
}

#[derive(Debug, Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
}

/// `GET /board/login`: the form, or straight on when already signed in.
pub async fn sign_in(
    State(state): State<BoardState>,
    session: Result<Session, Response>,
    Query(query): Query<SignInQuery>,
) -> Response {
    if session.is_ok() {
        return Redirect::to(&auth::safe_return(query.next.as_deref())).into_response();
    }
    sign_in_page(&state, StatusCode::OK, query.next.as_deref(), None)
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
    next: Option<String>,
}

/// `POST /board/login`: the token for a session cookie.
pub async fn sign_in_submit(
    State(state): State<BoardState>,
    Form(form): Form<SignInForm>,
) -> Response {
    if !state.keys.is_token(form.token.trim()) {
        tracing::warn!("board sign-in with a wrong token");
        return sign_in_page(
            &state,
            StatusCode::UNAUTHORIZED,
            form.next.as_deref(),
            Some("That is not the board's token."),
        );
    }
    tracing::info!("board sign-in");
    with_cookie(
        Redirect::to(&auth::safe_return(form.next.as_deref())),
        &auth::session_cookie(&state.keys.new_session()),
    )
}

#[derive(Deserialize)]
pub struct NoFields {}

/// `POST /board/logout`: forgets the cookie in this browser.
pub async fn sign_out(Protected(NoFields {}): Protected<NoFields>) -> Response {
    with_cookie(Redirect::to("/board/login"), &auth::cleared_cookie())
}

fn with_cookie(response: impl IntoResponse, cookie: &str) -> Response {
    let mut response = response.into_response();
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// A time as the board shows it (always UTC, like the logs).
pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `Some` time as [`time`], else empty.
pub fn maybe_time(at: Option<DateTime<Utc>>) -> String {
    at.map(time).unwrap_or_default()
}

/// How long ago, roughly: `45 s`, `12 min`, `3 h`, `2 d`.
pub fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    age(now.signed_duration_since(at).num_seconds())
}

/// A number of seconds, roughly.
pub fn age(secs: i64) -> String {
    match secs {
        s if s < 90 => format!("{} s", s.max(0)),
        s if s < 90 * 60 => format!("{} min", s / 60),
        s if s < 36 * 3600 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// The first line of an error, at most `max` characters, for a table cell.
pub fn short(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > max {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        line.to_owned()
    }
}

/// A page's one-line report of what was just done, from its `notice` query parameter. Only
/// known codes are shown, so a link cannot make the board say anything else.
pub fn notice(code: Option<&str>, count: Option<usize>) -> Option<String> {
    let n = count.unwrap_or(1);
    match code? {
        "retried" => Some(format!(
            "Retried {n} job(s): they are back in the queue, due now."
        )),
        "discarded" => Some(format!("Discarded {n} job(s); the audit trail keeps them.")),
        "unchanged" => Some("Nothing was changed: the job(s) changed state meanwhile.".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_short_errors_read_well() {
        assert_eq!(age(5), "5 s");
        assert_eq!(age(600), "10 min");
        assert_eq!(age(7200), "2 h");
        assert_eq!(age(3 * 86_400), "3 d");
        assert_eq!(short("first line\nsecond", 50), "first line");
        assert_eq!(short("abcdef", 4), "abc…");
    }

    #[test]
    fn only_known_notices_are_shown() {
        assert_eq!(
            notice(Some("retried"), Some(3)).unwrap(),
            "Retried 3 job(s): they are back in the queue, due now."
        );
        assert_eq!(notice(Some("<b>hi</b>"), None), None);
        assert_eq!(notice(None, None), None);
    }
}
