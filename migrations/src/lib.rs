//! The schema. Kept in a crate with no compile-time checked queries so it builds without a
//! database; that is what lets `cart-migrate` prepare the database the query macros check
//! against.

use sqlx::{ConnectOptions, Connection, PgPool, postgres::PgConnectOptions};

/// Our migrations: the `*.sql` files beside this crate's manifest.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Queue(#[from] cart_queue::schema::SchemaError),
    #[error(transparent)]
    Ours(#[from] sqlx::migrate::MigrateError),
}

/// Applies the job queue's schema (`cart_queue::schema`, with its own migration table) and
/// then ours, which may refer to it.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    cart_queue::schema::setup(pool).await?;
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

/// The migrations of the latest release and their checksums (`released.txt`).
#[cfg(any(test, feature = "testing"))]
pub fn released() -> impl Iterator<Item = (i64, Vec<u8>)> {
    include_str!("../released.txt")
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (version, checksum) = line.split_once(' ')?;
            let version = version.parse().ok()?;
            let checksum = (0..checksum.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(checksum.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()?;
            Some((version, checksum))
        })
}

/// The schema exactly as the latest release left it: apalis' (the release had no queue
/// migrations of its own), then our released migrations and no later one. For the upgrade test.
#[cfg(feature = "testing")]
pub async fn migrate_as_released(pool: &PgPool) -> Result<(), MigrateError> {
    cart_queue::schema::setup_apalis(pool).await?;
    let released: Vec<i64> = released().map(|(version, _)| version).collect();
    let migrator = sqlx::migrate::Migrator::with_migrations(
        MIGRATOR
            .iter()
            .filter(|m| released.contains(&m.version))
            .cloned()
            .collect(),
    );
    migrator.run(pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_migrations_keep_their_versions_and_bytes() {
        let released: Vec<(i64, Vec<u8>)> = released().collect();
        assert!(
            released.len() >= 19,
            "released.txt lists the released migrations"
        );
        for (version, checksum) in released {
            let migration = MIGRATOR
                .iter()
                .find(|m| m.version == version)
                .unwrap_or_else(|| panic!("released migration {version} is gone"));
            assert_eq!(
                migration.checksum.as_ref(),
                checksum.as_slice(),
                "released migration {version} was edited: add a new migration instead"
            );
        }
    }
}
