//! `jobs discard ID…`: deletes jobs that are waiting or have failed. The audit trail keeps
//! what was discarded (kind, payload, last error). Running jobs, jobs a worker has already
//! claimed, and finished jobs are refused.

use serde_json::{Value, json};

use cart_queue::admin;

use super::{CliError, Ctx, audit, check_ids, load_targets, output, retry::row};

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// The jobs to discard.
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Show what would be discarded; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(opts: Opts, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let ids = check_ids(&opts.ids)?;
    let targets = load_targets(ctx.pool, &ids).await?;
    let refused: Vec<String> = targets
        .iter()
        .filter_map(|t| match (t.state.as_str(), t.status.as_str()) {
            ("pending", "Queued") => Some(format!("{} is claimed by a worker", t.id)),
            ("pending" | "retrying" | "failed" | "cancelled", _) => None,
            (state, _) => Some(format!("{} is {state}", t.id)),
        })
        .collect();
    if !refused.is_empty() {
        return Err(CliError::NotAllowed(format!(
            "only waiting or failed jobs can be discarded: {}; nothing was changed",
            refused.join(", ")
        )));
    }
    if opts.dry_run {
        if opts.json {
            let jobs: Vec<Value> = targets
                .iter()
                .map(|t| json!({ "id": t.id, "kind": t.kind, "state": t.state }))
                .collect();
            return output::json(ctx, &json!({ "dry_run": true, "jobs": jobs }));
        }
        ctx.say(format!("would discard {} job(s):", targets.len()))?;
        return output::table(ctx, targets.iter().map(row));
    }
    let actor = ctx.actor()?;
    if ids.len() > 1 {
        if opts.json && !opts.yes {
            return Err(CliError::Invalid(
                "--json cannot ask for confirmation: add --yes; nothing was changed".into(),
            ));
        }
        ctx.confirm(&format!("Discard {} job(s)?", ids.len()), opts.yes)?;
    }
    let mut tx = ctx.pool.begin().await?;
    let deleted = admin::discard(&mut tx, &ids).await?;
    let discarded: Vec<String> = deleted.iter().map(|d| d.id.clone()).collect();
    let jobs: Vec<Value> = deleted
        .into_iter()
        .map(|d| {
            json!({
                "id": d.id,
                "kind": d.kind,
                "status": d.status,
                "attempts": d.attempts,
                "envelope": d.envelope,
                "last_error": d.last_error,
            })
        })
        .collect();
    let answer = json!({ "dry_run": false, "jobs": jobs });
    audit::record(
        &mut tx,
        &actor,
        "jobs.discard",
        &discarded,
        json!({ "jobs": jobs }),
    )
    .await?;
    tx.commit().await?;
    if opts.json {
        return output::json(ctx, &answer);
    }
    if discarded.len() < ids.len() {
        ctx.say(format!(
            "discarded {} of {} job(s); the others were claimed by a worker meanwhile",
            discarded.len(),
            ids.len()
        ))
    } else {
        ctx.say(format!("discarded {} job(s)", discarded.len()))
    }
}
