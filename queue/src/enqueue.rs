//! Enqueueing: a job is a row of `apalis.jobs`, inserted in the caller's transaction.
//!
//! We insert rows ourselves rather than through apalis' `push_tasks`, so that:
//! - a job is written in the caller's transaction: a state change and its job commit together;
//! - a job with an idempotency key is inserted with `ON CONFLICT DO NOTHING`, so a duplicate
//!   never aborts the caller's transaction.
//!
//! The insert fires apalis' trigger, which notifies the workers of a job due now.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::job::{Envelope, Job, Origin, Serves};

/// Why a job could not be enqueued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The payload could not be written as JSON.
    #[error("serialising a {kind} job: {source}")]
    Encode {
        kind: &'static str,
        source: serde_json::Error,
    },
    /// The insert failed (the caller's transaction is then aborted, as with any statement).
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A job ready to insert: its kind, envelope and schedule.
#[derive(Debug, Clone)]
pub struct Encoded {
    kind: Cow<'static, str>,
    envelope: Vec<u8>,
    max_attempts: i32,
    run_at: Option<DateTime<Utc>>,
    idempotency_key: Option<String>,
    /// Copied into the row's metadata, where operators' searches find it by index.
    serves: Serves,
}

impl Encoded {
    /// `job` in its envelope, due now.
    pub fn new<J: Job>(job: &J, origin: Origin) -> Result<Self, EnqueueError> {
        let serves = job.serves();
        let envelope = Envelope {
            origin,
            serves,
            payload: job,
        };
        let envelope = serde_json::to_vec(&envelope).map_err(|source| EnqueueError::Encode {
            kind: J::NAME,
            source,
        })?;
        Ok(Self {
            kind: Cow::Borrowed(J::NAME),
            envelope,
            max_attempts: J::MAX_ATTEMPTS,
            run_at: None,
            idempotency_key: job.idempotency_key(),
            serves,
        })
    }

    /// The same job, not to start before `run_at` (`None`: now).
    #[must_use]
    pub fn run_at(mut self, run_at: Option<DateTime<Utc>>) -> Self {
        self.run_at = run_at;
        self
    }

    /// A job of a kind known only by name, from an envelope already encoded (the operator
    /// CLI's `enqueue`, after it has checked the payload against the kind).
    pub fn raw(
        kind: impl Into<Cow<'static, str>>,
        envelope: Vec<u8>,
        max_attempts: i32,
        idempotency_key: Option<String>,
    ) -> Self {
        Self {
            kind: kind.into(),
            envelope,
            max_attempts,
            run_at: None,
            idempotency_key,
            serves: Serves::default(),
        }
    }

    /// The same job, recorded as serving `serves` (for [`raw`](Self::raw) jobs, whose
    /// payload the caller has checked).
    #[must_use]
    pub fn serving(mut self, serves: Serves) -> Self {
        self.serves = serves;
        self
    }
}

/// Inserts `job` on `conn` (inside the caller's transaction, when there is one). Returns the
/// new job's id, or `None` when a job of the same kind and idempotency key already exists.
pub async fn enqueue(
    conn: &mut PgConnection,
    job: &Encoded,
) -> Result<Option<String>, EnqueueError> {
    let id = ulid::Ulid::new().to_string();
    let inserted = sqlx::query_scalar!(
        r#"
        INSERT INTO apalis.jobs
            (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata,
             idempotency_key)
        VALUES ($1, $2, $3, 'Pending', 0, $4, COALESCE($5, now()), 0,
                CASE WHEN $7::text IS NULL THEN ''::hstore ELSE hstore('order_id', $7) END
                || CASE WHEN $8::text IS NULL THEN ''::hstore ELSE hstore('payment_id', $8) END,
                $6)
        ON CONFLICT (job_type, idempotency_key) DO NOTHING
        RETURNING id
        "#,
        id,
        job.kind.as_ref(),
        &job.envelope,
        job.max_attempts,
        job.run_at,
        job.idempotency_key.as_deref(),
        job.serves.order_id.map(|id| id.to_string()),
        job.serves.payment_id.map(|id| id.to_string()),
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(inserted)
}

/// Inserts several jobs in one statement (one round trip), each exactly as [`enqueue`]
/// would, duplicates by idempotency key skipped. Returns how many were inserted.
pub async fn enqueue_all(conn: &mut PgConnection, jobs: &[Encoded]) -> Result<u64, EnqueueError> {
    let ids: Vec<String> = jobs.iter().map(|_| ulid::Ulid::new().to_string()).collect();
    let kinds: Vec<&str> = jobs.iter().map(|j| j.kind.as_ref()).collect();
    let envelopes: Vec<&[u8]> = jobs.iter().map(|j| j.envelope.as_slice()).collect();
    let max_attempts: Vec<i32> = jobs.iter().map(|j| j.max_attempts).collect();
    let run_at: Vec<Option<DateTime<Utc>>> = jobs.iter().map(|j| j.run_at).collect();
    let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.idempotency_key.as_deref()).collect();
    let orders: Vec<Option<String>> = jobs
        .iter()
        .map(|j| j.serves.order_id.map(|id| id.to_string()))
        .collect();
    let payments: Vec<Option<String>> = jobs
        .iter()
        .map(|j| j.serves.payment_id.map(|id| id.to_string()))
        .collect();
    let inserted = sqlx::query!(
        r#"
        INSERT INTO apalis.jobs
            (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata,
             idempotency_key)
        SELECT j.id, j.kind, j.job, 'Pending', 0, j.max_attempts, COALESCE(j.run_at, now()), 0,
               CASE WHEN j.order_id IS NULL THEN ''::hstore ELSE hstore('order_id', j.order_id) END
               || CASE WHEN j.payment_id IS NULL THEN ''::hstore
                       ELSE hstore('payment_id', j.payment_id) END,
               j.key
        FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::int[], $5::timestamptz[],
                    $6::text[], $7::text[], $8::text[])
             AS j(id, kind, job, max_attempts, run_at, key, order_id, payment_id)
        ON CONFLICT (job_type, idempotency_key) DO NOTHING
        "#,
        &ids,
        &kinds as &[&str],
        &envelopes as &[&[u8]],
        &max_attempts,
        &run_at as &[Option<DateTime<Utc>>],
        &keys as &[Option<&str>],
        &orders as &[Option<String>],
        &payments as &[Option<String>],
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Serves;
    use serde::{Deserialize, Serialize};
    use sqlx::{Connection, PgPool};

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Ping {
        n: i32,
    }

    impl Job for Ping {
        const NAME: &'static str = "test_ping";
        const MAX_ATTEMPTS: i32 = 3;
        fn idempotency_key(&self) -> Option<String> {
            Some(format!("ping:{}", self.n))
        }
        fn serves(&self) -> Serves {
            Serves {
                order_id: Some(uuid::Uuid::nil()),
                payment_id: None,
            }
        }
    }

    fn ping(n: i32) -> Encoded {
        Encoded::new(&Ping { n }, Origin::default()).unwrap()
    }

    async fn count(pool: &PgPool) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE job_type = 'test_ping'")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[sqlx::test(migrations = false)]
    async fn a_rolled_back_transaction_leaves_no_job(pool: PgPool) {
        cart_migrations::migrate(&pool).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        enqueue(&mut tx, &ping(1)).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(count(&pool).await, 0);

        let mut tx = conn.begin().await.unwrap();
        let id = enqueue(&mut tx, &ping(1)).await.unwrap();
        tx.commit().await.unwrap();
        assert!(id.is_some());
        assert_eq!(count(&pool).await, 1);
    }

    #[sqlx::test(migrations = false)]
    async fn a_duplicate_key_is_skipped_without_aborting_the_transaction(pool: PgPool) {
        cart_migrations::migrate(&pool).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        assert!(enqueue(&mut tx, &ping(7)).await.unwrap().is_some());
        assert!(enqueue(&mut tx, &ping(7)).await.unwrap().is_none());
        // The transaction is still usable after the skipped duplicate.
        assert!(enqueue(&mut tx, &ping(8)).await.unwrap().is_some());
        assert_eq!(enqueue_all(&mut tx, &[ping(8), ping(9)]).await.unwrap(), 1);
        tx.commit().await.unwrap();
        assert_eq!(count(&pool).await, 3);

        let (bytes, max_attempts): (Vec<u8>, i32) = sqlx::query_as(
            "SELECT job, max_attempts FROM apalis.jobs WHERE idempotency_key = 'ping:7'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let stored: Envelope<Ping> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(stored.payload, Ping { n: 7 });
        assert_eq!(stored.serves.order_id, Some(uuid::Uuid::nil()));
        assert_eq!(max_attempts, 3);
    }
}
