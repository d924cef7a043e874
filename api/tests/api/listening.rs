//! One listening connection per API process, whoever listens: the catalog cache and the
//! payment waiters share the process's `ListenHub`.

use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::helpers::TestApp;

/// Every backend of this test's database that listens, or is the hub's: (pid, last query).
async fn listening_backends(pool: &PgPool) -> Vec<(i32, String)> {
    sqlx::query_as(
        "SELECT pid, query FROM pg_stat_activity
         WHERE datname = current_database()
           AND (application_name = $1 OR query ILIKE 'LISTEN%')",
    )
    .bind(cart_core::listen::APPLICATION_NAME)
    .fetch_all(pool)
    .await
    .expect("pg_stat_activity")
}

/// Waits until the one listening backend has last run `query`; returns its pid.
async fn one_backend_ran(pool: &PgPool, query: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let backends = listening_backends(pool).await;
        assert!(
            backends.len() <= 1,
            "more than one listening backend: {backends:?}"
        );
        if let [(pid, last)] = backends.as_slice()
            && last == query
        {
            return *pid;
        }
        assert!(
            Instant::now() < deadline,
            "no backend ran {query}: {backends:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrations = false)]
async fn the_cache_and_the_payment_waiters_share_one_listening_connection(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let catalog = one_backend_ran(&pool, r#"LISTEN "catalog_changes";"#).await;

    // A payment wait listens for `payment_ready` (the payment does not exist: the wait ends
    // at its first read, after subscribing).
    let missing = app
        .state
        .payment_waiters
        .wait(uuid::Uuid::now_v7(), Duration::from_millis(10))
        .await;
    assert!(matches!(missing, Err(cart_core::Error::NotFound)));
    let payments = one_backend_ran(&pool, r#"LISTEN "payment_ready";"#).await;
    assert_eq!(catalog, payments, "the same connection listens for both");
    assert_eq!(listening_backends(&pool).await.len(), 1);
}
