//! `jobs list`: jobs newest first, filtered by state, kind and age.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tabled::Tabled;

use super::{CliError, Ctx, State, output};

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// Only jobs in this state.
    #[arg(long, value_enum)]
    pub state: Option<State>,
    /// Only jobs of this kind (e.g. send_email).
    #[arg(long)]
    pub kind: Option<String>,
    /// At most this many jobs.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub limit: i64,
    /// Only jobs created since: a duration back from now (30m, 2h, 7d) or an RFC 3339 time.
    #[arg(long, value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_since(raw: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(at.with_timezone(&Utc));
    }
    let ago = cart_core::config::parse_duration(raw)
        .map_err(|_| format!("expected a duration (2h, 7d) or an RFC 3339 time; got {raw:?}"))?;
    chrono::Duration::from_std(ago)
        .ok()
        .and_then(|ago| Utc::now().checked_sub_signed(ago))
        .ok_or_else(|| format!("{raw:?} reaches too far back"))
}

#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    pub id: String,
    pub kind: String,
    pub state: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub created_at: Option<DateTime<Utc>>,
    pub run_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "ID")]
    id: String,
    #[tabled(rename = "KIND")]
    kind: String,
    #[tabled(rename = "STATE")]
    state: String,
    #[tabled(rename = "ATTEMPTS")]
    attempts: String,
    #[tabled(rename = "CREATED")]
    created: String,
    #[tabled(rename = "RUN AT")]
    run_at: String,
    #[tabled(rename = "LAST ERROR")]
    last_error: String,
}

pub async fn query(opts: &Opts, ctx: &Ctx<'_>) -> Result<Vec<JobSummary>, CliError> {
    // ULIDs sort by creation time, so "created since" is a range on the primary key.
    let since_id = opts.since.map(|at| {
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        ulid::Ulid::from_parts(millis, 0).to_string()
    });
    let rows = sqlx::query!(
        r#"SELECT id, job_type, job_state(status, attempts, max_attempts) AS "state!", status,
                  attempts, max_attempts, run_at, done_at, last_result->>'Err' AS last_error
           FROM apalis.jobs
           WHERE ($1::text IS NULL OR job_state(status, attempts, max_attempts) = $1)
             AND ($2::text IS NULL OR job_type = $2)
             AND ($3::text IS NULL OR id >= $3)
           ORDER BY id DESC
           LIMIT $4"#,
        opts.state.map(State::as_str),
        opts.kind.as_deref(),
        since_id,
        opts.limit,
    )
    .fetch_all(ctx.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| JobSummary {
            created_at: output::created_at(&row.id),
            id: row.id,
            kind: row.job_type,
            state: row.state,
            status: row.status,
            attempts: row.attempts,
            max_attempts: row.max_attempts,
            run_at: row.run_at,
            done_at: row.done_at,
            last_error: row.last_error,
        })
        .collect())
}

pub async fn run(opts: Opts, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let jobs = query(&opts, ctx).await?;
    if opts.json {
        return output::json(ctx, &jobs);
    }
    if jobs.is_empty() {
        return ctx.say("no jobs match");
    }
    let rows = jobs.into_iter().map(|job| Row {
        attempts: format!("{}/{}", job.attempts, job.max_attempts),
        created: output::optional_time(job.created_at),
        run_at: output::time(job.run_at),
        last_error: job
            .last_error
            .as_deref()
            .map(|e| output::short(e, 60))
            .unwrap_or_default(),
        id: job.id,
        kind: job.kind,
        state: job.state,
    });
    output::table(ctx, rows)
}
