//! `cart-migrate`: creates the database in `DATABASE_URL` if missing and applies the schema.
//! `cart-api migrate` does the same; this binary exists so the schema can be applied before
//! the query-checked crates are built.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("error: DATABASE_URL is not set");
        return ExitCode::FAILURE;
    };
    if let Err(e) = cart_migrations::create_database_if_missing(&url).await {
        eprintln!("error: creating the database: {e}");
        return ExitCode::FAILURE;
    }
    let pool = match PgPool::connect(&url).await {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("error: connecting to the database: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cart_migrations::migrate(&pool).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: migrating: {e}");
            ExitCode::FAILURE
        }
    }
}

use sqlx::PgPool;
