//! `GET /board/jobs/{id}`: one job, its payload redacted, its attempts and every failure.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::Response,
};
use cart_queue::admin;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{
    BoardState,
    actions::{self, Action},
    auth::Session,
    pages::{self, PageError},
    redact,
};

#[derive(Debug, Deserialize)]
pub struct JobQuery {
    notice: Option<String>,
    n: Option<usize>,
}

#[derive(Serialize)]
struct JobPage {
    title: String,
    nav: &'static str,
    csrf: String,
    notice: Option<String>,
    id: String,
    kind: String,
    state: String,
    status: String,
    attempts: String,
    created: String,
    run_at: String,
    run_in: String,
    locked: String,
    done_at: String,
    idempotency_key: Option<String>,
    request_id: Option<String>,
    /// The payload, redacted, as indented JSON.
    payload: String,
    last_error: Option<String>,
    failures: Vec<FailureRow>,
    can_retry: bool,
    can_discard: bool,
}

#[derive(Serialize)]
struct FailureRow {
    attempt: i32,
    at: String,
    outcome: String,
    error: String,
}

pub async fn page(
    State(state): State<BoardState>,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<JobQuery>,
) -> Response {
    match job(&state, session, &id, query).await {
        Ok(page) => pages::render(&state, StatusCode::OK, "job.html", page),
        Err(err) => err.into_page(&state),
    }
}

async fn job(
    state: &BoardState,
    session: Session,
    id: &str,
    query: JobQuery,
) -> Result<JobPage, PageError> {
    let id = actions::job_id(id).map_err(PageError::Invalid)?;
    let job = admin::show(&state.pool, &id)
        .await?
        .ok_or_else(|| PageError::NoSuchJob(id.clone()))?;
    let now = Utc::now();
    let payload = serde_json::to_string_pretty(&redact::payload(&job.payload))
        .unwrap_or_else(|_| redact::REDACTED.to_owned());
    let failures = job
        .failures
        .iter()
        .map(|f| FailureRow {
            attempt: f.attempt,
            at: pages::time(f.failed_at),
            outcome: match (f.permanent, f.retry_at) {
                (true, _) => "permanent: not retried".to_owned(),
                (false, Some(at)) => format!("retry at {}", pages::time(at)),
                (false, None) => "gave up".to_owned(),
            },
            error: redact::text_value(&f.error),
        })
        .collect();
    let run_in = if job.run_at > now {
        format!("in {}", pages::age((job.run_at - now).num_seconds()))
    } else {
        format!("{} ago", pages::ago(job.run_at, now))
    };
    Ok(JobPage {
        title: format!("Job {}", job.id),
        nav: "failed",
        csrf: session.csrf,
        notice: pages::notice(query.notice.as_deref(), query.n),
        can_retry: actions::allowed(Action::Retry, &job.state, &job.status),
        can_discard: actions::allowed(Action::Discard, &job.state, &job.status),
        attempts: format!("{} of {}", job.attempts, job.max_attempts),
        created: pages::maybe_time(job.created_at),
        run_at: pages::time(job.run_at),
        run_in,
        // A finished job keeps the name of the worker that last held it: not worth a line.
        locked: match (&job.locked_by, job.locked_at, job.state.as_str()) {
            (Some(by), Some(at), "pending" | "running") => {
                format!("by {by} since {}", pages::time(at))
            }
            _ => String::new(),
        },
        done_at: pages::maybe_time(job.done_at),
        idempotency_key: job.idempotency_key.as_deref().map(redact::text_value),
        request_id: job.request_id,
        payload,
        last_error: job.last_error.as_deref().map(redact::text_value),
        failures,
        id: job.id,
        kind: job.kind,
        state: job.state,
        status: job.status,
    })
}
