//! The payment initiation job ends every way it can end for good (a panic, a database error
//! on its last attempt, the crash guard) with the payment `failed`, so the buyer can pay
//! again: a payment left `initiating` would be returned by every later `pay`.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use cart_core::{
    http_client::ProviderError,
    payments::{
        PixCharge, PixChargeRequest, PixProvider, PixRefundRequest, Refund,
        flow::{self, PaymentMethod, PaymentSettings, Started},
    },
};
use cart_queue::Runtime;
use cart_worker::deps::PaymentDeps;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    helpers::{self, RecordingMailer, wait_for},
    orders::unpaid_order,
};

/// A PIX provider whose charge creation panics (a bug in a client, say).
#[derive(Debug)]
struct PanickingPix;

#[async_trait]
impl PixProvider for PanickingPix {
    fn name(&self) -> &'static str {
        "panicking_pix"
    }

    async fn create_charge(&self, _: &PixChargeRequest) -> Result<PixCharge, ProviderError> {
        panic!("the PIX client blew up");
    }

    async fn refund(&self, _: &PixRefundRequest) -> Result<Refund, ProviderError> {
        panic!("not used");
    }
}

fn start_worker(pool: &PgPool, settings: PaymentSettings) -> Runtime {
    let mut deps = helpers::deps(pool, Arc::new(RecordingMailer::default()));
    deps.payments = Arc::new(PaymentDeps {
        settings,
        ..PaymentDeps::for_tests()
    });
    cart_worker::start(&helpers::registry(), &helpers::config(), deps)
}

/// An unpaid order with a PIX payment recorded `initiating` and its initiation job enqueued
/// (what `pay` leaves behind); no worker has run yet.
async fn initiating_payment(pool: &PgPool, settings: &PaymentSettings) -> (Uuid, Uuid) {
    let order_id = unpaid_order(pool, chrono::Duration::minutes(30)).await;
    let user_id: Uuid = sqlx::query_scalar("SELECT user_id FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let started = flow::start(&mut conn, settings, user_id, order_id, PaymentMethod::Pix)
        .await
        .unwrap();
    (user_id, started.payment().id)
}

async fn payment_status(pool: &PgPool, payment_id: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM payments WHERE id = $1")
        .bind(payment_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn wait_until_failed(pool: &PgPool, payment_id: Uuid) {
    wait_for("the payment to fail", Duration::from_secs(60), || async {
        payment_status(pool, payment_id).await == "failed"
    })
    .await;
}

/// The order is payable again: a new `pay` records a new payment.
async fn assert_payable_again(pool: &PgPool, settings: &PaymentSettings, user_id: Uuid, old: Uuid) {
    let order_id: Uuid = sqlx::query_scalar("SELECT order_id FROM payments WHERE id = $1")
        .bind(old)
        .fetch_one(pool)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let again = flow::start(&mut conn, settings, user_id, order_id, PaymentMethod::Pix)
        .await
        .unwrap();
    assert!(
        matches!(&again, Started::New(p) if p.id != old),
        "{again:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn a_panicking_initiation_fails_the_payment(pool: PgPool) {
    helpers::setup(&pool).await;
    let mut settings = PaymentSettings::for_tests();
    settings.providers.pix = Arc::new(PanickingPix);
    let (user_id, payment_id) = initiating_payment(&pool, &settings).await;
    let runtime = start_worker(&pool, settings.clone());
    wait_until_failed(&pool, payment_id).await;
    runtime.shutdown().await;
    let error: String = sqlx::query_scalar("SELECT error FROM payments WHERE id = $1")
        .bind(payment_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(error.contains("panicked"), "{error}");
    assert_payable_again(&pool, &settings, user_id, payment_id).await;
}

#[sqlx::test(migrations = false)]
async fn a_database_error_on_the_last_attempt_fails_the_payment(pool: PgPool) {
    helpers::setup(&pool).await;
    // The charge is created, but storing it fails on every attempt (a database error).
    sqlx::query(
        "CREATE FUNCTION refuse_pending() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.status = 'pending' THEN RAISE EXCEPTION 'storage refused'; END IF;
             RETURN NEW;
         END $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_pending BEFORE UPDATE ON payments
         FOR EACH ROW EXECUTE FUNCTION refuse_pending()",
    )
    .execute(&pool)
    .await
    .unwrap();
    let settings = PaymentSettings::for_tests();
    let (user_id, payment_id) = initiating_payment(&pool, &settings).await;
    let runtime = start_worker(&pool, settings.clone());
    wait_until_failed(&pool, payment_id).await;
    runtime.shutdown().await;
    let attempts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_failures f JOIN apalis.jobs j ON j.id = f.job_id
         WHERE j.idempotency_key = $1",
    )
    .bind(format!("initiate:{payment_id}"))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(attempts, 5, "every attempt was made before giving up");
    assert_payable_again(&pool, &settings, user_id, payment_id).await;
}

#[sqlx::test(migrations = false)]
async fn the_crash_guard_fails_the_payment(pool: PgPool) {
    helpers::setup(&pool).await;
    let settings = PaymentSettings::for_tests();
    let (user_id, payment_id) = initiating_payment(&pool, &settings).await;
    // Workers died under every attempt: apalis hands the job back with its attempts used up,
    // and the crash guard stops it before it runs.
    sqlx::query("UPDATE apalis.jobs SET attempts = max_attempts WHERE idempotency_key = $1")
        .bind(format!("initiate:{payment_id}"))
        .execute(&pool)
        .await
        .unwrap();
    let runtime = start_worker(&pool, settings.clone());
    wait_until_failed(&pool, payment_id).await;
    runtime.shutdown().await;
    let error: String = sqlx::query_scalar("SELECT error FROM payments WHERE id = $1")
        .bind(payment_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(error.contains("worker crash"), "{error}");
    assert_payable_again(&pool, &settings, user_id, payment_id).await;
}

#[sqlx::test(migrations = false)]
async fn a_give_up_that_cannot_be_settled_keeps_the_job(pool: PgPool) {
    helpers::setup(&pool).await;
    // The first attempt to mark the payment failed meets a database error.
    sqlx::query("CREATE SEQUENCE refuse_failed_seq")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "CREATE FUNCTION refuse_failed_once() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.status = 'failed' AND nextval('refuse_failed_seq') = 1 THEN
                 RAISE EXCEPTION 'database hiccup';
             END IF;
             RETURN NEW;
         END $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_failed_once BEFORE UPDATE ON payments
         FOR EACH ROW EXECUTE FUNCTION refuse_failed_once()",
    )
    .execute(&pool)
    .await
    .unwrap();
    let settings = PaymentSettings::for_tests();
    let (_, payment_id) = initiating_payment(&pool, &settings).await;
    let key = format!("initiate:{payment_id}");
    sqlx::query("UPDATE apalis.jobs SET attempts = max_attempts WHERE idempotency_key = $1")
        .bind(&key)
        .execute(&pool)
        .await
        .unwrap();
    let runtime = start_worker(&pool, settings);
    // The crash guard gave up, the payment could not be marked failed: the job is kept and
    // runs once more, which creates the charge.
    wait_for(
        "the payment to leave initiating",
        Duration::from_secs(60),
        || async { payment_status(&pool, payment_id).await != "initiating" },
    )
    .await;
    runtime.shutdown().await;
    assert_eq!(payment_status(&pool, payment_id).await, "pending");
    let errors: Vec<String> = sqlx::query_scalar(
        "SELECT f.error FROM job_failures f JOIN apalis.jobs j ON j.id = f.job_id
         WHERE j.idempotency_key = $1 ORDER BY f.attempt",
    )
    .bind(&key)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("giving up failed"), "{errors:?}");
}
