//! Sessions: each bearer token names one (`sid`), a row here. Logging in or registering
//! opens one; logout ends one or all; a password reset ends all; an e-mail change ends all
//! but the caller's. Every API instance checks the row on every request, so an ended session
//! is refused everywhere at once.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{User, parse_role};
use crate::{Result, auth::Role, auth::jwt::JwtKeys};

/// A new session's bearer token and when it expires.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Opens a session for `user` and issues its token. The row is written before the token is
/// handed out, so a token never names a session that does not exist.
pub async fn open(conn: &mut PgConnection, jwt: &JwtKeys, user: &User) -> Result<Issued> {
    let sid = Uuid::now_v7();
    let (token, expires_at) = jwt.issue(user.id, user.role, sid)?;
    sqlx::query!(
        "INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, $3)",
        sid,
        user.id,
        expires_at,
    )
    .execute(conn)
    .await?;
    Ok(Issued { token, expires_at })
}

/// The role of `user_id` when session `sid` is theirs, not ended, not expired, and the
/// account is active; `None` otherwise. One indexed lookup joining the session and the user:
/// it runs on every authenticated request.
pub async fn role_if_active(
    conn: &mut PgConnection,
    user_id: Uuid,
    sid: Uuid,
) -> Result<Option<Role>> {
    let role = sqlx::query_scalar!(
        r#"
        SELECT u.role
        FROM sessions s JOIN users u ON u.id = s.user_id
        WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()
          AND u.deleted_at IS NULL
        "#,
        sid,
        user_id,
    )
    .fetch_optional(conn)
    .await?;
    role.map(|role| parse_role(&role)).transpose()
}

/// Ends session `sid` of `user_id` (logout). Ending an ended session changes nothing.
pub async fn end(conn: &mut PgConnection, user_id: Uuid, sid: Uuid) -> Result<()> {
    sqlx::query!(
        r#"
        UPDATE sessions SET revoked_at = now()
        WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL
        "#,
        sid,
        user_id,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends every session of `user_id`, but `keep` when given. Returns how many ended.
pub async fn end_all(conn: &mut PgConnection, user_id: Uuid, keep: Option<Uuid>) -> Result<u64> {
    let ended = sqlx::query!(
        r#"
        UPDATE sessions SET revoked_at = now()
        WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2
        "#,
        user_id,
        keep,
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(ended)
}

/// Deletes up to `batch` sessions that can no longer be used (expired or ended); a token
/// naming a deleted session is refused the same way. Returns how many were deleted.
pub async fn purge_unusable(conn: &mut PgConnection, batch: i64) -> Result<u64> {
    let deleted = sqlx::query!(
        r#"
        WITH doomed AS (
            SELECT id FROM sessions
            WHERE expires_at < now() OR revoked_at IS NOT NULL
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        )
        DELETE FROM sessions AS s USING doomed WHERE s.id = doomed.id
        "#,
        batch,
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(deleted)
}
