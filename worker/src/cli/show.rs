//! `jobs show ID`: everything about one job, with its failure history.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
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

#[derive(Debug, Clone, Serialize)]
pub struct JobDetail {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub run_at: DateTime<Utc>,
    pub locked_at: Option<DateTime<Utc>>,
    pub locked_by: Option<String>,
    pub done_at: Option<DateTime<Utc>>,
    pub idempotency_key: Option<String>,
    pub request_id: Option<String>,
    /// The payload as stored (the envelope's `payload`), or the raw text if it is not JSON.
    pub payload: Value,
    pub last_error: Option<String>,
    pub failures: Vec<FailureRecord>,
}

#[derive(Debug, Clone, Serialize, Tabled)]
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

pub async fn load(ctx: &Ctx<'_>, id: &str) -> Result<JobDetail, CliError> {
    let ids = check_ids(&[id.to_owned()])?;
    let id = ids.first().map(String::as_str).unwrap_or(id);
    let row = sqlx::query!(
        r#"SELECT id, job_type, job_state(status, attempts, max_attempts) AS "state!", status,
                  attempts, max_attempts, run_at, lock_at, lock_by, done_at, idempotency_key,
                  job, last_result->>'Err' AS last_error
           FROM apalis.jobs WHERE id = $1"#,
        id,
    )
    .fetch_optional(ctx.pool)
    .await?
    .ok_or_else(|| CliError::NotFound(format!("no such job: {id}")))?;
    let failures = sqlx::query_as!(
        FailureRecord,
        "SELECT attempt, failed_at, permanent, retry_at, error
         FROM job_failures WHERE job_id = $1 ORDER BY id",
        id,
    )
    .fetch_all(ctx.pool)
    .await?;
    let (request_id, payload) = match serde_json::from_slice::<Value>(&row.job) {
        Ok(Value::Object(mut envelope)) if envelope.contains_key("payload") => (
            envelope
                .remove("request_id")
                .and_then(|v| v.as_str().map(str::to_owned)),
            envelope.remove("payload").unwrap_or(Value::Null),
        ),
        Ok(other) => (None, other),
        Err(_) => (
            None,
            Value::String(String::from_utf8_lossy(&row.job).into_owned()),
        ),
    };
    Ok(JobDetail {
        created_at: output::created_at(&row.id),
        id: row.id,
        kind: row.job_type,
        state: row.state,
        status: row.status,
        attempts: row.attempts,
        max_attempts: row.max_attempts,
        run_at: row.run_at,
        locked_at: row.lock_at,
        locked_by: row.lock_by,
        done_at: row.done_at,
        idempotency_key: row.idempotency_key,
        request_id,
        payload,
        last_error: row.last_error,
        failures,
    })
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
        output::table(ctx, job.failures)
    }
}
