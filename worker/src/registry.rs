//! Which job kinds and tickers this worker runs. Adding a kind is one line in
//! [`Registry::standard`]: its payload implements `cart_core::jobs::Job` (in core) and
//! [`JobHandler`] (here, in `jobs/`); a periodic one also implements `TickJob` and is added
//! with [`Registry::ticker`] instead.

use std::time::Duration;

use cart_core::jobs::{Job, maintenance::TickJob};
use chrono::{DateTime, Utc};
use futures::{FutureExt, future::BoxFuture};
use serde_json::Value;
use sqlx::PgPool;

use crate::{
    handler::JobHandler,
    jobs,
    queue::{self, StartWorker},
};

/// One job kind the worker runs.
#[derive(Clone)]
pub struct KindSpec {
    pub name: &'static str,
    pub max_attempts: i32,
    pub(crate) start: StartWorker,
    /// Decodes a payload typed by an operator; answers the job's idempotency key.
    pub(crate) check: fn(&Value) -> Result<Option<String>, serde_json::Error>,
}

/// A kind enqueued once per tick of a fixed interval.
#[derive(Clone)]
pub struct TickerSpec {
    pub name: &'static str,
    pub interval_var: &'static str,
    pub default_interval: Duration,
    pub(crate) enqueue: EnqueueTick,
}

/// Enqueues the job of one tick; `None` when another process already did.
pub(crate) type EnqueueTick =
    fn(PgPool, DateTime<Utc>) -> BoxFuture<'static, cart_core::Result<Option<String>>>;

#[derive(Clone, Default)]
pub struct Registry {
    kinds: Vec<KindSpec>,
    tickers: Vec<TickerSpec>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every kind the store needs.
    pub fn standard() -> Self {
        Self::new()
            .register::<cart_core::jobs::send_email::SendEmail>()
            .register::<cart_core::jobs::send_password_reset::SendPasswordReset>()
            .register::<cart_core::jobs::scrub_outbox::ScrubOutbox>()
            .register::<cart_core::jobs::initiate_payment::InitiatePayment>()
            .register::<cart_core::jobs::reconcile_payment::ReconcilePayment>()
            .register::<cart_core::jobs::emit_invoice::EmitInvoice>()
            .register::<cart_core::jobs::refund_payment::RefundPayment>()
            .ticker::<cart_core::jobs::maintenance::PruneJobs>()
            .ticker::<cart_core::jobs::maintenance::PurgeResetTokens>()
            .ticker::<cart_core::jobs::maintenance::PurgeSessions>()
            .ticker::<cart_core::jobs::maintenance::PurgeAbandonedCarts>()
            .register::<cart_core::jobs::expire_order::ExpireOrder>()
            .ticker::<cart_core::jobs::expire_order::ExpireDueOrders>()
            .ticker::<cart_core::idempotency::PruneIdempotencyKeys>()
    }

    /// Adds the kinds the integration tests use to drive real worker processes.
    pub fn with_test_jobs(self) -> Self {
        self.register::<jobs::testing::Record>()
            .register::<jobs::testing::Noop>()
            .ticker::<jobs::testing::Tick>()
    }

    pub fn register<J: JobHandler>(mut self) -> Self {
        if self.kind(J::NAME).is_none() {
            self.kinds.push(KindSpec {
                name: J::NAME,
                max_attempts: J::MAX_ATTEMPTS,
                start: queue::start_worker::<J>,
                check: check_payload::<J>,
            });
        }
        self
    }

    pub fn ticker<J: JobHandler + TickJob>(mut self) -> Self {
        if !self.tickers.iter().any(|t| t.name == J::NAME) {
            self.tickers.push(TickerSpec {
                name: J::NAME,
                interval_var: J::INTERVAL_VAR,
                default_interval: J::DEFAULT_INTERVAL,
                enqueue: enqueue_tick::<J>,
            });
        }
        self.register::<J>()
    }

    pub fn kinds(&self) -> &[KindSpec] {
        &self.kinds
    }

    pub fn kind(&self, name: &str) -> Option<&KindSpec> {
        self.kinds.iter().find(|k| k.name == name)
    }

    pub fn tickers(&self) -> &[TickerSpec] {
        &self.tickers
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.name).collect()
    }
}

fn check_payload<J: Job>(payload: &Value) -> Result<Option<String>, serde_json::Error> {
    let job = J::deserialize(payload)?;
    Ok(job.idempotency_key())
}

fn enqueue_tick<J: TickJob>(
    pool: PgPool,
    tick: DateTime<Utc>,
) -> BoxFuture<'static, cart_core::Result<Option<String>>> {
    async move {
        let mut conn = pool.acquire().await?;
        cart_core::jobs::enqueue(&mut conn, &J::for_tick(tick)).await
    }
    .boxed()
}
