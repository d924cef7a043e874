//! Running one attempt of a job: decode its envelope, run the handler under the request id it
//! was enqueued with, and turn the outcome into what apalis stores.
//!
//! Failures follow our rules for apalis (see `backend` and `supervise`): a retryable error first moves the row's `run_at`
//! forward by the backoff and then is returned (apalis marks the row `Failed`, and fetches it
//! again once `run_at` has passed while attempts remain); a permanent error is returned as an
//! `AbortError` (the row becomes `Killed` at once). Every failed attempt is also written to
//! `job_failures`. apalis' own retry layer and `RetryAfterError` are never used.

use std::{
    marker::PhantomData,
    panic::AssertUnwindSafe,
    sync::Arc,
    task::{self, Poll},
    time::{Duration, Instant},
};

use apalis::prelude::{AbortError, BoxDynError, ExecutionContext, Task};
use futures::{FutureExt, future::BoxFuture};
use serde::Deserialize;
use serde_json::Value;
use tracing::Instrument;

use super::{Shared, failures};
use crate::{Context, Handler, JobError, Run, job::Envelope, metrics};

/// How long [`Handler::on_gave_up`] may take.
const GAVE_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// The metadata key of an operator's cancel (`admin::cancel`).
const CANCEL_REQUESTED: &str = "cancel_requested_by";

/// Errors are stored in the job row and in `job_failures`; a runaway message is cut here.
const MAX_ERROR_CHARS: usize = 4000;

/// The tower service apalis calls for every fetched job of kind `J`.
pub(crate) struct JobService<J, C> {
    shared: Arc<Shared<C>>,
    _kind: PhantomData<fn() -> J>,
}

impl<J, C> JobService<J, C> {
    pub(crate) fn new(shared: Arc<Shared<C>>) -> Self {
        Self {
            shared,
            _kind: PhantomData,
        }
    }
}

impl<J, C> Clone for JobService<J, C> {
    fn clone(&self) -> Self {
        Self::new(self.shared.clone())
    }
}

impl<C: Context, J: Handler<C>> tower::Service<Task<Value>> for JobService<J, C> {
    type Response = ();
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<(), BoxDynError>>;

    fn poll_ready(&mut self, _: &mut task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, task: Task<Value>) -> Self::Future {
        let (args, ctx) = task.take();
        execute::<J, C>(self.shared.clone(), args, ctx).boxed()
    }
}

async fn execute<J: Handler<C>, C: Context>(
    shared: Arc<Shared<C>>,
    args: Value,
    ctx: Arc<ExecutionContext>,
) -> Result<(), BoxDynError> {
    let job_id = ctx.task_id().map(ToString::to_string).unwrap_or_default();
    // apalis counts the attempt when the task is first polled, which is before this runs.
    let attempt = u32::try_from(ctx.attempt()).unwrap_or(u32::MAX);
    let max_attempts = ctx
        .max_attempts()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or_else(|| u32::try_from(J::MAX_ATTEMPTS).unwrap_or(1));
    let span = tracing::info_span!(
        "job",
        job_kind = J::NAME,
        job_id = %job_id,
        attempt,
        max_attempts,
        request_id = tracing::field::Empty,
        order_id = tracing::field::Empty,
        payment_id = tracing::field::Empty,
    );
    if let Some(traceparent) = args.get("traceparent").and_then(Value::as_str) {
        shared.ctx.continue_trace(&span, traceparent);
    }
    // An operator cancelled the job before it was claimed (the claim read its metadata): the
    // handler never runs; `fail` runs the kind's clean-up and ends it as cancelled.
    let cancelled = ctx.metadata().as_ref().contains_key(CANCEL_REQUESTED);
    async move {
        metrics::job_started(J::NAME);
        let started = Instant::now();
        let outcome = if cancelled {
            Err(JobError::cancelled())
        } else {
            attempt_job::<J, C>(&shared, &args, &job_id, attempt, max_attempts).await
        };
        let elapsed = started.elapsed();
        match outcome {
            Ok(()) => {
                metrics::job_finished(J::NAME, "succeeded", elapsed);
                tracing::info!(elapsed_ms = elapsed.as_millis(), "job succeeded");
                Ok(())
            }
            Err(err) => {
                let attempt = Attempt {
                    job_id: &job_id,
                    args: &args,
                    number: attempt,
                    max_attempts,
                };
                fail::<J, C>(&shared, &attempt, err, elapsed).await
            }
        }
    }
    .instrument(span)
    .await
}

async fn attempt_job<J: Handler<C>, C: Context>(
    shared: &Shared<C>,
    args: &Value,
    job_id: &str,
    attempt: u32,
    max_attempts: u32,
) -> Result<(), JobError> {
    if attempt > max_attempts {
        // Only a crash or a shutdown can push a job past its limit: apalis re-enqueues such
        // jobs with one more attempt counted. Stop here instead of crash-looping forever.
        return Err(JobError::permanent(anyhow::anyhow!(
            "attempt {attempt} exceeds the limit of {max_attempts}: earlier attempts were cut \
             short by a worker crash or shutdown"
        )));
    }
    let envelope = Envelope::<J>::deserialize(args).map_err(|e| {
        JobError::permanent(anyhow::anyhow!("undecodable {} payload: {e}", J::NAME))
    })?;
    let request_id = envelope
        .origin
        .usable_request_id()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("job-{job_id}"));
    let span = tracing::Span::current();
    span.record("request_id", request_id.as_str());
    // So that "what happened to order X" finds the job's lines too.
    if let Some(order_id) = envelope.serves.order_id {
        span.record("order_id", tracing::field::display(order_id));
    }
    if let Some(payment_id) = envelope.serves.payment_id {
        span.record("payment_id", tracing::field::display(payment_id));
    }
    let run = Run {
        job_id: job_id.to_owned(),
        attempt,
        max_attempts,
        request_id: request_id.clone(),
    };
    let timeout = J::TIMEOUT.unwrap_or(shared.job_timeout);
    let work = AssertUnwindSafe(envelope.payload.run(&shared.ctx, &run)).catch_unwind();
    match tokio::time::timeout(timeout, shared.ctx.scope(&run, work)).await {
        Err(_) => Err(JobError::retry(anyhow::anyhow!(
            "timed out after {}s",
            timeout.as_secs_f64()
        ))),
        Ok(Err(panic)) => Err(JobError::permanent(anyhow::anyhow!(
            "handler panicked: {}",
            panic_message(panic.as_ref())
        ))),
        Ok(Ok(result)) => result,
    }
}

/// The failed attempt [`fail`] settles.
struct Attempt<'a> {
    job_id: &'a str,
    args: &'a Value,
    number: u32,
    max_attempts: u32,
}

/// Settles a failed attempt: schedules the retry, or gives the job up. This is the one place
/// that knows a job of any kind has ended for good, so [`Handler::on_gave_up`] runs here.
async fn fail<J: Handler<C>, C: Context>(
    shared: &Shared<C>,
    attempt: &Attempt<'_>,
    err: JobError,
    elapsed: Duration,
) -> Result<(), BoxDynError> {
    // A job an operator asked to stop does not run again, however it failed (a handler that
    // cannot stop mid-call finishes its attempt; if that attempt fails, it ends here).
    let cancelled = err.is_cancellation()
        || crate::admin::cancel_requested(&shared.pool, attempt.job_id)
            .await
            .unwrap_or(false);
    let mut permanent = err.is_permanent() || cancelled;
    let mut message: String = if cancelled && !err.is_cancellation() {
        format!("cancelled by an operator after: {err}")
    } else {
        err.to_string()
    }
    .chars()
    .take(MAX_ERROR_CHARS)
    .collect();
    let (mut retry_in, mut gives_back_attempt) = match &err {
        _ if cancelled => (None, false),
        JobError::Deferred { after, .. } => (Some(*after), true),
        _ => (
            (!permanent && attempt.number < attempt.max_attempts)
                .then(|| retry_policy::<J, C>(shared).delay(attempt.number)),
            false,
        ),
    };
    if retry_in.is_none()
        && let Err(hook_err) = gave_up::<J, C>(&shared.ctx, attempt.args, &message).await
    {
        // What waits for this job would stay stuck: keep the job instead, so the next run
        // (or its own giving up) settles it.
        tracing::error!(error = %hook_err, "could not settle a job that gave up; it runs again");
        message = format!("{message}; giving up failed: {hook_err:#}")
            .chars()
            .take(MAX_ERROR_CHARS)
            .collect();
        permanent = false;
        retry_in = Some(retry_policy::<J, C>(shared).delay(attempt.number));
        gives_back_attempt = true;
    }
    let (job_id, attempt) = (attempt.job_id, attempt.number);
    if let Err(db_err) = failures::record_failure(
        &shared.pool,
        &failures::Failure {
            job_id,
            kind: J::NAME,
            attempt,
            error: &message,
            permanent,
            retry_in,
            gives_back_attempt,
        },
    )
    .await
    {
        tracing::error!(error = %db_err, "could not record the job failure");
    }
    match retry_in {
        Some(delay) => {
            metrics::job_finished(J::NAME, "retried", elapsed);
            tracing::warn!(
                error = %message,
                retry_in_ms = delay.as_millis(),
                "job failed; it will be retried"
            );
            Err(message.into())
        }
        None if cancelled => {
            if let Err(db_err) = crate::admin::mark_ended_by_cancel(&shared.pool, job_id).await {
                tracing::error!(error = %db_err, "could not record that the job was cancelled");
            }
            metrics::job_finished(J::NAME, "cancelled", elapsed);
            tracing::info!(reason = %message, "job cancelled");
            Err(Box::new(AbortError::new(message)))
        }
        None if permanent => {
            metrics::job_finished(J::NAME, "failed", elapsed);
            tracing::error!(error = %message, "job failed permanently");
            Err(Box::new(AbortError::new(message)))
        }
        None => {
            metrics::job_finished(J::NAME, "failed", elapsed);
            tracing::error!(error = %message, "job failed; no attempts left");
            Err(message.into())
        }
    }
}

/// Runs the kind's [`Handler::on_gave_up`] for the job whose envelope is `args` (nothing to
/// do for a payload that cannot be decoded: no handler ever saw it).
async fn gave_up<J: Handler<C>, C: Context>(
    ctx: &C,
    args: &Value,
    reason: &str,
) -> anyhow::Result<()> {
    let Ok(envelope) = Envelope::<J>::deserialize(args) else {
        return Ok(());
    };
    let hook = AssertUnwindSafe(envelope.payload.on_gave_up(ctx, reason)).catch_unwind();
    match tokio::time::timeout(GAVE_UP_TIMEOUT, hook).await {
        Err(_) => Err(anyhow::anyhow!(
            "on_gave_up timed out after {}s",
            GAVE_UP_TIMEOUT.as_secs()
        )),
        Ok(Err(panic)) => Err(anyhow::anyhow!(
            "on_gave_up panicked: {}",
            panic_message(panic.as_ref())
        )),
        Ok(Ok(result)) => result,
    }
}

fn retry_policy<J: Handler<C>, C: Context>(shared: &Shared<C>) -> crate::RetryPolicy {
    J::RETRY.unwrap_or(shared.retry)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic")
}
