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
    business_events::{self, PaymentDetail, PaymentOutcome},
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

/// A payment as the API shows it: PIX fields for PIX, the client secret for cards, and for a
/// payment that did not go through a reason fit for the buyer. What the provider said
/// (which may name our account, keys or internals) is shown to admins only.
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
    /// Why the payment did not go through, in words for the buyer (`failed`,
    /// `amount_mismatch`, `paid_after_cancel`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Admins only: the provider's own text or our operator note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl PaymentView {
    /// The payment as `viewer_is_admin` may see it: the provider's text only for admins.
    pub fn new(p: Payment, viewer_is_admin: bool) -> Self {
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
            error: buyer_reason(p.status).map(str::to_owned),
            provider_error: if viewer_is_admin { p.error } else { None },
            created_at: p.created_at,
        }
    }
}

/// What a buyer is told about a payment that did not go through.
fn buyer_reason(status: PaymentState) -> Option<&'static str> {
    match status {
        PaymentState::Failed => Some(
            "the payment could not be completed; please try again or choose another payment method",
        ),
        PaymentState::AmountMismatch => {
            Some("the amount received differs from the order total; our team will review it")
        }
        PaymentState::PaidAfterCancel => {
            Some("the payment arrived after the order was closed; it will be refunded")
        }
        _ => None,
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

    /// Whether any provider that `source`'s webhook route serves is configured.
    pub fn route_is_served(&self, source: super::webhooks::WebhookSource) -> bool {
        source.serves(self.providers.pix.name()) || source.serves(self.providers.card.name())
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
/// enqueues its initiation. A payment already in flight is returned instead. A PIX payment
/// needs at least `PIX_MIN_REMAINING` of the order's payment window left (409 otherwise):
/// its code never outlives the order.
pub async fn start(
    conn: &mut PgConnection,
    settings: &PaymentSettings,
    user_id: Uuid,
    order_id: Uuid,
    method: PaymentMethod,
) -> Result<Started> {
    let mut tx = conn.begin().await?;
    let order = sqlx::query!(
        r#"SELECT user_id, total_cents, expires_at, now() AS "now!"
           FROM orders WHERE id = $1 FOR NO KEY UPDATE"#,
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
    let min_remaining = settings.providers.pix_min_remaining;
    if method == PaymentMethod::Pix && window_left(order.expires_at, order.now) < min_remaining {
        return Err(Error::conflict(format!(
            "less than {} s are left to pay this order; a PIX code would expire with it",
            min_remaining.as_secs()
        )));
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
            Error::try_again("a payment for this order is being started; try again")
        }
        _ => Error::Db(e),
    })?;
    jobs::enqueue(&mut tx, &InitiatePayment { payment_id }).await?;
    let payment = get(&mut tx, payment_id).await?;
    tx.commit().await?;
    business_events::payment(PaymentOutcome::Started, &payment, PaymentDetail::default());
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
    /// What is left of the order's payment window, by the database's clock (the one the
    /// expiry ticker goes by).
    window_left: Duration,
}

async fn charge_context(conn: &mut PgConnection, order_id: Uuid) -> Result<ChargeContext> {
    let row = sqlx::query!(
        r#"SELECT o.number, o.recipient_cpf, o.expires_at, now() AS "now!", u.name, u.email
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
        window_left: window_left(row.expires_at, row.now),
    })
}

/// Time from `now` to an order's payment deadline (zero once past).
fn window_left(deadline: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (deadline - now).to_std().unwrap_or(Duration::ZERO)
}

/// Taken off a PIX charge's life: the provider starts its clock when our request reaches it,
/// a moment after we measured the order's window, and its clock is not ours.
const PIX_EXPIRY_MARGIN: Duration = Duration::from_secs(5);

/// How long a PIX charge for an order with `window_left` may live: `PIX_EXPIRES_IN`, but never
/// past the order's deadline. `None` when less than `PIX_MIN_REMAINING` is left.
fn pix_charge_life(providers: &PaymentProviders, window_left: Duration) -> Option<Duration> {
    if window_left < providers.pix_min_remaining {
        return None;
    }
    Some(
        providers
            .pix_expires_in
            .min(window_left.saturating_sub(PIX_EXPIRY_MARGIN)),
    )
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
            let Some(expires_in) = pix_charge_life(&settings.providers, context.window_left) else {
                // Too late for a code the buyer could still pay before the order expires.
                let mut conn = pool.acquire().await.map_err(Error::from)?;
                let failed = mark_failed(
                    &mut conn,
                    payment_id,
                    &format!(
                        "the order's payment window has {} s left, less than PIX_MIN_REMAINING",
                        context.window_left.as_secs()
                    ),
                )
                .await?;
                return Ok(Initiated::Failed(failed));
            };
            let provider = settings.providers.pix.clone();
            let request = PixChargeRequest {
                payment_id,
                order_id: payment.order_id,
                order_number: context.order_number,
                amount_cents: payment.amount_cents,
                description,
                payer: context.payer,
                expires_in,
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
    business_events::payment(
        PaymentOutcome::Initiated,
        &payment,
        PaymentDetail::default(),
    );
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
    let failed = sqlx::query!(
        r#"UPDATE payments SET status = 'failed', error = $2, updated_at = now()
           WHERE id = $1 AND status = 'initiating'"#,
        payment_id,
        reason,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    notify_ready(&mut tx, payment_id).await?;
    let payment = get(&mut tx, payment_id).await?;
    tx.commit().await?;
    if failed > 0 {
        let detail = PaymentDetail {
            reason: Some(reason),
            ..PaymentDetail::default()
        };
        business_events::payment(PaymentOutcome::InitiationFailed, &payment, detail);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pix_charge_never_outlives_its_order() {
        let providers = PaymentSettings::for_tests().providers;
        let minutes = |m: u64| Duration::from_secs(m * 60);
        assert_eq!(providers.pix_expires_in, minutes(30));
        assert_eq!(pix_charge_life(&providers, minutes(60)), Some(minutes(30)));
        assert_eq!(
            pix_charge_life(&providers, minutes(10)),
            Some(minutes(10) - PIX_EXPIRY_MARGIN)
        );
        assert_eq!(
            pix_charge_life(&providers, minutes(2)),
            Some(minutes(2) - PIX_EXPIRY_MARGIN)
        );
        assert_eq!(
            pix_charge_life(&providers, minutes(2) - Duration::from_secs(1)),
            None
        );
        assert_eq!(pix_charge_life(&providers, Duration::ZERO), None);
    }

    #[test]
    fn buyers_get_a_generic_reason_and_only_admins_the_providers_text() {
        let now = Utc::now();
        let failed = Payment {
            id: Uuid::now_v7(),
            order_id: Uuid::now_v7(),
            method: PaymentMethod::CreditCard,
            provider: "stripe".into(),
            amount_cents: 100,
            status: PaymentState::Failed,
            txid: None,
            provider_reference: None,
            copy_paste: None,
            qr_code: None,
            qr_code_url: None,
            client_secret: None,
            expires_at: None,
            error: Some("Invalid API Key provided: sk_live_abc".into()),
            paid_amount_cents: None,
            paid_at: None,
            refund_reference: None,
            created_at: now,
            updated_at: now,
        };
        let buyer = serde_json::to_string(&PaymentView::new(failed.clone(), false)).unwrap();
        assert!(!buyer.contains("sk_live"), "{buyer}");
        assert!(buyer.contains("\"error\""), "{buyer}");
        let admin = PaymentView::new(failed, true);
        assert_eq!(
            admin.provider_error.as_deref(),
            Some("Invalid API Key provided: sk_live_abc")
        );
    }
}
