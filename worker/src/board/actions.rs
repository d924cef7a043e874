//! The board's changes: retry and discard, of one job or of every failed job of a kind. Each
//! runs in one transaction with its audit row (actor `board`, the CLI's action names), and
//! answers with a redirect to the page that shows the result.

use axum::{
    extract::State,
    http::StatusCode,
    response::{Redirect, Response},
};
use cart_queue::admin::{self, Target};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ACTOR, BoardState,
    auth::Protected,
    failed::urlencode,
    pages::{self, PageError},
};
use crate::cli::audit;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Retry,
    Discard,
}

impl Action {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "retry" => Some(Self::Retry),
            "discard" => Some(Self::Discard),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Discard => "discard",
        }
    }

    pub fn verb(self) -> &'static str {
        match self {
            Self::Retry => "Retry",
            Self::Discard => "Discard",
        }
    }
}

/// Whether `action` may be taken on a job in this state (the CLI's rules): retry a failed or
/// retrying job; discard one that waits unclaimed, is retrying or has failed.
pub fn allowed(action: Action, state: &str, status: &str) -> bool {
    match action {
        Action::Retry => matches!(state, "failed" | "retrying"),
        Action::Discard => match state {
            "pending" => status != "Queued",
            "retrying" | "failed" => true,
            _ => false,
        },
    }
}

/// Why `action` is refused for `target`.
pub fn refusal(action: Action, target: &Target) -> String {
    match (action, target.state.as_str(), target.status.as_str()) {
        (Action::Discard, "pending", "Queued") => format!(
            "Job {} is claimed by a worker and about to run; it cannot be discarded. \
             Nothing was changed.",
            target.id
        ),
        (Action::Retry, state, _) => format!(
            "Only failed or retrying jobs can be retried; job {} is {state}. Nothing was changed.",
            target.id
        ),
        (Action::Discard, state, _) => format!(
            "Only waiting or failed jobs can be discarded; job {} is {state}. Nothing was changed.",
            target.id
        ),
    }
}

/// A job id as typed or linked: a ULID, upper-cased.
pub fn job_id(raw: &str) -> Result<String, String> {
    let id = raw.trim().to_ascii_uppercase();
    ulid::Ulid::from_string(&id)
        .map(|_| id)
        .map_err(|_| format!("{raw:?} is not a job id"))
}

/// One job, or every job that failed for good (of a kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    Job,
    AllFailed,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Job => "job",
            Self::AllFailed => "all-failed",
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    scope: Scope,
    id: Option<String>,
    kind: Option<String>,
}

impl ActionForm {
    fn kind(&self) -> Option<&str> {
        self.kind
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
    }
}

/// The jobs a form acts on, each allowed the action, or why not.
async fn targets(
    state: &BoardState,
    action: Action,
    form: &ActionForm,
) -> Result<Vec<String>, Response> {
    match form.scope {
        Scope::AllFailed => admin::failed_jobs(&state.pool, form.kind())
            .await
            .map(|found| found.into_iter().map(|t| t.id).collect())
            .map_err(|e| PageError::from(e).into_page(state)),
        Scope::Job => {
            let id = job_id(form.id.as_deref().unwrap_or_default())
                .map_err(|why| PageError::Invalid(why).into_page(state))?;
            let target = admin::targets(&state.pool, std::slice::from_ref(&id))
                .await
                .map_err(|e| PageError::from(e).into_page(state))?
                .pop()
                .ok_or_else(|| PageError::NoSuchJob(id.clone()).into_page(state))?;
            if !allowed(action, &target.state, &target.status) {
                return Err(pages::message_page(
                    state,
                    StatusCode::CONFLICT,
                    "Not allowed",
                    &refusal(action, &target),
                ));
            }
            Ok(vec![id])
        }
    }
}

/// Where the result of an action on `form` shows.
fn result_page(form: &ActionForm, notice: &str, count: usize, job_page: bool) -> Redirect {
    let query = format!("notice={notice}&n={count}");
    match (form.scope, &form.id, form.kind()) {
        (Scope::Job, Some(id), _) if job_page => {
            Redirect::to(&format!("/board/jobs/{}?{query}", urlencode(id.trim())))
        }
        (Scope::AllFailed, _, Some(kind)) => {
            Redirect::to(&format!("/board/failed?kind={}&{query}", urlencode(kind)))
        }
        _ => Redirect::to(&format!("/board/failed?{query}")),
    }
}

/// `POST /board/jobs/retry`: back to the queue, due now, with a fresh set of attempts.
pub async fn retry(
    State(state): State<BoardState>,
    Protected(form): Protected<ActionForm>,
) -> Result<Redirect, Response> {
    let ids = targets(&state, Action::Retry, &form).await?;
    let retried = record_retry(&state, &ids, &form)
        .await
        .map_err(|e| PageError::from(e).into_page(&state))?;
    tracing::info!(actor = ACTOR, jobs = retried.len(), "board retried jobs");
    let notice = if retried.is_empty() {
        "unchanged"
    } else {
        "retried"
    };
    Ok(result_page(&form, notice, retried.len(), true))
}

async fn record_retry(
    state: &BoardState,
    ids: &[String],
    form: &ActionForm,
) -> Result<Vec<String>, sqlx::Error> {
    let mut tx = state.pool.begin().await?;
    let retried = admin::retry(&mut tx, ids).await?;
    audit::record(
        &mut tx,
        ACTOR,
        "jobs.retry",
        &retried,
        json!({ "all_failed": form.scope == Scope::AllFailed, "kind": form.kind() }),
    )
    .await?;
    tx.commit().await?;
    Ok(retried)
}

/// `POST /board/jobs/discard`: deleted, kept whole in the audit trail.
pub async fn discard(
    State(state): State<BoardState>,
    Protected(form): Protected<ActionForm>,
) -> Result<Redirect, Response> {
    let ids = targets(&state, Action::Discard, &form).await?;
    let discarded = record_discard(&state, &ids, &form)
        .await
        .map_err(|e| PageError::from(e).into_page(&state))?;
    tracing::info!(actor = ACTOR, jobs = discarded, "board discarded jobs");
    let notice = if discarded == 0 {
        "unchanged"
    } else {
        "discarded"
    };
    // A discarded job has no page left: show the list it was in.
    Ok(result_page(&form, notice, discarded, discarded == 0))
}

async fn record_discard(
    state: &BoardState,
    ids: &[String],
    form: &ActionForm,
) -> Result<usize, sqlx::Error> {
    let mut tx = state.pool.begin().await?;
    let deleted = admin::discard(&mut tx, ids).await?;
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
    audit::record(
        &mut tx,
        ACTOR,
        "jobs.discard",
        &discarded,
        json!({
            "jobs": jobs,
            "all_failed": form.scope == Scope::AllFailed,
            "kind": form.kind(),
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(discarded.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clis_rules_decide_what_may_be_done() {
        assert!(allowed(Action::Retry, "failed", "Killed"));
        assert!(allowed(Action::Retry, "retrying", "Failed"));
        assert!(!allowed(Action::Retry, "done", "Done"));
        assert!(!allowed(Action::Retry, "pending", "Pending"));
        assert!(allowed(Action::Discard, "pending", "Pending"));
        assert!(!allowed(Action::Discard, "pending", "Queued"));
        assert!(!allowed(Action::Discard, "running", "Running"));
        assert!(!allowed(Action::Discard, "done", "Done"));
    }

    #[test]
    fn job_ids_are_ulids() {
        assert_eq!(
            job_id(" 01jd0000000000000000000000 ").unwrap(),
            "01JD0000000000000000000000"
        );
        assert!(job_id("1; DROP TABLE").is_err());
        assert!(job_id("").is_err());
    }
}
