//! The operator audit trail: every change made from the CLI, in the same transaction as the
//! change itself.

use serde_json::Value;
use sqlx::PgConnection;

pub async fn record(
    conn: &mut PgConnection,
    actor: &str,
    action: &str,
    job_ids: &[String],
    details: Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO operator_audit (actor, action, job_ids, details) VALUES ($1, $2, $3, $4)",
        actor,
        action,
        job_ids,
        details,
    )
    .execute(conn)
    .await?;
    Ok(())
}
