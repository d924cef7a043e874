//! `GET /board/orders/{id}`: an order's timeline (`cart_core::orders::timeline`, the CLI's
//! `orders timeline`), its header and every entry in time order, with links to the jobs.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use cart_core::orders::{lookup, timeline};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{
    BoardState,
    auth::Session,
    pages::{self, PageError},
    redact,
};

#[derive(Serialize)]
struct OrderPage {
    title: String,
    nav: &'static str,
    csrf: String,
    id: Uuid,
    number: String,
    status: String,
    payment_status: String,
    total: String,
    created: String,
    buyer: String,
    entries: Vec<EntryRow>,
    jobs_truncated: bool,
}

#[derive(Serialize)]
struct EntryRow {
    at: String,
    source: &'static str,
    level: &'static str,
    summary: String,
    /// The job the entry is about (a job or an e-mail), for a link.
    job_id: Option<String>,
    /// The entry's facts, redacted, as `key: value` lines.
    details: Vec<(String, String)>,
}

pub async fn page(
    State(state): State<BoardState>,
    session: Session,
    Path(reference): Path<String>,
) -> Response {
    match order(&state, session, &reference).await {
        Ok(page) => pages::render(&state, StatusCode::OK, "order.html", page),
        Err(err) => err.into_page(&state),
    }
}

async fn order(
    state: &BoardState,
    session: Session,
    reference: &str,
) -> Result<OrderPage, PageError> {
    let no_order = || PageError::NoSuchOrder(reference.to_owned());
    let order_id = lookup::resolve_order(&state.pool, reference)
        .await?
        .ok_or_else(no_order)?;
    let found = timeline::timeline(&state.pool, order_id)
        .await?
        .ok_or_else(no_order)?;
    let header = &found.order;
    let entries = found
        .entries
        .iter()
        .map(|entry| EntryRow {
            at: pages::time(entry.at),
            source: entry.source.as_str(),
            level: entry.level.as_str(),
            summary: redact::text_value(&entry.summary),
            job_id: job_of(entry.source, &entry.details),
            details: facts(&entry.details),
        })
        .collect();
    Ok(OrderPage {
        title: format!("Order {}", header.number),
        nav: "search",
        csrf: session.csrf,
        id: header.id,
        number: header.number.clone(),
        status: label(&header.status),
        payment_status: label(&header.payment_status),
        total: cart_core::money::format_brl(header.total_cents),
        created: pages::time(header.created_at),
        buyer: match (&header.buyer_email, header.buyer_anonymised) {
            (_, true) => "anonymised".to_owned(),
            (Some(email), false) => email.clone(),
            (None, false) => String::new(),
        },
        entries,
        jobs_truncated: found.jobs_truncated,
    })
}

/// A status as its JSON name (`pending_payment`).
fn label<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// The job a job or e-mail entry is about.
fn job_of(source: timeline::Source, details: &Value) -> Option<String> {
    let field = match source {
        timeline::Source::Job => "id",
        timeline::Source::Email => "job_id",
        _ => return None,
    };
    details
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// An entry's details as `key: value` lines, redacted, nulls left out.
fn facts(details: &Value) -> Vec<(String, String)> {
    let Value::Object(fields) = redact::payload(details) else {
        return Vec::new();
    };
    fields
        .into_iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| {
            let shown = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            (key, shown)
        })
        .collect()
}
