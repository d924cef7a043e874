use std::{net::SocketAddr, time::Duration};

use futures::StreamExt;
use sqlx::{PgPool, postgres::PgPoolOptions};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};

use super::*;

/// The next thing `subscription` hears, within a few seconds.
async fn next(subscription: &mut Subscription) -> Heard {
    tokio::time::timeout(Duration::from_secs(5), subscription.next())
        .await
        .expect("something heard in time")
        .expect("the subscription is open")
}

/// Asserts that `subscription` hears nothing for a moment.
async fn silent(subscription: &mut Subscription) {
    let heard = tokio::time::timeout(Duration::from_millis(200), subscription.next()).await;
    assert!(heard.is_err(), "unexpectedly heard {heard:?}");
}

async fn notify(pool: &PgPool, channel: &str, payload: &str) {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(pool)
        .await
        .expect("NOTIFY");
}

/// The backends of this test's database that carry the hub's application name.
async fn hub_backends(pool: &PgPool) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind(APPLICATION_NAME)
    .fetch_all(pool)
    .await
    .expect("pg_stat_activity")
}

async fn terminate_hub_backends(pool: &PgPool) -> usize {
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = $1",
    )
    .bind(APPLICATION_NAME)
    .fetch_all(pool)
    .await
    .expect("pg_terminate_backend");
    killed.len()
}

async fn eventually_backends(pool: &PgPool, count: usize) -> Vec<i32> {
    for _ in 0..100 {
        let pids = hub_backends(pool).await;
        if pids.len() == count {
            return pids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {count} listening backends");
}

#[sqlx::test(migrations = false)]
async fn a_notice_reaches_every_subscriber_of_its_channel_and_no_other(pool: PgPool) {
    let hub = ListenHub::start(&pool, HubConfig::default());
    let mut first = hub.subscribe("orders");
    let mut second = hub.subscribe("orders");
    let mut other = hub.subscribe("stock");
    for subscription in [&mut first, &mut second, &mut other] {
        assert_eq!(next(subscription).await, Heard::Missed);
    }

    notify(&pool, "orders", "one").await;
    notify(&pool, "orders", "two").await;
    for subscription in [&mut first, &mut second] {
        assert_eq!(next(subscription).await, Heard::Notice("one".into()));
        assert_eq!(next(subscription).await, Heard::Notice("two".into()));
    }
    silent(&mut other).await;

    notify(&pool, "stock", "three").await;
    assert_eq!(next(&mut other).await, Heard::Notice("three".into()));
    silent(&mut first).await;
    silent(&mut second).await;
    assert_eq!(hub_backends(&pool).await.len(), 1);
}

#[sqlx::test(migrations = false)]
async fn a_channel_subscribed_later_is_listened_to_on_the_same_connection(pool: PgPool) {
    let hub = ListenHub::start(&pool, HubConfig::default());
    // No subscriber, no connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(hub_backends(&pool).await.is_empty());

    let mut early = hub.subscribe("early");
    assert_eq!(next(&mut early).await, Heard::Missed);
    let connection = hub_backends(&pool).await;
    assert_eq!(connection.len(), 1);

    let mut late = hub.subscribe("late");
    assert_eq!(next(&mut late).await, Heard::Missed);
    notify(&pool, "late", "heard").await;
    assert_eq!(next(&mut late).await, Heard::Notice("heard".into()));
    silent(&mut early).await;
    assert_eq!(hub_backends(&pool).await, connection);

    // A subscriber of a channel listened to already starts at once, and hears what follows.
    let mut again = hub.subscribe("late");
    assert_eq!(next(&mut again).await, Heard::Missed);
    notify(&pool, "late", "both").await;
    assert_eq!(next(&mut late).await, Heard::Notice("both".into()));
    assert_eq!(next(&mut again).await, Heard::Notice("both".into()));
}

#[sqlx::test(migrations = false)]
async fn after_the_connection_is_killed_every_subscriber_resyncs_and_notices_flow_again(
    pool: PgPool,
) {
    let hub = ListenHub::start(&pool, HubConfig::default());
    let mut orders = hub.subscribe("orders");
    let mut orders_too = hub.subscribe("orders");
    let mut stock = hub.subscribe("stock");
    for subscription in [&mut orders, &mut orders_too, &mut stock] {
        assert_eq!(next(subscription).await, Heard::Missed);
    }
    let before = eventually_backends(&pool, 1).await;

    assert_eq!(terminate_hub_backends(&pool).await, 1);
    for subscription in [&mut orders, &mut orders_too, &mut stock] {
        assert_eq!(next(subscription).await, Heard::Lost);
        assert_eq!(next(subscription).await, Heard::Missed);
    }
    let after = eventually_backends(&pool, 1).await;
    assert_ne!(before, after, "a new connection");

    notify(&pool, "orders", "again").await;
    notify(&pool, "stock", "again").await;
    for subscription in [&mut orders, &mut orders_too, &mut stock] {
        assert_eq!(next(subscription).await, Heard::Notice("again".into()));
    }
}

#[sqlx::test(migrations = false)]
async fn a_subscriber_that_falls_behind_hears_missed_and_holds_up_nobody(pool: PgPool) {
    let config = HubConfig {
        capacity: 4,
        ..HubConfig::default()
    };
    let hub = ListenHub::start(&pool, config);
    let mut reader = hub.subscribe("orders");
    let mut laggard = hub.subscribe("orders");
    assert_eq!(next(&mut reader).await, Heard::Missed);
    assert_eq!(next(&mut laggard).await, Heard::Missed);

    for n in 0..10 {
        notify(&pool, "orders", &n.to_string()).await;
        assert_eq!(next(&mut reader).await, Heard::Notice(n.to_string()));
    }
    assert_eq!(next(&mut laggard).await, Heard::Missed);
    for n in 6..10 {
        assert_eq!(next(&mut laggard).await, Heard::Notice(n.to_string()));
    }
}

#[sqlx::test(migrations = false)]
async fn dropping_the_hub_ends_its_subscriptions_and_its_connection(pool: PgPool) {
    let hub = ListenHub::start(&pool, HubConfig::default());
    let mut orders = hub.subscribe("orders");
    assert_eq!(next(&mut orders).await, Heard::Missed);
    eventually_backends(&pool, 1).await;

    drop(hub);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while orders.next().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the subscription did not end");
    eventually_backends(&pool, 0).await;
}

#[sqlx::test(migrations = false)]
async fn closing_the_application_pool_stops_the_hub(pool: PgPool) {
    let application = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with((*pool.connect_options()).clone());
    let hub = ListenHub::start(&application, HubConfig::default());
    let mut orders = hub.subscribe("orders");
    assert_eq!(next(&mut orders).await, Heard::Missed);
    eventually_backends(&pool, 1).await;

    application.close().await;
    assert_eq!(next(&mut orders).await, Heard::Lost);
    eventually_backends(&pool, 0).await;
}

/// A TCP proxy to PostgreSQL whose connections can be made to go silent, as a NAT that
/// forgot them would: nothing is forwarded any more and nothing is closed. Connections
/// accepted afterwards are forwarded again. Dropping it closes everything.
struct SilencingProxy {
    addr: SocketAddr,
    /// Each connection forwards while this is the generation it was accepted in.
    generation: watch::Sender<u64>,
    _tasks: JoinSet<()>,
}

impl SilencingProxy {
    async fn start(upstream: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let generation = watch::Sender::new(0u64);
        let mut tasks = JoinSet::new();
        let generations = generation.clone();
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let mut silenced = generations.subscribe();
                let accepted_in = *silenced.borrow_and_update();
                connections.spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = async {
                            let _ = silenced.wait_for(|current| *current != accepted_in).await;
                        } => {
                            // Hold both ends open and forward nothing, until dropped.
                            std::future::pending::<()>().await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            generation,
            _tasks: tasks,
        }
    }

    fn silence_open_connections(&self) {
        self.generation.send_modify(|generation| *generation += 1);
    }
}

#[sqlx::test(migrations = false)]
async fn a_connection_that_stops_answering_is_noticed_and_replaced(pool: PgPool) {
    let options = pool.connect_options();
    let proxy = SilencingProxy::start((options.get_host().to_owned(), options.get_port())).await;
    let through_proxy = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with((*options).clone().host("127.0.0.1").port(proxy.addr.port()));
    let config = HubConfig {
        keepalive_after: Duration::from_millis(200),
        reply_timeout: Duration::from_millis(500),
        ..HubConfig::default()
    };
    let hub = ListenHub::start(&through_proxy, config);
    let mut orders = hub.subscribe("orders");
    assert_eq!(next(&mut orders).await, Heard::Missed);
    notify(&pool, "orders", "before").await;
    assert_eq!(next(&mut orders).await, Heard::Notice("before".into()));

    proxy.silence_open_connections();
    // The connection is still open at both ends: only the keepalive can tell.
    assert_eq!(next(&mut orders).await, Heard::Lost);
    assert_eq!(next(&mut orders).await, Heard::Missed);
    notify(&pool, "orders", "after").await;
    assert_eq!(next(&mut orders).await, Heard::Notice("after".into()));
    drop(hub);
    drop(proxy);
}
