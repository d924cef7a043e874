//! The payment flow: recording a payment for an order (`POST /api/orders/{id}/pay`), the
//! initiation job that asks the provider for the charge, and reading payments back.
//!
//! The API never calls a provider: it records a payment `initiating` and enqueues
//! `initiate_payment` in one transaction, then waits briefly for the job, which announces
//! the finished payment with `pg_notify('payment_ready', <payment id>)` (see `flow_wait`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use super::{
    breaker::{BreakerState, CallError, CircuitBreaker},
    provider::{CardIntentRequest, Payer, PixChargeRequest},
    settings::PaymentProviders,
    signature::WebhookVerifiers,
};
use crate::{
    Error, Result,
    config::{self, ConfigError},
    jobs::{self, initiate_payment::InitiatePayment},
    orders::{Actor, OrderState, OrderStatus, PaymentStatus, status},
};

/// The channel the initiation job notifies when a payment leaves `initiating`.
pub const READY_CHANNEL: &str = "payment_ready";

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum PaymentMethod {
    Pix,
    CreditCard,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum PaymentState {
    /// Recorded; the provider has not been asked yet.
    Initiating,
    /// The charge exists; waiting for the payer.
    Pending,
    Paid,
    Failed,
    Expired,
    Refunded,
    RefundPending,
    /// Money arrived but not the order's total: an operator decides.
    AmountMismatch,
    /// Money arrived for an order that was cancelled or expired (or already paid): refunded.
    PaidAfterCancel,
}

impl PaymentState {
    pub fn is_active(self) -> bool {
        matches!(self, Self::Initiating | Self::Pending)
    }
}

/// A `payments` row.
#[derive(Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: Uuid,
    pub order_id: Uuid,
    pub method: PaymentMethod,
    pub provider: String,
    pub amount_cents: i64,
    pub status: PaymentState,
    pub txid: Option<String>,
    pub provider_reference: Option<String>,
    pub copy_paste: Option<String>,
    pub qr_code: Option<String>,
    pub qr_code_url: Option<String>,
    pub client_secret: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub paid_amount_cents: Option<i64>,
    pub paid_at: Option<DateTime<Utc>>,
    pub refund_reference: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for Payment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payment")
            .field("id", &self.id)
            .field("order_id", &self.order_id)
            .field("method", &self.method)
            .field("provider", &self.provider)
            .field("amount_cents", &self.amount_cents)
            .field("status", &self.status)
            .field("txid", &self.txid)
            .field("provider_reference", &self.provider_reference)
            .finish_non_exhaustive()
    }
}

/// A payment as the API shows it to its payer: PIX fields for PIX, the client secret for
/// cards, the error of a failed one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentView {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub method: PaymentMethod,
    pub status: PaymentState,
    pub amount_cents: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txid: Option<String>,
    /// The BR Code ("PIX copia e cola").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_paste: Option<String>,
    /// `data:image/png;base64,…`
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_code_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Cards: handed to the payment form to confirm the payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Payment> for PaymentView {
    fn from(p: Payment) -> Self {
        Self {
            payment_id: p.id,
            order_id: p.order_id,
            method: p.method,
            status: p.status,
            amount_cents: p.amount_cents,
            txid: p.txid,
            copy_paste: p.copy_paste,
            qr_code: p.qr_code,
            qr_code_url: p.qr_code_url,
            expires_at: p.expires_at,
            client_secret: p.client_secret,
            error: p.error,
            created_at: p.created_at,
        }
    }
}

/// What the API and the worker need to run payments.
#[derive(Clone)]
pub struct PaymentSettings {
    pub providers: PaymentProviders,
    pub verifiers: WebhookVerifiers,
    pub breaker: CircuitBreaker,
    /// `PAYMENT_WAIT`: how long `pay` waits for the initiation job before answering 202.
    pub wait: Duration,
    /// `PIX_PROVIDER=sandbox`: the sandbox confirmation route is available.
    pub pix_sandbox: bool,
}

impl std::fmt::Debug for PaymentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentSettings")
            .field("providers", &self.providers)
            .field("breaker", &self.breaker.config())
            .field("wait", &self.wait)
            .field("pix_sandbox", &self.pix_sandbox)
            .finish_non_exhaustive()
    }
}

/// The webhook secrets of [`PaymentSettings::for_tests`].
pub const TEST_PROPAY_SECRET: &str = "test-propay-to-go-secret";
pub const TEST_STRIPE_SECRET: &str = "whsec_test_secret";

pub const DEFAULT_PAYMENT_WAIT: Duration = Duration::from_secs(3);

impl PaymentSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            providers: super::providers_from_env()?,
            verifiers: super::webhook_verifiers_from_env()?,
            breaker: CircuitBreaker::new(super::BreakerConfig::from_env()?),
            wait: config::var_duration("PAYMENT_WAIT", DEFAULT_PAYMENT_WAIT)?,
            pix_sandbox: config::var_or("PIX_PROVIDER", "sandbox")
                .trim()
                .eq_ignore_ascii_case("sandbox"),
        })
    }

    /// Sandbox providers, [`TEST_PROPAY_SECRET`] and [`TEST_STRIPE_SECRET`] for webhooks, the
    /// default breaker and wait: what the test harnesses start with.
    pub fn for_tests() -> Self {
        let env = |name: &str| match name {
            "PROPAY_TO_GO_SECRET" => Some(TEST_PROPAY_SECRET.to_owned()),
            "STRIPE_WEBHOOK_SECRET" => Some(TEST_STRIPE_SECRET.to_owned()),
            _ => None,
        };
        Self {
            providers: super::settings::providers_from(&env)
                .unwrap_or_else(|e| unreachable!("sandbox providers need no settings: {e}")),
            verifiers: super::settings::webhook_verifiers_from(&env)
                .unwrap_or_else(|e| unreachable!("the test secrets are valid: {e}")),
            breaker: CircuitBreaker::new(super::BreakerConfig::default()),
            wait: DEFAULT_PAYMENT_WAIT,
            pix_sandbox: true,
        }
    }

    /// The provider name a new payment of `method` goes to.
    pub fn provider_for(&self, method: PaymentMethod) -> &'static str {
        match method {
            PaymentMethod::Pix => self.providers.pix.name(),
            PaymentMethod::CreditCard => self.providers.card.name(),
        }
    }
}

const PAYMENT_COLUMNS: &str = "id, order_id, method, provider, amount_cents, status, txid, \
     provider_reference, copy_paste, qr_code, qr_code_url, client_secret, expires_at, error, \
     paid_amount_cents, paid_at, refund_reference, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct PaymentRow {
    id: Uuid,
    order_id: Uuid,
    method: PaymentMethod,
    provider: String,
    amount_cents: i64,
    status: PaymentState,
    txid: Option<String>,
    provider_reference: Option<String>,
    copy_paste: Option<String>,
    qr_code: Option<String>,
    qr_code_url: Option<String>,
    client_secret: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    error: Option<String>,
    paid_amount_cents: Option<i64>,
    paid_at: Option<DateTime<Utc>>,
    refund_reference: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<PaymentRow> for Payment {
    fn from(r: PaymentRow) -> Self {
        Self {
            id: r.id,
            order_id: r.order_id,
            method: r.method,
            provider: r.provider,
            amount_cents: r.amount_cents,
            status: r.status,
            txid: r.txid,
            provider_reference: r.provider_reference,
            copy_paste: r.copy_paste,
            qr_code: r.qr_code,
            qr_code_url: r.qr_code_url,
            client_secret: r.client_secret,
            expires_at: r.expires_at,
            error: r.error,
            paid_amount_cents: r.paid_amount_cents,
            paid_at: r.paid_at,
            refund_reference: r.refund_reference,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Which payment a query is about.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PaymentKey<'a> {
    Id(Uuid),
    Txid(&'a str),
    ProviderReference(&'a str),
    LatestOfOrder(Uuid),
}

/// Reads one payment; `lock` takes its row lock for the caller's transaction.
/// (Runtime-checked SQL: the key column is chosen at run time.)
pub(crate) async fn fetch(
    conn: &mut PgConnection,
    key: PaymentKey<'_>,
    lock: bool,
) -> Result<Option<Payment>> {
    let (filter, order) = match key {
        PaymentKey::Id(_) => ("id = $1", ""),
        PaymentKey::Txid(_) => ("txid = $1", ""),
        PaymentKey::ProviderReference(_) => ("provider_reference = $1", ""),
        PaymentKey::LatestOfOrder(_) => (
            "order_id = $1",
            " ORDER BY created_at DESC, id DESC LIMIT 1",
        ),
    };
    let sql = format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE {filter}{order}{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    // Built only from the constant pieces above; the values are bound.
    let query = sqlx::query_as::<_, PaymentRow>(sqlx::AssertSqlSafe(sql));
    let query = match key {
        PaymentKey::Id(id) | PaymentKey::LatestOfOrder(id) => query.bind(id),
        PaymentKey::Txid(s) | PaymentKey::ProviderReference(s) => query.bind(s.to_owned()),
    };
    Ok(query.fetch_optional(&mut *conn).await?.map(Payment::from))
}

pub async fn get(conn: &mut PgConnection, payment_id: Uuid) -> Result<Payment> {
    fetch(conn, PaymentKey::Id(payment_id), false)
        .await?
        .ok_or(Error::NotFound)
}

/// The latest payment of an order its owner (or an admin) may see.
pub async fn latest_for_order(
    conn: &mut PgConnection,
    order_id: Uuid,
    viewer: crate::orders::Viewer,
) -> Result<Payment> {
    let owner = order_owner(conn, order_id).await?;
    if !viewer.may_see(owner) {
        return Err(Error::NotFound);
    }
    fetch(conn, PaymentKey::LatestOfOrder(order_id), false)
        .await?
        .ok_or(Error::NotFound)
}

async fn order_owner(conn: &mut PgConnection, order_id: Uuid) -> Result<Uuid> {
    sqlx::query_scalar!("SELECT user_id FROM orders WHERE id = $1", order_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound)
}

/// What `pay` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// A new payment was recorded and its initiation enqueued.
    New(Payment),
    /// A payment is already initiating or pending for the order: no second charge.
    Existing(Payment),
}

impl Started {
    pub fn payment(&self) -> &Payment {
        match self {
            Self::New(p) | Self::Existing(p) => p,
        }
    }
}

/// `POST /api/orders/{id}/pay`: in one transaction, checks the order is `user_id`'s and
/// payable, refuses at once while the provider's circuit is open, records the payment and
/// enqueues its initiation. A payment already in flight is returned instead.
pub async fn start(
    conn: &mut PgConnection,
    settings: &PaymentSettings,
    user_id: Uuid,
    order_id: Uuid,
    method: PaymentMethod,
) -> Result<Started> {
    let mut tx = conn.begin().await?;
    let order = sqlx::query!(
        r#"SELECT user_id, total_cents FROM orders WHERE id = $1 FOR NO KEY UPDATE"#,
        order_id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .filter(|o| o.user_id == user_id)
    .ok_or(Error::NotFound)?;
    let state = status::lock_state(&mut tx, order_id).await?;
    if state.status != OrderStatus::PendingPayment {
        return Err(Error::conflict(format!(
            "the order is {}, not waiting for a payment",
            state.status
        )));
    }
    if let Some(active) = active_payment(&mut tx, order_id).await? {
        tx.commit().await?;
        return Ok(Started::Existing(active));
    }
    let provider = settings.provider_for(method);
    if let Some(retry_after) = circuit_refusal(&mut tx, &settings.breaker, provider).await? {
        return Err(Error::Unavailable {
            reason: format!("payment provider {provider} is unavailable (circuit open)"),
            retry_after: Some(retry_after),
        });
    }
    if state.payment == PaymentStatus::Failed {
        // A failed attempt is behind us: the order waits for this payment now.
        status::transition(
            &mut tx,
            order_id,
            OrderState::new(OrderStatus::PendingPayment, PaymentStatus::PendingPayment),
            Actor::User(user_id),
            "payment retried",
        )
        .await?;
    }
    let payment_id = Uuid::now_v7();
    sqlx::query!(
        r#"INSERT INTO payments (id, order_id, method, provider, amount_cents)
           VALUES ($1, $2, $3, $4, $5)"#,
        payment_id,
        order_id,
        method as PaymentMethod,
        provider,
        order.total_cents,
    )
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        // A concurrent `pay` won the one-active-payment race: the caller retries and gets it.
        sqlx::Error::Database(db) if db.constraint() == Some("payments_one_active_per_order") => {
            Error::conflict("a payment for this order is being started; try again")
        }
        _ => Error::Db(e),
    })?;
    jobs::enqueue(&mut tx, &InitiatePayment { payment_id }).await?;
    let payment = get(&mut tx, payment_id).await?;
    tx.commit().await?;
    tracing::info!(%payment_id, %order_id, provider, ?method, "payment recorded; initiation enqueued");
    Ok(Started::New(payment))
}

async fn active_payment(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<Payment>> {
    let latest = fetch(conn, PaymentKey::LatestOfOrder(order_id), false).await?;
    Ok(latest.filter(|p| p.status.is_active()))
}

/// `Some(retry after)` while the breaker of `provider` refuses calls. Read-only: it never
/// takes the half-open probe, which belongs to the job that will call the provider.
async fn circuit_refusal(
    conn: &mut PgConnection,
    breaker: &CircuitBreaker,
    provider: &str,
) -> Result<Option<Duration>> {
    let snapshot = breaker.state(conn, provider).await?;
    let since = match snapshot.state {
        BreakerState::Closed => return Ok(None),
        BreakerState::Open => snapshot.opened_at,
        BreakerState::HalfOpen => snapshot.probe_started_at.or(snapshot.opened_at),
    };
    let cooldown = chrono::Duration::from_std(breaker.config().cooldown)
        .unwrap_or_else(|_| chrono::Duration::seconds(30));
    let Some(since) = since else {
        return Ok(None);
    };
    let remaining = (since + cooldown) - Utc::now();
    if remaining <= chrono::Duration::zero() {
        // The cooldown is over: the job may probe.
        return Ok(None);
    }
    let secs = u64::try_from(remaining.num_seconds()).unwrap_or(0) + 1;
    Ok(Some(Duration::from_secs(secs)))
}

/// What one run of the initiation job achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Initiated {
    /// The charge exists; the payment is `pending`.
    Pending(Payment),
    /// The provider refused for good; the payment is `failed` and the order payable again.
    Failed(Payment),
    /// Nothing to do: the payment is no longer `initiating`.
    AlreadyDone(Payment),
}

/// Why a run of the initiation job must be retried.
#[derive(Debug, thiserror::Error)]
pub enum InitiateRetry {
    #[error("payment provider {provider} circuit is open; retry in {}s", retry_after.as_secs())]
    CircuitOpen {
        provider: String,
        retry_after: Duration,
    },
    #[error("payment provider failed: {0}")]
    Provider(crate::http_client::ProviderError),
    #[error(transparent)]
    Db(#[from] Error),
}

struct ChargeContext {
    order_number: String,
    payer: Payer,
}

async fn charge_context(conn: &mut PgConnection, order_id: Uuid) -> Result<ChargeContext> {
    let row = sqlx::query!(
        r#"SELECT o.number, o.recipient_cpf, u.name, u.email
           FROM orders o JOIN users u ON u.id = o.user_id
           WHERE o.id = $1"#,
        order_id,
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound)?;
    Ok(ChargeContext {
        order_number: row.number,
        payer: Payer {
            name: row.name,
            cpf: row.recipient_cpf,
            email: row.email,
        },
    })
}

/// The `initiate_payment` job: asks the provider for the charge through the circuit breaker
/// (which refuses without calling while open), stores it and notifies `payment_ready`.
/// The provider deduplicates on the payment id, so a retry never creates a second charge.
pub async fn initiate(
    pool: &PgPool,
    settings: &PaymentSettings,
    payment_id: Uuid,
) -> Result<Initiated, InitiateRetry> {
    let (payment, context) = {
        let mut conn = pool.acquire().await.map_err(Error::from)?;
        let payment = get(&mut conn, payment_id).await?;
        if payment.status != PaymentState::Initiating {
            return Ok(Initiated::AlreadyDone(payment));
        }
        let context = charge_context(&mut conn, payment.order_id).await?;
        (payment, context)
    };
    let description = format!("Pedido {}", context.order_number);
    let result = match payment.method {
        PaymentMethod::Pix => {
            let provider = settings.providers.pix.clone();
            let request = PixChargeRequest {
                payment_id,
                order_id: payment.order_id,
                order_number: context.order_number,
                amount_cents: payment.amount_cents,
                description,
                payer: context.payer,
                expires_in: settings.providers.pix_expires_in,
            };
            settings
                .breaker
                .call(pool, provider.name(), provider.create_charge(&request))
                .await
                .map(ProviderAnswer::Pix)
        }
        PaymentMethod::CreditCard => {
            let provider = settings.providers.card.clone();
            let request = CardIntentRequest {
                payment_id,
                order_id: payment.order_id,
                order_number: context.order_number,
                amount_cents: payment.amount_cents,
                description,
                payer: context.payer,
            };
            settings
                .breaker
                .call(pool, provider.name(), provider.create_intent(&request))
                .await
                .map(ProviderAnswer::Card)
        }
    };
    let mut conn = pool.acquire().await.map_err(Error::from)?;
    match result {
        Ok(answer) => Ok(store_answer(&mut conn, payment_id, answer).await?),
        Err(CallError::Breaker(super::BreakerError::Open {
            provider,
            retry_after,
        })) => Err(InitiateRetry::CircuitOpen {
            provider,
            retry_after,
        }),
        Err(CallError::Breaker(super::BreakerError::Db(e))) => Err(InitiateRetry::Db(Error::Db(e))),
        Err(CallError::Provider(err)) if err.is_permanent() => {
            let failed = mark_failed(&mut conn, payment_id, &err.to_string()).await?;
            Ok(Initiated::Failed(failed))
        }
        Err(CallError::Provider(err)) => Err(InitiateRetry::Provider(err)),
    }
}

enum ProviderAnswer {
    Pix(super::PixCharge),
    Card(super::CardIntent),
}

async fn store_answer(
    conn: &mut PgConnection,
    payment_id: Uuid,
    answer: ProviderAnswer,
) -> Result<Initiated> {
    let mut tx = conn.begin().await?;
    let updated = match answer {
        ProviderAnswer::Pix(charge) => sqlx::query!(
            r#"UPDATE payments SET status = 'pending', txid = $2, provider_reference = $3,
                      copy_paste = $4, qr_code = $5, qr_code_url = $6, expires_at = $7,
                      updated_at = now()
               WHERE id = $1 AND status = 'initiating'"#,
            payment_id,
            charge.txid,
            charge.provider_reference,
            charge.copy_paste,
            charge.qr_code,
            charge.qr_code_url,
            charge.expires_at,
        )
        .execute(&mut *tx)
        .await?
        .rows_affected(),
        ProviderAnswer::Card(intent) => sqlx::query!(
            r#"UPDATE payments SET status = 'pending', provider_reference = $2,
                      client_secret = $3, updated_at = now()
               WHERE id = $1 AND status = 'initiating'"#,
            payment_id,
            intent.provider_reference,
            intent.client_secret,
        )
        .execute(&mut *tx)
        .await?
        .rows_affected(),
    };
    notify_ready(&mut tx, payment_id).await?;
    let payment = get(&mut tx, payment_id).await?;
    tx.commit().await?;
    if updated == 0 {
        return Ok(Initiated::AlreadyDone(payment));
    }
    tracing::info!(%payment_id, "payment charge created; pending");
    Ok(Initiated::Pending(payment))
}

/// Ends an initiating payment as `failed` (a provider refusal, or the job's last attempt)
/// and wakes the waiting request. The order stays payable.
pub async fn mark_failed(
    conn: &mut PgConnection,
    payment_id: Uuid,
    reason: &str,
) -> Result<Payment> {
    let mut tx = conn.begin().await?;
    sqlx::query!(
        r#"UPDATE payments SET status = 'failed', error = $2, updated_at = now()
           WHERE id = $1 AND status = 'initiating'"#,
        payment_id,
        reason,
    )
    .execute(&mut *tx)
    .await?;
    notify_ready(&mut tx, payment_id).await?;
    let payment = get(&mut tx, payment_id).await?;
    tx.commit().await?;
    tracing::warn!(%payment_id, reason, "payment initiation failed");
    Ok(payment)
}

async fn notify_ready(conn: &mut PgConnection, payment_id: Uuid) -> Result<()> {
    sqlx::query!(
        "SELECT pg_notify($1, $2)",
        READY_CHANNEL,
        payment_id.to_string()
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
