//! The operators' controls as one worker process sees them: which kinds are paused or
//! limited (`cart_queue.kind_controls`, written by `admin::pause` and `admin::limit`).
//!
//! Each process reads the whole table once every [`REFRESH`], so a pause or a limit reaches
//! every process within about a second, plus one poll interval; a kind that opens again is
//! woken at once. Between reads the claim consults this copy in memory, so a kind without
//! controls costs nothing per claim. A limited kind's claim goes to the database (see
//! `claim::claim_limited`); when its minute is used up, the kind is held in memory until the
//! oldest start leaves the window, so a throttled kind does not spin on the database.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sqlx::PgPool;
use tokio::{sync::watch, time::Instant};

use super::{
    claim::{Admission, ClaimGate},
    notifications::JobNotifications,
    supervise::stopped,
};

/// How often a process reads the controls.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);

/// One kind's controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Control {
    paused: bool,
    per_minute: Option<u32>,
}

/// The controls of every kind an operator has touched, and the kinds held back until their
/// limit frees up. Until the first read, every kind is closed: a process that starts while a
/// kind is paused must not claim it in the moment before it knows.
#[derive(Default)]
pub(crate) struct Controls {
    loaded: AtomicBool,
    by_kind: RwLock<HashMap<String, Control>>,
    held_until: RwLock<HashMap<String, Instant>>,
}

impl Controls {
    /// Replaces the controls with what the table holds; answers the kinds that may claim
    /// more than before (resumed, or their limit changed or cleared), which the caller wakes.
    fn replace(&self, fresh: HashMap<String, Control>) -> Vec<String> {
        let Ok(mut current) = self.by_kind.write() else {
            return Vec::new();
        };
        self.loaded.store(true, Ordering::Release);
        let opened: Vec<String> = current
            .iter()
            .filter(|(kind, before)| {
                let now = fresh.get(*kind);
                (before.paused && !now.is_some_and(|c| c.paused))
                    || before.per_minute != now.and_then(|c| c.per_minute)
            })
            .map(|(kind, _)| kind.clone())
            .collect();
        // A kind held back by its old limit is judged by its new one at once.
        if let Ok(mut held) = self.held_until.write() {
            for kind in &opened {
                held.remove(kind);
            }
        }
        *current = fresh;
        opened
    }
}

impl ClaimGate for Controls {
    fn admission(&self, kind: &str) -> Admission {
        if !self.loaded.load(Ordering::Acquire) {
            return Admission::Closed;
        }
        let control = self
            .by_kind
            .read()
            .ok()
            .and_then(|controls| controls.get(kind).copied());
        match control {
            None => Admission::Open,
            Some(Control { paused: true, .. }) => Admission::Closed,
            Some(Control {
                per_minute: None, ..
            }) => Admission::Open,
            Some(Control {
                per_minute: Some(per_minute),
                ..
            }) => {
                let held = self
                    .held_until
                    .read()
                    .ok()
                    .and_then(|held| held.get(kind).copied())
                    .is_some_and(|until| Instant::now() < until);
                if held {
                    Admission::Closed
                } else {
                    Admission::Limited { per_minute }
                }
            }
        }
    }

    fn hold(&self, kind: &str, after: Duration) {
        if let Ok(mut held) = self.held_until.write() {
            held.insert(kind.to_owned(), Instant::now() + after);
        }
    }
}

/// Reads the controls into `controls` every [`REFRESH`] until shutdown, waking the kinds that
/// opened up. A failed read keeps the last known controls (and logs once per outage).
pub(crate) async fn refresh(
    controls: Arc<Controls>,
    pool: PgPool,
    notifications: Arc<JobNotifications>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failing = false;
    loop {
        match read(&pool).await {
            Ok(fresh) => {
                if failing {
                    tracing::info!("reading the queue's controls again");
                    failing = false;
                }
                let first = !controls.loaded.load(Ordering::Acquire);
                let opened = controls.replace(fresh);
                if first {
                    notifications.wake_all();
                }
                for kind in opened {
                    tracing::info!(kind, "job kind resumed or unthrottled; waking its worker");
                    notifications.wake(&kind);
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(
                        error = %e,
                        "could not read the queue's controls; keeping the last known ones"
                    );
                    failing = true;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(REFRESH) => {}
            () = stopped(&mut shutdown) => return,
        }
    }
}

async fn read(pool: &PgPool) -> Result<HashMap<String, Control>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT kind, paused_at IS NOT NULL AS "paused!", per_minute
           FROM cart_queue.kind_controls
           WHERE paused_at IS NOT NULL OR per_minute IS NOT NULL"#
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let control = Control {
                paused: row.paused,
                per_minute: row.per_minute.and_then(|n| u32::try_from(n).ok()),
            };
            (row.kind, control)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controls(entries: &[(&str, bool, Option<u32>)]) -> HashMap<String, Control> {
        entries
            .iter()
            .map(|(kind, paused, per_minute)| {
                (
                    (*kind).to_owned(),
                    Control {
                        paused: *paused,
                        per_minute: *per_minute,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn a_kind_without_controls_is_open_and_a_paused_one_closed() {
        let gate = Controls::default();
        assert_eq!(
            gate.admission("expire_order"),
            Admission::Closed,
            "nothing is claimed before the controls are known"
        );
        gate.replace(controls(&[("send_email", true, None)]));
        assert_eq!(gate.admission("expire_order"), Admission::Open);
        assert_eq!(gate.admission("send_email"), Admission::Closed);
    }

    #[test]
    fn a_pause_wins_over_a_limit_and_a_held_kind_stays_closed_until_its_time() {
        let gate = Controls::default();
        gate.replace(controls(&[
            ("emit_invoice", false, Some(100)),
            ("send_email", true, Some(5)),
        ]));
        assert_eq!(
            gate.admission("emit_invoice"),
            Admission::Limited { per_minute: 100 }
        );
        assert_eq!(gate.admission("send_email"), Admission::Closed);
        gate.hold("emit_invoice", Duration::from_secs(30));
        assert_eq!(gate.admission("emit_invoice"), Admission::Closed);
        gate.hold("emit_invoice", Duration::ZERO);
        assert_eq!(
            gate.admission("emit_invoice"),
            Admission::Limited { per_minute: 100 }
        );
    }

    #[test]
    fn kinds_that_open_up_are_answered_for_a_wake_up() {
        let gate = Controls::default();
        assert!(
            gate.replace(controls(&[
                ("a", true, None),
                ("b", false, Some(3)),
                ("c", true, None)
            ]))
            .is_empty()
        );
        gate.hold("b", Duration::from_secs(30));
        let mut opened = gate.replace(controls(&[("c", true, None), ("b", false, Some(10))]));
        opened.sort();
        assert_eq!(opened, ["a", "b"], "resumed, and a raised limit");
        assert_eq!(
            gate.admission("b"),
            Admission::Limited { per_minute: 10 },
            "no longer held by the old limit"
        );
        let opened = gate.replace(controls(&[("c", true, None)]));
        assert_eq!(opened, ["b"]);
    }
}
