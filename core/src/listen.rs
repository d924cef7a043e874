//! One `LISTEN` connection per process, fanned out to every subscriber by channel.
//!
//! PostgreSQL wakes every listening backend on every committed `NOTIFY`, whatever its channel,
//! and each listening connection is a backend held for the life of the process. So a process
//! holds one: the [`ListenHub`] listens on every channel somebody subscribed to and hands each
//! notification to that channel's subscribers only. It also owns what every listener would
//! otherwise get wrong on its own:
//!
//! - **Reconnecting.** A lost connection is re-established with a jittered exponential backoff
//!   and every channel is listened to again.
//! - **Dead connections.** A connection that a NAT or a proxy silently dropped never reports
//!   an error: when nothing has arrived for [`HubConfig::keepalive_after`], the hub runs
//!   `SELECT 1` on it and gives it up as lost if that fails or takes longer than
//!   [`HubConfig::reply_timeout`].
//! - **What was missed.** Notifications sent while nobody listened are gone for good. Every
//!   subscriber is told so ([`Heard::Missed`]) and resynchronises from the database.
//!
//! The connection is opened with its own `application_name` ([`APPLICATION_NAME`] by default),
//! so it can be found in `pg_stat_activity`. It is not taken from the application's pool (it
//! would hold one of its slots forever) but opened with the same connection options.
//!
//! # Subscribing
//!
//! Start the hub once per process and share it: [`ListenHub::start`] returns an `Arc`, and
//! dropping the last one stops it (every subscription then ends). Then, for one channel:
//!
//! ```no_run
//! # async fn example(pool: sqlx::PgPool) {
//! use cart_core::listen::{Heard, HubConfig, ListenHub};
//! use futures::StreamExt;
//!
//! let hub = ListenHub::start(&pool, HubConfig::default());
//! let mut changes = hub.subscribe("catalog_changes");
//! while let Some(heard) = changes.next().await {
//!     match heard {
//!         // Read the state from the database: anything before now may have been missed.
//!         Heard::Missed => resync().await,
//!         // One notification's payload, in the order PostgreSQL delivered them.
//!         Heard::Notice(payload) => apply(&payload).await,
//!         // Nothing more is heard until the next `Missed`.
//!         Heard::Lost => {}
//!     }
//! }
//! # }
//! # async fn resync() {}
//! # async fn apply(_: &str) {}
//! ```
//!
//! The first item of every subscription is [`Heard::Missed`], as soon as the channel is being
//! listened to (at once when it already is): resynchronising there, and applying notices
//! after, never misses a change, whenever the subscription was made. `Missed` comes again
//! after every reconnection, and when the subscriber fell more than [`HubConfig::capacity`]
//! notices behind (the others are not held up by a slow one). [`Heard::Lost`] says the
//! connection is gone; a subscriber that must not act on state it cannot keep fresh (a cache)
//! stops trusting it there, the others can ignore it.
//!
//! Channels stay listened to for the life of the hub, subscribed or not: a process has a
//! handful, and they come back.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use backon::BackoffBuilder;
use futures::{Stream, StreamExt, stream::BoxStream};
use sqlx::{
    PgPool,
    postgres::{PgListener, PgPoolOptions},
};
use tokio::{
    sync::{Notify, broadcast},
    task::JoinHandle,
    time::Instant,
};

/// The `application_name` of the hub's connection unless [`HubConfig`] names another.
pub const APPLICATION_NAME: &str = "cart-listen";

/// What a subscriber hears on its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A notification's payload.
    Notice(String),
    /// The channel is listened to, and notifications sent before may not have been heard
    /// (the subscription is new, the connection came back, or this subscriber fell behind):
    /// read the state from the database again.
    Missed,
    /// The connection is lost: nothing is heard until the next [`Heard::Missed`].
    Lost,
}

/// How the hub connects and how long it waits.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The connection's `application_name`, to find it in `pg_stat_activity`.
    pub application_name: String,
    /// After this long without a notification, the connection is checked with `SELECT 1`.
    pub keepalive_after: Duration,
    /// How long connecting, `LISTEN` or the keepalive may take before the connection is
    /// treated as lost.
    pub reply_timeout: Duration,
    /// Notices a subscriber may fall behind before it is told [`Heard::Missed`] instead.
    pub capacity: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            application_name: APPLICATION_NAME.to_owned(),
            keepalive_after: Duration::from_secs(30),
            reply_timeout: Duration::from_secs(10),
            capacity: 1024,
        }
    }
}

/// The process's listening connection; see the [module documentation](self).
pub struct ListenHub {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for ListenHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenHub").finish_non_exhaustive()
    }
}

impl ListenHub {
    /// Starts the hub for the database `pool` connects to. It connects once there is a
    /// subscriber, and stops when the returned hub is dropped (its subscriptions end) or
    /// `pool` is closed (they hear [`Heard::Lost`]). Must be called inside a Tokio runtime.
    pub fn start(pool: &PgPool, config: HubConfig) -> Arc<Self> {
        let shared = Arc::new(Shared {
            channels: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            capacity: config.capacity.max(1),
        });
        let task = tokio::spawn(run(shared.clone(), pool.clone(), config));
        Arc::new(Self { shared, task })
    }

    /// Subscribes to `channel`, listening to it if nobody did yet; see [`Heard`] for what the
    /// subscription yields. It ends when the hub stops.
    pub fn subscribe(&self, channel: &str) -> Subscription {
        let (receiver, live) = {
            let mut channels = self.shared.lock();
            match channels.get(channel) {
                Some(known) => (known.sender.subscribe(), known.live),
                None => {
                    let added = Channel::new(self.shared.capacity);
                    let receiver = added.sender.subscribe();
                    channels.insert(channel.to_owned(), added);
                    (receiver, false)
                }
            }
        };
        if !live {
            self.shared.changed.notify_one();
        }
        Subscription::new(receiver, live)
    }
}

impl Drop for ListenHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One subscriber's view of one channel: a [`Stream`] of [`Heard`].
pub struct Subscription(BoxStream<'static, Heard>);

impl Subscription {
    fn new(receiver: broadcast::Receiver<Heard>, live: bool) -> Self {
        // A channel listened to already announces nothing more: this subscriber starts here.
        let first = futures::stream::iter(live.then_some(Heard::Missed));
        let rest = futures::stream::unfold(receiver, |mut receiver| async move {
            let heard = match receiver.recv().await {
                Ok(heard) => heard,
                Err(broadcast::error::RecvError::Lagged(_)) => Heard::Missed,
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((heard, receiver))
        });
        Self(first.chain(rest).boxed())
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

impl Stream for Subscription {
    type Item = Heard;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Heard>> {
        self.0.poll_next_unpin(cx)
    }
}

struct Channel {
    sender: broadcast::Sender<Heard>,
    /// `LISTEN` is in effect for it on the current connection.
    live: bool,
}

impl Channel {
    fn new(capacity: usize) -> Self {
        Self {
            sender: broadcast::Sender::new(capacity),
            live: false,
        }
    }

    fn tell(&self, heard: Heard) {
        // No subscriber right now is fine: nobody is waiting.
        let _ = self.sender.send(heard);
    }
}

struct Shared {
    channels: Mutex<HashMap<String, Channel>>,
    /// A channel was added, to be listened to.
    changed: Notify,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Channel>> {
        // The map stays consistent whatever panicked while holding it.
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn has_no_channel(&self) -> bool {
        self.lock().is_empty()
    }

    /// The channels not listened to on the current connection.
    fn unlistened(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, channel)| !channel.live)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// `names` are listened to now: their subscribers resynchronise. Under the lock, so a
    /// new subscriber either sees `live` (and starts with its own `Missed`) or gets this one.
    fn now_listened(&self, names: &[String]) {
        let mut channels = self.lock();
        for name in names {
            if let Some(channel) = channels.get_mut(name) {
                channel.live = true;
                channel.tell(Heard::Missed);
            }
        }
    }

    fn lost(&self) {
        for channel in self.lock().values_mut() {
            if std::mem::replace(&mut channel.live, false) {
                channel.tell(Heard::Lost);
            }
        }
    }

    fn deliver(&self, channel: &str, payload: &str) {
        if let Some(channel) = self.lock().get(channel) {
            channel.tell(Heard::Notice(payload.to_owned()));
        }
    }
}

/// The first pause after a failure, and the longest.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// A connection that lasted this long was not flapping: the next outage starts its backoff
/// afresh.
const STABLE_FOR: Duration = MAX_RETRY;

fn backoff() -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(FIRST_RETRY)
        .with_max_delay(MAX_RETRY)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Why listening on one connection stopped.
enum Ended {
    /// The connection failed or stopped answering: connect again.
    Lost(String),
    /// The application's pool was closed: the process is shutting down.
    PoolClosed,
}

type Closed<'a> = Pin<&'a mut sqlx::pool::CloseEvent>;

async fn run(shared: Arc<Shared>, app_pool: PgPool, config: HubConfig) {
    let mut closed = std::pin::pin!(app_pool.close_event());
    let mut retries = backoff();
    loop {
        // No subscriber yet: no connection.
        while shared.has_no_channel() {
            tokio::select! {
                () = closed.as_mut() => return,
                () = shared.changed.notified() => {}
            }
        }
        let connected = tokio::select! {
            () = closed.as_mut() => return,
            connected = tokio::time::timeout(config.reply_timeout, connect(&shared, &app_pool, &config)) => connected,
        };
        let (pool, mut listener, channels) = match connected {
            Ok(Ok(connected)) => connected,
            failed => {
                let delay = retries.next().unwrap_or(MAX_RETRY);
                match failed {
                    Ok(Err(e)) => tracing::warn!(error = %e, ?delay, "cannot LISTEN; retrying"),
                    _ => tracing::warn!(?delay, "cannot LISTEN: connecting timed out; retrying"),
                }
                if !pause(delay, closed.as_mut()).await {
                    return;
                }
                continue;
            }
        };
        shared.now_listened(&channels);
        tracing::info!(?channels, "listening for notifications");
        let since = Instant::now();
        let ended = listen_until_lost(&shared, &mut listener, &config, closed.as_mut()).await;
        shared.lost();
        drop(listener);
        match ended {
            Ended::PoolClosed => {
                let _ = tokio::time::timeout(config.reply_timeout, pool.close()).await;
                return;
            }
            Ended::Lost(reason) => {
                tracing::warn!(%reason, "the listening connection is lost; reconnecting");
            }
        }
        if since.elapsed() >= STABLE_FOR {
            retries = backoff();
        }
        if !pause(retries.next().unwrap_or(MAX_RETRY), closed.as_mut()).await {
            return;
        }
    }
}

/// Waits `delay`; false when the application's pool was closed meanwhile.
async fn pause(delay: Duration, closed: Closed<'_>) -> bool {
    tokio::select! {
        () = closed => false,
        () = tokio::time::sleep(delay) => true,
    }
}

/// A new connection listening on every channel subscribed so far (which it returns), in a
/// pool of its own that ends with it.
async fn connect(
    shared: &Shared,
    app_pool: &PgPool,
    config: &HubConfig,
) -> Result<(PgPool, PgListener, Vec<String>), sqlx::Error> {
    let options = (*app_pool.connect_options())
        .clone()
        .application_name(&config.application_name);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(config.reply_timeout)
        .max_lifetime(None)
        .idle_timeout(None)
        .test_before_acquire(false)
        .connect_lazy_with(options);
    let mut listener = PgListener::connect_with(&pool).await?;
    // A lost connection is the hub's to handle (subscribers must hear of it), not the
    // listener's to hide by reconnecting inside.
    listener.eager_reconnect(false);
    let channels = shared.unlistened();
    listener
        .listen_all(channels.iter().map(String::as_str))
        .await?;
    Ok((pool, listener, channels))
}

/// Hands notifications to subscribers, listens to channels as they are subscribed to, and
/// checks an idle connection, until the connection is lost or the application's pool closed.
async fn listen_until_lost(
    shared: &Shared,
    listener: &mut PgListener,
    config: &HubConfig,
    mut closed: Closed<'_>,
) -> Ended {
    loop {
        let added = shared.unlistened();
        if !added.is_empty() {
            let listen = listener.listen_all(added.iter().map(String::as_str));
            match tokio::time::timeout(config.reply_timeout, listen).await {
                Ok(Ok(())) => {
                    shared.now_listened(&added);
                    tracing::info!(channels = ?added, "listening for notifications");
                }
                Ok(Err(e)) => return Ended::Lost(format!("LISTEN failed: {e}")),
                Err(_) => return Ended::Lost("LISTEN timed out".into()),
            }
            continue;
        }
        tokio::select! {
            biased;
            () = closed.as_mut() => return Ended::PoolClosed,
            () = shared.changed.notified() => {}
            received = tokio::time::timeout(config.keepalive_after, listener.try_recv()) => {
                match received {
                    Ok(Ok(Some(notification))) => {
                        shared.deliver(notification.channel(), notification.payload());
                    }
                    Ok(Ok(None)) => return Ended::Lost("the connection closed".into()),
                    Ok(Err(e)) => return Ended::Lost(e.to_string()),
                    Err(_) => {
                        if let Err(reason) = keepalive(listener, config.reply_timeout).await {
                            return Ended::Lost(reason);
                        }
                    }
                }
            }
        }
    }
}

/// Whether an idle connection still answers: one that a NAT or a proxy dropped without a word
/// would otherwise wait for notifications forever.
async fn keepalive(listener: &mut PgListener, within: Duration) -> Result<(), String> {
    use sqlx::Executor;
    match tokio::time::timeout(within, listener.execute("SELECT 1")).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("keepalive failed: {e}")),
        Err(_) => Err(format!("no answer to the keepalive within {within:?}")),
    }
}

#[cfg(test)]
mod tests;
