//! An order's timeline: everything that happened to one order, oldest first, from every
//! table that records it: its status changes, payments and refunds, the payment webhooks about
//! them, its NF-e, and the jobs and e-mails that served it. The first thing an operator reads
//! when asked "what happened to order CART-7F3K2Q?" (`cart-worker orders timeline`, and the
//! operator board's order page).
//!
//! The JSON form ([`Timeline`] serialized) is a contract: the board renders it and operators
//! script against `--json`, so field names and the `source`/`level` values only ever grow.
//!
//! Some rows keep only their current state and when it last changed (a payment's failure or
//! refund, an invoice's authorisation): those entries are placed at the row's `updated_at`.
//! Personal data stays out: the buyer's e-mail appears once, in the header, and not at all
//! once the account was anonymised; e-mail recipients are masked; webhook bodies and job
//! payloads are not shown.

mod jobs;
mod records;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::{OrderStatus, PaymentStatus};
use crate::Result;

/// At most this many jobs (e-mails included) are shown, the newest; [`Timeline::jobs_truncated`]
/// says when an order has more.
pub const JOB_LIMIT: i64 = 200;

/// One order's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    pub order: OrderHeader,
    /// Oldest first. At the same instant (one transaction), what reports a fact (a webhook,
    /// a payment, a refund, the NF-e) comes before the status change it caused, and that
    /// before the jobs and e-mails the transaction enqueued.
    pub entries: Vec<TimelineEntry>,
    /// True when more than [`JOB_LIMIT`] jobs serve the order: the oldest are left out.
    pub jobs_truncated: bool,
}

/// The order as it stands now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderHeader {
    pub id: Uuid,
    /// `CART-` and 8 characters.
    pub number: String,
    pub status: OrderStatus,
    pub payment_status: PaymentStatus,
    pub total_cents: i64,
    pub created_at: DateTime<Utc>,
    /// The buyer's e-mail; `null` once the account was anonymised (LGPD erasure).
    pub buyer_email: Option<String>,
    pub buyer_anonymised: bool,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub source: Source,
    pub level: Level,
    /// One line for a person, e.g. `payment confirmed: pending_payment → processing, paid`.
    pub summary: String,
    /// The entry's facts, by source (ids to look further with, statuses, amounts in cents):
    /// - `order`: `event_id`, `from_status`, `to_status`, `from_payment_status`,
    ///   `to_payment_status`, `actor` (a user id or `system`), `reason`, `request_id`;
    /// - `payment` and `refund`: `payment_id`, `method`, `provider`, `status` (now),
    ///   `amount_cents`, `paid_amount_cents`, `paid_at`, `expires_at`, `txid`,
    ///   `provider_reference`, `refund_reference`, `error`;
    /// - `webhook`: `webhook_event_id`, `payment_id`, `provider`, `event_id`, `event_type`,
    ///   `received_at`, `processed_at`, `outcome`;
    /// - `invoice`: `invoice_id`, `status`, `number`, `series`, `access_key`, `pdf_url`,
    ///   `xml_url`, `message`;
    /// - `job`: the job as `cart-worker jobs list --json` prints it (`id`, `kind`, `state`,
    ///   `attempts`, `max_attempts`, `run_at`, `done_at`, `last_error`, …);
    /// - `email`: `job_id`, `tag`, `subject`, `to` (masked), `state`, `attempts`,
    ///   `max_attempts`, `run_at`, `done_at`, `last_error`.
    pub details: Value,
}

/// Where an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `order_events`: a status change, with who made it and why.
    Order,
    /// A payment: started, charged, paid, failed, expired.
    Payment,
    /// A payment webhook: received, and what reconciliation made of it.
    Webhook,
    /// A payment's refund.
    Refund,
    /// The order's NF-e.
    Invoice,
    /// A background job serving the order (attempts and last error included).
    Job,
    /// An e-mail about the order (a `send_email` job).
    Email,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Order => "order",
            Self::Payment => "payment",
            Self::Webhook => "webhook",
            Self::Refund => "refund",
            Self::Invoice => "invoice",
            Self::Job => "job",
            Self::Email => "email",
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much an entry asks for attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    /// Went wrong in a way the system handles (a retry, a declined card, an automatic refund).
    Warning,
    /// Needs an operator: a job that failed for good, money that does not match, a rejected
    /// NF-e, a refund that must be done by hand.
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TimelineEntry {
    fn new(at: DateTime<Utc>, source: Source, summary: impl Into<String>, details: Value) -> Self {
        Self {
            at,
            source,
            level: Level::Info,
            summary: summary.into(),
            details,
        }
    }

    fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }
}

/// The timeline of the order with this id; `None` when there is no such order.
pub async fn timeline(pool: &PgPool, order_id: Uuid) -> Result<Option<Timeline>> {
    let mut conn = pool.acquire().await?;
    let Some(order) = records::header(&mut conn, order_id).await? else {
        return Ok(None);
    };
    let mut entries = records::order_events(&mut conn, &order).await?;
    entries.extend(records::payments(&mut conn, order_id).await?);
    entries.extend(records::webhooks(&mut conn, order_id).await?);
    entries.extend(records::invoice(&mut conn, order_id).await?);
    drop(conn);
    let served = jobs::entries(pool, order_id).await?;
    entries.extend(served.entries);
    Ok(Some(Timeline {
        order: order.header,
        entries: in_time_order(entries),
        jobs_truncated: served.truncated,
    }))
}

/// A time inside a summary: to the second, UTC.
fn short_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Oldest first; at the same instant, causes before effects (see [`Timeline::entries`]), then
/// as collected.
fn in_time_order(mut entries: Vec<TimelineEntry>) -> Vec<TimelineEntry> {
    entries.sort_by_key(|entry| (sort_time(entry), tie_rank(entry.source)));
    entries
}

/// When an entry happened, for sorting. A job's time is its id's, cut to the millisecond, and
/// the job was written after its transaction began (the time the database gives the rows
/// written with it): it sorts at the end of its millisecond, after them.
fn sort_time(entry: &TimelineEntry) -> DateTime<Utc> {
    match entry.source {
        Source::Job | Source::Email => entry.at + chrono::Duration::microseconds(999),
        _ => entry.at,
    }
}

fn tie_rank(source: Source) -> u8 {
    match source {
        Source::Webhook => 0,
        Source::Payment => 1,
        Source::Refund => 2,
        Source::Invoice => 3,
        Source::Order => 4,
        Source::Job => 5,
        Source::Email => 6,
    }
}
