//! Job handlers: one file per kind. Payloads live in `cart_core::jobs`; kinds are listed in
//! `registry.rs`.

mod emit_invoice;
mod expire_order;
mod initiate_payment;
mod prune_idempotency_keys;
mod prune_jobs;
mod purge_abandoned_carts;
mod purge_reset_tokens;
mod purge_sessions;
mod reconcile_payment;
mod refund_payment;
mod scrub_outbox;
mod send_email;
mod send_password_reset;
pub mod testing;
