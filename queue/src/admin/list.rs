//! Jobs newest first, filtered by state, kind and age.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::JobState;

/// Which jobs [`list`] answers.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<JobState>,
    pub kind: Option<String>,
    /// Only jobs created at or after this time.
    pub since: Option<DateTime<Utc>>,
    pub limit: i64,
}

/// A job as a line of a list.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub run_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// The jobs that match `filter`, newest first, at most `filter.limit`.
pub async fn list(pool: &PgPool, filter: &ListFilter) -> Result<Vec<JobSummary>, sqlx::Error> {
    // Job ids are ULIDs, which sort by creation time: "created since" is a range on the key.
    let since_id = filter.since.map(|at| {
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        ulid::Ulid::from_parts(millis, 0).to_string()
    });
    let rows = sqlx::query!(
        r#"SELECT id, job_type, job_state(status, attempts, max_attempts) AS "state!", status,
                  attempts, max_attempts, run_at, done_at, last_result->>'Err' AS last_error
           FROM apalis.jobs
           WHERE ($1::text IS NULL OR job_state(status, attempts, max_attempts) = $1)
             AND ($2::text IS NULL OR job_type = $2)
             AND ($3::text IS NULL OR id >= $3)
           ORDER BY id DESC
           LIMIT $4"#,
        filter.state.map(JobState::as_str),
        filter.kind.as_deref(),
        since_id,
        filter.limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| JobSummary {
            created_at: created_at(&row.id),
            id: row.id,
            kind: row.job_type,
            state: row.state,
            status: row.status,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            run_at: row.run_at,
            done_at: row.done_at,
            last_error: row.last_error,
        })
        .collect())
}

/// When a job was created: the timestamp part of its ULID.
pub(super) fn created_at(id: &str) -> Option<DateTime<Utc>> {
    ulid::Ulid::from_string(id)
        .ok()
        .map(|ulid| DateTime::<Utc>::from(ulid.datetime()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ulid_tells_when_the_job_was_created() {
        let id = ulid::Ulid::from_parts(1_764_072_000_000, 7).to_string();
        let created = created_at(&id).unwrap();
        assert_eq!(created.to_rfc3339(), "2025-11-25T12:00:00+00:00");
    }
}
