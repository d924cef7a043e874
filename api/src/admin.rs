//! Operator commands of `cart-api` (`users promote`).

use anyhow::Context;
use sqlx::PgPool;

/// `cart-api users promote <email>`: gives an existing, active account the admin role.
pub async fn promote(pool: &PgPool, email: &str) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await.context("connecting to the database")?;
    match cart_core::users::promote(&mut conn, email).await {
        Ok(user) => {
            println!("{} ({}) is now an admin", user.email, user.id);
            Ok(())
        }
        Err(cart_core::Error::NotFound) => {
            anyhow::bail!("no active account has the e-mail {:?}", email.trim())
        }
        Err(cart_core::Error::Invalid(_)) => {
            anyhow::bail!("{:?} is not an e-mail address", email.trim())
        }
        Err(other) => Err(other).context("promoting the account"),
    }
}
