//! The queue's "job inserted" notifications, heard by the process's one listening connection
//! and fanned out to the queue workers by job kind.
//!
//! apalis-postgres's `Pubsub` opens a listening connection per queue, and each of those
//! receives every notification of the database: PostgreSQL wakes every listening backend on
//! every committed NOTIFY, whatever its channel (a product's stock change announced to the
//! API's cache included), and each listener parsed every payload to find its own kind. With a
//! dozen kinds that was a dozen backends and a dozen client tasks woken per checkout. Here the
//! process's listener (its caller's, handed to [`Runtime::start`](crate::Runtime::start))
//! delivers [`Notice`]s, and only the kind a notification names is woken.
//!
//! The trigger notifies only for jobs due now (`run_at <= now()`); jobs scheduled for later
//! are found by the workers' polling, and whatever was notified while the listener was away
//! is looked for at once when it says it may have missed something.

use std::{borrow::Cow, collections::HashMap, sync::Arc};

use futures::{StreamExt, stream::BoxStream};
use serde::Deserialize;
use tokio::{sync::watch, task::JoinHandle};

/// What a process's listener heard on the queue's channel ([`CHANNEL`](crate::schema::CHANNEL)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A notification's payload (apalis' trigger names the job's kind in it).
    Payload(String),
    /// Notifications may have been missed (the listener reconnected, or fell behind): every
    /// worker looks for due jobs now.
    Missed,
}

/// Each started kind's wake-up signal.
type Kinds = HashMap<&'static str, watch::Sender<()>>;

/// The process's notification listener; stops listening when dropped.
pub(crate) struct JobNotifications {
    kinds: Arc<Kinds>,
    listener: JoinHandle<()>,
}

impl JobNotifications {
    /// Dispatches `notices` to the given kinds. Must be called inside a Tokio runtime.
    pub(crate) fn start(notices: BoxStream<'static, Notice>, kinds: &[&'static str]) -> Self {
        let kinds: Arc<Kinds> = Arc::new(
            kinds
                .iter()
                .map(|kind| (*kind, watch::Sender::new(())))
                .collect(),
        );
        let listener = tokio::spawn(dispatch_all(notices, kinds.clone()));
        Self { kinds, listener }
    }

    /// Yields once for each wake-up of `kind` since the previous item (several notifications
    /// that arrive before the worker looks are one wake-up: one fetch claims a whole batch).
    /// A kind that was not started never yields.
    pub(crate) fn subscribe(&self, kind: &str) -> BoxStream<'static, ()> {
        match self.kinds.get(kind) {
            Some(sender) => {
                let receiver = sender.subscribe();
                futures::stream::unfold(receiver, |mut receiver| async move {
                    receiver.changed().await.ok()?;
                    Some(((), receiver))
                })
                .boxed()
            }
            None => futures::stream::pending().boxed(),
        }
    }
}

impl JobNotifications {
    /// Wakes the workers of `kind` as a notification naming it would (an operator resumed it).
    pub(crate) fn wake(&self, kind: &str) {
        if let Some(sender) = self.kinds.get(kind) {
            sender.send_replace(());
        }
    }

    /// Wakes the workers of every kind (the controls became known).
    pub(crate) fn wake_all(&self) {
        wake_all(&self.kinds);
    }
}

impl Drop for JobNotifications {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// What the insert trigger sends; the job's id and `run_at` are not needed to wake a worker.
#[derive(Deserialize)]
struct Inserted<'a> {
    #[serde(borrow)]
    job_type: Cow<'a, str>,
}

/// Wakes the kind a notification names; `false` for a payload that names no started kind.
fn dispatch(kinds: &Kinds, payload: &str) -> bool {
    let Ok(inserted) = serde_json::from_str::<Inserted>(payload) else {
        tracing::debug!(payload, "ignoring a job notification that does not parse");
        return false;
    };
    match kinds.get(inserted.job_type.as_ref()) {
        Some(sender) => {
            sender.send_replace(());
            true
        }
        None => false,
    }
}

fn wake_all(kinds: &Kinds) {
    for sender in kinds.values() {
        sender.send_replace(());
    }
}

async fn dispatch_all(mut notices: BoxStream<'static, Notice>, kinds: Arc<Kinds>) {
    while let Some(notice) = notices.next().await {
        match notice {
            Notice::Payload(payload) => {
                dispatch(&kinds, &payload);
            }
            // Look now rather than at the next polling tick.
            Notice::Missed => wake_all(&kinds),
        }
    }
    tracing::warn!("the job notification listener has stopped; workers rely on polling");
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::{PgPool, postgres::PgListener};

    use super::*;

    fn senders(kinds: &[&'static str]) -> Kinds {
        kinds.iter().map(|k| (*k, watch::Sender::new(()))).collect()
    }

    #[test]
    fn a_notification_wakes_only_the_kind_it_names() {
        let kinds = senders(&["send_email", "expire_order"]);
        let mut email = kinds["send_email"].subscribe();
        let expiry = kinds["expire_order"].subscribe();
        let payload = r#"{"job_type" : "send_email", "id" : "01KB0000000000000000000000", "run_at" : "2026-11-26T10:00:00.123456+00:00"}"#;
        assert!(dispatch(&kinds, payload));
        assert!(email.has_changed().unwrap());
        assert!(!expiry.has_changed().unwrap());
        email.mark_unchanged();
        assert!(!dispatch(&kinds, r#"{"job_type": "not_ours", "id": "x"}"#));
        assert!(!dispatch(&kinds, "insert"));
        assert!(!email.has_changed().unwrap());
        assert!(!expiry.has_changed().unwrap());
    }

    #[tokio::test]
    async fn a_missed_notice_wakes_every_kind() {
        let (sender, receiver) = futures::channel::mpsc::unbounded();
        let notifications =
            JobNotifications::start(receiver.boxed(), &["send_email", "expire_order"]);
        let mut email = notifications.subscribe("send_email");
        let mut expiry = notifications.subscribe("expire_order");
        sender.unbounded_send(Notice::Missed).unwrap();
        let soon = std::time::Duration::from_secs(2);
        assert_eq!(tokio::time::timeout(soon, email.next()).await, Ok(Some(())));
        assert_eq!(
            tokio::time::timeout(soon, expiry.next()).await,
            Ok(Some(()))
        );
    }

    /// The queue's channel as notices, from a listener of the test's own.
    async fn listen(pool: &PgPool) -> BoxStream<'static, Notice> {
        let mut listener = PgListener::connect_with(pool).await.expect("a listener");
        listener
            .listen(crate::schema::CHANNEL)
            .await
            .expect("LISTEN");
        listener
            .into_stream()
            .filter_map(|heard| async move {
                heard.ok().map(|n| Notice::Payload(n.payload().to_owned()))
            })
            .boxed()
    }

    /// Enqueues a due job of `kind` through the real insert trigger.
    async fn insert_due_job(pool: &PgPool, kind: &str) {
        let mut conn = pool.acquire().await.expect("a connection");
        let job = crate::Encoded::raw(kind.to_owned(), b"{}".to_vec(), 1, None);
        crate::enqueue(&mut conn, &job).await.expect("a job");
    }

    #[sqlx::test(migrations = false)]
    async fn a_committed_job_wakes_its_kind_once_and_no_other(pool: PgPool) {
        cart_migrations::migrate(&pool).await.expect("migrations");
        let notifications =
            JobNotifications::start(listen(&pool).await, &["send_email", "expire_order"]);
        let mut email = notifications.subscribe("send_email");
        let mut expiry = notifications.subscribe("expire_order");
        let mut unknown = notifications.subscribe("not_started");

        // The listener connects in the background: enqueue until a notification arrives.
        let mut woken = false;
        for _ in 0..50 {
            insert_due_job(&pool, "send_email").await;
            if tokio::time::timeout(Duration::from_millis(200), email.next())
                .await
                .is_ok()
            {
                woken = true;
                break;
            }
        }
        assert!(woken, "no wake-up for a committed send_email job");

        // Several notifications that arrive before the worker looks are one wake-up.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = tokio::time::timeout(Duration::from_millis(10), email.next()).await;
        for _ in 0..3 {
            insert_due_job(&pool, "send_email").await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let first = tokio::time::timeout(Duration::from_millis(10), email.next()).await;
        assert_eq!(first, Ok(Some(())));
        let second = tokio::time::timeout(Duration::from_millis(50), email.next()).await;
        assert!(
            second.is_err(),
            "three notifications woke the worker more than once"
        );

        // Neither the other kind nor an unknown one was woken by any of it.
        let other = tokio::time::timeout(Duration::from_millis(50), expiry.next()).await;
        assert!(other.is_err(), "expire_order was woken by send_email jobs");
        let never = tokio::time::timeout(Duration::from_millis(50), unknown.next()).await;
        assert!(never.is_err());
    }
}
