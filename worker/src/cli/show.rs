//! `jobs show ID`: everything about one job, with its failure history.

use cart_queue::admin::{self, Failure, JobDetail};
use chrono::{DateTime, Utc};
use tabled::Tabled;

use super::{CliError, Ctx, check_ids, output};

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// The job's id.
    pub id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A failure as a table row.
#[derive(Debug, Clone, Tabled)]
pub struct FailureRecord {
    #[tabled(rename = "ATTEMPT")]
    pub attempt: i32,
    #[tabled(rename = "FAILED AT", display = "display_time")]
    pub failed_at: DateTime<Utc>,
    #[tabled(rename = "PERMANENT")]
    pub permanent: bool,
    #[tabled(rename = "RETRY AT", display = "display_optional_time")]
    pub retry_at: Option<DateTime<Utc>>,
    #[tabled(rename = "ERROR", display = "display_error")]
    pub error: String,
}

fn display_time(at: &DateTime<Utc>) -> String {
    output::time(*at)
}

fn display_optional_time(at: &Option<DateTime<Utc>>) -> String {
    output::optional_time(*at)
}

fn display_error(error: &str) -> String {
    output::short(error, 100)
}

impl From<Failure> for FailureRecord {
    fn from(failure: Failure) -> Self {
        Self {
            attempt: failure.attempt,
            failed_at: failure.failed_at,
            permanent: failure.permanent,
            retry_at: failure.retry_at,
            error: failure.error,
        }
    }
}

pub async fn load(ctx: &Ctx<'_>, id: &str) -> Result<JobDetail, CliError> {
    let ids = check_ids(&[id.to_owned()])?;
    let id = ids.first().map(String::as_str).unwrap_or(id);
    admin::show(ctx.pool, id)
        .await?
        .ok_or_else(|| CliError::NotFound(format!("no such job: {id}")))
}

pub async fn run(opts: Opts, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let job = load(ctx, &opts.id).await?;
    if opts.json {
        return output::json(ctx, &job);
    }
    let dash = || "-".to_owned();
    let lines = [
        format!("job            {}", job.id),
        format!("kind           {}", job.kind),
        format!("state          {} ({})", job.state, job.status),
        format!("attempts       {} of {}", job.attempts, job.max_attempts),
        format!("created        {}", output::optional_time(job.created_at)),
        format!("run at         {}", output::time(job.run_at)),
        format!(
            "locked         {}",
            match (&job.locked_by, job.locked_at) {
                (Some(by), at) => format!("by {by} at {}", output::optional_time(at)),
                (None, _) => dash(),
            }
        ),
        format!("finished       {}", output::optional_time(job.done_at)),
        format!(
            "idempotency    {}",
            job.idempotency_key.clone().unwrap_or_else(dash)
        ),
        format!(
            "request id     {}",
            job.request_id.clone().unwrap_or_else(dash)
        ),
        format!(
            "last error     {}",
            job.last_error.clone().unwrap_or_else(dash)
        ),
    ];
    for line in lines {
        ctx.say(line)?;
    }
    ctx.say("payload")?;
    let payload = serde_json::to_string_pretty(&job.payload).map_err(anyhow::Error::from)?;
    ctx.say(payload)?;
    if job.failures.is_empty() {
        ctx.say("failures       none")
    } else {
        ctx.say(format!("failures       {}", job.failures.len()))?;
        output::table(ctx, job.failures.into_iter().map(FailureRecord::from))
    }
}
