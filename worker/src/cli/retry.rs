//! `jobs retry ID…` and `jobs retry --all-failed [--kind K] [--dry-run]`: failed (or
//! retrying) jobs go back to the queue now, with their attempt count reset. Their failure
//! history stays.

use serde_json::json;

use cart_queue::admin::{self, Target};

use super::{CliError, Ctx, audit, check_ids, load_targets, output};

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
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

const RETRYABLE: [&str; 3] = ["failed", "retrying", "cancelled"];

pub async fn run(opts: Opts, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let targets = if opts.all_failed {
        admin::failed_jobs(ctx.pool, opts.kind.as_deref()).await?
    } else {
        let targets = load_targets(ctx.pool, &check_ids(&opts.ids)?).await?;
        let refused: Vec<String> = targets
            .iter()
            .filter(|t| !RETRYABLE.contains(&t.state.as_str()))
            .map(|t| format!("{} is {}", t.id, t.state))
            .collect();
        if !refused.is_empty() {
            return Err(CliError::NotAllowed(format!(
                "only failed, retrying or cancelled jobs can be retried: {}; nothing was changed",
                refused.join(", ")
            )));
        }
        targets
    };
    if targets.is_empty() {
        if opts.json {
            return output::json(ctx, &json!({ "dry_run": opts.dry_run, "retried": [] }));
        }
        return ctx.say("no failed jobs to retry");
    }
    let ids: Vec<String> = targets.iter().map(|t| t.id.clone()).collect();
    if opts.dry_run {
        if opts.json {
            let jobs: Vec<_> = targets
                .iter()
                .map(|t| json!({ "id": t.id, "kind": t.kind, "state": t.state }))
                .collect();
            return output::json(ctx, &json!({ "dry_run": true, "jobs": jobs }));
        }
        ctx.say(format!("would retry {} job(s):", ids.len()))?;
        return output::table(ctx, targets.iter().map(row));
    }
    let actor = ctx.actor()?;
    if opts.all_failed || ids.len() > 1 {
        if opts.json && !opts.yes {
            return Err(CliError::Invalid(
                "--json cannot ask for confirmation: add --yes; nothing was changed".into(),
            ));
        }
        ctx.confirm(&format!("Retry {} job(s)?", ids.len()), opts.yes)?;
    }
    let mut tx = ctx.pool.begin().await?;
    let retried = admin::retry(&mut tx, &ids).await?;
    audit::record(
        &mut tx,
        &actor,
        "jobs.retry",
        &retried,
        json!({ "all_failed": opts.all_failed, "kind": opts.kind }),
    )
    .await?;
    tx.commit().await?;
    if opts.json {
        return output::json(ctx, &json!({ "dry_run": false, "retried": retried }));
    }
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
