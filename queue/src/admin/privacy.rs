//! Forgetting a person: jobs whose payload names them.

use sqlx::PgConnection;

/// Deletes the jobs of `kind` (queued, finished or failed; not one running right now) whose
/// payload holds any of `recipients` as a JSON string, e.g. the e-mails to an address that
/// is being erased. Answers how many went.
pub async fn delete_by_recipient(
    conn: &mut PgConnection,
    kind: &str,
    recipients: &[String],
) -> Result<u64, sqlx::Error> {
    // The payload is stored as bytes: look for each address exactly as JSON encodes it.
    let deleted = sqlx::query!(
        r#"
        DELETE FROM apalis.jobs
        WHERE job_type = $1 AND status <> 'Running'
          AND EXISTS (
              SELECT 1 FROM unnest($2::text[]) AS address
              WHERE position(convert_to(to_jsonb(address)::text, 'UTF8') IN job) > 0)
        "#,
        kind,
        recipients,
    )
    .execute(conn)
    .await?;
    Ok(deleted.rows_affected())
}
