//! `Idempotency-Key` for POST routes that must not run twice (checkout, payment).
//!
//! 1. [`begin`] claims `(user, route, key)` in a statement of its own (call it on a
//!    connection that is not inside a transaction), so a concurrent duplicate sees the claim
//!    at once and gets [`Begin::Conflict`] instead of running the work a second time.
//! 2. The caller does the work, then stores its answer with [`complete`] — or, when the
//!    answer is not final (a 5xx, or a 409 that means "try again", `Error::TryAgain`), gives
//!    the key back with [`release`] so the client's repeat runs afresh.
//! 3. A repeat with the same key and body within [`KEY_TTL`] gets [`Begin::Replay`] with the
//!    stored answer; the same key with another body is [`KeyConflict::DifferentRequest`].
//!
//! A claim whose attempt died without completing or releasing (a crashed process) is taken
//! over by a repeat of the same request after [`STALE_AFTER`].

use std::{collections::BTreeMap, time::Duration};

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::{Error, Result};

/// How long an answer is kept and replayed.
pub const KEY_TTL: Duration = Duration::from_secs(24 * 3600);
/// After this long an unfinished claim is presumed dead (well beyond any request timeout).
pub const STALE_AFTER: Duration = Duration::from_secs(5 * 60);
pub const MAX_KEY_LEN: usize = 255;

/// Checks a client's key: 1–255 printable ASCII characters.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Error::BadRequest(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_LEN} characters"
        )));
    }
    if !key.bytes().all(|b| (0x20..=0x7e).contains(&b)) || key.trim().is_empty() {
        return Err(Error::BadRequest(
            "Idempotency-Key must be printable ASCII".into(),
        ));
    }
    Ok(())
}

/// A stable fingerprint of a request body: SHA-256 of its JSON serialisation. Hash the
/// deserialised request type, not the raw bytes, so whitespace and key order do not count.
pub fn request_hash(body: &impl Serialize) -> Result<String> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| anyhow::anyhow!("serialising a request for its hash: {e}"))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Which key: one user's key on one concrete route (`POST /api/orders/<id>/pay` includes the
/// order id, so one key cannot be replayed against another order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    pub user_id: Uuid,
    pub route: String,
    pub key: String,
}

/// The claim on a key while its first request runs; hand it back to [`complete`] or
/// [`release`]. The claim time identifies this attempt, so a stale attempt cannot overwrite
/// the answer of one that took over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub key: KeyRef,
    locked_at: chrono::DateTime<chrono::Utc>,
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: serde_json::Value,
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyConflict {
    /// The first request with this key is still running.
    InProgress,
    /// The key was used with a different body.
    DifferentRequest,
}

impl From<KeyConflict> for Error {
    fn from(conflict: KeyConflict) -> Self {
        match conflict {
            KeyConflict::InProgress => {
                Error::try_again("a request with this Idempotency-Key is still being processed")
            }
            KeyConflict::DifferentRequest => Error::conflict(
                "this Idempotency-Key was already used with a different request body",
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// First use (or the previous claim expired): do the work.
    Fresh(Lease),
    /// Seen before with the same body: answer this and do nothing else.
    Replay(StoredResponse),
    Conflict(KeyConflict),
}

/// Claims `key` for `request_hash`, or reports why not. Must not run inside the caller's
/// transaction: the claim has to be visible to concurrent requests before the work starts.
pub async fn begin(conn: &mut PgConnection, key: KeyRef, request_hash: &str) -> Result<Begin> {
    // A row that vanished between the two statements (released by a failed attempt) is
    // simply claimed again; twice is plenty.
    for _ in 0..3 {
        let claimed = sqlx::query_scalar!(
            r#"INSERT INTO idempotency_keys
                   (user_id, route, key, request_hash, status, locked_at, created_at, expires_at)
               VALUES ($1, $2, $3, $4, 'in_progress', now(), now(),
                       now() + make_interval(secs => $5))
               ON CONFLICT (user_id, route, key) DO UPDATE
                   SET request_hash = EXCLUDED.request_hash, status = 'in_progress',
                       response_status = NULL, response_body = NULL, response_headers = '{}',
                       locked_at = now(), created_at = now(), expires_at = EXCLUDED.expires_at
                   WHERE idempotency_keys.expires_at <= now()
                      OR (idempotency_keys.status = 'in_progress'
                          AND idempotency_keys.request_hash = EXCLUDED.request_hash
                          AND idempotency_keys.locked_at <= now() - make_interval(secs => $6))
               RETURNING locked_at"#,
            key.user_id,
            key.route,
            key.key,
            request_hash,
            KEY_TTL.as_secs_f64(),
            STALE_AFTER.as_secs_f64(),
        )
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(locked_at) = claimed {
            return Ok(Begin::Fresh(Lease { key, locked_at }));
        }

        let existing = sqlx::query!(
            r#"SELECT request_hash, status, response_status, response_body,
                      response_headers AS "response_headers: Json<BTreeMap<String, String>>"
               FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3"#,
            key.user_id,
            key.route,
            key.key,
        )
        .fetch_optional(&mut *conn)
        .await?;
        let Some(existing) = existing else { continue };
        if existing.request_hash != request_hash {
            return Ok(Begin::Conflict(KeyConflict::DifferentRequest));
        }
        return Ok(match (existing.status.as_str(), existing.response_status) {
            ("done", Some(status)) => Begin::Replay(StoredResponse {
                status: u16::try_from(status).unwrap_or(500),
                body: existing.response_body.unwrap_or(serde_json::Value::Null),
                headers: existing.response_headers.0,
            }),
            _ => Begin::Conflict(KeyConflict::InProgress),
        });
    }
    Err(anyhow::anyhow!("idempotency key kept changing under us").into())
}

/// Stores the answer of the claimed attempt for later replays.
pub async fn complete(
    conn: &mut PgConnection,
    lease: &Lease,
    response: &StoredResponse,
) -> Result<()> {
    let status = i16::try_from(response.status)
        .map_err(|_| anyhow::anyhow!("status {} out of range", response.status))?;
    sqlx::query!(
        r#"UPDATE idempotency_keys
           SET status = 'done', response_status = $5, response_body = $6, response_headers = $7
           WHERE user_id = $1 AND route = $2 AND key = $3 AND locked_at = $4
             AND status = 'in_progress'"#,
        lease.key.user_id,
        lease.key.route,
        lease.key.key,
        lease.locked_at,
        status,
        response.body,
        Json(&response.headers) as _,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Gives the key back after a failure on our side, so the client's retry runs again.
pub async fn release(conn: &mut PgConnection, lease: &Lease) -> Result<()> {
    sqlx::query!(
        r#"DELETE FROM idempotency_keys
           WHERE user_id = $1 AND route = $2 AND key = $3 AND locked_at = $4
             AND status = 'in_progress'"#,
        lease.key.user_id,
        lease.key.route,
        lease.key.key,
        lease.locked_at,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// `prune_idempotency_keys`: the ticker job that runs [`prune_expired`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PruneIdempotencyKeys {
    pub tick: chrono::DateTime<chrono::Utc>,
}

impl crate::jobs::Job for PruneIdempotencyKeys {
    const NAME: &'static str = "prune_idempotency_keys";
    const MAX_ATTEMPTS: i32 = 3;

    fn idempotency_key(&self) -> Option<String> {
        Some(crate::jobs::tick_key(Self::NAME, self.tick))
    }
}

impl crate::jobs::TickJob for PruneIdempotencyKeys {
    const INTERVAL_VAR: &'static str = "TICK_PRUNE_IDEMPOTENCY_KEYS";
    const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);

    fn for_tick(tick: chrono::DateTime<chrono::Utc>) -> Self {
        Self { tick }
    }
}

/// Deletes keys past their 24 h; for a periodic ticker. Returns how many went.
pub async fn prune_expired(conn: &mut PgConnection) -> Result<u64> {
    let deleted = sqlx::query!("DELETE FROM idempotency_keys WHERE expires_at <= now()")
        .execute(&mut *conn)
        .await?;
    Ok(deleted.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sqlx::PgPool;

    async fn user(pool: &PgPool) -> Uuid {
        let mut conn = pool.acquire().await.unwrap();
        crate::test_support::insert_user(&mut conn, None).await
    }

    fn key(user_id: Uuid, key: &str) -> KeyRef {
        KeyRef {
            user_id,
            route: "POST /api/orders".into(),
            key: key.into(),
        }
    }

    fn answer(status: u16) -> StoredResponse {
        StoredResponse {
            status,
            body: json!({"id": "o-1"}),
            headers: BTreeMap::from([("location".to_owned(), "/x".to_owned())]),
        }
    }

    #[test]
    fn keys_must_be_short_printable_ascii() {
        validate_key("9f1c2b4e-checkout-1").unwrap();
        validate_key(&"k".repeat(255)).unwrap();
        for bad in ["", "   ", "tab\there", "é-accent", "new\nline"] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
        assert!(validate_key(&"k".repeat(256)).is_err());
    }

    #[test]
    fn the_hash_depends_on_the_body_only() {
        #[derive(Serialize)]
        struct Body {
            a: i32,
            b: &'static str,
        }
        let one = request_hash(&Body { a: 1, b: "x" }).unwrap();
        assert_eq!(one, request_hash(&Body { a: 1, b: "x" }).unwrap());
        assert_ne!(one, request_hash(&Body { a: 2, b: "x" }).unwrap());
        assert_eq!(one.len(), 64);
    }

    #[sqlx::test(migrations = false)]
    async fn a_completed_key_replays_its_answer_for_the_same_body(pool: PgPool) {
        crate::db::migrate(&pool).await.unwrap();
        let user = user(&pool).await;
        let mut conn = pool.acquire().await.unwrap();
        let Begin::Fresh(lease) = begin(&mut conn, key(user, "k1"), "h1").await.unwrap() else {
            panic!("first use is fresh");
        };
        // While running, a duplicate is told to wait.
        assert_eq!(
            begin(&mut conn, key(user, "k1"), "h1").await.unwrap(),
            Begin::Conflict(KeyConflict::InProgress)
        );
        complete(&mut conn, &lease, &answer(201)).await.unwrap();
        assert_eq!(
            begin(&mut conn, key(user, "k1"), "h1").await.unwrap(),
            Begin::Replay(answer(201))
        );
        assert_eq!(
            begin(&mut conn, key(user, "k1"), "other").await.unwrap(),
            Begin::Conflict(KeyConflict::DifferentRequest)
        );
        // Keys are per user and per route.
        let another = crate::test_support::insert_user(&mut conn, None).await;
        assert!(matches!(
            begin(&mut conn, key(another, "k1"), "h1").await.unwrap(),
            Begin::Fresh(_)
        ));
        let mut other_route = key(user, "k1");
        other_route.route = "POST /api/orders/1/pay".into();
        assert!(matches!(
            begin(&mut conn, other_route, "h1").await.unwrap(),
            Begin::Fresh(_)
        ));
    }

    #[sqlx::test(migrations = false)]
    async fn a_released_key_can_be_used_again(pool: PgPool) {
        crate::db::migrate(&pool).await.unwrap();
        let user = user(&pool).await;
        let mut conn = pool.acquire().await.unwrap();
        let Begin::Fresh(lease) = begin(&mut conn, key(user, "k"), "h").await.unwrap() else {
            panic!("fresh");
        };
        release(&mut conn, &lease).await.unwrap();
        let Begin::Fresh(second) = begin(&mut conn, key(user, "k"), "h").await.unwrap() else {
            panic!("fresh again after release");
        };
        // The first attempt's lease no longer matches: it cannot overwrite the second.
        complete(&mut conn, &lease, &answer(500)).await.unwrap();
        complete(&mut conn, &second, &answer(201)).await.unwrap();
        assert_eq!(
            begin(&mut conn, key(user, "k"), "h").await.unwrap(),
            Begin::Replay(answer(201))
        );
    }

    #[sqlx::test(migrations = false)]
    async fn expired_and_stale_claims_are_taken_over(pool: PgPool) {
        crate::db::migrate(&pool).await.unwrap();
        let user = user(&pool).await;
        let mut conn = pool.acquire().await.unwrap();
        let Begin::Fresh(done) = begin(&mut conn, key(user, "old"), "h").await.unwrap() else {
            panic!("fresh");
        };
        complete(&mut conn, &done, &answer(201)).await.unwrap();
        let Begin::Fresh(_) = begin(&mut conn, key(user, "dead"), "h").await.unwrap() else {
            panic!("fresh");
        };
        sqlx::query(
            "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'old'",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        sqlx::query(
            "UPDATE idempotency_keys SET locked_at = now() - interval '1 hour' WHERE key = 'dead'",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        // Expired: even another body may use the key now.
        assert!(matches!(
            begin(&mut conn, key(user, "old"), "new body")
                .await
                .unwrap(),
            Begin::Fresh(_)
        ));
        // Stale: only a repeat of the same request takes it over.
        assert_eq!(
            begin(&mut conn, key(user, "dead"), "other").await.unwrap(),
            Begin::Conflict(KeyConflict::DifferentRequest)
        );
        assert!(matches!(
            begin(&mut conn, key(user, "dead"), "h").await.unwrap(),
            Begin::Fresh(_)
        ));
    }

    #[sqlx::test(migrations = false)]
    async fn concurrent_claims_of_one_key_let_exactly_one_through(pool: PgPool) {
        crate::db::migrate(&pool).await.unwrap();
        let user = user(&pool).await;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let pool = pool.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                // The test pool has only a few connections: wait first, then connect.
                barrier.wait().await;
                let mut conn = pool.acquire().await.unwrap();
                begin(&mut conn, key(user, "race"), "h").await.unwrap()
            }));
        }
        let mut fresh = 0;
        for task in tasks {
            match task.await.unwrap() {
                Begin::Fresh(_) => fresh += 1,
                Begin::Conflict(KeyConflict::InProgress) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(fresh, 1);
    }

    #[sqlx::test(migrations = false)]
    async fn pruning_removes_only_expired_keys(pool: PgPool) {
        crate::db::migrate(&pool).await.unwrap();
        let user = user(&pool).await;
        let mut conn = pool.acquire().await.unwrap();
        for k in ["a", "b", "c"] {
            begin(&mut conn, key(user, k), "h").await.unwrap();
        }
        sqlx::query("UPDATE idempotency_keys SET expires_at = now() WHERE key IN ('a', 'b')")
            .execute(&mut *conn)
            .await
            .unwrap();
        assert_eq!(prune_expired(&mut conn).await.unwrap(), 2);
        assert_eq!(prune_expired(&mut conn).await.unwrap(), 0);
    }
}
