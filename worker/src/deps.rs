//! What job handlers get besides their payload: the database, the providers, the settings.

use std::{sync::Arc, time::Duration};

use cart_core::{
    invoices::{FiscalConfig, NfeProvider, PollSettings},
    mail::{
        Mailer,
        templates::{Branding, Templates},
    },
    payments::flow::PaymentSettings,
    users::password_reset::ResetKey,
};
use cart_queue::Run;
use sqlx::PgPool;

/// Shared by every job of the process; cheap to clone.
#[derive(Clone)]
pub struct Deps {
    pub pool: PgPool,
    pub mailer: Arc<dyn Mailer>,
    pub settings: Arc<JobSettings>,
    /// Payment and NF-e providers for the payment jobs.
    pub payments: Arc<PaymentDeps>,
    /// Derives password-reset links when their e-mail is sent (from `JWT_SECRET`).
    pub reset_key: ResetKey,
}

/// Every attempt runs under the request id of the request that enqueued its job, so the
/// job's logs and its provider calls carry it, and (when traces are exported) in the trace of
/// the span that enqueued it.
impl cart_queue::Context for Deps {
    fn scope<F>(&self, run: &Run, attempt: F) -> impl Future<Output = F::Output> + Send
    where
        F: Future + Send,
        F::Output: Send,
    {
        cart_core::request_id::scope(run.request_id.clone(), attempt)
    }

    fn continue_trace(&self, span: &tracing::Span, traceparent: &str) {
        cart_core::telemetry::traces::continue_trace(span, traceparent);
    }
}

/// What the payment, reconciliation, refund and NF-e jobs use.
pub struct PaymentDeps {
    pub settings: PaymentSettings,
    pub nfe: Arc<dyn NfeProvider>,
    pub fiscal: FiscalConfig,
    pub nfe_poll: PollSettings,
    pub templates: Templates,
}

impl PaymentDeps {
    /// `PIX_PROVIDER`, `CARD_PROVIDER`, `CIRCUIT_BREAKER_*`, `NFE_*`, `STORE_NAME`, `FRONTEND_URL`.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            settings: PaymentSettings::from_env()?,
            nfe: cart_core::invoices::provider_from_env()?,
            fiscal: FiscalConfig::from_env()?,
            nfe_poll: PollSettings::from_env()?,
            templates: Templates::new(Branding::from_env()?)?,
        })
    }

    /// Sandbox providers (see `PaymentSettings::for_tests`), a quick NF-e poll. Only under the
    /// `testing` feature, which only dev-dependencies turn on.
    #[cfg(feature = "testing")]
    pub fn for_tests() -> Self {
        let fiscal = FiscalConfig::default();
        Self {
            settings: PaymentSettings::for_tests(),
            nfe: Arc::new(cart_core::invoices::sandbox::SandboxNfe::new(
                fiscal.clone(),
                "http://localhost:3000",
            )),
            fiscal,
            nfe_poll: PollSettings {
                timeout: Duration::from_secs(2),
                first_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(200),
            },
            templates: Templates::new(Branding::new("Loja Teste", "http://localhost:3000"))
                .unwrap_or_else(|e| unreachable!("the built-in templates compile: {e}")),
        }
    }
}

/// Settings that handlers read (how jobs are retried and timed out is the runtime's
/// `RuntimeConfig`).
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// How long `Done` jobs are kept before the prune ticker deletes them.
    pub done_retention: Duration,
    /// How long failed jobs are kept for operators.
    pub failed_retention: Duration,
    /// Rows the prune job deletes per statement, so one run never holds long locks.
    pub prune_batch: i64,
    /// Carts untouched for this long are purged.
    pub cart_ttl: Duration,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            done_retention: Duration::from_secs(24 * 3600),
            failed_retention: Duration::from_secs(14 * 24 * 3600),
            prune_batch: 1000,
            cart_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}
