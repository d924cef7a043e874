//! One job with everything known about it: payload, origin, locks and failure history.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;

/// Everything known about one job.
#[derive(Debug, Clone, Serialize)]
pub struct JobDetail {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub run_at: DateTime<Utc>,
    pub locked_at: Option<DateTime<Utc>>,
    pub locked_by: Option<String>,
    pub done_at: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
    pub request_id: Option<String>,
    /// The payload as stored (the envelope's `payload`), or the raw text if it is not JSON.
    pub payload: Value,
    pub last_error: Option<String>,
    pub failures: Vec<Failure>,
}

/// One failed attempt, as the runtime recorded it.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub attempt: i32,
    pub failed_at: DateTime<Utc>,
    pub permanent: bool,
    pub retry_at: Option<DateTime<Utc>>,
    pub error: String,
}

/// The job with this id, if there is one.
pub async fn show(pool: &PgPool, id: &str) -> Result<Option<JobDetail>, sqlx::Error> {
    let Some(row) = sqlx::query!(
        r#"SELECT id, job_type, cart_queue.job_state(status, attempts, max_attempts, metadata) AS "state!", status,
                  attempts, max_attempts, run_at, lock_at, lock_by, done_at, idempotency_key,
                  job, last_result->>'Err' AS last_error
           FROM apalis.jobs WHERE id = $1"#,
        id,
    )
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let failures = sqlx::query_as!(
        Failure,
        "SELECT attempt, failed_at, permanent, retry_at, error
         FROM job_failures WHERE job_id = $1 ORDER BY id",
        id,
    )
    .fetch_all(pool)
    .await?;
    let (request_id, payload) = open_envelope(&row.job);
    Ok(Some(JobDetail {
        created_at: super::list::created_at(&row.id),
        id: row.id,
        kind: row.job_type,
        state: row.state,
        status: row.status,
        attempts: row.attempts,
        max_attempts: row.max_attempts,
        run_at: row.run_at,
        locked_at: row.lock_at,
        locked_by: row.lock_by,
        done_at: row.done_at,
        idempotency_key: row.idempotency_key,
        request_id,
        payload,
        last_error: row.last_error,
        failures,
    }))
}

/// The request id and payload of a stored envelope; a row that is not an envelope shows as
/// it is, so an operator can still read it.
fn open_envelope(stored: &[u8]) -> (Option<String>, Value) {
    match serde_json::from_slice::<Value>(stored) {
        Ok(Value::Object(mut envelope)) if envelope.contains_key("payload") => (
            envelope
                .remove("request_id")
                .and_then(|v| v.as_str().map(str::to_owned)),
            envelope.remove("payload").unwrap_or(Value::Null),
        ),
        Ok(other) => (None, other),
        Err(_) => (
            None,
            Value::String(String::from_utf8_lossy(stored).into_owned()),
        ),
    }
}
