//! cart's job queue: everything that knows how jobs are stored and run.
//!
//! Jobs are rows of `apalis.jobs` (apalis-postgres's schema), claimed with `SKIP LOCKED` by
//! any number of worker processes on the same database. The pieces:
//!
//! - [`Job`]: a payload type with a stable name, defined by the domain crates; stored in an
//!   envelope with its [`Origin`] and the business objects it [`Serves`].
//! - [`enqueue`] / [`enqueue_all`]: insert [`Encoded`] jobs in the caller's transaction, a
//!   duplicate idempotency key skipped without aborting it ([`EnqueueError`]).
//! - [`Handler`]: what a worker process does with each kind, given its [`Context`]; it
//!   answers a [`JobError`] that says whether to retry ([`RetryPolicy`]) or give up.
//! - [`Registry`] and [`Runtime`]: the kinds and tickers ([`TickJob`]) a process runs, and
//!   the supervised workers, wake-ups, acknowledgements and graceful shutdown that run them.
//! - [`schema::setup`]: the tables; [`admin`]: what operators and the privacy code do to
//!   jobs; [`metrics`]: what the runtime records.
//!
//! apalis is a dependency of this crate only. `README.md` in `worker/` describes how the
//! worker uses it; what we learned of apalis's behaviour is in the module docs of the runtime's
//! `backend`, `supervise`, `notifications` and `wakeup`.

pub mod schema;

#[cfg(feature = "jobs")]
pub mod admin;
#[cfg(feature = "jobs")]
mod enqueue;
#[cfg(feature = "jobs")]
mod error;
#[cfg(feature = "jobs")]
mod handler;
#[cfg(feature = "jobs")]
mod job;
#[cfg(feature = "jobs")]
pub mod metrics;
#[cfg(feature = "jobs")]
mod registry;
#[cfg(feature = "jobs")]
mod retry;
#[cfg(feature = "jobs")]
mod runtime;
#[cfg(feature = "jobs")]
mod tick;

#[cfg(feature = "jobs")]
pub use {
    enqueue::{Encoded, EnqueueError, enqueue, enqueue_all},
    error::JobError,
    handler::{Context, Handler, Run},
    job::{Envelope, Job, Origin, Serves, is_usable_request_id},
    registry::{Checked, KindSpec, Registry, TickerSpec},
    retry::RetryPolicy,
    runtime::{Notice, QueueSettings, Runtime, RuntimeConfig, ShutdownReport},
    tick::{TickJob, tick_key},
};
