//! `orders timeline ID|NUMBER`: everything that happened to one order, oldest first (status
//! changes, payments, refunds, webhooks, NF-e, jobs and e-mails), from
//! `cart_core::orders::timeline`. The first command to run when asked about an order.

use cart_core::orders::{
    lookup,
    timeline::{self, Level, Timeline, TimelineEntry},
};
use chrono::SecondsFormat;
use clap::Subcommand;
use tabled::Tabled;

use super::{CliError, Ctx, output};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: OrdersCommand,
}

#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// Everything that happened to one order, oldest first: status changes, payments,
    /// refunds, webhooks, NF-e, jobs (with attempts and errors) and e-mails.
    Timeline(TimelineOpts),
}

#[derive(Debug, clap::Args)]
pub struct TimelineOpts {
    /// The order's id, or its number (CART-7F3K2Q9X), in any case.
    pub order: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: OrdersCommand, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    match command {
        OrdersCommand::Timeline(opts) => run_timeline(opts, ctx).await,
    }
}

/// The timeline of the order `reference` names; unknown → `NotFound` (exit 3).
pub async fn load(ctx: &Ctx<'_>, reference: &str) -> Result<Timeline, CliError> {
    let reference = reference.trim();
    let not_found = || CliError::NotFound(format!("no such order: {reference}"));
    let order_id = lookup::resolve_order(ctx.pool, reference)
        .await?
        .ok_or_else(not_found)?;
    timeline::timeline(ctx.pool, order_id)
        .await?
        .ok_or_else(not_found)
}

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "TIME")]
    time: String,
    #[tabled(rename = "SOURCE")]
    source: String,
    /// Empty for the ordinary, so what went wrong stands out.
    #[tabled(rename = "LEVEL")]
    level: String,
    #[tabled(rename = "WHAT HAPPENED")]
    summary: String,
}

impl From<&TimelineEntry> for Row {
    fn from(entry: &TimelineEntry) -> Self {
        Self {
            // Milliseconds: a webhook, its reconciliation and the jobs that follow often share
            // a second.
            time: entry.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            source: entry.source.to_string(),
            level: match entry.level {
                Level::Info => String::new(),
                Level::Warning => "warning".into(),
                Level::Error => "ERROR".into(),
            },
            summary: output::short(&entry.summary, 140),
        }
    }
}

async fn run_timeline(opts: TimelineOpts, ctx: &mut Ctx<'_>) -> Result<(), CliError> {
    let timeline = load(ctx, &opts.order).await?;
    if opts.json {
        return output::json(ctx, &timeline);
    }
    let order = &timeline.order;
    let buyer = match &order.buyer_email {
        Some(email) => email.clone(),
        None => "(account anonymised)".into(),
    };
    let problems = timeline
        .entries
        .iter()
        .filter(|e| e.level == Level::Error)
        .count();
    let lines = [
        format!("order          {} ({})", order.number, order.id),
        format!("status         {}, {}", order.status, order.payment_status),
        format!(
            "total          {}",
            cart_core::money::format_brl(order.total_cents)
        ),
        format!("buyer          {buyer}"),
        format!("placed         {}", output::time(order.created_at)),
        format!(
            "errors         {}",
            if problems == 0 {
                "none".to_owned()
            } else {
                problems.to_string()
            }
        ),
    ];
    for line in lines {
        ctx.say(line)?;
    }
    output::table(ctx, timeline.entries.iter().map(Row::from))?;
    if timeline.jobs_truncated {
        ctx.say(format!(
            "only the newest {} jobs are shown; `cart-worker jobs list --order {} --limit 10000` \
             lists more",
            timeline::JOB_LIMIT,
            order.number
        ))?;
    }
    Ok(())
}
