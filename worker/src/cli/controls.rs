//! `jobs pause KIND`, `jobs resume KIND` and `jobs limit KIND --per-minute N | --clear`: what
//! every worker process may claim of a kind. The state lives in PostgreSQL; every process
//! reads it about once a second. A paused kind's jobs wait; they never fail.

use serde::Serialize;
use serde_json::json;

use cart_queue::admin;

use super::{CliError, Ctx, audit, output};

#[derive(Debug, clap::Args)]
pub struct PauseOpts {
    /// The job kind (e.g. emit_invoice).
    pub kind: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("limit").required(true).args(["per_minute", "clear"])))]
pub struct LimitOpts {
    /// The job kind (e.g. emit_invoice).
    pub kind: String,
    /// Starts per minute, shared by every worker process.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=1_000_000))]
    pub per_minute: Option<i32>,
    /// Remove the limit.
    #[arg(long)]
    pub clear: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct Report<'a> {
    kind: &'a str,
    action: &'a str,
    /// Whether anything changed (pausing a paused kind changes nothing).
    changed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_minute: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_per_minute: Option<i32>,
}

impl<'a> Report<'a> {
    fn new(kind: &'a str, action: &'a str, changed: bool) -> Self {
        Self {
            kind,
            action,
            changed,
            per_minute: None,
            previous_per_minute: None,
        }
    }
}

fn known_kind<'a>(ctx: &Ctx<'_>, kind: &'a str) -> Result<&'a str, CliError> {
    if ctx.registry.kind(kind).is_some() {
        Ok(kind)
    } else {
        Err(CliError::Invalid(format!(
            "unknown job kind {kind:?}; known kinds: {}",
            ctx.registry.names().join(", ")
        )))
    }
}

pub async fn pause(opts: PauseOpts, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let kind = known_kind(ctx, &opts.kind)?;
    let actor = ctx.actor()?;
    let mut tx = ctx.pool.begin().await?;
    let changed = admin::pause(&mut tx, kind, &actor).await?;
    if changed {
        audit::record(&mut tx, &actor, "jobs.pause", &[], json!({ "kind": kind })).await?;
    }
    tx.commit().await?;
    let text = if changed {
        format!(
            "paused {kind}: every worker stops claiming it within a couple of seconds; its jobs \
             wait (running ones finish)"
        )
    } else {
        format!("{kind} was already paused")
    };
    report(ctx, opts.json, &Report::new(kind, "pause", changed), text)
}

pub async fn resume(opts: PauseOpts, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let kind = known_kind(ctx, &opts.kind)?;
    let actor = ctx.actor()?;
    let mut tx = ctx.pool.begin().await?;
    let changed = admin::resume(&mut tx, kind).await?;
    if changed {
        audit::record(&mut tx, &actor, "jobs.resume", &[], json!({ "kind": kind })).await?;
    }
    tx.commit().await?;
    let text = if changed {
        format!("resumed {kind}")
    } else {
        format!("{kind} was not paused")
    };
    report(ctx, opts.json, &Report::new(kind, "resume", changed), text)
}

pub async fn limit(opts: LimitOpts, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let kind = known_kind(ctx, &opts.kind)?;
    let actor = ctx.actor()?;
    let per_minute = if opts.clear { None } else { opts.per_minute };
    let mut tx = ctx.pool.begin().await?;
    let previous = admin::limit(&mut tx, kind, per_minute, &actor).await?;
    let changed = previous != per_minute;
    if changed {
        audit::record(
            &mut tx,
            &actor,
            "jobs.limit",
            &[],
            json!({ "kind": kind, "per_minute": per_minute, "previous": previous }),
        )
        .await?;
    }
    tx.commit().await?;
    let text = match (per_minute, previous) {
        (Some(n), _) => format!(
            "{kind}: at most {n} starts a minute, shared by every worker process{}",
            previous.map(|p| format!(" (was {p})")).unwrap_or_default()
        ),
        (None, Some(p)) => format!("{kind}: limit of {p} a minute removed"),
        (None, None) => format!("{kind} had no limit"),
    };
    let answer = Report {
        per_minute,
        previous_per_minute: previous,
        ..Report::new(kind, "limit", changed)
    };
    report(ctx, opts.json, &answer, text)
}

fn report(
    ctx: &mut Ctx<'_>,
    json: bool,
    answer: &Report<'_>,
    text: String,
) -> Result<(), CliError> {
    if json {
        output::json(ctx, answer)
    } else {
        ctx.say(text)
    }
}
