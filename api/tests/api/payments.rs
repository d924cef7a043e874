//! The payment flow over HTTP with the worker's handlers running in-process: pay → provider
//! (sandbox or a wiremock ProPay/OpenPix/Stripe) → signed webhook → order paid → e-mail →
//! NF-e authorised. Orders are written with the core functions (no checkout needed).

// Fixture helpers below are not `#[test]` functions, which clippy's test allowance skips.
#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    future::Future,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use cart_core::{
    auth::Role,
    mail::outbox::OutboxMailer,
    orders::{
        ShippingAddress,
        create::{self, ChosenShipping, NewOrder, NewOrderItem},
    },
    payments::{
        BreakerConfig, CircuitBreaker,
        flow::PaymentSettings,
        settings::{providers_from, webhook_verifiers_from},
        signature::{sign_openpix_hmac, sign_propay, sign_stripe},
    },
    testing::{TEST_PROPAY_SECRET, TEST_STRIPE_SECRET},
};
use cart_queue::{QueueSettings, RetryPolicy, Runtime, RuntimeConfig};
use cart_worker::{Deps, JobSettings, deps::PaymentDeps};
use serde_json::{Value, json};
use sqlx::{PgPool, postgres::PgPoolOptions};
use uuid::Uuid;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path},
};

use crate::{
    helpers::{TestApp, TestResponse},
    orders::insert_user,
};

/// Every order of these tests costs this: one 49,90 book plus 25,00 shipping.
pub(crate) const ORDER_TOTAL: i64 = 7490;
pub(crate) const OPENPIX_HMAC_SECRET: &str = "openpix-hmac-secret";

/// Payment settings from `pairs` (as environment variables) plus the test webhook secrets.
pub(crate) fn payment_settings(pairs: &[(&str, &str)]) -> PaymentSettings {
    let mut map: HashMap<String, String> = HashMap::from([
        ("PROPAY_TO_GO_SECRET".into(), TEST_PROPAY_SECRET.into()),
        ("STRIPE_WEBHOOK_SECRET".into(), TEST_STRIPE_SECRET.into()),
        ("OPENPIX_WEBHOOK_SECRET".into(), OPENPIX_HMAC_SECRET.into()),
    ]);
    for (k, v) in pairs {
        map.insert((*k).into(), (*v).into());
    }
    let env = move |name: &str| map.get(name).cloned();
    let providers = providers_from(&env).unwrap();
    PaymentSettings {
        pix_sandbox: providers.pix.name() == "sandbox_pix",
        providers,
        verifiers: webhook_verifiers_from(&env).unwrap(),
        breaker: CircuitBreaker::new(BreakerConfig::default()),
        // Generous: the machine running the tests may be busy.
        wait: Duration::from_secs(10),
    }
}

/// A server with these payment settings, and (unless `worker` is false) the worker's
/// handlers running in-process on the same database, sending e-mail to an outbox directory.
pub(crate) struct World {
    pub app: TestApp,
    pub runtime: Option<Runtime>,
    pub outbox: PathBuf,
}

impl World {
    pub async fn start(pool: PgPool, settings: PaymentSettings, worker: bool) -> Self {
        let api_settings = settings.clone();
        let app = TestApp::spawn_with(pool.clone(), move |config| {
            config.payments = api_settings;
        })
        .await;
        let outbox = std::env::temp_dir().join(format!("cart-payments-{}", Uuid::now_v7()));
        let runtime = worker.then(|| start_worker(&pool, settings, &outbox));
        Self {
            app,
            runtime,
            outbox,
        }
    }

    pub async fn stop(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&self.outbox);
    }

    /// The `tags` of every e-mail written to the outbox.
    pub fn mail_tags(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.outbox) else {
            return vec![];
        };
        entries
            .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
            .filter_map(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .flat_map(|v| {
                v["tags"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// What an in-process worker beside the test API gets, mailing into `outbox`.
pub(crate) fn worker_deps_with(pool: &PgPool, settings: PaymentSettings, outbox: &Path) -> Deps {
    Deps {
        mailer: Arc::new(OutboxMailer::new(outbox).unwrap()),
        payments: Arc::new(PaymentDeps {
            settings,
            ..PaymentDeps::for_tests()
        }),
        ..worker_deps(pool)
    }
}

/// Like [`worker_deps_with`], sandbox providers and an outbox under the temp dir.
pub(crate) fn worker_deps(pool: &PgPool) -> Deps {
    Deps {
        pool: PgPoolOptions::new()
            .max_connections(30)
            .connect_lazy_with((*pool.connect_options()).clone()),
        mailer: Arc::new(
            OutboxMailer::new(std::env::temp_dir().join("cart-api-test-outbox")).unwrap(),
        ),
        settings: Arc::new(JobSettings::default()),
        payments: Arc::new(PaymentDeps::for_tests()),
        // The API's secret in tests, as a worker beside that API would have.
        reset_key: cart_core::users::password_reset::ResetKey::derive(crate::helpers::JWT_SECRET),
    }
}

pub(crate) fn start_worker(pool: &PgPool, settings: PaymentSettings, outbox: &Path) -> Runtime {
    start_worker_with(&cart_worker::registry::standard(), pool, settings, outbox)
}

/// Like [`start_worker`], running the kinds of `registry`.
pub(crate) fn start_worker_with(
    registry: &cart_worker::Registry,
    pool: &PgPool,
    settings: PaymentSettings,
    outbox: &Path,
) -> Runtime {
    let config = RuntimeConfig {
        queue: QueueSettings {
            concurrency: 4,
            poll_interval: Duration::from_millis(100),
            heartbeat_interval: Duration::from_secs(5),
            missed_heartbeats: 2,
        },
        retry: RetryPolicy {
            base: Duration::from_millis(300),
            max: Duration::from_secs(1),
        },
        job_timeout: Duration::from_secs(30),
        shutdown_timeout: Duration::from_secs(5),
        tickers_enabled: false,
        ..RuntimeConfig::default()
    };
    let deps = worker_deps_with(pool, settings, outbox);
    cart_worker::start(registry, &config, deps)
}

pub(crate) struct Buyer {
    pub id: Uuid,
    pub token: String,
}

pub(crate) async fn buyer(app: &TestApp) -> Buyer {
    let id = insert_user(&app.pool, Role::User, Some("52998224725")).await;
    Buyer {
        id,
        token: app.token_for(id, Role::User).await,
    }
}

pub(crate) async fn admin_token(app: &TestApp) -> String {
    let id = insert_user(&app.pool, Role::Admin, None).await;
    app.token_for(id, Role::Admin).await
}

/// A `pending_payment` order of `user_id` for [`ORDER_TOTAL`].
pub(crate) async fn place_order(pool: &PgPool, user_id: Uuid) -> Uuid {
    let book = crate::checkout::product(pool, "Livro", 4990, 10).await;
    let mut conn = pool.acquire().await.unwrap();
    create::insert(
        &mut conn,
        &NewOrder {
            user_id,
            items: vec![NewOrderItem {
                product_id: book,
                sku: "LIVRO-1".into(),
                name: "Livro".into(),
                unit_price_cents: 4990,
                quantity: 1,
                ncm: Some("49019900".into()),
                weight_grams: Some(300),
            }],
            coupon: None,
            shipping: ChosenShipping {
                carrier: "Correios".into(),
                service: "SEDEX".into(),
                price_cents: 2500,
                days: 2,
                address: ShippingAddress {
                    label: None,
                    recipient: "Cliente Teste".into(),
                    cep: "20040020".into(),
                    street: "Rua da Assembleia".into(),
                    number: "10".into(),
                    complement: None,
                    district: "Centro".into(),
                    city: "Rio de Janeiro".into(),
                    state: "RJ".into(),
                },
            },
            recipient_cpf: "52998224725".into(),
            expires_at: chrono::Utc::now() + chrono::Duration::minutes(30),
        },
    )
    .await
    .unwrap()
    .id
}

pub(crate) async fn pay(app: &TestApp, order_id: Uuid, method: &str, token: &str) -> TestResponse {
    app.post(
        &format!("/api/orders/{order_id}/pay"),
        &json!({"method": method}),
        Some(token),
    )
    .await
}

/// Posts `body` to a webhook route with the given headers.
pub(crate) async fn post_webhook(
    app: &TestApp,
    route: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> TestResponse {
    let mut req = app
        .client
        .post(app.url(route))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    TestApp::read(req.send().await.unwrap()).await
}

pub(crate) fn propay_paid(event_id: &str, txid: &str, amount: i64) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(&json!({
        "event_id": event_id, "event": "pix.paid", "txid": txid,
        "amount_cents": amount, "paid_at": "2026-11-25T12:00:00Z"
    }))
    .unwrap();
    let signature = sign_propay(TEST_PROPAY_SECRET.as_bytes(), &body);
    (body, signature)
}

pub(crate) fn stripe_event(
    kind: &str,
    event_id: &str,
    payment_id: &str,
    order_id: Uuid,
) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(&json!({
        "id": event_id, "object": "event", "type": kind,
        "data": {"object": {"id": "pi_test_1", "object": "payment_intent",
            "amount": ORDER_TOTAL, "amount_received": ORDER_TOTAL,
            "metadata": {"order_id": order_id.to_string(), "payment_id": payment_id},
            "last_payment_error": {"message": "Your card was declined."}}}
    }))
    .unwrap();
    let header = sign_stripe(TEST_STRIPE_SECRET, chrono::Utc::now().timestamp(), &body);
    (body, header)
}

pub(crate) async fn order_state(pool: &PgPool, order_id: Uuid) -> (String, String) {
    sqlx::query_as("SELECT status, payment_status FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

pub(crate) async fn jobs_with_key(pool: &PgPool, key: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE idempotency_key = $1")
        .bind(key)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Polls `check` until true, failing the test after `timeout`.
pub(crate) async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const SETTLE: Duration = Duration::from_secs(30);

/// From a paid order on: order processing/paid, the confirmation and invoice e-mails sent,
/// the NF-e authorised and shown to the owner.
async fn assert_paid_invoiced_and_mailed(world: &World, order_id: Uuid, token: &str) {
    let pool = &world.app.pool;
    eventually("the order to be paid", SETTLE, || async {
        order_state(pool, order_id).await == ("processing".into(), "paid".into())
    })
    .await;
    eventually("both e-mails", SETTLE, || async {
        let tags = world.mail_tags();
        tags.iter().any(|t| t == "payment_confirmed") && tags.iter().any(|t| t == "invoice_issued")
    })
    .await;
    let invoice = world
        .app
        .get(&format!("/api/orders/{order_id}/invoice"), Some(token))
        .await;
    invoice.assert_status(200);
    assert_eq!(invoice.body["status"], "authorized", "{}", invoice.text);
    assert_eq!(invoice.body["access_key"].as_str().unwrap().len(), 44);
    assert!(invoice.body["pdf_url"].as_str().is_some());
    assert!(invoice.body["xml_url"].as_str().is_some());
    assert!(invoice.body.get("message").is_none());
    let payment = world
        .app
        .get(&format!("/api/orders/{order_id}/payment"), Some(token))
        .await;
    assert_eq!(payment.body["status"], "paid", "{}", payment.text);
    assert_eq!(jobs_with_key(pool, &format!("nfe:{order_id}")).await, 1);
    assert_eq!(
        jobs_with_key(pool, &format!("payment_confirmed:{order_id}")).await,
        1
    );
}

#[sqlx::test(migrations = false)]
async fn a_sandbox_pix_payment_is_confirmed_through_the_signed_webhook_and_invoiced(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), true).await;
    let app = &world.app;
    let buyer = buyer(app).await;
    let order_id = place_order(&app.pool, buyer.id).await;

    let paid = pay(app, order_id, "pix", &buyer.token).await;
    paid.assert_status(201);
    let body = &paid.body;
    assert_eq!(body["method"], "pix");
    assert_eq!(body["status"], "pending");
    assert!(body["copy_paste"].as_str().unwrap().starts_with("000201"));
    assert!(
        body["qr_code"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
    assert!(body["txid"].as_str().is_some() && body["expires_at"].as_str().is_some());
    let payment_id = body["payment_id"].as_str().unwrap().to_owned();

    // A repeated pay while pending returns the same payment: no second charge.
    let again = pay(app, order_id, "pix", &buyer.token).await;
    assert_eq!(again.body["payment_id"], payment_id.as_str());
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE order_id = $1")
        .bind(order_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);

    // Only admins may simulate the payer.
    let path = format!("/api/sandbox/payments/{payment_id}/confirm");
    app.post(&path, &json!({}), Some(&buyer.token))
        .await
        .assert_problem(403);
    let admin = admin_token(app).await;
    let confirmed = app.post(&path, &json!({}), Some(&admin)).await;
    confirmed.assert_status(200);
    assert_eq!(confirmed.body["duplicate"], false);

    assert_paid_invoiced_and_mailed(&world, order_id, &buyer.token).await;
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_propay_pix_payment_is_paid_by_its_webhook_and_invoiced(pool: PgPool) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/pix/charges"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "txid": "PROPAY7b2c9e0f4a1d4c3bb8e6a5d4c3b2a1f0",
            "br_code": "00020101021226760014br.gov.bcb.pix2554pix.example.com/qr/v2/9d36b84fc70b478fb95c12729b90ca255204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63047EC0",
            "qr_code_url": "https://propay.example/qr/7b2c.png",
            "expires_at": "2026-11-25T12:30:00Z"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let settings = payment_settings(&[
        ("PIX_PROVIDER", "propay"),
        ("PROPAY_URL", &server.uri()),
        ("GO_TO_PROPAY_SECRET", "go-to-propay-secret"),
    ]);
    let world = World::start(pool, settings, true).await;
    let app = &world.app;
    let buyer = buyer(app).await;
    let order_id = place_order(&app.pool, buyer.id).await;

    let paid = pay(app, order_id, "pix", &buyer.token).await;
    paid.assert_status(201);
    assert_eq!(paid.body["txid"], "PROPAY7b2c9e0f4a1d4c3bb8e6a5d4c3b2a1f0");
    assert_eq!(
        paid.body["qr_code_url"],
        "https://propay.example/qr/7b2c.png"
    );

    let (body, signature) = propay_paid(
        "pp-ev-1",
        "PROPAY7b2c9e0f4a1d4c3bb8e6a5d4c3b2a1f0",
        ORDER_TOTAL,
    );
    post_webhook(
        app,
        "/api/webhooks/payment",
        &[("x-propay-signature", signature)],
        &body,
    )
    .await
    .assert_status(200);
    assert_paid_invoiced_and_mailed(&world, order_id, &buyer.token).await;
    world.stop().await;
}

/// Answers an OpenPix charge creation with the charge of the correlationID it was sent (its
/// transactionID derived from it, as each charge has its own).
pub(crate) struct OpenPixCharge;

pub(crate) const MOCK_BR_CODE: &str = "00020101021226760014br.gov.bcb.pix2554pix.example.com/qr/v2/9d36b84fc70b478fb95c12729b90ca255204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63047EC0";

impl wiremock::Respond for OpenPixCharge {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let sent: Value = serde_json::from_slice(&request.body).unwrap();
        let id = sent["correlationID"].clone();
        let transaction_id = id.as_str().unwrap_or_default().replace('-', "");
        ResponseTemplate::new(200).set_body_json(json!({
            "charge": {"status": "ACTIVE", "value": sent["value"], "correlationID": id,
                "transactionID": transaction_id,
                "brCode": MOCK_BR_CODE,
                "paymentLinkUrl": "https://woovi.com/pay/7777a23s",
                "qrCodeImage": "https://api.woovi.com/openpix/charge/brcode/image/7777a23s.png",
                "expiresIn": 1800, "expiresDate": "2026-11-25T12:30:00.000Z"},
            "correlationID": id,
            "brCode": MOCK_BR_CODE
        }))
    }
}

#[sqlx::test(migrations = false)]
async fn an_openpix_payment_is_paid_by_its_webhook_and_invoiced(pool: PgPool) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/charge"))
        .respond_with(OpenPixCharge)
        .mount(&server)
        .await;
    let settings = payment_settings(&[
        ("PIX_PROVIDER", "openpix"),
        ("OPENPIX_URL", &server.uri()),
        ("OPENPIX_APP_ID", "app-id"),
    ]);
    let world = World::start(pool, settings, true).await;
    let app = &world.app;
    let buyer = buyer(app).await;
    let order_id = place_order(&app.pool, buyer.id).await;

    let paid = pay(app, order_id, "pix", &buyer.token).await;
    paid.assert_status(201);
    assert_eq!(paid.body["copy_paste"], MOCK_BR_CODE);
    let payment_id = paid.body["payment_id"].as_str().unwrap().to_owned();
    // Reconciliation reads the charge back from our account; Woovi is down at first and the
    // job retries.
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/charge/{payment_id}")))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/charge/{payment_id}")))
        .and(header("authorization", "app-id"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"charge": {
            "status": "COMPLETED", "value": ORDER_TOTAL, "correlationID": payment_id,
            "paymentMethods": {"pix": {"value": ORDER_TOTAL, "status": "COMPLETED"}}}})))
        .mount(&server)
        .await;

    let body = serde_json::to_vec(&json!({
        "event": "OPENPIX:CHARGE_COMPLETED",
        "charge": {"correlationID": payment_id, "value": ORDER_TOTAL, "status": "COMPLETED"},
        "pix": {"value": ORDER_TOTAL, "time": "2026-11-25T12:05:00Z", "endToEndId": "E1234"}
    }))
    .unwrap();
    let hmac = sign_openpix_hmac(OPENPIX_HMAC_SECRET, &body);
    post_webhook(
        app,
        "/api/webhooks/openpix",
        &[("x-openpix-signature", hmac)],
        &body,
    )
    .await
    .assert_status(200);
    assert_paid_invoiced_and_mailed(&world, order_id, &buyer.token).await;
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_stripe_card_payment_is_paid_by_its_webhook_and_invoiced(pool: PgPool) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "pi_test_1", "object": "payment_intent", "amount": ORDER_TOTAL,
            "currency": "brl", "status": "requires_payment_method",
            "client_secret": "pi_test_1_secret_abc"
        })))
        .mount(&server)
        .await;
    let settings = payment_settings(&[
        ("CARD_PROVIDER", "stripe"),
        ("STRIPE_API_URL", &server.uri()),
        ("STRIPE_SECRET_KEY", "sk_test_x"),
    ]);
    let world = World::start(pool, settings, true).await;
    let app = &world.app;
    let buyer = buyer(app).await;
    let order_id = place_order(&app.pool, buyer.id).await;

    let paid = pay(app, order_id, "credit_card", &buyer.token).await;
    paid.assert_status(201);
    assert_eq!(paid.body["method"], "credit_card");
    assert_eq!(paid.body["status"], "pending");
    assert_eq!(paid.body["client_secret"], "pi_test_1_secret_abc");
    let payment_id = paid.body["payment_id"].as_str().unwrap().to_owned();

    let (body, header) = stripe_event("payment_intent.succeeded", "evt_1", &payment_id, order_id);
    post_webhook(
        app,
        "/api/webhooks/stripe",
        &[("stripe-signature", header)],
        &body,
    )
    .await
    .assert_status(200);
    assert_paid_invoiced_and_mailed(&world, order_id, &buyer.token).await;
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_failed_card_payment_leaves_the_order_payable(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), true).await;
    let app = &world.app;
    let buyer = buyer(app).await;
    let order_id = place_order(&app.pool, buyer.id).await;
    let paid = pay(app, order_id, "credit_card", &buyer.token).await;
    paid.assert_status(201);
    assert!(paid.body["client_secret"].as_str().is_some());
    let payment_id = paid.body["payment_id"].as_str().unwrap().to_owned();

    let (body, header) = stripe_event(
        "payment_intent.payment_failed",
        "evt_f",
        &payment_id,
        order_id,
    );
    post_webhook(
        app,
        "/api/webhooks/stripe",
        &[("stripe-signature", header)],
        &body,
    )
    .await
    .assert_status(200);
    eventually("the payment to fail", SETTLE, || async {
        order_state(&app.pool, order_id).await == ("pending_payment".into(), "failed".into())
    })
    .await;
    let payment = app
        .get(
            &format!("/api/orders/{order_id}/payment"),
            Some(&buyer.token),
        )
        .await;
    assert_eq!(payment.body["status"], "failed");
    // The buyer gets a reason in our words; the provider's text is for admins.
    assert!(payment.body["error"].as_str().is_some(), "{}", payment.text);
    assert!(!payment.text.contains("declined"), "{}", payment.text);
    assert!(payment.body.get("provider_error").is_none());
    let admin = admin_token(app).await;
    let seen = app
        .get(&format!("/api/orders/{order_id}/payment"), Some(&admin))
        .await;
    assert_eq!(seen.body["provider_error"], "Your card was declined.");

    // Payable again: a new payment is started.
    let retried = pay(app, order_id, "pix", &buyer.token).await;
    retried.assert_status(201);
    assert_ne!(retried.body["payment_id"], payment_id.as_str());
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn without_a_worker_pay_answers_202_with_the_payment_location(pool: PgPool) {
    let mut settings = payment_settings(&[]);
    settings.wait = Duration::from_millis(300);
    let world = World::start(pool, settings, false).await;
    let app = &world.app;
    let buyer = buyer(app).await;
    let order_id = place_order(&app.pool, buyer.id).await;

    let accepted = pay(app, order_id, "pix", &buyer.token).await;
    accepted.assert_status(202);
    assert_eq!(accepted.body["status"], "initiating");
    assert_eq!(
        accepted.header("location"),
        Some(format!("/api/orders/{order_id}/payment").as_str())
    );
    let payment_id = accepted.body["payment_id"].as_str().unwrap().to_owned();
    assert_eq!(
        jobs_with_key(&app.pool, &format!("initiate:{payment_id}")).await,
        1
    );
    let shown = app
        .get(
            &format!("/api/orders/{order_id}/payment"),
            Some(&buyer.token),
        )
        .await;
    shown.assert_status(200);
    assert_eq!(shown.body["status"], "initiating");
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn an_idempotency_key_replays_the_first_answer(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), true).await;
    let app = &world.app;
    let buyer = buyer(app).await;
    let order_id = place_order(&app.pool, buyer.id).await;
    let send = |body: Value| {
        app.client
            .post(app.url(&format!("/api/orders/{order_id}/pay")))
            .bearer_auth(&buyer.token)
            .header("idempotency-key", "pay-once")
            .json(&body)
            .send()
    };
    let first = TestApp::read(send(json!({"method": "pix"})).await.unwrap()).await;
    first.assert_status(201);
    let second = TestApp::read(send(json!({"method": "pix"})).await.unwrap()).await;
    second.assert_status(201);
    assert_eq!(second.body["payment_id"], first.body["payment_id"]);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    let other = TestApp::read(send(json!({"method": "credit_card"})).await.unwrap()).await;
    other.assert_problem(409);
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn an_order_that_is_not_waiting_for_payment_is_409(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let app = &world.app;
    let buyer = buyer(app).await;
    let order_id = place_order(&app.pool, buyer.id).await;
    sqlx::query("UPDATE orders SET status = 'cancelled', payment_status = 'expired' WHERE id = $1")
        .bind(order_id)
        .execute(&app.pool)
        .await
        .unwrap();
    pay(app, order_id, "pix", &buyer.token)
        .await
        .assert_problem(409);
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn another_users_order_is_404_for_pay_payment_and_invoice(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let app = &world.app;
    let owner = buyer(app).await;
    let stranger = buyer(app).await;
    let order_id = place_order(&app.pool, owner.id).await;
    pay(app, order_id, "pix", &stranger.token)
        .await
        .assert_problem(404);
    app.get(
        &format!("/api/orders/{order_id}/payment"),
        Some(&stranger.token),
    )
    .await
    .assert_problem(404);
    app.get(
        &format!("/api/orders/{order_id}/invoice"),
        Some(&stranger.token),
    )
    .await
    .assert_problem(404);
    // And nothing was recorded for the stranger's attempt.
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
    pay(app, Uuid::now_v7(), "pix", &owner.token)
        .await
        .assert_problem(404);
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn an_open_circuit_is_503_with_retry_after_and_nothing_enqueued(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let app = &world.app;
    let buyer = buyer(app).await;
    let order_id = place_order(&app.pool, buyer.id).await;
    sqlx::query(
        "INSERT INTO circuit_breakers (provider, state, failures, window_started_at, opened_at)
         VALUES ('sandbox_pix', 'open', 5, now(), now())",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let refused = pay(app, order_id, "pix", &buyer.token).await;
    refused.assert_problem(503);
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=31).contains(&retry_after), "{retry_after}");
    let jobs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE job_type = 'initiate_payment'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(jobs, 0);
    let payments: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(payments, 0);
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_provider_timeout_retries_the_job_with_backoff(pool: PgPool) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let mut settings = payment_settings(&[
        ("PIX_PROVIDER", "propay"),
        ("PROPAY_URL", &server.uri()),
        ("GO_TO_PROPAY_SECRET", "go-to-propay-secret"),
        ("PROPAY_TIMEOUT", "200ms"),
    ]);
    settings.wait = Duration::from_millis(200);
    let world = World::start(pool, settings, true).await;
    let app = &world.app;
    let buyer = buyer(app).await;
    let order_id = place_order(&app.pool, buyer.id).await;
    let accepted = pay(app, order_id, "pix", &buyer.token).await;
    accepted.assert_status(202);
    let payment_id = accepted.body["payment_id"].as_str().unwrap().to_owned();
    let key = format!("initiate:{payment_id}");

    // Our failure record commits before apalis acknowledges the attempt: wait for both.
    eventually("a recorded failure", SETTLE, || async {
        let (failures, attempts): (i64, i32) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM job_failures f WHERE f.job_id = j.id), j.attempts
             FROM apalis.jobs j WHERE j.idempotency_key = $1",
        )
        .bind(&key)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        failures >= 1 && attempts >= 1
    })
    .await;
    let attempts: i32 =
        sqlx::query_scalar("SELECT attempts FROM apalis.jobs WHERE idempotency_key = $1")
            .bind(&key)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(attempts >= 1);
    let failure: (bool, Option<bool>, String) = sqlx::query_as(
        "SELECT f.permanent, f.retry_at > f.failed_at, f.error FROM job_failures f
         JOIN apalis.jobs j ON j.id = f.job_id WHERE j.idempotency_key = $1
         ORDER BY f.attempt LIMIT 1",
    )
    .bind(&key)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(!failure.0, "a timeout is retried: {failure:?}");
    assert_eq!(
        failure.1,
        Some(true),
        "the retry is scheduled later: {failure:?}"
    );
    // Still initiating: nothing was charged twice, the payment waits for the retry.
    let status: String = sqlx::query_scalar("SELECT status FROM payments WHERE id = $1::uuid")
        .bind(&payment_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(status == "initiating" || status == "failed", "{status}");
    world.stop().await;
}

/// A refusal by the open circuit is not the job's failure: the initiation comes back when the
/// breaker lets a call through, its attempt given back, and succeeds once the provider does.
#[sqlx::test(migrations = false)]
async fn an_open_circuit_defers_the_initiation_without_spending_an_attempt(pool: PgPool) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/pix/charges"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/pix/charges"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "txid": "PROPAYdeferred0000000000000000000001",
            "br_code": "00020101021226760014br.gov.bcb.pix2554pix.example.com/qr/v2/9d36b84fc70b478fb95c12729b90ca255204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63047EC0",
            "expires_at": "2026-11-25T12:30:00Z"
        })))
        .mount(&server)
        .await;
    let mut settings = payment_settings(&[
        ("PIX_PROVIDER", "propay"),
        ("PROPAY_URL", &server.uri()),
        ("GO_TO_PROPAY_SECRET", "go-to-propay-secret"),
    ]);
    // One failure opens the circuit; the worker's retry (at most 300 ms later) comes while it
    // is open, with seconds to spare on a busy machine.
    settings.breaker = CircuitBreaker::new(BreakerConfig {
        threshold: 1,
        window: Duration::from_secs(60),
        cooldown: Duration::from_secs(6),
    });
    settings.wait = Duration::from_millis(200);
    let world = World::start(pool, settings, true).await;
    let app = &world.app;
    let buyer = buyer(app).await;
    let order_id = place_order(&app.pool, buyer.id).await;
    let accepted = pay(app, order_id, "pix", &buyer.token).await;
    accepted.assert_status(202);
    let payment_id = accepted.body["payment_id"].as_str().unwrap().to_owned();
    let key = format!("initiate:{payment_id}");

    eventually("the payment initiated", SETTLE, || async {
        let status: String = sqlx::query_scalar("SELECT status FROM payments WHERE id = $1::uuid")
            .bind(&payment_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        status == "pending"
    })
    .await;
    // apalis writes the attempt count with its acknowledgement, after the handler's effect
    // is visible: wait for it before counting.
    eventually("the initiation job acknowledged", SETTLE, || async {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM apalis.jobs WHERE idempotency_key = $1")
                .bind(&key)
                .fetch_optional(&app.pool)
                .await
                .unwrap();
        status.as_deref() == Some("Done")
    })
    .await;
    let history: Vec<(i32, bool, String)> = sqlx::query_as(
        "SELECT f.attempt, f.permanent, f.error FROM job_failures f
         JOIN apalis.jobs j ON j.id = f.job_id WHERE j.idempotency_key = $1 ORDER BY f.attempt",
    )
    .bind(&key)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert!(history[0].2.contains("500"), "{history:?}");
    assert!(history[1].2.contains("circuit is open"), "{history:?}");
    let (attempts, max_attempts): (i32, i32) =
        sqlx::query_as("SELECT attempts, max_attempts FROM apalis.jobs WHERE idempotency_key = $1")
            .bind(&key)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 3, "the 500, the refusal, the success");
    assert_eq!(max_attempts, 6, "the refusal gave its attempt back (5 + 1)");
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_providers_error_text_is_shown_to_admins_only(pool: PgPool) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
            "type": "invalid_request_error",
            "message": "Invalid API Key provided: sk_live_********************1234"}})))
        .mount(&server)
        .await;
    let settings = payment_settings(&[
        ("CARD_PROVIDER", "stripe"),
        ("STRIPE_API_URL", &server.uri()),
        ("STRIPE_SECRET_KEY", "sk_live_x"),
    ]);
    let world = World::start(pool, settings, true).await;
    let app = &world.app;
    let buyer = buyer(app).await;
    let order_id = place_order(&app.pool, buyer.id).await;

    let paid = pay(app, order_id, "credit_card", &buyer.token).await;
    paid.assert_status(201);
    assert_eq!(paid.body["status"], "failed");
    let shown = app
        .get(
            &format!("/api/orders/{order_id}/payment"),
            Some(&buyer.token),
        )
        .await;
    for answer in [&paid, &shown] {
        assert!(!answer.text.contains("sk_live"), "{}", answer.text);
        assert!(!answer.text.contains("API Key"), "{}", answer.text);
        assert!(answer.body["error"].as_str().is_some(), "{}", answer.text);
    }
    let admin = admin_token(app).await;
    let seen = app
        .get(&format!("/api/orders/{order_id}/payment"), Some(&admin))
        .await;
    assert!(
        seen.body["provider_error"]
            .as_str()
            .unwrap()
            .contains("Invalid API Key provided"),
        "{}",
        seen.text
    );
    world.stop().await;
}

async fn set_deadline(pool: &PgPool, order_id: Uuid, seconds_from_now: i64) {
    sqlx::query("UPDATE orders SET expires_at = now() + make_interval(secs => $2) WHERE id = $1")
        .bind(order_id)
        .bind(seconds_from_now as f64)
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test(migrations = false)]
async fn a_pix_code_never_outlives_its_order(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), true).await;
    let app = &world.app;
    let buyer = buyer(app).await;

    // PIX_EXPIRES_IN is 30 min, the order has 10 min left: the code lives 10 min at most.
    let order_id = place_order(&app.pool, buyer.id).await;
    set_deadline(&app.pool, order_id, 600).await;
    let paid = pay(app, order_id, "pix", &buyer.token).await;
    paid.assert_status(201);
    let code_expires: chrono::DateTime<chrono::Utc> =
        paid.body["expires_at"].as_str().unwrap().parse().unwrap();
    let deadline: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT expires_at FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(code_expires <= deadline, "{code_expires} > {deadline}");
    assert!(code_expires > deadline - chrono::Duration::seconds(60));

    // Less than PIX_MIN_REMAINING (2 min) left: 409, nothing recorded.
    let closing = place_order(&app.pool, buyer.id).await;
    set_deadline(&app.pool, closing, 90).await;
    pay(app, closing, "pix", &buyer.token)
        .await
        .assert_problem(409);
    let payments: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE order_id = $1")
        .bind(closing)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(payments, 0);
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_pix_initiation_after_the_window_closed_fails_the_payment(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), false).await;
    let app = &world.app;
    let buyer = buyer(app).await;
    let order_id = place_order(&app.pool, buyer.id).await;
    let settings = &app.state.config.payments;
    let mut conn = app.pool.acquire().await.unwrap();
    let started = cart_core::payments::flow::start(
        &mut conn,
        settings,
        buyer.id,
        order_id,
        cart_core::payments::flow::PaymentMethod::Pix,
    )
    .await
    .unwrap();
    // The job runs late (a busy queue): by now the order has 30 s left.
    set_deadline(&app.pool, order_id, 30).await;
    let initiated = cart_core::payments::flow::initiate(&app.pool, settings, started.payment().id)
        .await
        .unwrap();
    let cart_core::payments::flow::Initiated::Failed(failed) = initiated else {
        panic!("expected a failed payment, got {initiated:?}");
    };
    assert!(failed.copy_paste.is_none() && failed.expires_at.is_none());
    world.stop().await;
}

#[sqlx::test(migrations = false)]
async fn a_try_again_conflict_is_not_replayed_for_its_idempotency_key(pool: PgPool) {
    let world = World::start(pool, payment_settings(&[]), true).await;
    let app = &world.app;
    let buyer = buyer(app).await;
    let order_id = place_order(&app.pool, buyer.id).await;
    // A payment still active behind a newer failed one: the one-active-payment index refuses
    // the new payment, exactly as when a concurrent `pay` has just won the race.
    let stale = Uuid::now_v7();
    for (id, status, age) in [(stale, "pending", 60.0), (Uuid::now_v7(), "failed", 0.0)] {
        sqlx::query(
            "INSERT INTO payments (id, order_id, method, provider, amount_cents, status, created_at)
             VALUES ($1, $2, 'pix', 'sandbox_pix', $3, $4, now() - make_interval(secs => $5))",
        )
        .bind(id)
        .bind(order_id)
        .bind(ORDER_TOTAL)
        .bind(status)
        .bind(age)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let send = || {
        app.client
            .post(app.url(&format!("/api/orders/{order_id}/pay")))
            .bearer_auth(&buyer.token)
            .header("idempotency-key", "pay-after-race")
            .json(&json!({"method": "pix"}))
            .send()
    };
    let busy = TestApp::read(send().await.unwrap()).await;
    busy.assert_problem(409);
    assert!(busy.header("retry-after").is_some(), "{:?}", busy.headers);

    // The race is over; the same key runs afresh instead of replaying the 409.
    sqlx::query("UPDATE payments SET status = 'expired' WHERE id = $1")
        .bind(stale)
        .execute(&app.pool)
        .await
        .unwrap();
    let retried = TestApp::read(send().await.unwrap()).await;
    retried.assert_status(201);
    assert_eq!(retried.header("idempotent-replayed"), None);
    // And that final answer is the one replayed from now on.
    let replayed = TestApp::read(send().await.unwrap()).await;
    replayed.assert_status(201);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(replayed.body["payment_id"], retried.body["payment_id"]);
    world.stop().await;
}
