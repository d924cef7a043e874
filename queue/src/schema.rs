//! The queue's tables: apalis-postgres's schema (`apalis.*`, with its own migration history in
//! `apalis._sqlx_migrations`). The store's migrations run after it and may refer to it.
//!
//! Released migrations of the store that touch `apalis.*` (`job_failures`, the dropped
//! duplicate indexes) keep their versions and bytes where they were released; a new change
//! to the queue's tables belongs here, beside the code that relies on it.

/// The channel apalis' insert trigger (`apalis.notify_new_jobs`) notifies on, with a JSON
/// payload naming the job's `job_type`, for jobs due now.
pub const CHANNEL: &str = "apalis::job::insert";

/// The queue's schema could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("job queue schema: {0}")]
pub struct SchemaError(#[source] apalis_postgres::Error);

/// Creates or upgrades the queue's schema. Safe to run on every start, from any number of
/// processes at once (the migrator takes an advisory lock).
pub async fn setup(pool: &sqlx::PgPool) -> Result<(), SchemaError> {
    apalis_postgres::PostgresStorage::<()>::setup(pool)
        .await
        .map_err(SchemaError)
}
