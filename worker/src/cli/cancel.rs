//! `jobs cancel ID…`: a waiting job (pending, scheduled, or retrying later) never runs: a
//! worker ends it at once with its kind's clean-up. A job a worker holds is asked to stop,
//! which the handlers that can stop safely between steps honour, and it is not retried if it
//! fails (see `cart_queue::admin::cancel`). Finished jobs are refused.

use serde::Serialize;
use serde_json::json;

use cart_queue::admin::{self, Target};

use super::{CliError, Ctx, audit, check_ids, load_targets, output};

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// The jobs to cancel.
    #[arg(required = true)]
    pub ids: Vec<String>,
    /// Show what would be cancelled; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Report<'a> {
    dry_run: bool,
    /// The jobs cancelled (or that would be), each with its outcome.
    jobs: Vec<Planned<'a>>,
}

#[derive(Debug, Serialize)]
struct Planned<'a> {
    id: &'a str,
    kind: &'a str,
    state: &'a str,
    outcome: &'a str,
}

#[derive(tabled::Tabled)]
struct PlannedRow {
    #[tabled(rename = "ID")]
    id: String,
    #[tabled(rename = "KIND")]
    kind: String,
    #[tabled(rename = "STATE")]
    state: String,
    #[tabled(rename = "OUTCOME")]
    outcome: String,
}

/// What cancelling a job in this state does.
fn outcome(target: &Target) -> Option<&'static str> {
    match target.state.as_str() {
        "pending" if target.status == "Queued" => Some("stop_requested"),
        "pending" | "retrying" => Some("cancelled"),
        "running" => Some("stop_requested"),
        _ => None,
    }
}

pub async fn run(opts: Opts, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let ids = check_ids(&opts.ids)?;
    let targets = load_targets(ctx.pool, &ids).await?;
    let refused: Vec<String> = targets
        .iter()
        .filter(|t| outcome(t).is_none())
        .map(|t| format!("{} is {}", t.id, t.state))
        .collect();
    if !refused.is_empty() {
        return Err(CliError::NotAllowed(format!(
            "only waiting or running jobs can be cancelled: {}; nothing was changed",
            refused.join(", ")
        )));
    }
    if opts.dry_run {
        let jobs = targets
            .iter()
            .map(|t| Planned {
                id: &t.id,
                kind: &t.kind,
                state: &t.state,
                outcome: outcome(t).unwrap_or_default(),
            })
            .collect();
        if opts.json {
            return output::json(
                ctx,
                &Report {
                    dry_run: true,
                    jobs,
                },
            );
        }
        ctx.say(format!("would cancel {} job(s):", targets.len()))?;
        return output::table(
            ctx,
            targets.iter().map(|t| PlannedRow {
                id: t.id.clone(),
                kind: t.kind.clone(),
                state: t.state.clone(),
                outcome: outcome(t).unwrap_or_default().to_owned(),
            }),
        );
    }
    let actor = ctx.actor()?;
    if ids.len() > 1 {
        if opts.json && !opts.yes {
            return Err(CliError::Invalid(
                "--json cannot ask for confirmation: add --yes; nothing was changed".into(),
            ));
        }
        ctx.confirm(&format!("Cancel {} job(s)?", ids.len()), opts.yes)?;
    }
    let mut tx = ctx.pool.begin().await?;
    let cancelled = admin::cancel(&mut tx, &ids, &actor).await?;
    let changed: Vec<String> = cancelled.iter().map(|c| c.id.clone()).collect();
    audit::record(
        &mut tx,
        &actor,
        "jobs.cancel",
        &changed,
        json!({ "jobs": cancelled }),
    )
    .await?;
    tx.commit().await?;
    if opts.json {
        let jobs = cancelled
            .iter()
            .map(|c| Planned {
                id: &c.id,
                kind: &c.kind,
                state: targets
                    .iter()
                    .find(|t| t.id == c.id)
                    .map_or("", |t| t.state.as_str()),
                outcome: c.outcome,
            })
            .collect();
        return output::json(
            ctx,
            &Report {
                dry_run: false,
                jobs,
            },
        );
    }
    let stopped = cancelled
        .iter()
        .filter(|c| c.outcome == "stop_requested")
        .count();
    let mut summary = format!(
        "cancelled {} job(s): they will not run (a worker ends each at once, with its kind's \
         clean-up)",
        cancelled.len() - stopped
    );
    if stopped > 0 {
        summary.push_str(&format!(
            "; asked {stopped} running job(s) to stop (kinds that can stop safely do so at \
             their next check; others finish)"
        ));
    }
    if cancelled.len() < ids.len() {
        summary.push_str(&format!(
            "; {} finished meanwhile and were left alone",
            ids.len() - cancelled.len()
        ));
    }
    ctx.say(summary)
}
