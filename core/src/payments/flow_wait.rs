//! Waiting for the initiation job: one `LISTEN payment_ready` connection per process,
//! fanned out to every request waiting for a payment.
//!
//! A waiter subscribes first and reads the row second, so a notification sent between the
//! two is never missed. When the listener cannot connect, waiters fall back to reading the
//! row every [`POLL_EVERY`]; either way the row is read once more at the deadline.

use std::{sync::Arc, time::Duration};

use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::{OnceCell, broadcast};
use uuid::Uuid;

use super::flow::{self, Payment, PaymentState, READY_CHANNEL};
use crate::Result;

/// How often a waiter re-reads the row when no notification comes (a safety net for a
/// listener that reconnects and misses one).
pub const POLL_EVERY: Duration = Duration::from_millis(250);

/// Shared by the API process; cheap to clone.
#[derive(Clone)]
pub struct PaymentWaiters {
    pool: PgPool,
    ready: Arc<OnceCell<Option<broadcast::Sender<Uuid>>>>,
}

impl std::fmt::Debug for PaymentWaiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentWaiters").finish_non_exhaustive()
    }
}

impl PaymentWaiters {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            ready: Arc::new(OnceCell::new()),
        }
    }

    /// The fan-out channel, starting the listener on first use; `None` when it cannot listen.
    async fn channel(&self) -> Option<broadcast::Sender<Uuid>> {
        self.ready
            .get_or_init(|| async {
                match listen(self.pool.clone()).await {
                    Ok(sender) => Some(sender),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for payment_ready; waiters poll");
                        None
                    }
                }
            })
            .await
            .clone()
    }

    /// Waits up to `timeout` for `payment_id` to leave `initiating`; returns the row as it
    /// is then (still `initiating` when the job did not finish in time).
    pub async fn wait(&self, payment_id: Uuid, timeout: Duration) -> Result<Payment> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut receiver = self.channel().await.map(|sender| sender.subscribe());
        loop {
            let payment = {
                let mut conn = self.pool.acquire().await?;
                flow::get(&mut conn, payment_id).await?
            };
            if payment.status != PaymentState::Initiating || tokio::time::Instant::now() >= deadline
            {
                return Ok(payment);
            }
            let pause =
                tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + POLL_EVERY));
            match receiver.as_mut() {
                Some(rx) => {
                    tokio::select! {
                        _ = pause => {}
                        _ = next_for(rx, payment_id) => {}
                    }
                }
                None => pause.await,
            }
        }
    }
}

/// Resolves when `payment_id` is announced (or the channel lags/closes: re-read the row).
async fn next_for(rx: &mut broadcast::Receiver<Uuid>, payment_id: Uuid) {
    loop {
        match rx.recv().await {
            Ok(id) if id == payment_id => return,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            Err(broadcast::error::RecvError::Closed) => {
                // The listener is gone: fall back to the poll interval.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Starts the listener task once `LISTEN` is in place.
async fn listen(pool: PgPool) -> Result<broadcast::Sender<Uuid>, sqlx::Error> {
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(READY_CHANNEL).await?;
    let (sender, _) = broadcast::channel(1024);
    let fan_out = sender.clone();
    tokio::spawn(async move {
        loop {
            // `recv` reconnects (and re-listens) by itself after a dropped connection.
            match listener.recv().await {
                Ok(notification) => {
                    if let Ok(id) = Uuid::parse_str(notification.payload()) {
                        // No receiver right now is fine: nobody is waiting.
                        let _ = fan_out.send(id);
                    }
                }
                Err(_) if pool.is_closed() => break,
                Err(e) => {
                    tracing::warn!(error = %e, "payment_ready listener error; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(sender)
}
