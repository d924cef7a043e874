//! A database outage: the worker's connections go through a proxy the test cuts. The
//! workers fail, are restarted with backoff (not in a hot loop), and pick up work again once
//! the database is back.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sqlx::{PgPool, postgres::PgPoolOptions};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Mutex,
    task::JoinHandle,
};

use crate::helpers::{self, RecordingMailer, wait_for, wait_for_status};

/// A TCP proxy to the database that can be switched off: open connections are dropped and
/// new ones are closed at once.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: (String, u16)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let up = up.clone();
            let connections = connections.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue; // dropping `client` closes it
                    }
                    let upstream = upstream.clone();
                    let handle = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    connections.lock().await.push(handle);
                }
            }
        });
        Self {
            port,
            up,
            connections,
            accept,
        }
    }

    async fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for handle in self.connections.lock().await.drain(..) {
            handle.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn restarts(kind: &str) -> f64 {
    let rendered = cart_worker::metrics::install().render();
    rendered
        .lines()
        .find(|line| line.starts_with(&format!("worker_restarts_total{{kind=\"{kind}\"}}")))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0)
}

#[sqlx::test(migrations = false)]
async fn workers_survive_a_database_outage_and_restart_with_backoff(pool: PgPool) {
    helpers::setup(&pool).await;
    cart_worker::metrics::install();
    let options = pool.connect_options();
    let proxy = Proxy::start((options.get_host().to_owned(), options.get_port())).await;
    let proxied = PgPoolOptions::new()
        .max_connections(30)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with((*options).clone().host("127.0.0.1").port(proxy.port));
    let runtime = cart_worker::start(
        &helpers::registry(),
        &helpers::config(),
        helpers::deps(&proxied, Arc::new(RecordingMailer::default())),
    );
    let before = helpers::enqueue(&pool, &helpers::record("before")).await;
    wait_for_status(&pool, &before, "Done", Duration::from_secs(15)).await;
    let restarts_before = restarts("test_record");

    proxy.cut().await;
    // Enqueued on the direct pool while the worker cannot reach the database.
    let during = helpers::enqueue(&pool, &helpers::record("during")).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let restarts_during = restarts("test_record") - restarts_before;
    assert!(restarts_during >= 1.0, "the failed worker was restarted");
    assert!(
        restarts_during <= 6.0,
        "restarts back off instead of looping: {restarts_during} in 6 s"
    );
    assert_eq!(helpers::status(&pool, &during).await.0, "Pending");

    proxy.restore();
    wait_for(
        "the job enqueued during the outage to run",
        Duration::from_secs(90),
        || async { helpers::runs(&pool, "during").await == 1 },
    )
    .await;
    runtime.shutdown().await;
}
