//! The schema. Kept in a crate with no compile-time checked queries so it builds without a
//! database; that is what lets `cart-migrate` prepare the database the query macros check
//! against.

use sqlx::{ConnectOptions, Connection, PgPool, postgres::PgConnectOptions};

/// Our migrations: the `*.sql` files beside this crate's manifest.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("job queue schema: {0}")]
    Queue(#[from] apalis_postgres::Error),
    #[error(transparent)]
    Ours(#[from] sqlx::migrate::MigrateError),
}

/// Applies the job queue's schema (`apalis.*`, with its own migration table) and then ours,
/// which may refer to it.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    apalis_postgres::PostgresStorage::<()>::setup(pool).await?;
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Creates the database named in `url` when it does not exist yet.
pub async fn create_database_if_missing(url: &str) -> Result<(), sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = options.database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
            .execute(&mut admin)
            .await?;
    }
    admin.close().await
}
