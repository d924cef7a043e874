//! Shared setup for the worker tests: a migrated database with the test kinds' tables, fast
//! queue settings, a recording mailer, and polling helpers.

use std::{
    collections::VecDeque,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use cart_core::{
    http_client::ProviderError,
    jobs::Job,
    mail::{EmailMessage, Mailer},
};
use cart_queue::{QueueSettings, RetryPolicy, Runtime, RuntimeConfig};
use cart_worker::{Deps, JobSettings, Registry, jobs::testing::Record};
use sqlx::{PgPool, postgres::PgPoolOptions};

pub async fn setup(pool: &PgPool) {
    cart_core::db::migrate(pool).await.unwrap();
    create_test_tables(pool).await;
}

/// The tables the test kinds write to.
pub async fn create_test_tables(pool: &PgPool) {
    sqlx::query(
        "CREATE TABLE worker_test_runs (
             key text NOT NULL, job_id text NOT NULL, attempt integer NOT NULL,
             request_id text, pid integer NOT NULL, at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TABLE worker_test_failures (key text PRIMARY KEY, remaining integer NOT NULL)",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// Every standard kind plus the test kinds.
pub fn registry() -> Registry {
    cart_worker::registry::with_test_jobs(cart_worker::registry::standard())
}

/// Quick polling and short retries; tickers off unless a test turns them on.
pub fn config() -> RuntimeConfig {
    RuntimeConfig {
        queue: QueueSettings {
            concurrency: 8,
            poll_interval: Duration::from_millis(200),
            heartbeat_interval: Duration::from_secs(5),
            missed_heartbeats: 2,
        },
        retry: RetryPolicy {
            base: Duration::from_millis(400),
            max: Duration::from_secs(2),
        },
        job_timeout: Duration::from_secs(30),
        shutdown_timeout: Duration::from_secs(10),
        tickers_enabled: false,
        ..RuntimeConfig::default()
    }
}

pub fn settings() -> JobSettings {
    JobSettings::default()
}

/// Dependencies for a runtime on the database of `pool`, with a pool of its own: the pool of
/// `#[sqlx::test]` has five connections, fewer than a worker with every kind needs.
pub fn deps(pool: &PgPool, mailer: Arc<RecordingMailer>) -> Deps {
    Deps {
        pool: worker_pool(pool),
        mailer,
        settings: Arc::new(settings()),
        payments: Arc::new(cart_worker::deps::PaymentDeps::for_tests()),
        reset_key: cart_core::users::password_reset::ResetKey::derive(RESET_SECRET),
    }
}

/// The `JWT_SECRET` the test workers derive reset links from.
pub const RESET_SECRET: &[u8] = b"worker-test-secret-0123456789abcdef";

pub fn start(pool: &PgPool) -> Runtime {
    cart_worker::start(
        &registry(),
        &config(),
        deps(pool, Arc::new(RecordingMailer::default())),
    )
}

/// Another pool on the same database, sized for a worker: what a worker process would have.
pub fn worker_pool(pool: &PgPool) -> PgPool {
    PgPoolOptions::new()
        .max_connections(40)
        .connect_lazy_with((*pool.connect_options()).clone())
}

/// The database URL of `pool`, for worker processes started by a test.
pub fn database_url(pool: &PgPool) -> String {
    let options = pool.connect_options();
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("postgres"),
    )
}

pub async fn enqueue<J: Job>(pool: &PgPool, job: &J) -> String {
    let mut conn = pool.acquire().await.unwrap();
    cart_core::jobs::enqueue(&mut conn, job)
        .await
        .unwrap()
        .expect("a new job")
}

pub fn record(key: &str) -> Record {
    Record {
        key: key.into(),
        sleep_ms: 0,
        permanent: false,
        stoppable: false,
        order_id: None,
    }
}

/// Makes the next `times` attempts of the test job `key` fail (retryably).
pub async fn fail_next(pool: &PgPool, key: &str, times: i32) {
    sqlx::query(
        "INSERT INTO worker_test_failures (key, remaining) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET remaining = EXCLUDED.remaining",
    )
    .bind(key)
    .bind(times)
    .execute(pool)
    .await
    .unwrap();
}

/// How many times the test job `key` ran to completion.
pub async fn runs(pool: &PgPool, key: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM worker_test_runs WHERE key = $1")
        .bind(key)
        .fetch_one(pool)
        .await
        .unwrap()
}

pub async fn status(pool: &PgPool, id: &str) -> (String, i32) {
    sqlx::query_as("SELECT status, attempts FROM apalis.jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Polls `check` until it answers true, failing the test after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_for_status(pool: &PgPool, id: &str, wanted: &str, timeout: Duration) {
    wait_for(&format!("job {id} to be {wanted}"), timeout, || async {
        status(pool, id).await.0 == wanted
    })
    .await;
}

/// A mailer that records what it was asked to send; it can be told to fail first.
#[derive(Default)]
pub struct RecordingMailer {
    pub sent: Mutex<Vec<(EmailMessage, String)>>,
    pub failures: Mutex<VecDeque<ProviderError>>,
}

impl RecordingMailer {
    pub fn failing_with(errors: impl IntoIterator<Item = ProviderError>) -> Self {
        Self {
            sent: Mutex::default(),
            failures: Mutex::new(errors.into_iter().collect()),
        }
    }

    pub fn sent(&self) -> Vec<(EmailMessage, String)> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Mailer for RecordingMailer {
    async fn send(
        &self,
        message: &EmailMessage,
        idempotency_key: &str,
    ) -> Result<String, ProviderError> {
        if let Some(err) = self.failures.lock().unwrap().pop_front() {
            return Err(err);
        }
        self.sent
            .lock()
            .unwrap()
            .push((message.clone(), idempotency_key.to_owned()));
        Ok(format!("msg-{idempotency_key}"))
    }
}
