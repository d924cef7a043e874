//! `GET /board/search?q=…`: jobs by what an operator knows. An order's number or id shows the
//! order (with a link to its timeline) and every job that serves it; a payment id, the jobs
//! of that payment; a job id, that job; anything else, the jobs whose payload or last error
//! contains the text.

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use cart_core::orders::lookup;
use cart_queue::admin::{self, JobSummary, ListFilter};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    BoardState,
    actions::{self, Action},
    auth::Session,
    pages::{self, PageError},
    redact,
};

/// The most jobs a search lists.
const LIMIT: i64 = 200;

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

#[derive(Serialize)]
struct SearchPage {
    title: &'static str,
    nav: &'static str,
    csrf: String,
    q: String,
    /// What the query was taken for: `order`, `payment`, `text`, or none yet.
    found: Option<&'static str>,
    order: Option<OrderLink>,
    jobs: Vec<ResultRow>,
    more: bool,
}

#[derive(Serialize)]
struct OrderLink {
    id: Uuid,
}

#[derive(Serialize)]
struct ResultRow {
    id: String,
    kind: String,
    state: String,
    attempts: String,
    when: String,
    ago: String,
    error: String,
    order_id: Option<Uuid>,
    can_retry: bool,
}

pub async fn page(
    State(state): State<BoardState>,
    session: Session,
    Query(query): Query<SearchQuery>,
) -> Response {
    let q = query.q.trim().to_owned();
    // A job id goes straight to the job.
    if let Ok(id) = actions::job_id(&q) {
        match admin::targets(&state.pool, std::slice::from_ref(&id)).await {
            Ok(found) if !found.is_empty() => {
                return Redirect::to(&format!("/board/jobs/{id}")).into_response();
            }
            Ok(_) => {}
            Err(err) => return PageError::from(err).into_page(&state),
        }
    }
    match search(&state, session, q).await {
        Ok(page) => pages::render(&state, StatusCode::OK, "search.html", page),
        Err(err) => err.into_page(&state),
    }
}

async fn search(state: &BoardState, session: Session, q: String) -> Result<SearchPage, PageError> {
    let mut page = SearchPage {
        title: "Search",
        nav: "search",
        csrf: session.csrf,
        q,
        found: None,
        order: None,
        jobs: Vec::new(),
        more: false,
    };
    if page.q.is_empty() {
        return Ok(page);
    }
    let jobs = if let Some(order_id) = lookup::resolve_order(&state.pool, &page.q).await? {
        page.found = Some("order");
        page.order = Some(OrderLink { id: order_id });
        lookup::jobs_serving(&state.pool, order_id, LIMIT + 1).await?
    } else if let Ok(payment_id) = page.q.parse::<Uuid>() {
        page.found = Some("payment");
        let serving = lookup::serving_payment(&state.pool, payment_id).await?;
        admin::list(
            &state.pool,
            &ListFilter {
                serving: Some(serving),
                limit: LIMIT + 1,
                ..ListFilter::default()
            },
        )
        .await?
    } else {
        page.found = Some("text");
        admin::list(
            &state.pool,
            &ListFilter {
                text: Some(page.q.clone()),
                limit: LIMIT + 1,
                ..ListFilter::default()
            },
        )
        .await?
    };
    let limit = usize::try_from(LIMIT).unwrap_or(usize::MAX);
    page.more = jobs.len() > limit;
    let now = Utc::now();
    page.jobs = jobs
        .into_iter()
        .take(limit)
        .map(|job| row(job, now))
        .collect();
    Ok(page)
}

fn row(job: JobSummary, now: chrono::DateTime<Utc>) -> ResultRow {
    let when = job.done_at.unwrap_or(job.run_at);
    ResultRow {
        can_retry: actions::allowed(Action::Retry, &job.state, &job.status),
        attempts: format!("{}/{}", job.attempts, job.max_attempts),
        when: pages::time(when),
        ago: pages::ago(when, now),
        error: redact::text_value(&pages::short(
            job.last_error.as_deref().unwrap_or_default(),
            160,
        )),
        order_id: job.order_id,
        id: job.id,
        kind: job.kind,
        state: job.state,
    }
}
