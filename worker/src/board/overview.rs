//! `GET /board`: the queue at a glance. The kinds an operator paused or throttled, depth by
//! kind and state (with how long the oldest due job has waited), the last hour's throughput
//! and failures per minute as a chart, and per kind the hour's totals with a sparkline.

use std::collections::{BTreeMap, BTreeSet};

use axum::{extract::State, http::StatusCode, response::Response};
use cart_queue::admin::{self, JobState, throughput};
use chrono::Utc;
use serde::Serialize;

use super::{
    BoardState,
    auth::Session,
    chart::{self, Minute},
    failed::urlencode,
    pages::{self, PageError},
};

/// The chart's window.
const MINUTES: i32 = 60;

#[derive(Serialize)]
struct Overview {
    title: &'static str,
    nav: &'static str,
    csrf: String,
    states: Vec<String>,
    kinds: Vec<KindRow>,
    totals: Vec<i64>,
    chart: chart::Chart,
    hour: Hour,
    controls: Vec<ControlRow>,
}

/// A kind an operator paused or limited (`cart-worker jobs pause|limit`).
#[derive(Serialize)]
struct ControlRow {
    kind: String,
    /// `since … by …`, when paused.
    paused: Option<String>,
    /// `N per minute, M started in the last minute`, when limited.
    limit: Option<String>,
}

#[derive(Serialize, Default)]
struct Hour {
    done: i64,
    failed: i64,
    gave_up: i64,
}

#[derive(Serialize)]
struct KindRow {
    kind: String,
    /// `kind` for a query string.
    kind_query: String,
    /// One count per column of `states`.
    counts: Vec<i64>,
    failed: i64,
    oldest_due: Option<String>,
    hour: Hour,
    sparkline: String,
}

pub async fn page(State(state): State<BoardState>, session: Session) -> Response {
    match overview(&state, session).await {
        Ok(page) => pages::render(&state, StatusCode::OK, "overview.html", page),
        Err(err) => err.into_page(&state),
    }
}

async fn overview(state: &BoardState, session: Session) -> Result<Overview, PageError> {
    let depth = admin::depth(&state.pool).await?;
    let window = throughput::throughput(&state.pool, MINUTES).await?;
    let now = Utc::now();
    let controls = admin::controls(&state.pool)
        .await?
        .into_iter()
        .map(|control| ControlRow {
            paused: control.paused_at.map(|at| {
                format!(
                    "paused {} ago ({}) by {}",
                    pages::ago(at, now),
                    pages::time(at),
                    control.paused_by.as_deref().unwrap_or("?")
                )
            }),
            limit: control.per_minute.map(|per_minute| {
                format!(
                    "{per_minute} starts per minute; {} in the last minute",
                    control.started_last_minute
                )
            }),
            kind: control.kind,
        })
        .collect();

    // The states in a job's life order, then any other the queue reports.
    let mut states: Vec<String> = JobState::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    for row in &depth {
        if !states.contains(&row.state) {
            states.push(row.state.clone());
        }
    }
    let kinds: BTreeSet<&str> = depth
        .iter()
        .map(|d| d.kind.as_str())
        .chain(window.rows.iter().map(|r| r.kind.as_str()))
        .collect();
    let slots = usize::try_from(window.minutes).unwrap_or(0);
    let mut all = vec![Minute::default(); slots];
    let mut per_kind: BTreeMap<&str, (Vec<Minute>, Hour)> = BTreeMap::new();
    for row in &window.rows {
        let Some(slot) = window.slot(row.minute) else {
            continue;
        };
        let (series, hour) = per_kind
            .entry(row.kind.as_str())
            .or_insert_with(|| (vec![Minute::default(); slots], Hour::default()));
        series[slot].done += row.done;
        series[slot].failed += row.failed;
        all[slot].done += row.done;
        all[slot].failed += row.failed;
        hour.done += row.done;
        hour.failed += row.failed;
        hour.gave_up += row.gave_up;
    }

    let mut totals = vec![0; states.len()];
    let rows = kinds
        .into_iter()
        .map(|kind| {
            let mut counts = vec![0; states.len()];
            let mut oldest_due = None;
            for d in depth.iter().filter(|d| d.kind == kind) {
                if let Some(column) = states.iter().position(|s| *s == d.state) {
                    counts[column] += d.count;
                    totals[column] += d.count;
                }
                if let Some(secs) = d.oldest_due_secs {
                    oldest_due = Some(pages::age(secs));
                }
            }
            let failed = states
                .iter()
                .position(|s| s == JobState::Failed.as_str())
                .map_or(0, |c| counts[c]);
            let (series, hour) = per_kind
                .remove(kind)
                .unwrap_or_else(|| (vec![Minute::default(); slots], Hour::default()));
            KindRow {
                kind: kind.to_owned(),
                kind_query: urlencode(kind),
                counts,
                failed,
                oldest_due,
                sparkline: chart::sparkline(&series),
                hour,
            }
        })
        .collect();
    let hour = Hour {
        done: window.rows.iter().map(|r| r.done).sum(),
        failed: window.rows.iter().map(|r| r.failed).sum(),
        gave_up: window.rows.iter().map(|r| r.gave_up).sum(),
    };
    Ok(Overview {
        title: "Overview",
        nav: "overview",
        csrf: session.csrf,
        states,
        kinds: rows,
        totals,
        chart: chart::minutes(window.from, &all),
        hour,
        controls,
    })
}
