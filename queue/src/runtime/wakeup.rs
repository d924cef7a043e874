//! Waking a queue worker on LISTEN/NOTIFY without losing a notification.
//!
//! apalis consumes a notification whenever it polls its wake-up strategy, also while a fetch
//! is already in flight. That fetch may have started before the notified job was committed:
//! it comes back empty, the worker parks, and the job waits for the next polling tick (the
//! 300+ ms enqueue-to-start p99 the benchmark measured). [`Recheck`] wraps the notification
//! strategy and, after each notification, wakes the worker again a few times over the next
//! tens of milliseconds. A wake-up while a fetch is in flight costs nothing; one while the
//! worker is idle is one more fetch, which finds the job.

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use apalis::prelude::{PollSnapshot, PollStrategy};
use tokio::time::{Instant, Sleep};

/// The extra wake-ups after a notification, counted from it.
pub(crate) const RECHECKS: [Duration; 3] = [
    Duration::from_millis(5),
    Duration::from_millis(20),
    Duration::from_millis(60),
];

/// Wraps a notification strategy with wake-ups at [`RECHECKS`] after each notification.
pub(crate) struct Recheck<S> {
    notifications: S,
    /// When the pending wake-ups are due, earliest first.
    due: VecDeque<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> Recheck<S> {
    pub(crate) fn new(notifications: S) -> Self {
        Self {
            notifications,
            due: VecDeque::new(),
            timer: None,
        }
    }

    fn schedule_after(&mut self, now: Instant) {
        // A burst of notifications needs one series of rechecks, not one per notification.
        let latest = now + RECHECKS[RECHECKS.len() - 1];
        if self
            .due
            .back()
            .is_some_and(|last| *last >= latest - RECHECKS[0])
        {
            return;
        }
        self.due.extend(RECHECKS.iter().map(|after| now + *after));
        self.due.make_contiguous().sort();
    }

    /// `Ready` when a recheck is due; otherwise the timer is armed for the next one.
    fn poll_rechecks(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        let mut fired = false;
        while self.due.front().is_some_and(|at| *at <= now) {
            self.due.pop_front();
            fired = true;
        }
        match self.due.front() {
            Some(next) => {
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(*next)));
                if timer.deadline() != *next {
                    timer.as_mut().reset(*next);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    // Due between our clock read and the timer's: fire it on the next poll.
                    cx.waker().wake_by_ref();
                }
            }
            None => self.timer = None,
        }
        if fired {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl<S: PollStrategy> PollStrategy for Recheck<S> {
    fn poll_drive(&mut self, cx: &mut Context<'_>, snapshot: &PollSnapshot) -> Poll<Option<()>> {
        let notified = self.notifications.poll_drive(cx, snapshot);
        if let Poll::Ready(Some(())) = notified {
            self.schedule_after(Instant::now());
        }
        let recheck = self.poll_rechecks(cx);
        match (notified, recheck) {
            (Poll::Ready(item), _) => Poll::Ready(item),
            (Poll::Pending, Poll::Ready(())) => Poll::Ready(Some(())),
            (Poll::Pending, Poll::Pending) => Poll::Pending,
        }
    }

    fn on_poll(&mut self, snapshot: &PollSnapshot) {
        self.notifications.on_poll(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    use std::task::{Wake, Waker};

    use apalis::prelude::StreamStrategy;
    use futures::channel::mpsc;

    use super::*;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Polls the strategy until it stops being ready; returns how many times it was ready.
    fn drain<S: PollStrategy>(strategy: &mut S, waker: &Waker) -> usize {
        let mut cx = Context::from_waker(waker);
        let mut ready = 0;
        while let Poll::Ready(Some(())) = strategy.poll_drive(&mut cx, &PollSnapshot::default()) {
            ready += 1;
        }
        ready
    }

    #[tokio::test(start_paused = true)]
    async fn a_notification_is_followed_by_the_rechecks_and_then_silence() {
        let (sender, receiver) = mpsc::unbounded::<()>();
        let mut strategy = Recheck::new(StreamStrategy::new(receiver));
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());

        assert_eq!(
            drain(&mut strategy, &waker),
            0,
            "nothing before a notification"
        );
        sender.unbounded_send(()).unwrap();
        assert_eq!(drain(&mut strategy, &waker), 1, "the notification itself");

        let mut woken_at = Vec::new();
        let started = Instant::now();
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(1)).await;
            if drain(&mut strategy, &waker) > 0 {
                woken_at.push(started.elapsed());
            }
        }
        assert_eq!(woken_at, RECHECKS.to_vec(), "one wake-up at each recheck");
        assert!(
            counter.0.load(Ordering::SeqCst) >= RECHECKS.len(),
            "the timer woke the task for each recheck"
        );
        assert!(strategy.due.is_empty() && strategy.timer.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_notifications_schedules_one_series() {
        let (sender, receiver) = mpsc::unbounded::<()>();
        let mut strategy = Recheck::new(StreamStrategy::new(receiver));
        let waker = Waker::from(Arc::new(CountingWaker::default()));
        for _ in 0..50 {
            sender.unbounded_send(()).unwrap();
        }
        assert_eq!(drain(&mut strategy, &waker), 50);
        assert_eq!(strategy.due.len(), RECHECKS.len());
    }
}
