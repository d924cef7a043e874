//! `GET /board/failed`: jobs that failed for good (or are retrying), newest first, by kind,
//! each with retry and discard; and `GET /board/confirm`, the step before discarding a job
//! or acting on every failed job of a filter.

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::Response,
};
use cart_queue::admin::{self, JobState, ListFilter};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{
    BoardState,
    actions::{self, Action, Scope},
    auth::Session,
    pages::{self, PageError},
    redact,
};

/// The most jobs one page lists.
const PAGE_SIZE: i64 = 200;
/// The most ids a confirmation lists (it still acts on every match).
const CONFIRM_LISTED: usize = 100;

#[derive(Debug, Deserialize)]
pub struct FailedQuery {
    kind: Option<String>,
    state: Option<String>,
    notice: Option<String>,
    n: Option<usize>,
}

#[derive(Serialize)]
struct FailedPage {
    title: &'static str,
    nav: &'static str,
    csrf: String,
    notice: Option<String>,
    kinds: Vec<String>,
    kind: Option<String>,
    /// `kind` for a query string.
    kind_query: Option<String>,
    state: &'static str,
    jobs: Vec<JobRow>,
    /// How many jobs failed for good under the filter (what "retry all" would take).
    matching: usize,
    more: bool,
}

#[derive(Serialize)]
pub struct JobRow {
    pub id: String,
    /// The order the job serves, for a link to its jobs.
    pub order_id: Option<uuid::Uuid>,
    pub kind: String,
    pub state: String,
    pub attempts: String,
    pub when: String,
    pub ago: String,
    pub error: String,
    pub can_retry: bool,
    pub can_discard: bool,
}

pub async fn page(
    State(state): State<BoardState>,
    session: Session,
    Query(query): Query<FailedQuery>,
) -> Response {
    match failed(&state, session, query).await {
        Ok(page) => pages::render(&state, StatusCode::OK, "failed.html", page),
        Err(err) => err.into_page(&state),
    }
}

/// An empty form field means "any".
fn given(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

async fn failed(
    state: &BoardState,
    session: Session,
    query: FailedQuery,
) -> Result<FailedPage, PageError> {
    let kind = given(query.kind);
    let job_state = match query.state.as_deref() {
        None | Some("" | "failed") => JobState::Failed,
        Some("retrying") => JobState::Retrying,
        Some(other) => {
            return Err(PageError::Invalid(format!(
                "state {other:?}: this page lists failed or retrying jobs"
            )));
        }
    };
    let mut kinds: Vec<String> = admin::depth(&state.pool)
        .await?
        .into_iter()
        .map(|d| d.kind)
        .collect();
    kinds.dedup();
    let jobs = admin::list(
        &state.pool,
        &ListFilter {
            state: Some(job_state),
            kind: kind.clone(),
            limit: PAGE_SIZE + 1,
            ..ListFilter::default()
        },
    )
    .await?;
    let more = jobs.len() > usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX);
    let now = Utc::now();
    let rows = jobs
        .into_iter()
        .take(usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX))
        .map(|job| {
            let when = job.done_at.unwrap_or(job.run_at);
            JobRow {
                can_retry: actions::allowed(Action::Retry, &job.state, &job.status),
                can_discard: actions::allowed(Action::Discard, &job.state, &job.status),
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
        })
        .collect();
    let matching = admin::failed_jobs(&state.pool, kind.as_deref())
        .await?
        .len();
    Ok(FailedPage {
        title: "Failed jobs",
        nav: "failed",
        csrf: session.csrf,
        notice: pages::notice(query.notice.as_deref(), query.n),
        kinds,
        kind_query: kind.as_deref().map(urlencode),
        kind,
        state: job_state.as_str(),
        jobs: rows,
        matching,
        more,
    })
}

#[derive(Debug, Deserialize)]
pub struct ConfirmQuery {
    action: String,
    id: Option<String>,
    #[serde(default)]
    all: Option<String>,
    kind: Option<String>,
}

#[derive(Serialize)]
struct ConfirmPage {
    title: String,
    nav: &'static str,
    csrf: String,
    action: &'static str,
    verb: &'static str,
    scope: &'static str,
    id: Option<String>,
    kind: Option<String>,
    count: usize,
    listed: Vec<String>,
    back: String,
}

/// `GET /board/confirm?action=retry|discard&id=ID` or `…&all=failed&kind=KIND`: what the
/// action would take, and the form that does it.
pub async fn confirm(
    State(state): State<BoardState>,
    session: Session,
    Query(query): Query<ConfirmQuery>,
) -> Response {
    match confirmation(&state, session, query).await {
        Ok(page) => pages::render(&state, StatusCode::OK, "confirm.html", page),
        Err(err) => err.into_page(&state),
    }
}

async fn confirmation(
    state: &BoardState,
    session: Session,
    query: ConfirmQuery,
) -> Result<ConfirmPage, PageError> {
    let action = Action::parse(&query.action)
        .ok_or_else(|| PageError::Invalid(format!("unknown action {:?}", query.action)))?;
    let kind = given(query.kind);
    let (scope, ids, back) = if query.all.as_deref() == Some("failed") {
        let ids: Vec<String> = admin::failed_jobs(&state.pool, kind.as_deref())
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect();
        let back = match &kind {
            Some(kind) => format!("/board/failed?kind={}", urlencode(kind)),
            None => "/board/failed".to_owned(),
        };
        (Scope::AllFailed, ids, back)
    } else {
        let id =
            actions::job_id(query.id.as_deref().unwrap_or_default()).map_err(PageError::Invalid)?;
        let target = admin::targets(&state.pool, std::slice::from_ref(&id))
            .await?
            .pop()
            .ok_or_else(|| PageError::NoSuchJob(id.clone()))?;
        if !actions::allowed(action, &target.state, &target.status) {
            return Err(PageError::Invalid(actions::refusal(action, &target)));
        }
        let back = format!("/board/jobs/{id}");
        (Scope::Job, vec![id], back)
    };
    Ok(ConfirmPage {
        title: format!("{} {} job(s)?", action.verb(), ids.len()),
        nav: "failed",
        csrf: session.csrf,
        action: action.as_str(),
        verb: action.verb(),
        scope: scope.as_str(),
        id: (scope == Scope::Job).then(|| ids[0].clone()),
        kind,
        count: ids.len(),
        listed: ids.into_iter().take(CONFIRM_LISTED).collect(),
        back,
    })
}

/// A query-string value.
pub fn urlencode(value: &str) -> String {
    serde_urlencoded::to_string([("v", value)].as_slice())
        .map(|pair| pair.trim_start_matches("v=").to_owned())
        .unwrap_or_default()
}
