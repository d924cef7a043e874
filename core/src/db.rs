//! Connection pool and migrations.

use std::time::Duration;

use sqlx::{
    PgPool, Postgres,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::config::{self, ConfigError};

pub type Tx<'a> = sqlx::Transaction<'a, Postgres>;

/// The database URL used when `DATABASE_URL` is unset: the local server every dev machine has.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/cart";

#[derive(Debug, Clone)]
pub struct DbConfig {
    pub url: String,
    pub min_connections: u32,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub statement_timeout: Duration,
}

impl DbConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            url: config::var_or("DATABASE_URL", DEFAULT_DATABASE_URL),
            min_connections: config::var_parsed("DB_MIN_CONNECTIONS", 1)?,
            max_connections: config::var_parsed("DB_MAX_CONNECTIONS", 20)?,
            acquire_timeout: config::var_duration("DB_ACQUIRE_TIMEOUT", Duration::from_secs(5))?,
            statement_timeout: config::var_duration(
                "DB_STATEMENT_TIMEOUT",
                Duration::from_secs(15),
            )?,
        })
    }

    fn connect_options(&self) -> Result<PgConnectOptions, sqlx::Error> {
        let options: PgConnectOptions = self.url.parse()?;
        Ok(options.options([(
            "statement_timeout",
            format!("{}ms", self.statement_timeout.as_millis()),
        )]))
    }

    pub async fn connect(&self) -> Result<PgPool, sqlx::Error> {
        self.pool_options()
            .connect_with(self.connect_options()?)
            .await
    }

    fn pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .min_connections(self.min_connections)
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            // sqlx pings every idle connection before handing it out: one more round trip
            // for every request and every job. A connection the server dropped fails its next
            // statement instead, which answers 503 (a lost connection is unavailability, see
            // the API's error mapping) and leaves the pool; the fault tests restart
            // PostgreSQL under load to hold that.
            .test_before_acquire(false)
    }

    /// A pool that does not connect until first used, so a process can start while the
    /// database is down and report it through its readiness probe.
    pub fn connect_lazy(&self) -> Result<PgPool, sqlx::Error> {
        Ok(self
            .pool_options()
            .connect_lazy_with(self.connect_options()?))
    }
}

pub use cart_migrations::{MigrateError, create_database_if_missing, migrate};
