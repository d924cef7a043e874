//! The queue's tables: apalis-postgres's schema (`apalis.*`, with its own migration history in
//! `apalis._sqlx_migrations`), then ours (`queue/migrations/`, the `cart_queue` schema, with
//! its history in `cart_queue._sqlx_migrations`). The store's migrations run after both and
//! may refer to them.
//!
//! Released migrations of the store that touch `apalis.*` (`job_failures`, the dropped
//! duplicate indexes) keep their versions and bytes where they were released; a new change
//! to the queue's tables belongs in `queue/migrations/`, beside the code that relies on it.

/// The channel apalis' insert trigger (`apalis.notify_new_jobs`) notifies on, with a JSON
/// payload naming the job's `job_type`, for jobs due now.
pub const CHANNEL: &str = "apalis::job::insert";

/// The queue's schema could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("job queue schema (apalis): {0}")]
    Apalis(#[source] apalis_postgres::Error),
    #[error("job queue schema (cart_queue): {0}")]
    Ours(#[source] sqlx::migrate::MigrateError),
}

/// Creates or upgrades the queue's schema: apalis', then ours. Safe to run on every start,
/// from any number of processes at once (each migrator takes an advisory lock).
pub async fn setup(pool: &sqlx::PgPool) -> Result<(), SchemaError> {
    setup_apalis(pool).await?;
    migrator().run(pool).await.map_err(SchemaError::Ours)
}

/// apalis' schema alone: what the queue had before it had migrations of its own (the
/// upgrade test starts from it).
pub async fn setup_apalis(pool: &sqlx::PgPool) -> Result<(), SchemaError> {
    apalis_postgres::PostgresStorage::<()>::setup(pool)
        .await
        .map_err(SchemaError::Apalis)
}

/// The queue's own migrations, with their history in their own schema so that neither
/// apalis' history nor the store's is touched.
fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name("cart_queue._sqlx_migrations");
    migrator.create_schema("cart_queue");
    migrator
}
