//! The entries kept by the job queue: the jobs that serve the order (directly, or through its
//! payments and webhook events) and the e-mails sent about it, with attempts and errors.

use cart_queue::admin::{self, JobSummary};
use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{JOB_LIMIT, Level, Source, TimelineEntry};
use crate::{
    Result,
    jobs::{Job, send_email::SendEmail},
    mail::templates::mask_email,
    orders::lookup,
};

pub(super) struct Served {
    pub entries: Vec<TimelineEntry>,
    pub truncated: bool,
}

pub(super) async fn entries(pool: &PgPool, order_id: Uuid) -> Result<Served> {
    let mut jobs = lookup::jobs_serving(pool, order_id, JOB_LIMIT + 1).await?;
    // Job ids are ULIDs: newest first by id, whatever order they came in.
    jobs.sort_by(|a, b| b.id.cmp(&a.id));
    let limit = usize::try_from(JOB_LIMIT).unwrap_or(usize::MAX);
    let truncated = jobs.len() > limit;
    jobs.truncate(limit);
    let mut entries = Vec::with_capacity(jobs.len());
    for job in jobs {
        entries.push(if job.kind == SendEmail::NAME {
            email_entry(pool, job).await?
        } else {
            job_entry(job)
        });
    }
    Ok(Served { entries, truncated })
}

fn job_entry(job: JobSummary) -> TimelineEntry {
    let (progress, level) = progress(&job, "done");
    let at = job.created_at.unwrap_or(job.run_at);
    let summary = format!("{}: {progress}", job.kind);
    let details = serde_json::to_value(&job).unwrap_or_else(|_| json!({ "id": job.id }));
    TimelineEntry::new(at, Source::Job, summary, details).level(level)
}

/// An e-mail from its `send_email` job: to whom (masked), what, and whether it went out.
async fn email_entry(pool: &PgPool, job: JobSummary) -> Result<TimelineEntry> {
    // The list leaves payloads out; an order has a handful of e-mails.
    let message = admin::show(pool, &job.id)
        .await?
        .and_then(|detail| serde_json::from_value::<SendEmail>(detail.payload).ok())
        .map(|email| email.message);
    let (progress, level) = progress(&job, "sent");
    let (tag, subject, to) = match &message {
        Some(m) => (
            m.tag.clone(),
            Some(m.subject.clone()),
            Some(mask_email(&m.to)),
        ),
        // Deleted since it was listed (an erasure) or not readable: its state still counts.
        None => ("unreadable".to_owned(), None, None),
    };
    let summary = format!(
        "{tag} e-mail to {}: {progress}",
        to.as_deref().unwrap_or("?")
    );
    let details = json!({
        "job_id": job.id,
        "tag": tag,
        "subject": subject,
        "to": to,
        "state": job.state,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "run_at": job.run_at,
        "done_at": job.done_at,
        "last_error": job.last_error,
    });
    let at = job.created_at.unwrap_or(job.run_at);
    Ok(TimelineEntry::new(at, Source::Email, summary, details).level(level))
}

/// Where a job stands, in words, with its last error when it has failed; `done` is the word
/// for a job that finished.
fn progress(job: &JobSummary, done: &str) -> (String, Level) {
    let error = job.last_error.as_deref().unwrap_or("no error recorded");
    let attempts = format!("{} of {}", job.attempts, job.max_attempts);
    match job.state.as_str() {
        "done" => (format!("{done} (attempt {attempts})"), Level::Info),
        "failed" => (
            format!("failed for good after attempt {attempts}: {error}"),
            Level::Error,
        ),
        "retrying" => (
            format!(
                "attempt {attempts} failed, retrying at {}: {error}",
                super::short_time(job.run_at)
            ),
            Level::Warning,
        ),
        "running" => ("running".to_owned(), Level::Info),
        _ if job.run_at > Utc::now() => (
            format!("scheduled for {}", super::short_time(job.run_at)),
            Level::Info,
        ),
        state => (state.to_owned(), Level::Info),
    }
}
