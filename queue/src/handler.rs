//! What the worker implements: how to run a job of each kind, with what context.

use std::{future::Future, time::Duration};

use crate::{Job, JobError, RetryPolicy};

/// Facts about the attempt being run.
#[derive(Debug, Clone)]
pub struct Run {
    /// The job's id: also the idempotency key for providers, so a re-run is a no-op there.
    pub job_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub max_attempts: u32,
    /// The request that caused the job, or `job-<id>` when it came from nowhere in particular.
    pub request_id: String,
}

/// What every handler of a worker process shares: its database, providers and settings.
pub trait Context: Send + Sync + 'static {
    /// Runs one attempt. The default runs it as it is; a process that keeps per-task state
    /// for its logs and outbound calls (a request id) sets it here from `run`.
    fn scope<F>(&self, run: &Run, attempt: F) -> impl Future<Output = F::Output> + Send
    where
        F: Future + Send,
        F::Output: Send,
    {
        let _ = run;
        attempt
    }

    /// Continues the trace of whatever enqueued the job: `span` is the attempt's span, not yet
    /// entered, and `traceparent` the W3C value its [`Origin`](crate::Origin) carries. The
    /// default ignores it (a process that exports no traces).
    fn continue_trace(&self, span: &tracing::Span, traceparent: &str) {
        let _ = (span, traceparent);
    }
}

/// The worker side of a [`Job`]: what to do with its payload, given the process's context.
pub trait Handler<C: Context>: Job {
    /// The longest one attempt may take; `None` uses the runtime's `job_timeout`.
    const TIMEOUT: Option<Duration> = None;
    /// When a failed attempt runs again; `None` uses the runtime's policy.
    const RETRY: Option<RetryPolicy> = None;

    /// One attempt at the job. Delivery is at least once: a handler must be idempotent.
    fn run(self, ctx: &C, run: &Run) -> impl Future<Output = Result<(), JobError>> + Send;

    /// Runs once the job has ended for good, however it ended: its last attempt failed (an
    /// error, a database error, a timeout), it failed permanently (a panic included), or the
    /// crash guard stopped it after workers died under it. `reason` is the last error. Kinds
    /// whose job leaves something waiting for it (a payment `initiating`) close it here. If
    /// this fails, the job is not given up: it runs again later, its attempt given back.
    fn on_gave_up(&self, ctx: &C, reason: &str) -> impl Future<Output = anyhow::Result<()>> + Send {
        let _ = (ctx, reason);
        async { Ok(()) }
    }
}
