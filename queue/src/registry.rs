//! Which job kinds and tickers a worker process runs, each with its handler.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{FutureExt, future::BoxFuture};
use serde_json::Value;
use sqlx::PgPool;

use crate::{
    Context, Encoded, EnqueueError, Handler, Job, Origin, Serves, TickJob,
    runtime::supervise::{self, StartWorker},
};

/// One job kind a process runs.
pub struct KindSpec<C> {
    pub name: &'static str,
    pub max_attempts: i32,
    pub(crate) start: StartWorker<C>,
    check: fn(&Value) -> Result<Checked, serde_json::Error>,
}

/// What a payload typed by an operator turns out to be: its idempotency key and what it
/// serves, as the kind's own type says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    pub idempotency_key: Option<String>,
    pub serves: Serves,
}

impl<C> KindSpec<C> {
    /// Decodes a payload typed by an operator as this kind.
    pub fn check_payload(&self, payload: &Value) -> Result<Checked, serde_json::Error> {
        (self.check)(payload)
    }
}

impl<C> Clone for KindSpec<C> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            max_attempts: self.max_attempts,
            start: self.start,
            check: self.check,
        }
    }
}

/// A kind enqueued once per tick of a fixed interval (see [`TickJob`]).
#[derive(Clone)]
pub struct TickerSpec {
    pub name: &'static str,
    pub interval_var: &'static str,
    pub default_interval: Duration,
    pub(crate) enqueue: EnqueueTick,
}

/// Enqueues the job of one tick; `None` when another process already did.
pub(crate) type EnqueueTick =
    fn(PgPool, DateTime<Utc>) -> BoxFuture<'static, Result<Option<String>, EnqueueError>>;

/// The kinds and tickers of a process whose handlers share a context `C`.
pub struct Registry<C> {
    kinds: Vec<KindSpec<C>>,
    tickers: Vec<TickerSpec>,
}

impl<C> Default for Registry<C> {
    fn default() -> Self {
        Self {
            kinds: Vec::new(),
            tickers: Vec::new(),
        }
    }
}

impl<C> Clone for Registry<C> {
    fn clone(&self) -> Self {
        Self {
            kinds: self.kinds.clone(),
            tickers: self.tickers.clone(),
        }
    }
}

impl<C: Context> Registry<C> {
    /// A registry with no kinds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds kind `J` (once; registering it again changes nothing).
    #[must_use]
    pub fn register<J: Handler<C>>(mut self) -> Self {
        if self.kind(J::NAME).is_none() {
            self.kinds.push(KindSpec {
                name: J::NAME,
                max_attempts: J::MAX_ATTEMPTS,
                start: supervise::start_worker::<J, C>,
                check: check_payload::<J>,
            });
        }
        self
    }

    /// Adds kind `J` and a ticker that enqueues one `J` per interval.
    #[must_use]
    pub fn ticker<J: Handler<C> + TickJob>(mut self) -> Self {
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
}

impl<C> Registry<C> {
    /// The registered kinds, in registration order.
    pub fn kinds(&self) -> &[KindSpec<C>] {
        &self.kinds
    }

    /// The kind called `name`, if registered.
    pub fn kind(&self, name: &str) -> Option<&KindSpec<C>> {
        self.kinds.iter().find(|k| k.name == name)
    }

    /// The registered tickers.
    pub fn tickers(&self) -> &[TickerSpec] {
        &self.tickers
    }

    /// The names of the registered kinds.
    pub fn names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|k| k.name).collect()
    }
}

fn check_payload<J: Job>(payload: &Value) -> Result<Checked, serde_json::Error> {
    let job = J::deserialize(payload)?;
    Ok(Checked {
        idempotency_key: job.idempotency_key(),
        serves: job.serves(),
    })
}

fn enqueue_tick<J: TickJob>(
    pool: PgPool,
    tick: DateTime<Utc>,
) -> BoxFuture<'static, Result<Option<String>, EnqueueError>> {
    async move {
        let job = Encoded::new(&J::for_tick(tick), Origin::default())?;
        let mut conn = pool.acquire().await?;
        crate::enqueue(&mut conn, &job).await
    }
    .boxed()
}
