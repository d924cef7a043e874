//! Job payloads and their transactional enqueue. Execution lives in `cart-worker`.
//!
//! Jobs are rows of `apalis.jobs`, the apalis PostgreSQL storage the worker runs. We insert
//! them ourselves (not through apalis' `push_tasks`) so that:
//! - a job is written in the caller's transaction: state change and job commit together;
//! - a job with an idempotency key is inserted with `ON CONFLICT DO NOTHING`, so a
//!   duplicate never aborts the caller's transaction.
//!
//! The payload is wrapped in an [`Envelope`] carrying the request id, so the worker can
//! log and forward the same id as the request that caused the job.

pub mod emit_invoice;
pub mod expire_order;
pub mod initiate_payment;
pub mod reconcile_payment;
pub mod refund_payment;
pub mod scrub_outbox;
pub mod send_email;
pub mod send_password_reset;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sqlx::PgConnection;

use crate::Result;

pub mod maintenance;

/// A kind of background job. `NAME` is the queue name stored in every row: it must never
/// change once released.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    const NAME: &'static str;
    /// Attempts before the job stays failed for an operator.
    const MAX_ATTEMPTS: i32;

    /// Jobs that must never run twice for the same thing (one NF-e per order, one
    /// confirmation e-mail per payment, one tick per interval) return a key here.
    fn idempotency_key(&self) -> Option<String> {
        None
    }
}

/// What is stored in `apalis.jobs.job`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Envelope<T> {
    pub request_id: Option<String>,
    pub payload: T,
}

/// Enqueues `job` to run now, inside the caller's transaction (or on a plain connection).
/// Returns the new job id, or `None` when a job with the same idempotency key exists.
pub async fn enqueue<J: Job>(conn: &mut PgConnection, job: &J) -> Result<Option<String>> {
    enqueue_at(conn, job, None).await
}

/// Like [`enqueue`], not before `run_at`.
pub async fn enqueue_at<J: Job>(
    conn: &mut PgConnection,
    job: &J,
    run_at: Option<DateTime<Utc>>,
) -> Result<Option<String>> {
    let job = Encoded::new(job, run_at)?;
    insert_raw(
        conn,
        job.kind,
        &job.envelope,
        job.max_attempts,
        job.run_at,
        job.idempotency_key.as_deref(),
    )
    .await
}

/// A job ready to insert, for [`enqueue_all`].
#[derive(Debug, Clone)]
pub struct Encoded {
    kind: &'static str,
    envelope: Vec<u8>,
    max_attempts: i32,
    run_at: Option<DateTime<Utc>>,
    idempotency_key: Option<String>,
}

impl Encoded {
    /// `job`, in its envelope with the current request id, not to run before `run_at`.
    pub fn new<J: Job>(job: &J, run_at: Option<DateTime<Utc>>) -> Result<Self> {
        let envelope = Envelope {
            request_id: crate::request_id::current(),
            payload: job,
        };
        let envelope = serde_json::to_vec(&envelope)
            .map_err(|e| anyhow::anyhow!("serialising {} job: {e}", J::NAME))?;
        Ok(Self {
            kind: J::NAME,
            envelope,
            max_attempts: J::MAX_ATTEMPTS,
            run_at,
            idempotency_key: job.idempotency_key(),
        })
    }
}

/// Enqueues several jobs in one statement (one round trip), each exactly as [`enqueue_at`]
/// would, duplicates by idempotency key skipped. Returns how many were inserted.
pub async fn enqueue_all(conn: &mut PgConnection, jobs: &[Encoded]) -> Result<u64> {
    let ids: Vec<String> = jobs.iter().map(|_| ulid::Ulid::new().to_string()).collect();
    let kinds: Vec<&str> = jobs.iter().map(|j| j.kind).collect();
    let envelopes: Vec<&[u8]> = jobs.iter().map(|j| j.envelope.as_slice()).collect();
    let max_attempts: Vec<i32> = jobs.iter().map(|j| j.max_attempts).collect();
    let run_at: Vec<Option<DateTime<Utc>>> = jobs.iter().map(|j| j.run_at).collect();
    let keys: Vec<Option<&str>> = jobs.iter().map(|j| j.idempotency_key.as_deref()).collect();
    let inserted = sqlx::query!(
        r#"
        INSERT INTO apalis.jobs
            (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata,
             idempotency_key)
        SELECT j.id, j.kind, j.job, 'Pending', 0, j.max_attempts, COALESCE(j.run_at, now()), 0,
               ''::hstore, j.key
        FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::int[], $5::timestamptz[],
                    $6::text[]) AS j(id, kind, job, max_attempts, run_at, key)
        ON CONFLICT (job_type, idempotency_key) DO NOTHING
        "#,
        &ids,
        &kinds as &[&str],
        &envelopes as &[&[u8]],
        &max_attempts,
        &run_at as &[Option<DateTime<Utc>>],
        &keys as &[Option<&str>],
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(inserted)
}

/// Inserts an already-encoded job (the operator CLI's `enqueue` uses this directly).
pub async fn insert_raw(
    conn: &mut PgConnection,
    kind: &str,
    envelope_json: &[u8],
    max_attempts: i32,
    run_at: Option<DateTime<Utc>>,
    idempotency_key: Option<&str>,
) -> Result<Option<String>> {
    let id = ulid::Ulid::new().to_string();
    let inserted = sqlx::query_scalar!(
        r#"
        INSERT INTO apalis.jobs
            (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata,
             idempotency_key)
        VALUES ($1, $2, $3, 'Pending', 0, $4, COALESCE($5, now()), 0, ''::hstore, $6)
        ON CONFLICT (job_type, idempotency_key) DO NOTHING
        RETURNING id
        "#,
        id,
        kind,
        envelope_json,
        max_attempts,
        run_at,
        idempotency_key,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    use super::*;
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
    }

    async fn count(pool: &PgPool) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE job_type = 'test_ping'")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    #[sqlx::test(migrations = false)]
    async fn a_rolled_back_transaction_leaves_no_job(pool: PgPool) {
        crate::db::migrate(&pool).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        enqueue(&mut tx, &Ping { n: 1 }).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(count(&pool).await, 0);

        let mut tx = conn.begin().await.unwrap();
        let id = enqueue(&mut tx, &Ping { n: 1 }).await.unwrap();
        tx.commit().await.unwrap();
        assert!(id.is_some());
        assert_eq!(count(&pool).await, 1);
    }

    #[sqlx::test(migrations = false)]
    async fn a_duplicate_key_is_skipped_without_aborting_the_transaction(pool: PgPool) {
        crate::db::migrate(&pool).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        assert!(enqueue(&mut tx, &Ping { n: 7 }).await.unwrap().is_some());
        assert!(enqueue(&mut tx, &Ping { n: 7 }).await.unwrap().is_none());
        // The transaction is still usable after the skipped duplicate.
        assert!(enqueue(&mut tx, &Ping { n: 8 }).await.unwrap().is_some());
        tx.commit().await.unwrap();
        assert_eq!(count(&pool).await, 2);

        let (bytes, max_attempts): (Vec<u8>, i32) = sqlx::query_as(
            "SELECT job, max_attempts FROM apalis.jobs WHERE idempotency_key = 'ping:7'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let stored: Envelope<Ping> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(stored.payload, Ping { n: 7 });
        assert_eq!(max_attempts, 3);
    }
}
