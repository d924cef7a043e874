//! The domain error type. The API turns it into problem+json (`cart-api`'s `error.rs`);
//! jobs and the CLI wrap it in `anyhow`.

use std::{collections::BTreeMap, time::Duration};

/// Per-field validation messages, keyed by the request field's name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct FieldErrors(pub BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_default().push(message.into());
    }

    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was added, so validators can end with `errors.into_result()?`.
    pub fn into_result(self) -> Result<(), Error> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(self))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Missing, soft-deleted, or someone else's: callers must not learn which.
    #[error("not found")]
    NotFound,
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden")]
    Forbidden,
    #[error("conflict: {0}")]
    Conflict(String),
    /// A conflict that passes by itself: a concurrent request holds what this one needs
    /// (a payment being started, a cart changing under checkout). 409 like [`Error::Conflict`],
    /// but the same request may succeed when repeated, so it is never stored as the final
    /// answer to an `Idempotency-Key`.
    #[error("try again: {0}")]
    TryAgain(String),
    /// Well-formed input with invalid values (422).
    #[error("invalid input")]
    Invalid(FieldErrors),
    /// Malformed input that is not about one field's value (400).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A dependency is down or refusing work for now (503).
    #[error("unavailable: {reason}")]
    Unavailable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// An upstream provider answered badly (502). The message is for logs, not clients.
    #[error("upstream: {0}")]
    Upstream(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(FieldErrors::single(field, message))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(message.into())
    }

    pub fn try_again(message: impl Into<String>) -> Self {
        Self::TryAgain(message.into())
    }
}

/// Turns a unique or check violation on a named constraint into a domain error,
/// as realworld's `on_constraint` does.
pub trait ResultExt<T> {
    fn on_constraint(self, name: &str, map: impl FnOnce() -> Error) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for Result<T, E> {
    fn on_constraint(self, name: &str, map: impl FnOnce() -> Error) -> Result<T> {
        self.map_err(|e| match e.into() {
            Error::Db(sqlx::Error::Database(db)) if db.constraint() == Some(name) => map(),
            other => other,
        })
    }
}
