//! Which job kinds and tickers this worker runs. Adding a kind is one line in [`standard`]:
//! its payload implements `cart_core::jobs::Job` (in core) and `cart_queue::Handler<Deps>`
//! (here, in `jobs/`); a periodic one also implements `TickJob` and is added with
//! `Registry::ticker` instead.

use cart_core::jobs;

use crate::{deps::Deps, jobs::testing};

/// The kinds of this worker, whose handlers share [`Deps`].
pub type Registry = cart_queue::Registry<Deps>;

/// Every kind the store needs.
pub fn standard() -> Registry {
    Registry::new()
        .register::<jobs::send_email::SendEmail>()
        .register::<jobs::send_password_reset::SendPasswordReset>()
        .register::<jobs::scrub_outbox::ScrubOutbox>()
        .register::<jobs::initiate_payment::InitiatePayment>()
        .register::<jobs::reconcile_payment::ReconcilePayment>()
        .register::<jobs::emit_invoice::EmitInvoice>()
        .register::<jobs::refund_payment::RefundPayment>()
        .ticker::<jobs::maintenance::PruneJobs>()
        .ticker::<jobs::maintenance::PurgeResetTokens>()
        .ticker::<jobs::maintenance::PurgeSessions>()
        .ticker::<jobs::maintenance::PurgeAbandonedCarts>()
        .register::<jobs::expire_order::ExpireOrder>()
        .ticker::<jobs::expire_order::ExpireDueOrders>()
        .ticker::<cart_core::idempotency::PruneIdempotencyKeys>()
}

/// `registry` plus the kinds the integration tests use to drive real worker processes.
pub fn with_test_jobs(registry: Registry) -> Registry {
    registry
        .register::<testing::Record>()
        .register::<testing::Noop>()
        .ticker::<testing::Tick>()
}
