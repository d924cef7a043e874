//! Deleting jobs that wait or have failed. What was deleted is answered in full, for the
//! caller's audit trail.

use serde_json::Value;
use sqlx::PgConnection;

/// A deleted job, as it was.
#[derive(Debug, Clone)]
pub struct Discarded {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    /// The stored envelope (JSON, or its text when it is not JSON).
    pub envelope: Value,
    pub last_error: Option<String>,
}

/// Deletes the jobs among `ids` that are waiting (not claimed) or failed; running, claimed
/// and finished jobs are left alone.
pub async fn discard(
    conn: &mut PgConnection,
    ids: &[String],
) -> Result<Vec<Discarded>, sqlx::Error> {
    let deleted = sqlx::query!(
        r#"DELETE FROM apalis.jobs
           WHERE id = ANY($1) AND status IN ('Pending', 'Failed', 'Killed')
           RETURNING id, job_type, status, attempts, job, last_result->>'Err' AS last_error"#,
        ids,
    )
    .fetch_all(conn)
    .await?;
    Ok(deleted
        .into_iter()
        .map(|d| Discarded {
            envelope: serde_json::from_slice::<Value>(&d.job)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&d.job).into_owned())),
            id: d.id,
            kind: d.job_type,
            status: d.status,
            attempts: d.attempts,
            last_error: d.last_error,
        })
        .collect())
}
