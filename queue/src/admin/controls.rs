//! Pausing a kind and limiting its starts per minute, for every worker process at once. The
//! state is a row per kind in `cart_queue.kind_controls`, which every process reads about
//! once a second (see the runtime's `controls`). A paused kind's jobs wait; they never fail.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

/// A kind's controls, and how many of its jobs started in the last minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindControl {
    pub kind: String,
    pub paused_at: Option<DateTime<Utc>>,
    pub paused_by: Option<String>,
    /// Starts allowed in any sixty seconds, across every worker process.
    pub per_minute: Option<i32>,
    pub limited_by: Option<String>,
    /// Starts counted against the limit in the last sixty seconds (limited kinds only).
    pub started_last_minute: i64,
}

/// Every kind that is paused or limited, by name.
pub async fn controls(pool: &PgPool) -> Result<Vec<KindControl>, sqlx::Error> {
    sqlx::query_as!(
        KindControl,
        r#"SELECT c.kind, c.paused_at, c.paused_by, c.per_minute, c.limited_by,
                  (SELECT count(*) FROM cart_queue.kind_starts AS s
                   WHERE s.kind = c.kind AND s.started_at > now() - interval '1 minute')
                      AS "started_last_minute!"
           FROM cart_queue.kind_controls AS c
           WHERE c.paused_at IS NOT NULL OR c.per_minute IS NOT NULL
           ORDER BY c.kind"#
    )
    .fetch_all(pool)
    .await
}

/// Pauses `kind`. Answers false when it was already paused (the first pause is kept).
pub async fn pause(conn: &mut PgConnection, kind: &str, actor: &str) -> Result<bool, sqlx::Error> {
    let paused = sqlx::query_scalar!(
        r#"INSERT INTO cart_queue.kind_controls (kind, paused_at, paused_by)
           VALUES ($1, now(), $2)
           ON CONFLICT (kind) DO UPDATE
               SET paused_at = now(), paused_by = $2, updated_at = now()
               WHERE kind_controls.paused_at IS NULL
           RETURNING kind"#,
        kind,
        actor,
    )
    .fetch_optional(conn)
    .await?;
    Ok(paused.is_some())
}

/// Resumes `kind`. Answers false when it was not paused.
pub async fn resume(conn: &mut PgConnection, kind: &str) -> Result<bool, sqlx::Error> {
    let resumed = sqlx::query_scalar!(
        r#"UPDATE cart_queue.kind_controls
           SET paused_at = NULL, paused_by = NULL, updated_at = now()
           WHERE kind = $1 AND paused_at IS NOT NULL
           RETURNING kind"#,
        kind,
    )
    .fetch_optional(conn)
    .await?;
    Ok(resumed.is_some())
}

/// Limits `kind` to `per_minute` starts in any sixty seconds (`None` clears the limit).
/// Answers the limit it replaced.
pub async fn limit(
    conn: &mut PgConnection,
    kind: &str,
    per_minute: Option<i32>,
    actor: &str,
) -> Result<Option<i32>, sqlx::Error> {
    let before = sqlx::query_scalar!(
        "SELECT per_minute FROM cart_queue.kind_controls WHERE kind = $1 FOR UPDATE",
        kind,
    )
    .fetch_optional(&mut *conn)
    .await?
    .flatten();
    sqlx::query!(
        r#"INSERT INTO cart_queue.kind_controls (kind, per_minute, limited_by)
           VALUES ($1, $2, $3)
           ON CONFLICT (kind) DO UPDATE
               SET per_minute = $2, limited_by = $3, updated_at = now()"#,
        kind,
        per_minute,
        per_minute.map(|_| actor),
    )
    .execute(&mut *conn)
    .await?;
    if per_minute.is_none() {
        sqlx::query!("DELETE FROM cart_queue.kind_starts WHERE kind = $1", kind)
            .execute(&mut *conn)
            .await?;
    }
    Ok(before)
}
