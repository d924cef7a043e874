//! `jobs stats`: how many jobs of each kind are in each state, how long the oldest due job
//! has been waiting, and which kinds are paused or limited.

use std::collections::BTreeMap;

use serde::Serialize;
use tabled::Tabled;

use super::{CliError, Ctx, output};

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Serialize, Tabled, PartialEq, Eq)]
pub struct KindStats {
    #[tabled(rename = "KIND")]
    pub kind: String,
    #[tabled(rename = "PENDING")]
    pub pending: i64,
    #[tabled(rename = "RUNNING")]
    pub running: i64,
    #[tabled(rename = "RETRYING")]
    pub retrying: i64,
    #[tabled(rename = "FAILED")]
    pub failed: i64,
    #[tabled(rename = "DONE")]
    pub done: i64,
    #[tabled(rename = "CANCELLED")]
    pub cancelled: i64,
    #[tabled(rename = "OLDEST PENDING", display = "display_age")]
    pub oldest_pending_secs: Option<i64>,
    /// `paused` (since when, by whom), a limit (`≤ 100/min, 12 in the last minute`), or `-`.
    #[tabled(rename = "CONTROL", display = "display_control")]
    pub control: Option<Control>,
}

/// What an operator set on a kind.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Control {
    pub paused: bool,
    pub paused_at: Option<chrono::DateTime<chrono::Utc>>,
    pub paused_by: Option<String>,
    pub per_minute: Option<i32>,
    pub started_last_minute: i64,
}

fn display_control(control: &Option<Control>) -> String {
    let Some(control) = control else {
        return "-".into();
    };
    let mut parts = Vec::new();
    if control.paused {
        parts.push(format!(
            "paused {} by {}",
            output::optional_time(control.paused_at),
            control.paused_by.as_deref().unwrap_or("?")
        ));
    }
    if let Some(per_minute) = control.per_minute {
        parts.push(format!(
            "≤ {per_minute}/min ({} in the last minute)",
            control.started_last_minute
        ));
    }
    parts.join("; ")
}

fn display_age(secs: &Option<i64>) -> String {
    secs.map(output::age).unwrap_or_else(|| "-".into())
}

pub async fn collect(ctx: &Ctx<'_>) -> Result<Vec<KindStats>, CliError> {
    let mut by_kind = BTreeMap::<String, KindStats>::new();
    // Registered kinds show up even with no jobs, so an empty queue still says something.
    for name in ctx.registry.names() {
        by_kind.entry(name.to_owned()).or_default();
    }
    for depth in cart_queue::admin::depth(ctx.pool).await? {
        let stats = by_kind.entry(depth.kind.clone()).or_default();
        match depth.state.as_str() {
            "pending" => stats.pending += depth.count,
            "running" => stats.running += depth.count,
            "retrying" => stats.retrying += depth.count,
            "done" => stats.done += depth.count,
            "cancelled" => stats.cancelled += depth.count,
            _ => stats.failed += depth.count,
        }
        if let Some(secs) = depth.oldest_due_secs {
            stats.oldest_pending_secs = Some(stats.oldest_pending_secs.unwrap_or(0).max(secs));
        }
    }
    for control in cart_queue::admin::controls(ctx.pool).await? {
        by_kind.entry(control.kind.clone()).or_default().control = Some(Control {
            paused: control.paused_at.is_some(),
            paused_at: control.paused_at,
            paused_by: control.paused_by,
            per_minute: control.per_minute,
            started_last_minute: control.started_last_minute,
        });
    }
    Ok(by_kind
        .into_iter()
        .map(|(kind, stats)| KindStats { kind, ..stats })
        .collect())
}

pub async fn run(opts: Opts, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let stats = collect(ctx).await?;
    if opts.json {
        output::json(ctx, &stats)
    } else {
        output::table(ctx, stats)
    }
}
