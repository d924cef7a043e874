//! `jobs list`: jobs newest first, filtered by state, kind and age.

use cart_queue::admin::{self, JobState, JobSummary, ListFilter};
use chrono::{DateTime, Utc};
use tabled::Tabled;

use super::{CliError, Ctx, output, parse_state};

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// Only jobs in this state: pending, running, done, retrying or failed.
    #[arg(long, value_parser = parse_state)]
    pub state: Option<JobState>,
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
    let filter = ListFilter {
        state: opts.state,
        kind: opts.kind.clone(),
        since: opts.since,
        limit: opts.limit,
    };
    Ok(admin::list(ctx.pool, &filter).await?)
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
