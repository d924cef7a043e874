//! A pooled connection must never be lent out inside a transaction nobody tracks.
//!
//! sqlx-postgres 0.9.0 leaves one behind when a `BEGIN` is cancelled before its reply (a client
//! disconnect, a `select!`, a worker shutdown): the next borrower's autocommit writes then run
//! in that transaction and are lost. The workspace patches the crate (see `vendor/README.md`);
//! these tests fail without the patch.

use futures::FutureExt;
use sqlx::{
    Connection, Executor, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// One connection, so that the next borrower gets the very connection released before.
async fn single_connection_pool(pool: PgPoolOptions, connect: PgConnectOptions) -> PgPool {
    let pool = pool
        .max_connections(1)
        .min_connections(0)
        .connect_with(connect)
        .await
        .expect("pool");
    pool.execute("CREATE TABLE probe (id int PRIMARY KEY)")
        .await
        .expect("probe table");
    pool
}

/// Writes a row through the pool (autocommit) and reads it back on a separate connection:
/// the row is there only if the write was committed.
async fn autocommit_write_is_visible(pool: &PgPool, connect: &PgConnectOptions, id: i32) -> bool {
    sqlx::query("INSERT INTO probe (id) VALUES ($1)")
        .bind(id)
        .execute(pool)
        .await
        .expect("insert");
    let mut other = PgConnection::connect_with(connect).await.expect("connect");
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM probe WHERE id = $1")
        .bind(id)
        .fetch_one(&mut other)
        .await
        .expect("count");
    seen == 1
}

#[sqlx::test(migrations = false)]
async fn a_begin_cancelled_before_its_reply_is_rolled_back(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = single_connection_pool(pool, connect.clone()).await;
    let mut cancelled_in_flight = false;
    // On a loaded machine the task can be preempted between writing `BEGIN` and reading, and
    // the reply is then already there within the one poll: try until one is caught in flight.
    for _ in 0..1000 {
        let mut conn = pool.acquire().await.expect("acquire");
        // One poll writes `BEGIN` to the socket and waits for the reply; dropping the future
        // then is what a cancelled task does.
        if conn.begin().now_or_never().is_none() {
            cancelled_in_flight = true;
            break;
        }
    }
    assert!(
        cancelled_in_flight,
        "the BEGIN never stayed pending: the cancellation window was not reached"
    );
    assert!(autocommit_write_is_visible(&pool, &connect, 1).await);
}

#[sqlx::test(migrations = false)]
async fn a_connection_released_inside_an_untracked_transaction_is_cleaned(
    pool: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = single_connection_pool(pool, connect.clone()).await;
    {
        let mut conn = pool.acquire().await.expect("acquire");
        // A raw BEGIN is invisible to sqlx's own bookkeeping, like a cancelled one.
        sqlx::raw_sql("BEGIN")
            .execute(&mut *conn)
            .await
            .expect("begin");
    }
    assert!(autocommit_write_is_visible(&pool, &connect, 2).await);
    // And the connection is still usable for transactions of its own.
    let mut tx = pool.begin().await.expect("begin");
    sqlx::query("INSERT INTO probe (id) VALUES (3)")
        .execute(&mut *tx)
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
    assert!(autocommit_write_is_visible(&pool, &connect, 4).await);
}
