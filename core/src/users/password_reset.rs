//! Password reset by e-mail.
//!
//! No usable token is ever stored, logged or queued. A reset request is a row of
//! `password_reset_tokens`; its link token is derived from the row's id under a server key
//! ([`ResetKey`], from `JWT_SECRET`), and only the token's SHA-256 is kept. The e-mail is a
//! `send_password_reset` job that names the request, not the token: the worker derives the
//! token when it sends, so a retried job sends the same link under the same idempotency key.
//! Rotating `JWT_SECRET` therefore voids every outstanding link (the worker then sends none).
//!
//! A token is single use, expires after `PASSWORD_RESET_TTL`, and asking again replaces any
//! earlier unused one. The job is enqueued in the same transaction as the request. Asking
//! for an unknown address does nothing, and the caller answers the same either way.
//!
//! A successful reset consumes every reset token of the account and ends all its sessions.

use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    Error, Result,
    auth::password::{PasswordHasher, check_new_password},
    config::{self, ConfigError},
    jobs::{self, send_password_reset::SendPasswordReset},
    mail::{
        EmailMessage,
        templates::{PasswordReset, Templates},
    },
};

/// The mail tag of reset messages.
pub const TAG: &str = "password_reset";

type HmacSha256 = Hmac<Sha256>;

/// The server key reset links are derived with: HMAC-SHA256 of a fixed label under
/// `JWT_SECRET`, so the API (which records the request) and the worker (which sends the
/// link) agree without another secret to distribute.
#[derive(Clone)]
pub struct ResetKey([u8; 32]);

impl std::fmt::Debug for ResetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetKey(..)")
    }
}

impl ResetKey {
    /// Tells this key apart from any other use of `JWT_SECRET`.
    const LABEL: &'static [u8] = b"cart password-reset links v1";

    pub fn derive(jwt_secret: &[u8]) -> Self {
        let mut mac = hmac(jwt_secret);
        mac.update(Self::LABEL);
        Self(mac.finalize().into_bytes().into())
    }

    /// From `JWT_SECRET` (required, at least 32 bytes), as the worker reads it.
    pub fn from_env() -> Result<Self, ConfigError> {
        let secret = config::required_var("JWT_SECRET")?;
        if secret.len() < crate::auth::jwt::MIN_SECRET_BYTES {
            return Err(ConfigError::Invalid {
                name: "JWT_SECRET",
                reason: format!(
                    "must be at least {} bytes",
                    crate::auth::jwt::MIN_SECRET_BYTES
                ),
            });
        }
        Ok(Self::derive(secret.as_bytes()))
    }

    /// The link token of reset request `reset_id`: 32 bytes, base64url.
    pub fn token_for(&self, reset_id: Uuid) -> String {
        let mut mac = hmac(&self.0);
        mac.update(reset_id.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

fn hmac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!())
}

/// `POST /auth/forgot-password`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ForgotPassword {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
}

/// `POST /auth/reset-password`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ResetPassword {
    /// The token from the e-mailed link.
    pub token: String,
    /// The new password: at least 8 characters, counted after Unicode NFKC normalisation.
    #[schema(format = Password, min_length = 8)]
    pub password: String,
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Starts a reset for the account with this e-mail, if there is one: the request is recorded
/// with the hash of its link token, and the e-mail job naming it is enqueued. A malformed
/// e-mail is `Invalid`; an unknown one is `Ok` and does nothing.
pub async fn request_reset(
    conn: &mut PgConnection,
    input: ForgotPassword,
    key: &ResetKey,
    ttl: Duration,
) -> Result<()> {
    let email = super::clean_email(&input.email).map_err(|m| Error::invalid("email", m))?;
    let ttl = chrono::Duration::from_std(ttl)
        .map_err(|e| anyhow::anyhow!("PASSWORD_RESET_TTL out of range: {e}"))?;
    let mut tx = conn.begin().await?;
    let Some(user_id) = sqlx::query_scalar!(
        "SELECT id FROM users WHERE email = $1 AND deleted_at IS NULL FOR UPDATE",
        email
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(());
    };
    // Only the newest link works.
    sqlx::query!(
        "DELETE FROM password_reset_tokens WHERE user_id = $1 AND used_at IS NULL",
        user_id
    )
    .execute(&mut *tx)
    .await?;
    let reset_id = Uuid::now_v7();
    // Both ends from one clock: the e-mail states the validity as their difference.
    let now = Utc::now();
    sqlx::query!(
        r#"
        INSERT INTO password_reset_tokens (id, user_id, token_hash, created_at, expires_at)
        VALUES ($1, $2, $3, $4, $5)
        "#,
        reset_id,
        user_id,
        digest(&key.token_for(reset_id)),
        now,
        now + ttl,
    )
    .execute(&mut *tx)
    .await?;
    jobs::enqueue(&mut tx, &SendPasswordReset { reset_id }).await?;
    tx.commit().await?;
    Ok(())
}

/// The e-mail of reset request `reset_id`, with its link, for the worker to send. `None`
/// when there is nothing to send: the request was replaced, used or has expired, the account
/// is gone, or `JWT_SECRET` changed since the request (its link could not work).
pub async fn reset_email(
    conn: &mut PgConnection,
    key: &ResetKey,
    templates: &Templates,
    reset_id: Uuid,
) -> Result<Option<EmailMessage>> {
    let Some(request) = sqlx::query!(
        r#"
        SELECT t.token_hash, t.expires_at - t.created_at AS "validity!", u.email, u.name
        FROM password_reset_tokens t JOIN users u ON u.id = t.user_id
        WHERE t.id = $1 AND t.used_at IS NULL AND t.expires_at > now()
          AND u.deleted_at IS NULL
        "#,
        reset_id
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let token = key.token_for(reset_id);
    if digest(&token) != request.token_hash {
        tracing::warn!(%reset_id, "reset link not sent: JWT_SECRET changed since it was requested");
        return Ok(None);
    }
    let micros = request.validity.microseconds + i64::from(request.validity.days) * 86_400_000_000;
    let valid_for = Duration::from_micros(u64::try_from(micros).unwrap_or(0));
    let first_name = request
        .name
        .split_whitespace()
        .next()
        .unwrap_or(&request.name)
        .to_owned();
    let message = templates.password_reset(
        &request.email,
        &PasswordReset {
            name: first_name,
            token,
            valid_for,
        },
    )?;
    Ok(Some(message))
}

fn invalid_token() -> Error {
    Error::invalid(
        "token",
        "this reset link is invalid, was already used or has expired",
    )
}

/// Sets a new password with a reset token. An unknown, used or expired token is `Invalid`
/// (422, `errors.token`), as is a password under 8 characters (`errors.password`). Every
/// session of the account ends.
pub async fn reset_password(
    db: &PgPool,
    hasher: &PasswordHasher,
    input: ResetPassword,
) -> Result<()> {
    check_new_password(&input.password).map_err(|m| Error::invalid("password", m))?;
    let token_hash = digest(input.token.trim());
    // A cheap look before the expensive hash; the transaction below checks again under lock.
    let usable = sqlx::query_scalar!(
        r#"
        SELECT EXISTS (
            SELECT 1 FROM password_reset_tokens
            WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
        ) AS "usable!"
        "#,
        token_hash
    )
    .fetch_one(db)
    .await?;
    if !usable {
        return Err(invalid_token());
    }
    let password_hash = hasher.hash(&input.password).await?;

    let mut conn = db.acquire().await?;
    let mut tx = conn.begin().await?;
    let Some(user_id) = sqlx::query_scalar!(
        r#"
        UPDATE password_reset_tokens SET used_at = now()
        WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
        RETURNING user_id
        "#,
        token_hash
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Err(invalid_token());
    };
    let updated = sqlx::query!(
        r#"
        UPDATE users SET password_hash = $2, updated_at = now()
        WHERE id = $1 AND deleted_at IS NULL
        "#,
        user_id,
        password_hash,
    )
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(invalid_token());
    }
    // Whoever knew the old password may hold a session: all of them end.
    super::sessions::end_all(&mut tx, user_id, None).await?;
    // Every other outstanding link of the account dies with this one.
    sqlx::query!(
        "DELETE FROM password_reset_tokens WHERE user_id = $1",
        user_id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_url_safe_and_bound_to_request_and_secret() {
        let key = ResetKey::derive(&[7u8; 32]);
        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        let a = key.token_for(first);
        assert_eq!(a, key.token_for(first), "a retried job sends the same link");
        assert_ne!(a, key.token_for(second));
        assert_ne!(a, ResetKey::derive(&[8u8; 32]).token_for(first));
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&a)
            .unwrap();
        assert_eq!(raw.len(), 32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_eq!(digest(&a).len(), 32);
    }

    #[test]
    fn the_key_is_not_the_jwt_secret_itself() {
        let secret = [7u8; 32];
        assert_ne!(ResetKey::derive(&secret).0, secret);
        assert!(!format!("{:?}", ResetKey::derive(&secret)).contains('7'));
    }
}
