//! `jobs retry ID…` and `jobs retry --all-failed [--kind K] [--dry-run]`: failed (or
//! retrying) jobs go back to the queue now, with their attempt count reset. Their failure
//! history stays.

use serde_json::json;

use super::{CliError, Ctx, Target, audit, check_ids, load_targets, output};

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// The jobs to retry.
    #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
    pub ids: Vec<String>,
    /// Every failed job (of `--kind`, when given).
    #[arg(long)]
    pub all_failed: bool,
    /// With --all-failed: only jobs of this kind.
    #[arg(long, requires = "all_failed")]
    pub kind: Option<String>,
    /// Show what would be retried; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

const RETRYABLE: [&str; 2] = ["failed", "retrying"];

pub async fn run(opts: Opts, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let targets = if opts.all_failed {
        sqlx::query_as!(
            Target,
            r#"SELECT id, job_type AS kind,
                      job_state(status, attempts, max_attempts) AS "state!", status
               FROM apalis.jobs
               WHERE status IN ('Failed', 'Killed')
                 AND job_state(status, attempts, max_attempts) = 'failed'
                 AND ($1::text IS NULL OR job_type = $1)
               ORDER BY id"#,
            opts.kind.as_deref(),
        )
        .fetch_all(ctx.pool)
        .await?
    } else {
        let targets = load_targets(ctx.pool, &check_ids(&opts.ids)?).await?;
        let refused: Vec<String> = targets
            .iter()
            .filter(|t| !RETRYABLE.contains(&t.state.as_str()))
            .map(|t| format!("{} is {}", t.id, t.state))
            .collect();
        if !refused.is_empty() {
            return Err(CliError::NotAllowed(format!(
                "only failed or retrying jobs can be retried: {}; nothing was changed",
                refused.join(", ")
            )));
        }
        targets
    };
    if targets.is_empty() {
        return ctx.say("no failed jobs to retry");
    }
    let ids: Vec<String> = targets.iter().map(|t| t.id.clone()).collect();
    if opts.dry_run {
        ctx.say(format!("would retry {} job(s):", ids.len()))?;
        return output::table(ctx, targets.iter().map(row));
    }
    let actor = ctx.actor()?;
    if opts.all_failed || ids.len() > 1 {
        ctx.confirm(&format!("Retry {} job(s)?", ids.len()), opts.yes)?;
    }
    let mut tx = ctx.pool.begin().await?;
    let retried = sqlx::query_scalar!(
        r#"UPDATE apalis.jobs
           SET status = 'Pending', attempts = 0, run_at = now(),
               lock_by = NULL, lock_at = NULL, done_at = NULL
           WHERE id = ANY($1)
             AND job_state(status, attempts, max_attempts) IN ('failed', 'retrying')
           RETURNING id"#,
        &ids,
    )
    .fetch_all(&mut *tx)
    .await?;
    // apalis only notifies workers of inserts; wake them for these right away (delivered
    // on commit), one notice per kind.
    // (A runtime query: the macros cannot describe pg_notify's `void` result.)
    sqlx::query(
        "SELECT pg_notify('apalis::job::insert',
                          json_build_object('job_type', job_type, 'id', min(id))::text)
         FROM apalis.jobs WHERE id = ANY($1) GROUP BY job_type",
    )
    .bind(&retried)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &actor,
        "jobs.retry",
        &retried,
        json!({ "all_failed": opts.all_failed, "kind": opts.kind }),
    )
    .await?;
    tx.commit().await?;
    if retried.len() < ids.len() {
        ctx.say(format!(
            "retried {} of {} job(s); the others changed state meanwhile",
            retried.len(),
            ids.len()
        ))
    } else {
        ctx.say(format!("retried {} job(s)", retried.len()))
    }
}

#[derive(tabled::Tabled)]
pub(super) struct TargetRow {
    #[tabled(rename = "ID")]
    id: String,
    #[tabled(rename = "KIND")]
    kind: String,
    #[tabled(rename = "STATE")]
    state: String,
}

pub(super) fn row(target: &Target) -> TargetRow {
    TargetRow {
        id: target.id.clone(),
        kind: target.kind.clone(),
        state: target.state.clone(),
    }
}
