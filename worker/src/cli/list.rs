//! `jobs list`: jobs newest first, filtered by state, kind and age, by the order or payment
//! they serve, or by text in their payload or last error.

use cart_core::orders::lookup;
use cart_queue::admin::{self, JobState, JobSummary, ListFilter};
use chrono::{DateTime, Utc};
use tabled::Tabled;
use uuid::Uuid;

use super::{CliError, Ctx, output, parse_state};

#[derive(Debug, clap::Args)]
pub struct Opts {
    /// Only jobs in this state: pending, running, done, retrying, failed or cancelled.
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
    /// Only jobs that serve this order (its id or number), directly or through its payments
    /// and their webhook events.
    #[arg(long, value_name = "ID|NUMBER", conflicts_with = "payment")]
    pub order: Option<String>,
    /// Only jobs that serve this payment, directly or through its webhook events.
    #[arg(long, value_name = "ID")]
    pub payment: Option<Uuid>,
    /// Only jobs whose payload or last error contains this text (any case); an order's id or
    /// number, or a payment's id, searches as --order or --payment would.
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
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
    #[tabled(rename = "ORDER")]
    order: String,
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
    if opts
        .search
        .as_deref()
        .is_some_and(|text| text.trim().is_empty())
    {
        return Err(CliError::Invalid("--search: give some text".into()));
    }
    // Text that names an order (its id or number) or a payment searches by what jobs serve,
    // through the indexes, rather than reading every payload.
    let mut text = opts.search.as_ref().map(|text| text.trim().to_owned());
    let mut order = opts.order.clone();
    let mut payment = opts.payment;
    if let Some(searched) = text.clone()
        && order.is_none()
        && payment.is_none()
    {
        if lookup::resolve_order(ctx.pool, &searched).await?.is_some() {
            order = Some(searched);
            text = None;
        } else if let Ok(id) = searched.parse::<Uuid>()
            && lookup::order_of_payment(ctx.pool, id).await?.is_some()
        {
            payment = Some(id);
            text = None;
        }
    }
    // Whom every row serves, when the search is by order or payment.
    let (serving, order_id) = match (&order, payment) {
        (Some(reference), _) => {
            let order_id = lookup::resolve_order(ctx.pool, reference)
                .await?
                .ok_or_else(|| CliError::NotFound(format!("no such order: {reference}")))?;
            (
                Some(lookup::serving_order(ctx.pool, order_id).await?),
                Some(order_id),
            )
        }
        (None, Some(payment_id)) => {
            let order_id = lookup::order_of_payment(ctx.pool, payment_id)
                .await?
                .ok_or_else(|| CliError::NotFound(format!("no such payment: {payment_id}")))?;
            (
                Some(lookup::serving_payment(ctx.pool, payment_id).await?),
                Some(order_id),
            )
        }
        (None, None) => (None, None),
    };
    let filter = ListFilter {
        state: opts.state,
        kind: opts.kind.clone(),
        since: opts.since,
        serving,
        text,
        limit: opts.limit,
    };
    let mut jobs = admin::list(ctx.pool, &filter).await?;
    if let Some(order_id) = order_id {
        for job in &mut jobs {
            job.order_id.get_or_insert(order_id);
        }
    }
    lookup::fill_orders(ctx.pool, &mut jobs).await?;
    Ok(jobs)
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
        order: job
            .order_id
            .map(|id| id.to_string())
            .unwrap_or_else(|| "-".into()),
        id: job.id,
        kind: job.kind,
        state: job.state,
    });
    output::table(ctx, rows)
}
