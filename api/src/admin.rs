//! Operator commands of `cart-api` (`users promote`).

use sqlx::PgPool;

pub async fn promote(_pool: &PgPool, _email: &str) -> anyhow::Result<()> {
    anyhow::bail!("users arrive with the users module")
}
