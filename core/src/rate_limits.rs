//! Rate-limit budgets kept in PostgreSQL, so that every API instance spends from the same
//! budget: a client cannot multiply its attempts by the number of instances behind the load
//! balancer. Each check is one atomic statement (an upsert that decides and answers).
//!
//! The algorithm is GCRA, as in the in-process limiter: "N per window" allows a burst of N and
//! regains one request every window / N. The database's clock decides, so instances whose
//! clocks differ still agree.
//!
//! Failed logins are also counted per account ([`account_key`]): the e-mail as typed,
//! normalised and hashed, whether or not such an account exists, so that the limit says
//! nothing about which accounts exist and the table holds no e-mail address.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::Result;

/// The budget of failed logins per account, whatever the client's address.
pub const FAILED_LOGINS: &str = "failed_login:account";

/// "`requests` per `window`".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub requests: u32,
    pub window: Duration,
}

impl Quota {
    /// `None` for a budget of zero requests, which means "no limit" in the configuration.
    pub fn new(requests: u32, window: Duration) -> Option<Self> {
        (requests > 0 && !window.is_zero()).then_some(Self { requests, window })
    }

    /// How long one request takes to come back, in seconds.
    fn emission_interval(self) -> f64 {
        self.window.as_secs_f64() / f64::from(self.requests)
    }
}

/// The answer to one request against a budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Allowed,
    /// The budget is spent; the next request is allowed after `retry_after`.
    Exhausted {
        retry_after: Duration,
    },
}

/// Spends one request from `budget` for `key`, unless it is exhausted.
pub async fn take(
    db: impl sqlx::PgExecutor<'_>,
    budget: &str,
    key: &str,
    quota: Quota,
) -> Result<Verdict> {
    // `b.tat` and `now()` in the SET list are the row before this statement; both columns are
    // decided from them, so `allowed` answers for this very request.
    let row = sqlx::query!(
        r#"INSERT INTO rate_limit_budgets AS b (budget, key, tat, allowed)
           VALUES ($1, $2, now() + make_interval(secs => $3), true)
           ON CONFLICT (budget, key) DO UPDATE SET
               allowed = GREATEST(b.tat, now()) + make_interval(secs => $3)
                         <= now() + make_interval(secs => $4),
               tat = CASE
                   WHEN GREATEST(b.tat, now()) + make_interval(secs => $3)
                        <= now() + make_interval(secs => $4)
                   THEN GREATEST(b.tat, now()) + make_interval(secs => $3)
                   ELSE b.tat
               END
           RETURNING allowed,
                     EXTRACT(EPOCH FROM b.tat + make_interval(secs => $3)
                                        - make_interval(secs => $4) - now())::float8
                         AS "wait_seconds!""#,
        budget,
        key,
        quota.emission_interval(),
        quota.window.as_secs_f64(),
    )
    .fetch_one(db)
    .await?;
    Ok(if row.allowed {
        Verdict::Allowed
    } else {
        Verdict::Exhausted {
            retry_after: whole_seconds(row.wait_seconds),
        }
    })
}

/// Returns the request [`take`] spent, for a request that turned out not to count (a login
/// that succeeded, when only failures count).
pub async fn give_back(
    db: impl sqlx::PgExecutor<'_>,
    budget: &str,
    key: &str,
    quota: Quota,
) -> Result<()> {
    sqlx::query!(
        "UPDATE rate_limit_budgets SET tat = tat - make_interval(secs => $3)
         WHERE budget = $1 AND key = $2",
        budget,
        key,
        quota.emission_interval(),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets budgets that are full again (no row means a full budget). Returns how many.
pub async fn prune(db: impl sqlx::PgExecutor<'_>) -> Result<u64> {
    Ok(
        sqlx::query!("DELETE FROM rate_limit_budgets WHERE tat < now()")
            .execute(db)
            .await?
            .rows_affected(),
    )
}

/// The key of an account's budget: a hash of the e-mail as the login form sent it, normalised
/// the way accounts are looked up, so `Ana@Example.com ` and `ana@example.com` share it.
/// Something that is not an e-mail address still gets a key: it is counted like any other.
pub fn account_key(email: &str) -> String {
    let normalised =
        crate::validation::normalize_email(email).unwrap_or_else(|| email.trim().to_lowercase());
    hex::encode(Sha256::digest(normalised.as_bytes()))
}

/// Whole seconds, rounded up (at least one), so that retrying after `Retry-After` succeeds.
fn whole_seconds(seconds: f64) -> Duration {
    if !seconds.is_finite() || seconds <= 1.0 {
        return Duration::from_secs(1);
    }
    // Bounded: a budget's wait is never longer than its window.
    Duration::from_secs(seconds.ceil().min(u64::MAX as f64) as u64)
}

#[cfg(test)]
mod tests {
    use sqlx::PgPool;

    use super::*;

    const BUDGET: &str = "test:budget";

    fn quota(requests: u32, window_secs: u64) -> Quota {
        Quota::new(requests, Duration::from_secs(window_secs)).unwrap()
    }

    #[test]
    fn a_zero_budget_is_no_limit() {
        assert_eq!(Quota::new(0, Duration::from_secs(60)), None);
        assert_eq!(Quota::new(5, Duration::ZERO), None);
    }

    #[test]
    fn account_keys_follow_the_normalised_email_and_hide_it() {
        let key = account_key(" Ana@Example.COM ");
        assert_eq!(key, account_key("ana@example.com"));
        assert_ne!(key, account_key("bia@example.com"));
        assert!(!key.contains("ana"));
        assert_eq!(account_key("not an email"), account_key("NOT AN EMAIL"));
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(3.2), Duration::from_secs(4));
        assert_eq!(whole_seconds(4.0), Duration::from_secs(4));
        assert_eq!(whole_seconds(0.01), Duration::from_secs(1));
        assert_eq!(whole_seconds(f64::NAN), Duration::from_secs(1));
    }

    #[sqlx::test(migrations = false)]
    async fn a_budget_allows_its_burst_then_names_the_wait(pool: PgPool) {
        crate::db::migrate(&pool).await.unwrap();
        let five_per_20s = quota(5, 20);
        for _ in 0..5 {
            assert_eq!(
                take(&pool, BUDGET, "k", five_per_20s).await.unwrap(),
                Verdict::Allowed
            );
        }
        let Verdict::Exhausted { retry_after } =
            take(&pool, BUDGET, "k", five_per_20s).await.unwrap()
        else {
            panic!("the sixth request is refused");
        };
        // One request comes back every 4 s.
        assert!((1..=4).contains(&retry_after.as_secs()), "{retry_after:?}");
        // Refusals do not push the budget further away.
        let again = take(&pool, BUDGET, "k", five_per_20s).await.unwrap();
        assert!(matches!(again, Verdict::Exhausted { retry_after: r } if r.as_secs() <= 4));
        // Other keys and other budgets are untouched.
        assert_eq!(
            take(&pool, BUDGET, "other", five_per_20s).await.unwrap(),
            Verdict::Allowed
        );
        assert_eq!(
            take(&pool, "test:another", "k", five_per_20s)
                .await
                .unwrap(),
            Verdict::Allowed
        );
    }

    #[sqlx::test(migrations = false)]
    async fn a_request_given_back_can_be_spent_again(pool: PgPool) {
        crate::db::migrate(&pool).await.unwrap();
        let two_per_hour = quota(2, 3600);
        for _ in 0..2 {
            assert_eq!(
                take(&pool, BUDGET, "k", two_per_hour).await.unwrap(),
                Verdict::Allowed
            );
        }
        give_back(&pool, BUDGET, "k", two_per_hour).await.unwrap();
        assert_eq!(
            take(&pool, BUDGET, "k", two_per_hour).await.unwrap(),
            Verdict::Allowed
        );
        assert!(matches!(
            take(&pool, BUDGET, "k", two_per_hour).await.unwrap(),
            Verdict::Exhausted { .. }
        ));
    }

    #[sqlx::test(migrations = false)]
    async fn pruning_forgets_only_full_budgets(pool: PgPool) {
        crate::db::migrate(&pool).await.unwrap();
        take(&pool, BUDGET, "spent", quota(1, 3600)).await.unwrap();
        sqlx::query(
            "INSERT INTO rate_limit_budgets (budget, key, tat, allowed)
             VALUES ($1, 'refilled', now() - interval '1 minute', true)",
        )
        .bind(BUDGET)
        .execute(&pool)
        .await
        .unwrap();
        assert_eq!(prune(&pool).await.unwrap(), 1);
        // The spent budget is still spent.
        assert!(matches!(
            take(&pool, BUDGET, "spent", quota(1, 3600)).await.unwrap(),
            Verdict::Exhausted { .. }
        ));
    }
}
